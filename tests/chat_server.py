"""A real loopback HTTP server speaking the OpenAI chat-completions protocol, for tests and benches.

    with ChatServer(answer=lambda body: "42", delay=0.0) as server:
        server.push(rate_limited(0.3), server_error())   # the next two requests, in order
        ... OpenAIAdapter("m", base_url=server.url) ...
        server.received[0].body["messages"]               # every request, as the server saw it

Requests take scripted replies first-come first-served; once the script is empty each request
gets a 200 whose text is `answer(body)`, after the server's fixed `delay` (or, with `faults`, a
seeded random share of immediate 429s and 500s, as a load bench wants). A scripted reply can be
held until the server has received a given number of requests (`held`), so a test can order
events without timing them. It binds 127.0.0.1 on a free port, serves from a daemon thread and
shuts itself down after `lifetime` seconds even if nobody stops it, so a failing test can never
leave it running.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
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
    raw: bytes | None = None         # the body exactly, instead of a completion or an error
    drop: bool = False               # close the connection without answering
    held: int = 0                    # answer only once this many requests have arrived in all


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


def dropped() -> Reply:
    """No answer at all: the connection is closed, as by a server that is going down."""
    return Reply(drop=True)


def raw(body: bytes | dict[str, Any], status: int = 200) -> Reply:
    """A reply whose body is exactly `body` (JSON-encoded if a dict): malformed on purpose."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    return Reply(status=status, raw=data)


def held(reply: Reply, arrivals: int) -> Reply:
    """`reply`, sent only once the server has received `arrivals` requests (this one counted)."""
    return dataclasses.replace(reply, held=arrivals)


@dataclass(frozen=True)
class Faults:
    """Unscripted requests fail at random: `rate_limit` of them with an immediate 429 carrying
    `Retry-After: retry_after`, `server_error` of them with an immediate 500 (seeded)."""

    rate_limit: float = 0.0
    server_error: float = 0.0
    retry_after: float = 1.0
    seed: int = 0

    def reply(self, rng: random.Random) -> Reply | None:
        draw = rng.random()
        if draw < self.rate_limit:
            return Reply(status=429, delay=0.0,
                         headers={"Retry-After": f"{self.retry_after:g}"})
        if draw < self.rate_limit + self.server_error:
            return Reply(status=500, delay=0.0)
        return None


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
                 echo_credentials: bool = False, faults: Faults | None = None,
                 parse_bodies: bool = True) -> None:
        self.answer, self.delay, self.lifetime = answer, delay, lifetime
        self.faults = faults
        self._fault_rng = random.Random(faults.seed if faults else 0)
        # parse_bodies=False: bodies are read, never parsed (a load bench's server stays cheap)
        self.parse_bodies = parse_bodies
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
        self.hold_timed_out = False
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)   # notified at every arrival
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
        with self.lock:
            self.arrived.notify_all()   # a held reply is released at once
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
            reply = self._script.popleft() if self._script else self._unscripted()
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            kept = body if self.keep_bodies else None
            lowered = {name.lower(): value for name, value in headers.items()}
            seen = Received(path, lowered, kept, size, time.monotonic(), reply.status)
            self.received.append(seen)
            self.arrived.notify_all()
        return reply, seen

    def _unscripted(self) -> Reply:
        fault = self.faults.reply(self._fault_rng) if self.faults else None
        return fault or Reply()

    def _hold(self, reply: Reply) -> None:
        """Wait until `reply.held` requests have arrived (or the gather timeout passed)."""
        with self.lock:
            if not self.arrived.wait_for(lambda: len(self.received) >= reply.held
                                         or self.stopping.is_set(), GATHER_TIMEOUT):
                self.hold_timed_out = True

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
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(data) if data and owner.parse_bodies else {}
        except ValueError:
            body = None
        reply, seen = owner._begin(self.path, dict(self.headers.items()), body, len(data))
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
            if reply.held:
                owner._hold(reply)
            delay = owner.delay if reply.delay is None else reply.delay
            if delay > 0 and owner.stopping.wait(delay):
                self.close_connection = True   # shutting down: drop it unanswered
                return
            if reply.drop:
                self.close_connection = True
            elif reply.raw is not None:
                self._send_bytes(reply.status, reply.raw)
            elif reply.status == 200:
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
        self._send_bytes(status, json.dumps(payload).encode("utf-8"), headers)

    def _send_bytes(self, status: int, data: bytes,
                    headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": None, "param": None}}
