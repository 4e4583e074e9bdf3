"""`hf:/path/to/checkpoint`: a local Hugging Face transformers vision-language checkpoint.

The checkpoint is loaded by path only (`local_files_only=True`, nothing is downloaded) with
`AutoProcessor` and `AutoModelForImageTextToText`, prompted through the processor's chat template
and answered with batched greedy decoding. Known to work: Qwen2-VL, Qwen2.5-VL, Qwen3-VL and
LLaVA-OneVision; any image-text-to-text model whose processor takes `images=`/`videos=` should.

Video parts reach the model one of two ways, chosen once at load time and recorded in every
response's `info["video_input"]` and in `describe()`:

* `video`: the frames go to the processor's video processor as one clip (with the clip's fps and
  frame indices as metadata, so models that print timestamps get them right);
* `frames`: each frame becomes an image placeholder, in order, in the prompt.

Option `video=auto` (the default) picks `video` when the checkpoint's video processor loads and
`frames` otherwise. In transformers 5 every video processor needs torchvision, so without it
`auto` means `frames`, and `video=video` is refused at load time rather than silently swapped.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import json
import os
from typing import Any, Sequence

from viubench.adapters import (AdapterAbort, Request, Response, adapter, failed, frame_policy,
                               option, shown_clip)

VIDEO_MODES = ("auto", "video", "frames")
DTYPES = ("auto", "float32", "bfloat16", "float16")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
SAMPLE_BYTES = 1 << 20    # bytes read from each end of a weight file for the fingerprint


def checkpoint_hash(path: str) -> str:
    """SHA-256 over config.json and, per weight file, its name, size, and first and last MiB.

    Reading both ends (a safetensors file starts with its tensor index) tells checkpoints apart,
    fine-tunes included, without reading many gigabytes.
    """
    digest = hashlib.sha256()
    with open(os.path.join(path, "config.json"), "rb") as handle:
        digest.update(handle.read())
    for name in sorted(os.listdir(path)):
        if not name.endswith(WEIGHT_SUFFIXES):
            continue
        full = os.path.join(path, name)
        size = os.path.getsize(full)
        digest.update(f"{name}\0{size}\0".encode())
        with open(full, "rb") as handle:
            digest.update(handle.read(SAMPLE_BYTES))
            handle.seek(max(0, size - SAMPLE_BYTES))
            digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()


@dataclasses.dataclass
class Prompt:
    """One request turned into a chat message plus the media the processor needs, in order."""

    messages: list[dict[str, Any]]
    images: list[Any] = dataclasses.field(default_factory=list)
    videos: list[Any] = dataclasses.field(default_factory=list)
    metadata: list[Any] = dataclasses.field(default_factory=list)
    frames: int = 0


def _skip_missing_video(self, name: str, argument: Any) -> Any:
    # The processor base class insists on a video processor object; we deliberately have none.
    if name == "video_processor" and argument is None:
        return None
    parent: Any = type(self).__mro__[1]
    return parent.check_argument_for_proper_class(self, name, argument)


def _chat_template(path: str, tokenizer: Any) -> str | None:
    jinja = os.path.join(path, "chat_template.jinja")
    if os.path.exists(jinja):
        with open(jinja, encoding="utf-8") as handle:
            return handle.read()
    legacy = os.path.join(path, "chat_template.json")
    if os.path.exists(legacy):
        with open(legacy, encoding="utf-8") as handle:
            return json.load(handle)["chat_template"]
    return getattr(tokenizer, "chat_template", None)


def _processor_without_video(path: str, remote: bool) -> Any:
    """The checkpoint's processor class built from its tokenizer and image processor only.

    Used when the video processor cannot load (transformers 5 requires torchvision for it).
    """
    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    common: dict[str, Any] = {"local_files_only": True, "trust_remote_code": remote}
    config = AutoConfig.from_pretrained(path, **common)
    base: Any = PROCESSOR_MAPPING[type(config)]
    tokenizer = AutoTokenizer.from_pretrained(path, **common)
    images = AutoImageProcessor.from_pretrained(path, **common)
    extra: dict[str, Any] = {}
    saved = os.path.join(path, "processor_config.json")
    if os.path.exists(saved):
        with open(saved, encoding="utf-8") as handle:
            accepted = inspect.signature(base.__init__).parameters
            extra = {k: v for k, v in json.load(handle).items()
                     if k in accepted and not k.endswith(("processor", "tokenizer"))}
    extra["chat_template"] = _chat_template(path, tokenizer)
    cls = type(base.__name__, (base,), {"check_argument_for_proper_class": _skip_missing_video})
    return cls(image_processor=images, tokenizer=tokenizer, video_processor=None, **extra)


def load_processor(path: str, remote: bool) -> Any:
    """AutoProcessor, or the same processor without its video part when torchvision is missing."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(path, local_files_only=True,
                                             trust_remote_code=remote)
    except ImportError as error:
        if "torchvision" not in str(error).lower():
            raise
        return _processor_without_video(path, remote)


