"""`scripted`: replies written in advance, per sample, for tests and for trying the pipeline.

    --model "scripted:replies.json default=forwards"

`replies.json` is one JSON object: sample id -> a reply, or a list of replies given on the
sample's successive attempts (the last one repeats). A reply is a string (the model's text) or
`{"error": "why", "kind": "transient" | "rate_limit" | "fatal"}` (an error the runner handles as
it would a real backend's: retried or counted). Samples the file does not name get `default`
when one is given, else a fatal "no scripted reply" error. Nothing is guessed: the adapter never
reads the test set, so a scripted run scores exactly what was written.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Mapping, Sequence

from viubench.adapters import ERROR_KINDS, Request, Response, adapter, failed
from viubench.records import file_hash

MAX_BYTES = 64 << 20   # a replies file larger than this is refused, not read


def _reply(value: Any, where: str) -> Any:
    """One scripted reply checked: a string, or an error object of a known kind."""
    if isinstance(value, str):
        return value
    if (isinstance(value, dict) and isinstance(value.get("error"), str)
            and value.get("kind") in ERROR_KINDS and set(value) <= {"error", "kind"}):
        return {"error": value["error"], "kind": value["kind"]}
    raise ValueError(f"{where}: a reply is a string or {{\"error\": ..., \"kind\": one of"
                     f" {', '.join(ERROR_KINDS)}}}, not {json.dumps(value)[:80]}")


def load_replies(path: str) -> dict[str, list[Any]]:
    """Sample id -> its replies, in attempt order; ValueError in one line naming the file."""
    try:
        if os.path.getsize(path) > MAX_BYTES:
            raise ValueError(f"{path}: larger than {MAX_BYTES >> 20} MiB")
        with open(path, encoding="utf-8") as handle:
            loaded = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"scripted: cannot read {path}: {error}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"scripted: {path} must hold one JSON object (sample id -> reply)")
    replies: dict[str, list[Any]] = {}
    for sample_id, value in loaded.items():
        where = f"scripted: {path}, sample {sample_id!r}"
        items = value if isinstance(value, list) else [value]
        if not items:
            raise ValueError(f"{where}: an empty list of replies")
        replies[sample_id] = [_reply(item, where) for item in items]
    return replies


@adapter("scripted")
class ScriptedAdapter:
    """Replies written in advance per sample id (replies=FILE.json, default=TEXT)."""

    default_concurrency = 1
    default_batch_size = 64

    def __init__(self, target: str = "", replies: str = "", default: str | None = None) -> None:
        replies = replies or target          # `scripted:FILE.json` or `scripted replies=FILE`
        if not replies and default is None:
            raise ValueError("scripted needs replies=FILE.json, default=TEXT, or both")
        self.path = os.path.abspath(replies) if replies else ""
        self.replies = load_replies(self.path) if replies else {}
        self.default = default
        self.attempts: dict[str, int] = {}
        self.lock = threading.Lock()

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        return [self._one(request.id) for request in requests]

    def _one(self, sample_id: str) -> Response:
        with self.lock:
            attempt = self.attempts.get(sample_id, 0)
            self.attempts[sample_id] = attempt + 1
        script = self.replies.get(sample_id)
        if script is None:
            if self.default is None:
                return failed("fatal", f"no scripted reply for sample {sample_id}")
            return Response(text=self.default, info={"scripted": "default"})
        reply: str | Mapping[str, str] = script[min(attempt, len(script) - 1)]
        if isinstance(reply, str):
            return Response(text=reply, info={"scripted": attempt + 1})
        return failed(reply["kind"], reply["error"], scripted=attempt + 1)

    def describe(self) -> dict[str, Any]:
        return {"adapter": "scripted", "replies": self.path,
                "replies_sha256": file_hash(self.path) if self.path else None,
                "scripted_samples": len(self.replies), "default": self.default}

    def close(self) -> None:
        """Nothing to release: the replies are in memory."""
        return None
