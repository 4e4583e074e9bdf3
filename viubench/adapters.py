"""The contract between the engine and a model backend, and how `--model SPEC` finds one.

An adapter answers a batch: `generate(requests) -> list[Response]`, one response per request, in
order. A response holds the model's text or an error with a kind; never a made-up answer.
Retrying is not the adapter's business: the runner retries `transient` and `rate_limit` errors
with one policy (`viubench.retry`). An adapter raises `AdapterAbort` for a condition no retry
can fix and that spoils every request (bad credentials, missing model): the run stops and
records nothing for the batch.

A SPEC names an adapter and its arguments: `name[:target] [key=value ...]`, for example
`openai:gpt-4o`, `hf:/ckpt dtype=bfloat16`, `random`, `blind:hf:/ckpt`, or
`my_pkg.module:MyAdapter`. Adapters are found, without any global registry, among the modules of
`viubench.model_adapters` (classes marked with `@adapter("name")`), the entry-point group
`viubench.adapters`, and `package.module:Class` references. Heavy imports (torch, vllm, openai)
happen inside an adapter's constructor, so listing adapters stays fast.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import pkgutil
import shlex
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Literal, Mapping, Protocol, Sequence, TypedDict, Union

from .redaction import REDACTED, is_secret_name, redact_value
from .registry import import_user_module, load_object, shadowed

ENTRY_POINT_GROUP = "viubench.adapters"
ERROR_KINDS = ("transient", "rate_limit", "fatal")


class TextItem(TypedDict):
    type: Literal["text"]
    text: str


class ImageItem(TypedDict):
    type: Literal["image"]
    image: str                  # absolute path of a JPEG


class VideoItem(TypedDict):
    type: Literal["video"]
    frames: list[str]           # absolute paths of JPEGs, in order (see `shown_clip`)
    fps: float                  # frames per second of the sampled timeline


PromptItem = Union[TextItem, ImageItem, VideoItem]   # what a request's parts are


@dataclass(frozen=True)
class Request:
    """One sample to answer: its prompt parts (media paths absolute) and generation limits.

    `timeline` is the sample's frame provenance (indices, sample_fps, size); it never holds the
    answer or the draws, so a baseline may use it to know the answer space, not the answer.
    """

    id: str
    task: str
    variant: str
    parts: tuple[PromptItem, ...]
    max_new_tokens: int
    timeline: Mapping[str, Any] = field(default_factory=dict)
    system: str | None = None      # the sample's system instruction, sent as a system message

    def text_only(self) -> "Request":
        """The same request with every image and video part removed."""
        kept = tuple(part for part in self.parts if part["type"] == "text")
        return Request(self.id, self.task, self.variant, kept, self.max_new_tokens,
                       self.timeline, self.system)

    def system_messages(self, as_parts: bool = False) -> list[dict[str, Any]]:
        """The system turn to put before the user turn ([] when the sample has none). Chat
        templates of multimodal processors iterate content parts, so they get `as_parts`."""
        if not self.system:
            return []
        content: Any = [{"type": "text", "text": self.system}] if as_parts else self.system
        return [{"role": "system", "content": content}]

    def prompt_text(self, separator: str = "\n") -> str:
        return separator.join(part["text"] for part in self.parts if part["type"] == "text")


@dataclass(frozen=True)
class Response:
    """The model's `text`, or an `error` of a `kind` (transient, rate_limit, fatal)."""

    text: str | None = None
    error: str | None = None
    kind: str | None = None
    retry_after: float | None = None          # seconds the server asked us to wait
    info: Mapping[str, Any] = field(default_factory=dict)   # e.g. how video was given

    def __post_init__(self) -> None:
        if (self.text is None) == (self.error is None):
            raise ValueError("a Response holds exactly one of text and error")
        if self.error is not None and self.kind not in ERROR_KINDS:
            raise ValueError(f"error kind must be one of {ERROR_KINDS}, not {self.kind!r}")

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def retryable(self) -> bool:
        return self.kind in ("transient", "rate_limit")


def failed(kind: str, message: str, retry_after: float | None = None,
           **info: Any) -> Response:
    return Response(error=message, kind=kind, retry_after=retry_after, info=info)


class AdapterAbort(RuntimeError):
    """A condition that spoils the whole run (credentials, missing model): stop, say why."""


WRAPPER_PARAMETER = "adapter_modules"   # see `create`
TASKS_PARAMETER = "task_modules"        # see `create`
DEFAULT_CONCURRENCY = 1     # for an adapter that declares no `default_concurrency`
DEFAULT_BATCH_SIZE = 1      # for an adapter that declares no `default_batch_size`


class Adapter(Protocol):
    """What every model adapter provides. `default_concurrency` (batches the runner keeps in
    flight at once) and `default_batch_size` (requests per generate() call) are optional class
    attributes: without them the runner sends one request at a time (see `batching`)."""

    def generate(self, requests: Sequence[Request]) -> list[Response]: ...

    def describe(self) -> dict[str, Any]: ...   # fingerprint: what model, which weights

    def close(self) -> None: ...


