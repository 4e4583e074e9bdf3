"""Tiny, randomly initialised vision-language checkpoints for adapter tests (no hub, no network).

Each `save_*` function writes a folder that `AutoProcessor.from_pretrained(path)` and
`AutoModelForImageTextToText.from_pretrained(path)` load like a real checkpoint: config, weights
(safetensors), a byte-level BPE tokenizer trained here on a few sentences, the family's special
tokens, an image processor and a chat template. Hidden sizes are a few dozen and there are one or
two layers, so saving takes well under a second and a short generate call a fraction of one.
Random weights produce garbage text; the tests only check plumbing, never answers.

The image processors are the PIL ones (no torchvision needed). Each checkpoint also carries the
video processor config a real one has; transformers can only build that processor (and hence
`AutoProcessor`) when torchvision is installed.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                 "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
LLAVA_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
CORPUS = ["The answer is A. The answer is B. The answer is 3.",
          "A video was cut into clips, shown in a shuffled order. Which frame is odd?",
          "Count the objects. Give the order of the clips as a list of numbers: 1, 2, 3, 4.",
          "Answer with a single letter or number. Frame, clip, object, colour, rotated, mirrored."]

# One template per placeholder style, written for these tests in the families' ChatML layout:
# a turn per message, media placeholders where the parts are, then the assistant turn.
_CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}IMAGE"
    "{% elif item['type'] == 'video' %}VIDEO"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
QWEN_TEMPLATE = (_CHATML.replace("IMAGE", "<|vision_start|><|image_pad|><|vision_end|>")
                 .replace("VIDEO", "<|vision_start|><|video_pad|><|vision_end|>"))
LLAVA_TEMPLATE = _CHATML.replace("IMAGE", "<image>\n").replace("VIDEO", "<video>\n")


def make_tokenizer(specials: list[str], vocab_size: int = 400):
    """A byte-level BPE tokenizer trained in-process, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    raw.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", padding_side="left",
                                   extra_special_tokens={})


def _token_ids(tokenizer, names: dict[str, str]) -> dict[str, int]:
    return {key: tokenizer.convert_tokens_to_ids(token) for key, token in names.items()}


def _text_config(tokenizer, **extra: Any) -> dict[str, Any]:
    """A two-layer decoder small enough to run in milliseconds."""
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    return {"vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 4096, "eos_token_id": eos, "bos_token_id": eos,
            "pad_token_id": tokenizer.pad_token_id, **extra}


def _write(out: str, model, tokenizer, images, template: str, processor: dict[str, Any],
           video: dict[str, Any]) -> str:
    """Save the pieces the way hub checkpoints ship them.

    The processor is not saved as an object because without torchvision it cannot be built
    whole; the video processor's config is written as the JSON a real checkpoint carries.
    """
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    images.save_pretrained(out)
    with open(os.path.join(out, "chat_template.jinja"), "w", encoding="utf-8") as handle:
        handle.write(template)
    for name, content in (("processor_config.json", processor),
                          ("video_preprocessor_config.json", video)):
        with open(os.path.join(out, name), "w", encoding="utf-8") as handle:
            json.dump(content, handle, indent=2)
    return out


def _seeded(seed: int, factory: Callable[[], Any]) -> Any:
    import torch

    torch.manual_seed(seed)
    return factory().eval()


def _qwen_ids(tokenizer) -> dict[str, int]:
    return _token_ids(tokenizer, {"image_token_id": "<|image_pad|>",
                                  "video_token_id": "<|video_pad|>",
                                  "vision_start_token_id": "<|vision_start|>",
                                  "vision_end_token_id": "<|vision_end|>"})


def _save_qwen(out: str, seed: int, family: str, vision: dict[str, Any],
               text_extra: dict[str, Any]) -> str:
    """Shared body of the three Qwen families: same tokens, template and processor layout."""
    import transformers

    names = QWEN_FAMILIES[family]
    patch = vision["patch_size"]
    pixels = {"shortest_edge": (2 * patch) ** 2, "longest_edge": (2 * patch) ** 2 * 16}
    tokenizer = make_tokenizer(QWEN_SPECIALS)
    images = transformers.Qwen2VLImageProcessorPil(size=pixels, patch_size=patch,
                                                   temporal_patch_size=2, merge_size=2)
    config_cls = getattr(transformers, names["config"])
    config = config_cls(text_config=_text_config(tokenizer, **text_extra), vision_config=vision,
                        **_qwen_ids(tokenizer))
    model = _seeded(seed, lambda: getattr(transformers, names["model"])(config))
    video = {"video_processor_type": names["video"], "size": pixels, "patch_size": patch,
             "temporal_patch_size": 2, "merge_size": 2, "image_mean": list(images.image_mean),
             "image_std": list(images.image_std), "do_sample_frames": False}
    return _write(out, model, tokenizer, images, QWEN_TEMPLATE,
                  {"processor_class": names["processor"]}, video)


