"""What an exported lmms-eval task folder calls (its `utils.py` imports these): prompts as chat
messages, and scoring through viubench's own parsers and metrics.

A doc (one line of the folder's `docs/*.jsonl`, written by `viubench.lmms_eval_task`) holds
plain strings and numbers only, so the `datasets` json loader keeps it as written: the sample
id, task, variant, task version, answer, source-video hash, and the prompt parts as a JSON
string with absolute frame paths into the checked test set.

The prompt goes out as viubench's OpenAI adapter sends it: the parts in order, a video part as a
text line `(video, N frames at F fps)` followed by its frames as images. Frames are
`StoredFrame`s: real PIL images that, asked to save themselves as JPEG, write the stored JPEG
bytes unchanged (lmms-eval otherwise decodes and re-encodes every frame; with
`LMMS_IMAGE_ENCODE_FORMAT=JPEG` the stored bytes go out as they are, with the default PNG they
are decoded and sent losslessly as PNG).

`process_results` scores a reply as `viubench score` does (`viubench.score.reply_outcome`: the
benchmark metric of the lenient parse, x100). A reply that is lmms-eval's failure text
(`[LMMS_EVAL_REQUEST_FAILED ...]`, `[LMMS_EVAL_BUDGET_EXCEEDED]`) or empty is an error: it
scores 0, as an error does in viubench, and is marked so, never parsed as an answer.
"""

from __future__ import annotations

import functools
import io
import json
from typing import Any, Mapping, Sequence

from PIL import JpegImagePlugin

from .adapters import media_bytes, shown_clip
from .answers import LENIENT
from .registry import load_tasks
from .score import reply_outcome
from .task import Task

METRIC = "viubench_score"
FAILURE_PREFIXES = ("[LMMS_EVAL_REQUEST_FAILED", "[LMMS_EVAL_BUDGET_EXCEEDED")


class StoredFrame(JpegImagePlugin.JpegImageFile):
    """A JPEG frame that saves as its stored bytes when asked for JPEG (and unchanged)."""

    def __init__(self, path: str) -> None:
        self.stored = media_bytes(path)
        super().__init__(io.BytesIO(self.stored), path)

    def save(self, fp: Any, format: str | None = None, **params: Any) -> None:  # noqa: A002
        if (format or "").upper() in ("JPEG", "JPG") and hasattr(fp, "write"):
            fp.write(self.stored)
            return
        super().save(fp, format, **params)


@functools.cache
def _tasks() -> dict[str, Task]:
    return load_tasks()


def task_for(doc: Mapping[str, Any]) -> Task:
    """The doc's task, checked to be the version the test set was built with."""
    tasks = _tasks()
    name = str(doc["task"])
    if name not in tasks:
        raise ValueError(f"viubench: sample {doc['sample_id']}: task {name!r} is not built in or"
                         " installed here")
    task = tasks[name]
    if task.version != doc["version"]:
        raise ValueError(f"viubench: sample {doc['sample_id']}: task {name} is version"
                         f" {task.version} here, the test set was built with {doc['version']}")
    return task


def prompt_parts(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    parts = json.loads(doc["prompt"])
    if not isinstance(parts, list):
        raise ValueError(f"viubench: sample {doc['sample_id']}: the prompt is not a list")
    return parts


def video_line(part: Mapping[str, Any]) -> str:
    """The text line before a video's frames (as viubench's OpenAI adapter writes it)."""
    clip = shown_clip(part, None)
    return f"(video, {len(clip.paths)} frames at {clip.shown_fps:.3g} fps)"


def _content(part: Mapping[str, Any]) -> list[dict[str, Any]]:
    if part["type"] == "text":
        return [{"type": "text", "text": str(part["text"])}]
    if part["type"] == "image":
        return [{"type": "image", "url": StoredFrame(part["image"])}]
    if part["type"] == "video":
        frames = [{"type": "image", "url": StoredFrame(path)} for path in part["frames"]]
        return [{"type": "text", "text": video_line(part)}, *frames]
    raise ValueError(f"unknown prompt part type {part['type']!r}")


def doc_to_messages(doc: Mapping[str, Any],
                    lmms_eval_specific_kwargs: Mapping[str, Any] | None = None) -> list[dict]:
    """lmms-eval chat messages: an optional system message, then the prompt parts in order."""
    task_for(doc)   # a version mismatch stops the run before anything is asked
    content = [item for part in prompt_parts(doc) for item in _content(part)]
    messages = [{"role": "user", "content": content}]
    if doc.get("system"):
        messages.insert(0, {"role": "system",
                            "content": [{"type": "text", "text": str(doc["system"])}]})
    return messages


def doc_to_visual(doc: Mapping[str, Any]) -> list[StoredFrame]:
    """Every image of the prompt in order (for lmms-eval's simple models, which send all images
    after the text)."""
    return [item["url"] for part in prompt_parts(doc) for item in _content(part)
            if item["type"] == "image"]


def doc_to_text(doc: Mapping[str, Any],
                lmms_eval_specific_kwargs: Mapping[str, Any] | None = None) -> str:
    """The prompt's text parts and video lines, one per line (simple models)."""
    return "\n".join(item["text"] for part in prompt_parts(doc) for item in _content(part)
                     if item["type"] == "text")


def doc_to_target(doc: Mapping[str, Any]) -> str:
    return str(doc["answer"])


def failure_of(reply: Any) -> str | None:
    """Why a reply is no answer (lmms-eval's failure text, empty, not text), or None."""
    if not isinstance(reply, str):
        return f"lmms-eval gave no reply text (a {type(reply).__name__})"
    if not reply.strip():
        return "the model returned no text"
    if reply.lstrip().startswith(FAILURE_PREFIXES):
        return reply.strip()
    return None


def reply_of(results: Sequence[Any]) -> Any:
    """The one reply lmms-eval passes (a list of one; a nested list is its first item)."""
    reply = results[0] if results else None
    while isinstance(reply, list):
        reply = reply[0] if reply else None
    return reply


def process_results(doc: Mapping[str, Any], results: Sequence[Any]) -> dict[str, Any]:
    """{METRIC: per-doc record}: score (x100; `fraction` unscaled), source video (the
    cluster), sample id, the parse policy, whether the parse failed, the error for a reply that
    is no answer, and the exported scope and test-set hash (for `viubench import lmms-eval`)."""
    reply = reply_of(results)
    error = failure_of(reply)
    record = {"score": 0.0, "fraction": 0.0, "video": doc["video"], "sample_id": doc["sample_id"],
              "task": doc["task"], "variant": doc["variant"], "policy": LENIENT,
              "parse_failed": False, "parse_error": None, "error": error,
              "scope": doc["scope"], "testset": doc["testset"]}
    if error is None:
        outcome = reply_outcome(task_for(doc), reply, doc["variant"], doc["answer"])
        record["fraction"] = outcome["score"]
        record["score"] = 100 * outcome["score"]
        record["parse_error"] = outcome["parse_errors"][LENIENT]
        record["parse_failed"] = record["parse_error"] is not None
    return {METRIC: record}


def mean_score(items: Sequence[Mapping[str, Any]]) -> float:
    """The task's score (x100), summed in doc order (the test set's) exactly as
    `viubench.score.summarize` sums it, so the two agree to the last bit."""
    return 100 * sum(float(item["fraction"]) for item in items) / len(items) if items else 0.0