def _check_path(path: str) -> None:
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise AdapterAbort(f"hf: no checkpoint at {path} (config.json not found); give the"
                           " path of a local transformers model folder")


def load_model(path: str, dtype: str, device: str, attn: str, remote: bool) -> Any:
    """AutoModelForImageTextToText in eval mode on `device` (`auto`: all GPUs, else CPU)."""
    import torch
    from transformers import AutoModelForImageTextToText

    if device == "auto":
        device = "auto" if torch.cuda.is_available() else "cpu"
    # use_kernels=False: transformers 5 otherwise swaps layers for kernels fetched from the Hub
    # on a GPU (code downloaded and run at load time; offline, the load fails). A checkpoint is
    # loaded from its folder alone, and nothing it or the Hub names is run.
    kwargs: dict[str, Any] = {"local_files_only": True, "trust_remote_code": remote,
                              "device_map": device, "use_kernels": False,
                              "dtype": dtype if dtype == "auto" else getattr(torch, dtype)}
    if attn:
        kwargs["attn_implementation"] = attn
    return AutoModelForImageTextToText.from_pretrained(path, **kwargs).eval()


def _rgb(path: str) -> Any:
    from PIL import Image

    with Image.open(path) as picture:
        return picture.convert("RGB")


def _sizes(max_frames: int | str | None, batch_size: int | str) -> tuple[int | None, int]:
    """Options max_frames (None: every frame) and batch_size, checked."""
    return (option("hf", "max_frames", max_frames, int, minimum=1),
            option("hf", "batch_size", batch_size, int, minimum=1) or 4)