def batching(adapter: Any) -> tuple[int, int]:
    """(concurrency, batch size) an adapter asks for, or the defaults where it says nothing."""
    return (getattr(adapter, "default_concurrency", DEFAULT_CONCURRENCY),
            getattr(adapter, "default_batch_size", DEFAULT_BATCH_SIZE))


@dataclass(frozen=True)
class AdapterSpec:
    """A parsed `--model` value: adapter name, optional target, string options."""

    name: str
    target: str = ""
    options: Mapping[str, str] = field(default_factory=dict)

    def redacted(self) -> str:
        """The spec as text with secrets hidden (safe to store and print): secret-named options,
        and the credentials a URL carries (`viubench.redaction`)."""
        words = [f"{self.name}:{redact_value(self.target)}" if self.target else self.name]
        words += [f"{key}={REDACTED if is_secret_name(key) else redact_value(value)}"
                  for key, value in sorted(self.options.items())]
        return " ".join(words)


def parse_spec(text: str, extra_options: Sequence[str] = ()) -> AdapterSpec:
    """`name[:target] key=value ...` (one string, shell-quoted) plus extra `key=value` items."""
    words = shlex.split(text)
    if not words:
        raise ValueError("empty --model spec")
    head, rest = words[0], [*words[1:], *extra_options]
    options: dict[str, str] = {}
    for item in rest:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"adapter argument {item!r} is not key=value")
        options[key] = value
    name, _, target = head.partition(":")
    return AdapterSpec(name, target, options)


def adapter(name: str) -> Callable[[type], type]:
    """Class decorator: makes the class findable as adapter `name` in its module."""
    def mark(cls: type) -> type:
        cls.adapter_name = name  # type: ignore[attr-defined]
        return cls
    return mark


def marked_classes(module: Any) -> dict[str, type]:
    """Adapter classes a module defines with `@adapter(...)`."""
    return {cls.adapter_name: cls for _, cls in inspect.getmembers(module, inspect.isclass)
            if cls.__module__ == module.__name__ and hasattr(cls, "adapter_name")}


def available_adapters(extra_modules: Sequence[str] = ()) -> dict[str, type]:
    """Adapter name -> class: built-ins, installed plug-ins, then user modules' marked classes;
    a later one of the same name replaces an earlier one, with a warning."""
    import viubench.model_adapters as builtin

    found: dict[str, type] = {}
    origins: dict[str, str] = {}

    def add(classes: Mapping[str, type], origin: str) -> None:
        for name, cls in classes.items():
            if name in found and found[name] is not cls:
                shadowed(f"adapter {name!r}", origin, origins[name])
            found[name], origins[name] = cls, origin

    for info in sorted(pkgutil.iter_modules(builtin.__path__), key=lambda m: m.name):
        add(marked_classes(importlib.import_module(f"{builtin.__name__}.{info.name}")),
            "built-in")
    for point in entry_points(group=ENTRY_POINT_GROUP):
        add({point.name: point.load()}, f"entry point {point.name}")
    for module in extra_modules:
        add(marked_classes(import_user_module(module)), module)
    return found


def resolve(spec: AdapterSpec, extra_modules: Sequence[str] = ()) -> tuple[type, str | None]:
    """The adapter class a spec names and the target to give it: a known name gets the spec's
    target; a `package.module:Class` reference gets none (its target names the class)."""
    known = available_adapters(extra_modules)
    if spec.name in known:
        return known[spec.name], spec.target
    if spec.target and spec.target.isidentifier():
        try:
            return load_object(f"{spec.name}:{spec.target}"), None
        except (ValueError, AttributeError) as error:
            reference = f"{spec.name}:{spec.target}"
            raise ValueError(f"cannot load adapter class {reference}: {error}") from error
    raise ValueError(f"unknown adapter {spec.name!r}; known: {', '.join(sorted(known))}"
                     " (or give package.module:Class)")


def create(spec: AdapterSpec, extra_modules: Sequence[str] = (),
           task_modules: Sequence[str] = ()) -> Adapter:
    """Instantiate the adapter a spec names: `cls(target, **options)`, or `cls(**options)` for
    a `package.module:Class` reference or a class whose first parameter is not `target`.
    Options arrive as strings; adapters convert them. An adapter that wraps another (`blind:`)
    and has a parameter `adapter_modules` gets `extra_modules` there, to create the one it
    wraps; one with a parameter `task_modules` (the baselines, which answer from the task)
    gets the user tasks (`--task-module`) there."""
    cls, target = resolve(spec, extra_modules)
    if target is not None and not _takes_target(cls):
        if target:
            raise ValueError(f"adapter {spec.name!r} takes no target (got {target!r})")
        target = None   # a marked class without a target parameter
    options: dict[str, Any] = dict(spec.options)
    if _parameter(cls, WRAPPER_PARAMETER):
        options[WRAPPER_PARAMETER] = tuple(extra_modules)
    if _parameter(cls, TASKS_PARAMETER):
        options[TASKS_PARAMETER] = tuple(task_modules)
    try:
        return cls(**options) if target is None else cls(target, **options)
    except TypeError as error:
        raise ValueError(f"adapter {spec.redacted()!r}: {error}") from error
    except ModuleNotFoundError as error:   # an optional extra that is not installed
        raise AdapterAbort(missing_package(spec.name, error.name)) from None