QWEN_FAMILIES = {
    "qwen2_vl": {"config": "Qwen2VLConfig", "model": "Qwen2VLForConditionalGeneration",
                 "processor": "Qwen2VLProcessor", "video": "Qwen2VLVideoProcessor"},
    "qwen2_5_vl": {"config": "Qwen2_5_VLConfig", "model": "Qwen2_5_VLForConditionalGeneration",
                   "processor": "Qwen2_5_VLProcessor", "video": "Qwen2VLVideoProcessor"},
    "qwen3_vl": {"config": "Qwen3VLConfig", "model": "Qwen3VLForConditionalGeneration",
                 "processor": "Qwen3VLProcessor", "video": "Qwen3VLVideoProcessor"},
}
# Head size 16 -> 8 rotary pairs, split over (time, height, width) by mrope_section.
_MROPE = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}


def save_qwen2_vl(out: str, seed: int = 0) -> str:
    """A tiny Qwen2-VL checkpoint in `out`."""
    vision = {"depth": 1, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "mlp_ratio": 2,
              "patch_size": 14, "temporal_patch_size": 2, "spatial_merge_size": 2}
    return _save_qwen(out, seed, "qwen2_vl", vision, {"rope_parameters": dict(_MROPE)})


def save_qwen2_5_vl(out: str, seed: int = 0) -> str:
    """A tiny Qwen2.5-VL checkpoint (windowed vision attention, one full-attention block)."""
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
              "out_hidden_size": 64, "patch_size": 14, "temporal_patch_size": 2,
              "spatial_merge_size": 2, "window_size": 56, "fullatt_block_indexes": [1]}
    return _save_qwen(out, seed, "qwen2_5_vl", vision, {"rope_parameters": dict(_MROPE)})


def save_qwen3_vl(out: str, seed: int = 0) -> str:
    """A tiny Qwen3-VL checkpoint (16-pixel patches, one deepstack layer, timestamped video)."""
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
              "out_hidden_size": 64, "patch_size": 16, "temporal_patch_size": 2,
              "spatial_merge_size": 2, "num_position_embeddings": 64,
              "deepstack_visual_indexes": [0]}
    rope = {**_MROPE, "mrope_interleaved": True}
    return _save_qwen(out, seed, "qwen3_vl", vision, {"rope_parameters": rope, "head_dim": 16})


def save_llava_onevision(out: str, seed: int = 0) -> str:
    """A tiny LLaVA-OneVision checkpoint: SigLIP tower on 56-pixel tiles, Qwen2 decoder."""
    import transformers

    tokenizer = make_tokenizer(LLAVA_SPECIALS)
    tile, patch = 56, 14
    pinpoints = [[tile, tile], [tile, 2 * tile], [2 * tile, tile], [2 * tile, 2 * tile]]
    images = transformers.LlavaOnevisionImageProcessorPil(
        size={"height": tile, "width": tile}, image_grid_pinpoints=pinpoints)
    vision = {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": tile,
              "patch_size": patch}
    text = {"model_type": "qwen2", **_text_config(tokenizer)}
    ids = _token_ids(tokenizer, {"image_token_index": "<image>", "video_token_index": "<video>"})
    config = transformers.LlavaOnevisionConfig(
        vision_config=vision, text_config=text, image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="full", vision_feature_layer=-1, **ids)
    model = _seeded(seed, lambda: transformers.LlavaOnevisionForConditionalGeneration(config))
    video = {"video_processor_type": "LlavaOnevisionVideoProcessor",
             "size": {"height": tile, "width": tile}, "image_mean": list(images.image_mean),
             "image_std": list(images.image_std)}
    processor = {"processor_class": "LlavaOnevisionProcessor",
                 "num_image_tokens": (tile // patch) ** 2,
                 "vision_feature_select_strategy": "full", "vision_aspect_ratio": "anyres_max_9"}
    return _write(out, model, tokenizer, images, LLAVA_TEMPLATE, processor, video)


SAVERS: dict[str, Callable[..., str]] = {
    "qwen2_vl": save_qwen2_vl, "qwen2_5_vl": save_qwen2_5_vl, "qwen3_vl": save_qwen3_vl,
    "llava_onevision": save_llava_onevision}