def _stop_ids(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end an answer: the generation config's EOS ids, the tokenizer's, and pad."""
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.update([tokenizer.eos_token_id, tokenizer.pad_token_id])
    return {i for i in ids if i is not None}


@adapter("hf")
class TransformersLocal:
    """A local transformers vision-language checkpoint, greedy decoding (hf:/path/to/model).

    Options: dtype=auto|float32|bfloat16|float16, device=auto|cpu|cuda[:N],
    video=auto|video|frames, max_frames=N (even subsampling of each clip), attn=<attention
    implementation>, trust_remote_code=false, batch_size=4. Requests in a batch that share
    `max_new_tokens` are generated together (left-padded); other limits go in their own pass.
    """

    default_concurrency = 1   # one model on one device: generate() is not thread-safe
    default_batch_size = 4

    def __init__(self, target: str, dtype: str = "auto", device: str = "auto",
                 video: str = "auto", max_frames: str = "", attn: str = "",
                 trust_remote_code: str = "false", batch_size: str = "4") -> None:
        if not target:
            raise ValueError("hf needs a checkpoint folder: hf:/path/to/model")
        path = os.path.abspath(os.path.expanduser(target))
        option("hf", "dtype", dtype, str, choices=DTYPES)
        option("hf", "video", video, str, choices=VIDEO_MODES)
        _check_path(path)
        frames, batch = _sizes(max_frames, batch_size)
        remote = bool(option("hf", "trust_remote_code", trust_remote_code, bool))
        try:
            processor = load_processor(path, remote)
            model = load_model(path, dtype, device, attn, remote)
        except (OSError, ValueError, KeyError) as error:
            raise AdapterAbort(f"hf: cannot load the checkpoint at {path}:"
                               f" {type(error).__name__}: {error}") from error
        self.attn = attn
        self.in_memory: str | None = None
        self._setup(model, processor, path, video, frames, batch)
        self.hash: str | None = checkpoint_hash(path)

    @classmethod
    def from_loaded(cls, model: Any, processor: Any, name: str = "in-memory",
                    video: str = "auto", max_frames: int | str | None = None,
                    batch_size: int | str = 4) -> "TransformersLocal":
        """The adapter around a model and processor already in memory (e.g. mid-training).

        Nothing is loaded or written: the model is used as it is (the caller puts it in eval
        mode), and the processor is copied, so that the left padding generation needs does not
        change the caller's. `describe()` records `in_memory: name` and the model's
        `name_or_path` in place of a checkpoint folder and its hash.
        """
        option("hf", "video", video, str, choices=VIDEO_MODES)
        frames, batch = _sizes(max_frames, batch_size)
        made = cls.__new__(cls)
        made.attn, made.hash, made.in_memory = "", None, name
        made._setup(model, copy.deepcopy(processor), "", video, frames, batch)
        return made

    def _setup(self, model: Any, processor: Any, path: str, video: str, max_frames: int | None,
               batch_size: int) -> None:
        """What both constructors share: video input, padding and stop tokens."""
        self.path, self.model, self.processor = path, model, processor
        self.max_frames, self.default_batch_size = max_frames, batch_size
        self.video_input = self._choose_video_input(video)
        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "left"   # decoder-only batches must end at the prompt's end
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.stop_ids = _stop_ids(self.model, tokenizer)

    def _choose_video_input(self, wanted: str) -> str:
        """`video` or `frames`: fixed by the option and by whether a video processor loaded."""
        native = getattr(self.processor, "video_processor", None) is not None
        if wanted == "video" and not native:
            raise ValueError(f"hf: video=video, but the checkpoint at {self.where} has no usable"
                             " video processor (transformers' video processors need torchvision);"
                             " use video=frames or install torchvision")
        if wanted == "auto":
            return "video" if native else "frames"
        return wanted

    @property
    def where(self) -> str:
        """The checkpoint folder, or the in-memory model's name, for messages."""
        return self.path or f"{self.in_memory} (in memory)"

    def describe(self) -> dict[str, Any]:
        import transformers

        generation = self.model.generation_config.to_diff_dict()
        generation.pop("transformers_version", None)
        return {"adapter": "hf", "model_class": type(self.model).__name__,
                "model_type": self.model.config.model_type,
                "processor_class": type(self.processor).__name__,
                **self._origin(),
                "dtype": str(self.model.dtype).removeprefix("torch."),
                "device": str(self.model.device), "attn": self.model.config._attn_implementation,
                "video_input": self.video_input, **frame_policy(self.max_frames),
                "generation_config": generation, "decoding": "greedy",
                "transformers_version": transformers.__version__}

    def _origin(self) -> dict[str, Any]:
        """Where the weights come from: a checkpoint folder and its hash, or a model in memory."""
        if self.in_memory is None:
            return {"checkpoint": self.path, "checkpoint_sha256": self.hash}
        return {"in_memory": self.in_memory,
                "name_or_path": str(getattr(self.model, "name_or_path", "") or "")}

    def close(self) -> None:
        self.model = None
        _free_memory()

    # ------------------------------------------------------------------ building inputs

    def prompt(self, request: Request) -> Prompt:
        """The request as one user turn; media are decoded here, in the order they appear."""
        content: list[dict[str, Any]] = []
        prompt = Prompt([*request.system_messages(as_parts=True),
                         {"role": "user", "content": content}])
        for part in request.parts:
            if part["type"] == "text":
                content.append({"type": "text", "text": part["text"]})
            elif part["type"] == "image":
                content.append({"type": "image"})
                prompt.images.append(_rgb(part["image"]))
            else:
                self._add_video(part, content, prompt)
        return prompt

    def _add_video(self, part: Any, content: list[dict[str, Any]], prompt: Prompt) -> None:
        import numpy as np
        from transformers.video_utils import VideoMetadata

        clip = shown_clip(part, self.max_frames)
        pictures = [_rgb(path) for path in clip.paths]
        prompt.frames += len(pictures)
        if self.video_input == "frames":
            content.extend({"type": "image"} for _ in pictures)
            prompt.images.extend(pictures)
            return
        content.append({"type": "video"})
        prompt.videos.append(np.stack([np.asarray(picture) for picture in pictures]))
        # Indices into the clip and its fps: models that print timestamps compute them from these.
        prompt.metadata.append(VideoMetadata(
            total_num_frames=clip.total, fps=clip.fps, duration=clip.total / clip.fps,
            width=pictures[0].width, height=pictures[0].height, frames_indices=list(clip.indices)))

    def encode(self, prompts: Sequence[Prompt]) -> Any:
        """Processor output (token ids, pixel tensors) for a batch of prompts, left-padded."""
        texts = [self.processor.apply_chat_template(p.messages, tokenize=False,
                                                    add_generation_prompt=True) for p in prompts]
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if any(p.images for p in prompts):
            # Nested per prompt: processors such as LLaVA-OneVision treat a prompt's several
            # images differently from one image alone.
            kwargs["images"] = [p.images for p in prompts]
        videos = [video for p in prompts for video in p.videos]
        if videos:
            # The frames are already the ones to show: the processor must not resample them.
            kwargs.update(videos=videos, do_sample_frames=False,
                          video_metadata=[m for p in prompts for m in p.metadata])
        return self.processor(**kwargs)

    # ------------------------------------------------------------------ generation

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        responses: list[Response | None] = [None] * len(requests)
        prompts: dict[int, Prompt] = {}
        for index, request in enumerate(requests):
            try:
                prompts[index] = self.prompt(request)
            except (OSError, ValueError, KeyError) as error:
                responses[index] = failed("fatal", f"cannot read the prompt of {request.id}:"
                                          f" {type(error).__name__}: {error}")
        by_limit: dict[int, list[int]] = {}
        for index in prompts:
            by_limit.setdefault(requests[index].max_new_tokens, []).append(index)
        for limit, members in by_limit.items():
            answers = self._answer([prompts[i] for i in members], limit)
            for index, response in zip(members, answers):
                responses[index] = response
        return [r for r in responses if r is not None]

    def _info(self, prompt: Prompt) -> dict[str, Any]:
        if not prompt.frames:
            return {}
        return {"video_input": self.video_input, "frames": prompt.frames}

    def _answer(self, prompts: list[Prompt], limit: int) -> list[Response]:
        """Greedy answers; a failing batch is retried one prompt at a time to isolate the cause."""
        try:
            texts, lengths = self._run(prompts, limit)
        except Exception as error:  # noqa: BLE001 - out of memory, processor or model errors
            _free_memory()
            if len(prompts) > 1:
                # Recorded, so a model that only fails batched is visible in the predictions.
                note = {"batch_error": f"{type(error).__name__}: {error}"[:300]}
                return [dataclasses.replace(response, info={**response.info, **note})
                        for p in prompts for response in self._answer([p], limit)]
            return [failed("fatal", f"{type(error).__name__}: {error}", **self._info(prompts[0]))]
        return [Response(text=text, info={**self._info(p), "prompt_tokens": n})
                for p, text, n in zip(prompts, texts, lengths)]

    def _run(self, prompts: list[Prompt], limit: int) -> tuple[list[str], list[int]]:
        import torch

        inputs = self.encode(prompts)
        inputs.pop("video_metadata", None)   # processor bookkeeping, not a model input
        inputs = inputs.to(self.model.device, dtype=self.model.dtype)
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=limit, do_sample=False,
                                         num_beams=1,
                                         pad_token_id=self.processor.tokenizer.pad_token_id)
        start = inputs["input_ids"].shape[1]
        texts = [self._decode(row[start:].tolist()) for row in output]
        return texts, inputs["attention_mask"].sum(dim=1).tolist()

    def _decode(self, tokens: list[int]) -> str:
        # Cut at the first stop token: later positions are padding of a finished row.
        for position, token in enumerate(tokens):
            if token in self.stop_ids:
                tokens = tokens[:position]
                break
        return self.processor.tokenizer.decode(tokens, skip_special_tokens=True)


def _free_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
