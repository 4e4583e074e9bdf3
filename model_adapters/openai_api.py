"""OpenAI-compatible chat-completions backends (OpenAI, vLLM `serve`, SGLang, ...).

    --model "openai:gpt-4o"                                   key from OPENAI_API_KEY
    --model "openai:Qwen/Qwen2-VL-7B base_url=http://host:8000/v1 max_frames=16"

Video parts are sent as a short text marker followed by one JPEG image per frame (the only video
form every such server accepts). One asyncio loop in a daemon thread drives one AsyncOpenAI
client; `generate` may be called from many runner threads at once and each request becomes one
coroutine on that loop. The SDK's own retries are off: the runner owns the retry policy.

Options (strings): base_url and api_key (default: OPENAI_BASE_URL, OPENAI_API_KEY; a local
server with no key gets "EMPTY"), timeout (s, 120), concurrency (16), detail (image detail),
max_frames (at most this many frames per video part, spread evenly), temperature (0), cache_mb
(256, the encoded-frame cache), token_field (max_completion_tokens, or max_tokens for servers
that only know the older name). The key is never stored: describe() names model and endpoint.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import threading
import time
from collections import OrderedDict
from typing import Any, Mapping, Sequence

from viubench.adapters import (AdapterAbort, Request, Response, adapter, data_url, failed,
                               frame_policy, option, shown_clip)
from viubench.redaction import Scrubber, public_url, url_secrets

DEFAULT_BASE_URL = "https://api.openai.com/v1"
PLACEHOLDER_KEY = "EMPTY"       # what local servers (vLLM, SGLang) accept when they check none
RETRYABLE_STATUS = (408, 409)   # request timeout, conflict: worth asking again, like 5xx
CLOSE_TIMEOUT = 10.0
# The request field that caps the answer's length: OpenAI's current name, and the older one
# that some compatible servers still require (and that reasoning models on OpenAI refuse).
TOKEN_FIELDS = ("max_completion_tokens", "max_tokens")


class ImageParts:
    """Bounded LRU of JPEG files as ready-to-send JSON `image_url` parts (base64 data URLs).

    Test-set frames are shared between samples (every variant of a clip reuses them) and a
    48-frame request is ~0.5 MB of base64, so reading, encoding and JSON-escaping each file once
    is most of what keeps the client fast with many requests in flight. Keyed by path alone:
    a test set writes each media file once and never rewrites it.
    """

    def __init__(self, max_bytes: int, detail: str | None) -> None:
        self.max_bytes, self.detail = max_bytes, detail
        self.size = 0
        self.entries: OrderedDict[str, bytes] = OrderedDict()
        self.lock = threading.Lock()

    def part(self, path: str) -> bytes:
        with self.lock:
            found = self.entries.get(path)
            if found is not None:
                self.entries.move_to_end(path)
                return found
        encoded = self._encode(path)
        with self.lock:
            if path not in self.entries:
                self.entries[path] = encoded
                self.size += len(encoded)
            while self.size > self.max_bytes and self.entries:
                _, dropped = self.entries.popitem(last=False)
                self.size -= len(dropped)
        return encoded

    def _encode(self, path: str) -> bytes:
        image = {"url": data_url(path), **({"detail": self.detail} if self.detail else {})}
        return _json({"type": "image_url", "image_url": image})


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def chat_body(fields: Mapping[str, Any], content: Sequence[bytes],
              system: Sequence[Mapping[str, Any]] = ()) -> bytes:
    """JSON bytes of `{**fields, "messages": [*system, {"role": "user", "content": [...]}]}`
    where `content` holds the parts already encoded: joining bytes beats re-encoding 0.5 MB."""
    head = _json(dict(fields))[:-1] + (b"," if fields else b"")
    before = b"".join(_json(dict(message)) + b"," for message in system)
    return (head + b'"messages":[' + before + b'{"role":"user","content":['
            + b",".join(content) + b"]}]}")


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """The wait a 429 asks for: `retry-after-ms`, `Retry-After` seconds, or an HTTP date."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@adapter("openai")
class OpenAIAdapter:
    """OpenAI-compatible chat-completions API; video frames go as base64 JPEG images."""

    default_concurrency = 16
    default_batch_size = 1   # one request per call: concurrency counts requests in flight

    def __init__(self, target: str, base_url: str | None = None, api_key: str | None = None,
                 timeout: str | float = 120, concurrency: str | int = 16,
                 detail: str | None = None, max_frames: str | int | None = None,
                 temperature: str | float = 0, cache_mb: str | int = 256,
                 token_field: str = "max_completion_tokens") -> None:
        import openai   # heavy imports, only when this adapter is used
        from openai.types.chat import ChatCompletion

        if not target:
            raise ValueError("openai adapter needs a model name: openai:MODEL")
        self.model = target
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key and self.base_url == DEFAULT_BASE_URL:
            raise ValueError("openai adapter: no API key; set OPENAI_API_KEY or pass api_key=")
        self._key = key or PLACEHOLDER_KEY   # goes to the client only, never to a record
        # the key and the base URL's credentials, scrubbed from every error message
        self._scrub = Scrubber([key, *url_secrets(self.base_url)])
        self.timeout = option("openai", "timeout", timeout, float, minimum=0)
        self.default_concurrency = option("openai", "concurrency", concurrency, int,
                                           minimum=1) or 16
        self.detail = detail or None
        self.max_frames = option("openai", "max_frames", max_frames, int, minimum=1)
        self.temperature = option("openai", "temperature", temperature, float, minimum=0)
        self.token_field = option("openai", "token_field", token_field, str,
                                  choices=TOKEN_FIELDS)
        cache = option("openai", "cache_mb", cache_mb, int, minimum=0) or 0
        self._images = ImageParts(cache * 2 ** 20, self.detail)
        self._openai, self._completion_type = openai, ChatCompletion
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="viubench-openai-loop")
        self._thread.start()
        self._client = self._on_loop(self._make_client()).result()
        self._closed = False

    async def _make_client(self) -> Any:
        # Built on the loop thread so its connection pool belongs to that loop.
        return self._openai.AsyncOpenAI(api_key=self._key, base_url=self.base_url,
                                        timeout=self.timeout, max_retries=0)

    def _on_loop(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def describe(self) -> dict[str, Any]:
        """What answers depend on: model, endpoint and how media is sent. Never the key."""
        return {"adapter": "openai", "model": self.model, "base_url": public_url(self.base_url),
                "temperature": self.temperature, "detail": self.detail,
                **frame_policy(self.max_frames), "video_input": "frames",
                "token_field": self.token_field}

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        """Ask every request at once on the adapter's loop; one Response each, in order."""
        if self._closed:
            raise RuntimeError("openai adapter used after close()")
        # Bodies are built here, on the caller's thread, so encoding never stalls the loop.
        futures = [self._on_loop(self._ask(*self.body(request))) for request in requests]
        return [future.result() for future in futures]

    def body(self, request: Request) -> tuple[bytes, int]:
        """(chat-completions request body as JSON bytes, frames sent) for one request."""
        content: list[bytes] = []
        sent = 0
        for part in request.parts:
            if part["type"] == "text":
                content.append(_json({"type": "text", "text": part["text"]}))
            elif part["type"] == "image":
                content.append(self._images.part(part["image"]))
                sent += 1
            elif part["type"] == "video":
                clip = shown_clip(part, self.max_frames)
                marker = f"(video, {len(clip.paths)} frames at {clip.shown_fps:.3g} fps)"
                content.append(_json({"type": "text", "text": marker}))
                content.extend(self._images.part(path) for path in clip.paths)
                sent += len(clip.paths)
            else:
                raise ValueError(f"unknown message part type {part['type']!r}")
        fields = {"model": self.model, "temperature": self.temperature,
                  self.token_field: request.max_new_tokens}
        return chat_body(fields, content, request.system_messages()), sent

    async def _ask(self, body: bytes, frames: int) -> Response:
        info: dict[str, Any] = {"video_input": "frames", "frames_sent": frames}
        try:
            # The generic `post` with a ready body skips `chat.completions.create`'s typed
            # re-walk and re-encoding of every part (3x the CPU of everything else in a
            # 48-frame request); auth, timeout and error classes are the SDK's own.
            completion = await self._client.post(
                "/chat/completions", cast_to=self._completion_type, content=body,
                options={"headers": {"Content-Type": "application/json"},
                         "security": {"bearer_auth": True}})
        except self._openai.APIError as error:
            return self._failure(error, info)
        return answer_of(completion, info)

    def _failure(self, error: Exception, info: dict[str, Any]) -> Response:
        """The error as a Response of the right kind; credentials problems abort the run."""
        openai = self._openai
        if isinstance(error, openai.APITimeoutError):
            return failed("transient", f"no answer within {self.timeout:g} s", **info)
        if isinstance(error, openai.APIConnectionError):
            cause = error.__cause__ or error
            return failed("transient", f"connection to {public_url(self.base_url)} failed:"
                          f" {self._scrub(str(cause))}", **info)
        status = getattr(error, "status_code", None)
        if status in (401, 403):
            raise AdapterAbort(f"{public_url(self.base_url)} rejected the API key (HTTP"
                               f" {status}); check OPENAI_API_KEY or the api_key= option")
        message = f"HTTP {status}: {self._scrub(getattr(error, 'message', str(error)))}"
        info["status"] = status
        if status == 429:
            response = getattr(error, "response", None)
            wait = retry_after_seconds(response.headers if response is not None else None)
            return failed("rate_limit", message, retry_after=wait, **info)
        if status is not None and (status >= 500 or status in RETRYABLE_STATUS):
            return failed("transient", message, **info)
        if status == 400 and self.token_field in message:
            other = next(field for field in TOKEN_FIELDS if field != self.token_field)
            message += f" (this server may want token_field={other}: add it to the model spec)"
        return failed("fatal", message, **info)

    def close(self) -> None:
        """Close the client and stop the loop thread; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self._on_loop(self._client.close()).result(CLOSE_TIMEOUT)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(CLOSE_TIMEOUT)
            if not self._thread.is_alive():
                self._loop.close()


def answer_of(completion: Any, info: dict[str, Any]) -> Response:
    """The completion's text, or a fatal error when the model gave none (never `""`)."""
    usage = getattr(completion, "usage", None)
    if usage is not None:
        info["prompt_tokens"] = usage.prompt_tokens
        info["completion_tokens"] = usage.completion_tokens
    choices = getattr(completion, "choices", None) or []
    if not choices:
        return failed("fatal", "the model returned no choices", **info)
    message = choices[0].message
    info["finish_reason"] = choices[0].finish_reason
    text = getattr(message, "content", None)
    if text is None or not text.strip():
        refusal = getattr(message, "refusal", None)
        why = f"the model refused: {refusal}" if refusal else "the model returned no text"
        return failed("fatal", f"{why} (finish_reason={choices[0].finish_reason})", **info)
    return Response(text=text, info=info)
