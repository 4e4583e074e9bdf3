"""A real loopback HTTP server speaking the OpenAI chat-completions protocol, for tests and benches.

    with ChatServer(answer=lambda body: "42", delay=0.0) as server:
        server.push(rate_limited(0.3), server_error())   # the next two requests, in order
        ... OpenAIAdapter("m", base_url=server.url) ...
        server.received[0].body["messages"]               # every request, as the server saw it

Requests take scripted replies first-come first-served; once the script is empty each request
gets a 200 whose text is `answer(body)`, after the server's fixed `delay`. It binds 127.0.0.1 on
a free port, serves from a daemon thread and shuts itself down after `lifetime` seconds even if
nobody stops it, so a failing test can never leave it running.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping

CHAT_PATH = "/v1/chat/completions"
GATHER_TIMEOUT = 20.0   # seconds a gathering request waits for the others before answering


@dataclass(frozen=True)
class Reply:
    """One scripted answer: an HTTP status, text (200) or error message, a delay, headers."""

    status: int = 200
    text: str | None = None          # 200 only; None: the server's `answer(body)`
    delay: float | None = None       # None: the server's default delay
    headers: Mapping[str, str] = field(default_factory=dict)
    null_content: bool = False       # 200 whose message content is null


def answer(text: str, delay: float | None = None) -> Reply:
    return Reply(text=text, delay=delay)


def rate_limited(retry_after: float | str) -> Reply:
    """429 with a Retry-After header (seconds, or an HTTP date given as a string)."""
    value = retry_after if isinstance(retry_after, str) else f"{retry_after:g}"
    return Reply(status=429, headers={"Retry-After": value})


def server_error(status: int = 500) -> Reply:
    return Reply(status=status)


def unauthorized(status: int = 401) -> Reply:
    return Reply(status=status)


def stall(seconds: float) -> Reply:
    """A 200 that comes only after `seconds`: longer than the client's timeout, it times out."""
    return Reply(delay=seconds)


def no_content() -> Reply:
    return Reply(null_content=True)


@dataclass
class Received:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    size: int
    arrived: float        # time.monotonic()
    status: int           # the status it was answered with


class ChatServer:
    """Scriptable OpenAI chat-completions server on 127.0.0.1 (see the module docstring)."""

    def __init__(self, answer: Callable[[dict[str, Any]], str] = lambda body: "42",
                 delay: float = 0.0, lifetime: float = 120.0, keep_bodies: bool = True,
                 unknown_fields: frozenset[str] = frozenset(), gather: int = 0,
                 echo_credentials: bool = False) -> None:
        self.answer, self.delay, self.lifetime = answer, delay, lifetime
        # gather=N: hold each request until N are in flight together (then answer them all)
        self.gather = threading.Barrier(gather, timeout=GATHER_TIMEOUT) if gather else None
        self.gather_timed_out = False
        # echo_credentials: every error message repeats the Authorization header and the path
        # with its query, as careless servers do (for the redaction tests)
        self.echo_credentials = echo_credentials
        self.unknown_fields = unknown_fields  # request fields it refuses, as older servers do
        self.keep_bodies = keep_bodies    # False: big request bodies are parsed, not kept
        self.received: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._script: deque[Reply] = deque()
        self._ids = itertools.count(1)
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={
            "poll_interval": 0.05}, daemon=True, name="chat-server")
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    @property
    def url(self) -> str:
        """Base URL to give a client, e.g. http://127.0.0.1:PORT/v1."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def push(self, *replies: Reply) -> None:
        """Script the replies to the next requests, in arrival order."""
        with self.lock:
            self._script.extend(replies)

    def start(self) -> "ChatServer":
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        """Stop serving (idempotent); stalled replies are released at once."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        self._timer.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "ChatServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ called by handler threads

    def _begin(self, path: str, headers: dict[str, str], body: dict | None,
               size: int) -> tuple[Reply, Received]:
        with self.lock:
            reply = self._script.popleft() if self._script else Reply()
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            kept = body if self.keep_bodies else None
            lowered = {name.lower(): value for name, value in headers.items()}
            seen = Received(path, lowered, kept, size, time.monotonic(), reply.status)
            self.received.append(seen)
        return reply, seen

    def _gather(self) -> None:
        if self.gather is None:
            return
        try:
            self.gather.wait()
        except threading.BrokenBarrierError:
            self.gather_timed_out = True

    def _end(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def _completion(self, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
        text = None if reply.null_content else (
            reply.text if reply.text is not None else self.answer(body))
        return {"id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion",
                "created": int(time.time()), "model": body.get("model", ""),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256     # many clients connect at once; a short backlog stalls them
    owner: ChatServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, as real API servers do
    disable_nagle_algorithm = True  # else small replies wait ~40 ms for a delayed ACK
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass   # quiet: test output stays readable

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        owner = self.server.owner
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        reply, seen = owner._begin(self.path, dict(self.headers.items()), body, len(raw))
        echo = (f" (you sent {self.headers.get('Authorization')!r} to {self.path})"
                if owner.echo_credentials else "")
        try:
            if self.path != CHAT_PATH or body is None:
                seen.status = 404 if self.path != CHAT_PATH else 400
                self._send(seen.status, _error("not found or not JSON" + echo,
                                               "invalid_request"))
                return
            refused = sorted(owner.unknown_fields & set(body))
            if refused:
                seen.status = 400
                self._send(400, _error(f"Unrecognized request argument supplied: {refused[0]}",
                                       "invalid_request_error"))
                return
            owner._gather()
            delay = owner.delay if reply.delay is None else reply.delay
            if delay > 0 and owner.stopping.wait(delay):
                self.close_connection = True   # shutting down: drop it unanswered
                return
            if reply.status == 200:
                self._send(200, owner._completion(reply, body))
            else:
                self._send(reply.status, _error(f"scripted HTTP {reply.status}{echo}",
                                                "scripted_error"), reply.headers)
        except (BrokenPipeError, ConnectionResetError):
            pass   # the client gave up (timed out) before the answer came
        finally:
            owner._end()

    def _send(self, status: int, payload: dict[str, Any],
              headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": None, "param": None}}