EXTRA_OF_PACKAGE = {"openai": "api", "torch": "hf", "transformers": "hf", "accelerate": "hf",
                    "vllm": "vllm", "decord": "decord"}


def missing_package(adapter_name: str, package: str | None) -> str:
    """One line: which package an adapter lacks, and the extra that installs it."""
    root = (package or "?").partition(".")[0]
    extra = EXTRA_OF_PACKAGE.get(root)
    hint = f": pip install 'viubench[{extra}]'" if extra else ""
    return (f"adapter {adapter_name!r} needs the Python package {root!r}, which is not"
            f" installed{hint}")


def _parameter(cls: type, name: str) -> bool:
    """Whether `cls(...)` has a parameter called `name`."""
    try:
        return name in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


def _takes_target(cls: type) -> bool:
    """Whether `cls(...)` takes the SPEC's target: its first parameter is named `target` (or it
    takes any positional arguments). Other first parameters are options, given by name."""
    try:
        parameters = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        return True
    if not parameters:
        return False
    first = parameters[0]
    return first.kind == first.VAR_POSITIONAL or (
        first.name == "target" and first.kind in (first.POSITIONAL_ONLY,
                                                  first.POSITIONAL_OR_KEYWORD))


def describe_adapter(cls: type) -> str:
    """First line of an adapter class's docstring (for `viubench list adapters`)."""
    return (inspect.getdoc(cls) or "").split("\n")[0]


# ---------------------------------------------------------------- helpers for adapters

def media_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def data_url(path: str) -> str:
    """A JPEG frame as a base64 `data:` URL (what chat-completions APIs accept)."""
    return "data:image/jpeg;base64," + base64.b64encode(media_bytes(path)).decode("ascii")


KIND_WORDS = {int: "an integer", float: "a number", bool: "a boolean (true/false)"}
FRAME_RULE = "even-ends-kept"   # recorded with max_frames in every built-in fingerprint


def frame_indices(count: int, limit: int | None) -> list[int]:
    """The one frame-subsampling rule every adapter uses: at most `limit` of a clip's `count`
    frames, spread evenly, first and last kept (index i*(count-1)/(limit-1), halves rounded
    up); one frame is the middle one. No limit, or a clip within it, keeps every frame."""
    if limit is None or count <= limit:
        return list(range(count))
    if limit == 1:
        return [(count - 1) // 2]
    return [int(i * (count - 1) / (limit - 1) + 0.5) for i in range(limit)]


@dataclass(frozen=True)
class ShownClip:
    """The frames of one video part an adapter shows: paths, their indices in the clip, the
    clip's length and fps, and the rate of the frames shown."""

    paths: tuple[str, ...]
    indices: tuple[int, ...]
    total: int
    fps: float

    @property
    def shown_fps(self) -> float:
        return self.fps * len(self.paths) / max(1, self.total)


def shown_clip(part: Mapping[str, Any], limit: int | None) -> ShownClip:
    """A video part's frames after the frame rule (see `frame_indices`)."""
    frames = list(part["frames"])
    keep = frame_indices(len(frames), limit)
    return ShownClip(tuple(frames[i] for i in keep), tuple(keep), len(frames),
                     float(part.get("fps") or 0))


def frame_policy(limit: int | None) -> dict[str, Any]:
    """What an adapter's fingerprint records of its frame selection."""
    return {"frame_rule": FRAME_RULE, "max_frames": limit}


def option(owner: str, name: str, value: Any, kind: type = int, minimum: float | None = None,
           choices: Sequence[str] = ()) -> Any:
    """An adapter option given as text (`key=value` in a SPEC) as a `kind` (int, float, bool or
    str); None or "" stays None. A bad value is a ValueError naming the adapter and option."""
    if choices and value not in choices:
        raise ValueError(f"{owner}: option {name}={value!r}; choose one of {', '.join(choices)}")
    if value is None or value == "":
        return None
    try:
        converted = as_bool(value) if kind is bool else kind(value)
    except (TypeError, ValueError):
        wanted = KIND_WORDS.get(kind, kind.__name__)
        raise ValueError(f"{owner}: option {name}={value!r} is not {wanted}") from None
    if minimum is not None and converted < minimum:
        raise ValueError(f"{owner}: option {name} must be at least {minimum}, not {converted}")
    return converted


def as_bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{value!r} is not a boolean (true/false)")
