"""The OpenAI adapter against a real loopback chat-completions server, driven by the runner."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from email.utils import formatdate

import pytest
from chat_server import (ChatServer, answer, dropped, held, no_content, rate_limited, raw,
                         server_error, stall, unauthorized)
from helpers import viubench

from viubench.adapters import Request, create, data_url, parse_spec
from viubench.model_adapters.openai_api import retry_after_seconds
from viubench.retry import RetryPolicy
from viubench.runfolder import PREDICTIONS
from viubench.runner import GenerationSettings, RunAborted, RunOptions, run_eval
from viubench.testset import iter_samples

pytest.importorskip("openai", reason="the `api` extra (openai) is not installed")

FAST = RetryPolicy(max_attempts=4, base=0.01, cap=0.05)
PATIENT = RetryPolicy(max_attempts=20, base=0.01, cap=0.05)   # more attempts than a breaker
KEY = "sk-test-0123456789-never-stored"
DATA_URL = "data:image/jpeg;base64,"


def evaluate(server: ChatServer | str, testset: str, rundir: str, extra: str = "",
             concurrency: int = 1, limit: int | None = None,
             policy: RetryPolicy = FAST) -> tuple[dict, list[dict]]:
    """One run_eval through a fresh adapter (to a server or a base URL); the run's header and
    prediction records."""
    url = server if isinstance(server, str) else server.url
    spec = parse_spec(f"openai:test-model base_url={url} {extra}")
    model = create(spec)
    try:
        run_eval(testset, spec, model, rundir, GenerationSettings(),
                 RunOptions(concurrency=concurrency, limit=limit, retry=policy))
    finally:
        model.close()
        assert not model._thread.is_alive(), "close() must stop the adapter's loop thread"
    return read_records(rundir)


def read_records(rundir: str) -> tuple[dict, list[dict]]:
    with open(os.path.join(rundir, PREDICTIONS), encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    assert records[0]["record"] == "header"
    return records[0], [r for r in records if r["record"] == "prediction"]


def sent_images(body: dict) -> list[bytes]:
    """The JPEG bytes of every image part of a request body, in order."""
    found = []
    for part in body["messages"][-1]["content"]:   # the user turn comes last
        if part["type"] == "image_url":
            url = part["image_url"]["url"]
            assert url.startswith(DATA_URL)
            found.append(base64.b64decode(url[len(DATA_URL):], validate=True))
    return found


def expected_images(testset: str, sample: dict) -> list[bytes]:
    paths = [path for part in sample["prompt"] if part["type"] == "video"
             for path in part["frames"]]
    paths += [part["image"] for part in sample["prompt"] if part["type"] == "image"]
    result = []
    for path in paths:
        with open(os.path.join(testset, path), "rb") as handle:
            result.append(handle.read())
    return result


@pytest.fixture(autouse=True)
def no_ambient_openai_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_CUSTOM_HEADERS"):
        monkeypatch.delenv(name, raising=False)


def test_every_frame_arrives_as_the_test_sets_jpeg_bytes(viubench_testset, tmp_path):
    samples = list(iter_samples(viubench_testset))
    with ChatServer(answer=lambda body: "42") as server:
        _, predictions = evaluate(server, viubench_testset, str(tmp_path), f"api_key={KEY}",
                                  concurrency=4)
    assert len(predictions) == len(samples) == len(server.received) == 36
    assert all(r["text"] == "42" and r["error"] is None and r["attempts"] == 1
               for r in predictions)
    assert all(r["info"]["video_input"] == "frames" for r in predictions)
    # Requests arrive in any order; each sample's frames must match exactly one request.
    expected = sorted(tuple(expected_images(viubench_testset, s)) for s in samples)
    received = sorted(tuple(sent_images(r.body)) for r in server.received)
    assert received == expected
    for seen in server.received:
        assert seen.path == "/v1/chat/completions"
        assert seen.headers["authorization"] == f"Bearer {KEY}"
        assert seen.body["model"] == "test-model" and seen.body["temperature"] == 0
        system, user = seen.body["messages"]
        assert system == {"role": "system", "content": samples[0]["system"]}
        assert samples[0]["system"] and user["role"] == "user"
        texts = [p["text"] for p in user["content"] if p["type"] == "text"]
        assert any(t.startswith("(video, ") and " frames at " in t for t in texts)


def test_rate_limit_server_error_and_timeout_are_retried_until_an_answer(viubench_testset,
                                                                         tmp_path):
    with ChatServer() as server:
        server.push(rate_limited(0.3), server_error(503), stall(3.0), answer("7"))
        _, (record,) = evaluate(server, viubench_testset, str(tmp_path), "timeout=0.5",
                                limit=1)
    assert record["text"] == "7" and record["error"] is None
    assert record["attempts"] == 4
    assert [r.status for r in server.received] == [429, 503, 200, 200]
    # The first wait is at least the 429's Retry-After (0.3 s), whatever the backoff draws.
    assert record["waited"] >= 0.3


REFUSAL = {"choices": [{"index": 0, "finish_reason": "stop", "message": {
    "role": "assistant", "content": None, "refusal": "I cannot help with that."}}]}


@pytest.mark.parametrize("replies, kind, attempts, words", [
    ([server_error()] * 4, "transient", 4, "HTTP 500"),
    ([server_error(400)], "fatal", 1, "HTTP 400"),
    ([raw(REFUSAL)], "fatal", 1, "the model refused: I cannot help"),
    ([rate_limited(0.01)] * 4, "rate_limit", 4, "HTTP 429"),
], ids=["server-error", "bad-request", "refusal", "rate-limit"])
def test_failures_are_recorded_as_errors_with_a_kind_never_as_text(viubench_testset, tmp_path,
                                                                   replies, kind, attempts,
                                                                   words):
    with ChatServer() as server:
        server.push(*replies)
        _, (record,) = evaluate(server, viubench_testset, str(tmp_path), limit=1)
    assert (record["kind"], record["attempts"], record["text"]) == (kind, attempts, None)
    assert words in record["error"]
    assert len(server.received) == attempts


BROKEN = {"not-json": (raw(b"<html>502 Bad Gateway</html>"), "not JSON: '<html>502"),
          "not-an-object": (raw(b'["a", "list"]'), "not a completion"),
          "error-in-a-200": (raw({"error": {"message": "model overloaded", "type": "x"}}),
                             "the server reported an error: model overloaded"),
          "no-choices": (raw({"id": "chatcmpl-1", "object": "chat.completion"}), "no choices"),
          "empty-choices": (raw({"choices": []}), "no choices"),
          "null-content": (no_content(), "no text (finish_reason=stop)"),
          "empty-text": (answer(" \n"), "no text")}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_reply_is_retried_as_transient(viubench_testset, tmp_path, name):
    reply, words = BROKEN[name]
    with ChatServer() as server:
        server.push(reply, answer("7"))
        _, (recovered,) = evaluate(server, viubench_testset, str(tmp_path / "a"), limit=1)
        server.push(reply, reply)
        _, (lost,) = evaluate(server, viubench_testset, str(tmp_path / "b"), limit=1,
                              policy=RetryPolicy(max_attempts=2, base=0.01, cap=0.05))
    assert (recovered["text"], recovered["attempts"], recovered["error"]) == ("7", 2, None)
    assert (lost["kind"], lost["attempts"], lost["text"]) == ("transient", 2, None)
    assert words in lost["error"]


def test_a_waiting_retry_gives_its_slot_to_the_next_sample(viubench_testset, tmp_path):
    # Two slots, three samples. The first request to arrive fails; the second is held by the
    # server until four requests have arrived in all. While the failed one waits out its
    # backoff its slot must serve the third sample, whose answer frees the slot for the retry:
    # arrivals are first, second, third, then the first again. A runner that slept in the slot
    # would send the retry third and the third sample fourth.
    with ChatServer() as server:
        server.push(server_error(), held(answer("held"), 4))
        _, predictions = evaluate(server, viubench_testset, str(tmp_path), concurrency=2,
                                  limit=3)
    bodies = [r.body for r in server.received]
    assert len(bodies) == 4 and not server.hold_timed_out
    assert bodies[3] == bodies[0], "the retry came before the next sample"
    assert bodies[2] not in (bodies[0], bodies[1])
    assert sorted(r["attempts"] for r in predictions) == [1, 1, 2]
    assert all(r["error"] is None for r in predictions)


def test_a_dead_server_stops_the_run_once_and_leaves_the_samples_unasked(viubench_testset,
                                                                         tmp_path):
    with ChatServer() as server:
        server.push(*[dropped()] * 200)     # every connection closed without an answer
        with pytest.raises(RunAborted, match="server looks down or unreachable") as aborted:
            evaluate(server, viubench_testset, str(tmp_path), policy=PATIENT)
    # 36 samples x 20 attempts would be 720 requests; the breaker stops after 16 in a row
    # (at concurrency 1 they are sent one after another, so exactly 16 reached the server),
    # and no sample had used up its attempts, so none has a record: all are left to resume.
    assert len(server.received) == 16
    assert f"connection to {server.url} failed" in str(aborted.value)
    _, predictions = read_records(str(tmp_path))
    assert predictions == []


def test_eval_against_no_server_exits_3_with_its_coverage(viubench_testset, tmp_path):
    with socket.socket() as probe:           # a port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = viubench("eval", "--testset", viubench_testset, "--model",
                    f"openai:m base_url=http://127.0.0.1:{port}/v1", "--out",
                    str(tmp_path / "run"), "--retry-base", "0.01", "--retry-cap", "0.05",
                    "--max-attempts", "20")
    assert done.returncode == 3, done.stderr
    assert "coverage: 0 of 36 answered; 0 errors; 36 never asked" in done.stdout
    stopped = [line for line in done.stderr.splitlines() if "stopped" in line]
    assert len(stopped) == 1 and "server looks down or unreachable" in stopped[0]
    assert "Traceback" not in done.stderr


def test_a_wrong_path_or_model_stops_the_run_at_the_first_404(viubench_testset, tmp_path):
    with ChatServer() as server:
        without_v1 = server.url.removesuffix("/v1")    # the server answers 404 there
        with pytest.raises(RunAborted, match="has no model 'test-model' or no chat-compl"):
            evaluate(without_v1, viubench_testset, str(tmp_path), limit=5)
    assert len(server.received) == 1
    assert read_records(str(tmp_path))[1] == []


@pytest.mark.parametrize("key", ["sk-caf\u00e9", "sk-li\nne", "sk two", "sk-bell\x07"],
                         ids=["non-ascii", "newline", "space", "control"])
def test_a_key_that_cannot_be_a_header_is_refused_when_the_adapter_is_made(monkeypatch, key):
    monkeypatch.setenv("OPENAI_API_KEY", key)
    with pytest.raises(ValueError, match="cannot be sent in an HTTP header") as refused:
        create(parse_spec("openai:m base_url=http://127.0.0.1:9/v1"))
    assert key.strip() not in str(refused.value)


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_aborts_the_run_and_records_nothing(viubench_testset, tmp_path, status):
    with ChatServer() as server:
        server.push(*[unauthorized(status)] * 8)   # whatever reaches the server is refused
        with pytest.raises(RunAborted) as aborted:
            evaluate(server, viubench_testset, str(tmp_path), f"api_key={KEY}", limit=3)
    message = str(aborted.value)
    assert server.url in message and "rejected the API key" in message
    assert KEY not in message
    _, predictions = read_records(str(tmp_path))
    assert predictions == []


@pytest.mark.parametrize("via", ["environment", "option"])
def test_api_key_is_sent_but_never_written(viubench_testset, tmp_path, monkeypatch, via):
    extra = f"api_key={KEY}" if via == "option" else ""
    if via == "environment":
        monkeypatch.setenv("OPENAI_API_KEY", f" {KEY}\n")   # as read from a file: stripped
    with ChatServer() as server:
        server.push(server_error(), server_error(400))   # error messages are stored too
        header, _ = evaluate(server, viubench_testset, str(tmp_path), extra, limit=3)
    assert {r.headers["authorization"] for r in server.received} == {f"Bearer {KEY}"}
    with open(os.path.join(str(tmp_path), PREDICTIONS), encoding="utf-8") as handle:
        assert KEY not in handle.read()
    assert header["adapter"]["fingerprint"]["base_url"] == server.url
    if via == "option":
        assert "api_key=<redacted>" in header["adapter"]["spec"]


def test_concurrent_requests_really_overlap(viubench_testset, tmp_path):
    # The server answers only once 8 requests are in flight together (a barrier; after 20 s
    # it gives up and answers), so 8 overlapping requests are seen whatever the timing.
    with ChatServer(gather=8) as server:
        _, predictions = evaluate(server, viubench_testset, str(tmp_path), concurrency=8,
                                  limit=16)
    assert len(predictions) == 16 and all(r["text"] == "42" for r in predictions)
    assert server.max_in_flight == 8 and not server.gather_timed_out


def test_max_frames_and_detail_shape_what_is_sent(viubench_testset, tmp_path):
    with ChatServer() as server:
        header, (record,) = evaluate(server, viubench_testset, str(tmp_path),
                                     "max_frames=5 detail=low", limit=1)
    (body,) = [r.body for r in server.received]
    images = [p for p in body["messages"][-1]["content"] if p["type"] == "image_url"]
    assert 0 < len(images) <= 5 * 8   # at most 5 per video part
    assert all(p["image_url"]["detail"] == "low" for p in images)
    assert record["info"]["frames_sent"] == len(images)
    assert header["adapter"]["fingerprint"]["max_frames"] == 5


def test_token_field_reaches_servers_that_only_know_max_tokens(viubench_testset, tmp_path):
    legacy = frozenset({"max_completion_tokens"})
    with ChatServer(unknown_fields=legacy) as server:
        with pytest.raises(RunAborted) as refused:    # every request would be refused: stop
            evaluate(server, viubench_testset, str(tmp_path / "default"), limit=3)
        header, (answered,) = evaluate(server, viubench_testset, str(tmp_path / "legacy"),
                                       "token_field=max_tokens", limit=1)
    assert "max_completion_tokens" in str(refused.value)
    assert "token_field=max_tokens" in str(refused.value)   # the message says what to do
    assert read_records(str(tmp_path / "default"))[1] == []
    assert answered["text"] == "42" and answered["error"] is None
    bodies = [r.body for r in server.received]
    assert len(bodies) == 2 and bodies[0]["max_completion_tokens"] == bodies[1]["max_tokens"] > 0
    assert "max_completion_tokens" not in bodies[1]
    assert header["adapter"]["fingerprint"]["token_field"] == "max_tokens"


def test_unknown_token_field_is_refused_when_the_adapter_is_made():
    with pytest.raises(ValueError, match="token_field"):
        create(parse_spec("openai:m base_url=http://127.0.0.1:9/v1 token_field=max_length"))


def test_request_body_is_the_json_the_parts_describe(viubench_testset):
    sample = next(iter(iter_samples(viubench_testset)))
    frames = [os.path.join(viubench_testset, p) for p in sample["prompt"][0]["frames"][:3]]
    question = 'Say "\u00e9t\u00e9"\n'   # quotes, non-ASCII, newline: must survive as JSON
    parts = ({"type": "text", "text": question}, {"type": "image", "image": frames[0]},
             {"type": "video", "fps": 8.0, "frames": frames})
    model = create(parse_spec("openai:m base_url=http://127.0.0.1:9/v1 detail=high"))
    try:
        body, sent = model.body(Request("x", "t", "v", parts, 5))
        with_system, _ = model.body(Request("x", "t", "v", parts, 5, system="Be brief."))
    finally:
        model.close()
    images = [{"type": "image_url", "image_url": {"url": data_url(f), "detail": "high"}}
              for f in frames]
    content = [{"type": "text", "text": question}, images[0],
               {"type": "text", "text": "(video, 3 frames at 8 fps)"}, *images]
    assert json.loads(body) == {"model": "m", "temperature": 0.0, "max_completion_tokens": 5,
                                "messages": [{"role": "user", "content": content}]}
    assert sent == 4
    assert json.loads(with_system)["messages"] == [{"role": "system", "content": "Be brief."},
                                                   {"role": "user", "content": content}]


def test_retry_after_accepts_seconds_milliseconds_and_http_dates():
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    later = retry_after_seconds({"retry-after": formatdate(time.time() + 30, usegmt=True)})
    assert later is not None and 25 <= later <= 31
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None and retry_after_seconds(None) is None


def test_missing_key_for_the_official_endpoint_is_a_clear_error():
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        create(parse_spec("openai:gpt-4o"))


def test_chat_server_binds_loopback_and_stops_by_itself():
    server = ChatServer(lifetime=0.3).start()
    assert server.url.startswith("http://127.0.0.1:")
    assert server._httpd.server_address[0] == "127.0.0.1"
    deadline = time.monotonic() + 5
    while not server.stopping.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stopping.is_set()
    server._thread.join(5)
    assert not server._thread.is_alive()


def test_a_missing_extra_is_one_line_naming_it(viubench_testset, tmp_path, capsys,
                                               monkeypatch):
    """An adapter whose optional package is not installed stops eval with one line (exit 2)
    naming the package and the extra that installs it, before anything is written."""
    from viubench.cli import main

    monkeypatch.setitem(__import__("sys").modules, "openai", None)   # `import openai` fails
    status = main(["eval", "--testset", viubench_testset, "--model",
                   "openai:m base_url=http://127.0.0.1:9", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert "needs the Python package 'openai'" in err[0]
    assert "pip install 'viubench[api]'" in err[0]
    assert not (tmp_path / "run").exists()
