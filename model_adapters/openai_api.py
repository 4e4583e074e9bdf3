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

How failures are classed: 429 is `rate_limit` (with its Retry-After); 5xx, 408, 409, timeouts,
connection failures and replies that are broken (not JSON, no choices, an error object inside a
200, no text) are `transient`; a refusal and a 400 about this one request are `fatal` for that
sample. What spoils every request stops the run at once (`AdapterAbort`): 401/403 (the key), 404
(no such model or a wrong base_url), a 400 about a request field every request carries (e.g. the
token field). A key that cannot be sent in an HTTP header (white space or a control or non-ASCII
character inside it; around it, it is stripped) is refused when the adapter is made.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import functools
import json
import os
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Mapping, Sequence

from viubench.adapters import (AdapterAbort, Request, Response, adapter, failed, frame_policy,
                               media_bytes, option, shown_clip)
from viubench.redaction import Scrubber, public_url, url_secrets

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DATA_URL = "data:image/jpeg;base64,"   # as viubench.adapters.data_url writes it
PLACEHOLDER_KEY = "EMPTY"       # what local servers (vLLM, SGLang) accept when they check none
RETRYABLE_STATUS = (408, 409)   # request timeout, conflict: worth asking again, like 5xx
CLOSE_TIMEOUT = 10.0
CLOSE_GRACE = 2.0      # seconds requests still in flight at close() get to end by themselves
# The request field that caps the answer's length: OpenAI's current name, and the older one
# that some compatible servers still require (and that reasoning models on OpenAI refuse).
TOKEN_FIELDS = ("max_completion_tokens", "max_tokens")
# What servers say when a request field (the same in every request) is not accepted: a
# configuration problem that no retry and no other sample will get past.
FIELD_REFUSALS = ("unrecognized request argument", "unsupported parameter", "unsupported value",
                  "extra inputs are not permitted", "extra_forbidden")


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
        # Base64 needs no JSON escaping: the part is put together as bytes around the encoded
        # file (json.dumps would scan ~60 KB per frame for characters to escape, and the
        # str <-> bytes round trips copy it twice more).
        before, after = self._template
        return b"".join((before, base64.b64encode(media_bytes(path)), after))

    @functools.cached_property
    def _template(self) -> tuple[bytes, bytes]:
        """The part's JSON before and after the base64 text of its data URL."""
        image = {"url": DATA_URL + "\0", **({"detail": self.detail} if self.detail else {})}
        before, after = _json({"type": "image_url", "image_url": image}).split(b"\\u0000", 1)
        return before, after


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def chat_body(fields: Mapping[str, Any], content: Sequence[bytes],
              system: Sequence[Mapping[str, Any]] = ()) -> bytes:
    """JSON bytes of `{**fields, "messages": [*system, {"role": "user", "content": [...]}]}`
    where `content` holds the parts already encoded: joining bytes beats re-encoding 0.5 MB."""
    head = _json(dict(fields))[:-1] + (b"," if fields else b"")
    pieces = [head, b'"messages":[', *(_json(dict(m)) + b"," for m in system),
              b'{"role":"user","content":[']
    for number, part in enumerate(content):
        pieces += (b",", part) if number else (part,)
    return b"".join((*pieces, b"]}]}"))   # one copy of the megabytes, not one per `+`


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

        if not target:
            raise ValueError("openai adapter needs a model name: openai:MODEL")
        self.model = target
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        # white space around a key (a file's last newline) is never part of it
        key = (api_key or os.environ.get("OPENAI_API_KEY") or "").strip() or None
        if not key and self.base_url == DEFAULT_BASE_URL:
            raise ValueError("openai adapter: no API key; set OPENAI_API_KEY or pass api_key=")
        if key and key_problem(key):
            raise ValueError(f"openai adapter: the API key {key_problem(key)}, so it cannot be"
                             " sent in an HTTP header; check OPENAI_API_KEY or api_key=")
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
        self._openai = openai
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="viubench-openai-loop")
        self._thread.start()
        self._client = self._on_loop(self._make_client()).result()
        self._closed = False
        self._lock = threading.Lock()
        self._pending: set[Any] = set()   # futures of requests in flight
        self._encoding = threading.Lock()

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
        # Bodies are built here, on the caller's thread, so encoding never stalls the loop;
        # one at a time: dozens of threads reading and encoding frames at once spend more CPU
        # handing the GIL to each other (2.5x, measured at 64 threads) than on the work.
        with self._encoding:
            bodies = [self.body(request) for request in requests]
        with self._lock:   # close() cancels what is pending, and nothing is sent after it
            if self._closed:
                raise RuntimeError("openai adapter used after close()")
            futures = [self._on_loop(self._ask(*body)) for body in bodies]
            self._pending.update(futures)
        try:
            return [future.result() for future in futures]
        finally:
            with self._lock:
                self._pending.difference_update(futures)

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
            # The reply's bytes, parsed and checked here: a broken 200 is a failure of a
            # kind, not an exception (nor an SDK object with missing fields).
            reply = await self._client.post(
                "/chat/completions", cast_to=bytes, content=body,
                options={"headers": {"Content-Type": "application/json"},
                         "security": {"bearer_auth": True}})
        except self._openai.APIError as error:
            return self._failure(error, info)
        except Exception as error:  # noqa: BLE001 - failing before sending fails every request
            raise AdapterAbort(f"cannot send a request to {public_url(self.base_url)}:"
                               f" {type(error).__name__}: {self._scrub(str(error))}") from None
        return answer_of(reply, info, self._scrub)

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
        server = public_url(self.base_url)
        if status in (401, 403):
            raise AdapterAbort(f"{server} rejected the API key (HTTP {status}); check"
                               " OPENAI_API_KEY or the api_key= option")
        message = f"HTTP {status}: {self._scrub(getattr(error, 'message', str(error)))}"
        info["status"] = status
        if status == 429:
            response = getattr(error, "response", None)
            wait = retry_after_seconds(response.headers if response is not None else None)
            return failed("rate_limit", message, retry_after=wait, **info)
        if status is not None and (status >= 500 or status in RETRYABLE_STATUS):
            return failed("transient", message, **info)
        if status == 404:
            raise AdapterAbort(f"{server} has no model {self.model!r} or no chat-completions"
                               f" endpoint ({message}); check the model name and base_url (it"
                               " usually ends in /v1)")
        if status == 400 and self.token_field in message:
            other = next(field for field in TOKEN_FIELDS if field != self.token_field)
            raise AdapterAbort(f"{server} refused the request's fields ({message}); this"
                               f" server may want token_field={other}: add it to the model spec")
        if status == 400 and any(words in message.lower() for words in FIELD_REFUSALS):
            raise AdapterAbort(f"{server} refused the request's fields ({message}); every"
                               " request carries them, so the run stops here")
        return failed("fatal", message, **info)

    def close(self) -> None:
        """Close the client and stop the loop thread; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._on_loop(self._shutdown()).result(CLOSE_TIMEOUT)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(CLOSE_TIMEOUT)
            with self._lock:   # a caller still waiting gets CancelledError, not a hang
                for future in self._pending:
                    future.cancel()
            if not self._thread.is_alive():
                self._loop.close()


    async def _shutdown(self) -> None:
        # Requests still in flight (a run that was stopped) are cancelled, so that no caller
        # thread waits for an answer from a loop that is about to stop.
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        if others:   # most end at once (a refused connection); the rest are cancelled
            _, stuck = await asyncio.wait(others, timeout=CLOSE_GRACE)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)   # let them unwind first
        await self._client.close()


def key_problem(key: str) -> str | None:
    """Why `key` cannot go in an Authorization header (None: it can). Names the kind of
    character and its position, never the key."""
    for position, char in enumerate(key, 1):
        if char in "\r\n":
            return f"has a line break at character {position}"
        if char.isspace():
            return f"has white space at character {position}"
        if not char.isascii():
            return f"has a non-ASCII character at character {position}"
        if not char.isprintable():
            return f"has a control character at character {position}"
    return None


def answer_of(reply: bytes, info: dict[str, Any],
              scrub: Callable[[str], str] = str) -> Response:
    """The completion's text; a broken reply is a transient error, a refusal a fatal one
    (never `""` as an answer). `scrub` masks credentials in whatever the server wrote."""
    try:
        completion = json.loads(reply)
    except ValueError:
        return failed("transient", f"the server's reply is not JSON: {scrub(_head(reply))}",
                      **info)
    if not isinstance(completion, dict):
        return failed("transient", f"the server's reply is not a completion:"
                      f" {scrub(_head(reply))}", **info)
    if completion.get("error"):
        return failed("transient", f"the server reported an error:"
                      f" {scrub(_error_text(completion['error']))}", **info)
    usage = completion.get("usage")
    if isinstance(usage, dict):
        info["prompt_tokens"] = usage.get("prompt_tokens")
        info["completion_tokens"] = usage.get("completion_tokens")
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return failed("transient", "the reply has no choices", **info)
    message = choices[0].get("message")
    message = message if isinstance(message, dict) else {}
    finish = choices[0].get("finish_reason")
    info["finish_reason"] = finish
    text = message.get("content")
    if message.get("refusal"):
        return failed("fatal", f"the model refused: {scrub(str(message['refusal'])[:500])}",
                      **info)
    if not isinstance(text, str) or not text.strip():
        return failed("transient", f"the model returned no text (finish_reason={finish})",
                      **info)
    return Response(text=text, info=info)


def _head(data: bytes, limit: int = 200) -> str:
    text = data[:limit].decode("utf-8", "replace")
    return repr(text + ("..." if len(data) > limit else ""))


def _error_text(error: Any) -> str:
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"][:500]
    return str(error)[:500]
