"""`viubench eval` / `score`: runs, resume, retries, error accounting, registration, scoring."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from helpers import TESTS, fake_distribution, viubench
from viubench.adapters import Request, Response, parse_spec
from viubench.score import score_run
from viubench.retry import MIN_STREAK, Backlog, Breaker, RetryPolicy
from viubench.runfolder import PREDICTIONS, read_run
from viubench.runner import GenerationSettings, RunAborted, RunOptions, run_eval

FAST_RETRY = ["--retry-base", "0.01", "--retry-cap", "0.05"]


def records(rundir: str, kind: str = "prediction") -> list[dict]:
    with open(os.path.join(rundir, PREDICTIONS)) as handle:
        return [r for r in map(json.loads, handle) if r["record"] == kind]


def results(rundir: str) -> dict:
    with open(os.path.join(rundir, "results.json")) as handle:
        return json.load(handle)


def samples(testset: str) -> list[dict]:
    with open(os.path.join(testset, "samples.jsonl")) as handle:
        return [json.loads(line) for line in handle]


def test_constant_answers_score_as_computed_by_hand(viubench_testset, tmp_path):
    run = str(tmp_path / "run")
    done = viubench("eval", "--testset", viubench_testset, "--model", "constant text=1,2,3",
                    "--out", run)
    assert done.returncode == 0, done.stderr
    truth = samples(viubench_testset)
    got = results(run)["variants"]
    for variant in ("easy", "hard"):
        answers = [s["answer"] for s in truth if s["task"] == "object_counting"
                   and s["variant"] == variant]
        hits = [sum(int(a) == g for a, g in zip(ans.split(","), (1, 2, 3))) / 3
                for ans in answers]
        row = got[f"object_counting:{variant}"]
        assert row["score"] == pytest.approx(100 * sum(hits) / len(hits))
        assert row["n"] == len(answers) and row["parse_failures"] == 0
        assert row["ci95"][0] <= row["score"] <= row["ci95"][1]
    # "1,2,3" is no list of 6 clip labels and no interval: parse failures, scored 0, counted.
    for key in ("temporal_jigsaw:easy", "anomaly_grounding:mirror"):
        assert got[key]["score"] == 0 and got[key]["parse_failures"] == got[key]["n"] == 4
    scores = [json.loads(line) for line in open(os.path.join(run, "scores.jsonl"))]
    assert len(scores) == len(truth) and {s["status"] for s in scores} == {"answered"}
    # Each reply is parsed under lenient and every reward policy; values and rewards recorded.
    counting = next(s for s in scores if s["task"] == "object_counting")
    assert counting["parsed"] == {"lenient": [1, 2, 3], "strict": [1, 2, 3],
                                  "videossr": [1, 2, 3]}
    assert set(counting["rewards"]) == {"strict", "videossr"}
    grounding = next(s for s in scores if s["task"] == "anomaly_grounding")
    assert grounding["parsed"]["strict"] is None and grounding["parse_errors"]["strict"]
    assert grounding["rewards"] == {"strict": 0.0, "videossr": 0.0}
    assert set(got["object_counting:easy"]["rewards"]) == {"strict", "videossr"}


def test_random_baseline_is_seeded_per_sample_and_order_free(viubench_testset, tmp_path):
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    assert viubench("eval", "--testset", viubench_testset, "--model", "random",
                    "--out", first, "--batch-size", "1").returncode == 0
    assert viubench("eval", "--testset", viubench_testset, "--model", "random",
                    "--out", second, "--batch-size", "7", "--concurrency", "3").returncode == 0
    answers = {r["id"]: r["text"] for r in records(first)}
    assert answers == {r["id"]: r["text"] for r in records(second)}
    assert results(first)["variants"] == results(second)["variants"]


def test_errors_fail_the_exit_status_stay_in_the_denominator_and_are_asked_again(
        viubench_testset, tmp_path):
    run = str(tmp_path / "run")
    flaky = ["--model", "user_adapter:Flaky flaky=9", "--max-attempts", "3", *FAST_RETRY]
    done = viubench("eval", "--testset", viubench_testset, "--out", run, *flaky,
                    env_path=TESTS)
    buckets = {s["id"]: int(s["id"], 16) % 4 for s in samples(viubench_testset)}
    refused = sum(b == 0 for b in buckets.values())
    unlucky = sum(b == 1 for b in buckets.values())
    failing, n = refused + unlucky, len(buckets)
    # Any error fails the run (--max-error-rate 0), with its coverage and one final line.
    assert done.returncode == 1, done.stderr
    assert (f"coverage: {n - failing} of {n} answered; {failing} errors (fatal {refused},"
            f" transient {unlucky}); 0 never asked") in done.stdout
    assert done.stderr.splitlines()[-1].startswith(
        f"viubench eval: FAILED: {failing} of {n} samples")
    latest = {r["id"]: r for r in records(run)}
    assert set(latest) == set(buckets)
    for sample_id, record in latest.items():
        if buckets[sample_id] in (0, 1):   # refused, or still failing after 3 attempts
            assert record["text"] is None and record["error"]
            assert record["attempts"] == (1 if buckets[sample_id] == 0 else 3)
        else:                              # bucket 2 was rate limited once, then answered
            assert record["error"] is None and record["text"]
            assert record["attempts"] == (2 if buckets[sample_id] == 2 else 1)
    totals = results(run)["totals"]
    assert totals["errors"] == failing and totals["n"] == n
    for row in results(run)["variants"].values():   # errors score 0 inside the mean
        assert row["answered"] + row["errors"] == row["n"]

    # --keep-errors asks nothing again; a tolerant --max-error-rate lets the run pass.
    kept = viubench("eval", "--testset", viubench_testset, "--out", run, *flaky,
                    "--keep-errors", "--max-error-rate", str(failing / n), env_path=TESTS)
    assert kept.returncode == 0, kept.stderr
    assert f"{n} samples already answered or kept as errors" in kept.stderr
    assert len(records(run)) == n
    # By default a rerun asks the errors again (and only them).
    again = viubench("eval", "--testset", viubench_testset, "--out", run, *flaky,
                     env_path=TESTS)
    assert again.returncode == 1, again.stderr
    assert f"{n - failing} samples already answered" in again.stderr
    asked_again = records(run)[n:]
    assert {r["id"] for r in asked_again} == {i for i, b in buckets.items() if b in (0, 1)}
    # --retry-errors, the default now, is still accepted; it cannot go with --keep-errors.
    legacy = viubench("eval", "--testset", viubench_testset, "--out", run, *flaky,
                      "--retry-errors", "--max-error-rate", "1", "--no-score", env_path=TESTS)
    assert legacy.returncode == 0 and len(records(run)) == n + 2 * failing
    both = viubench("eval", "--testset", viubench_testset, "--out", run, *flaky,
                    "--retry-errors", "--keep-errors", env_path=TESTS)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def test_max_error_rate_must_be_a_fraction(viubench_testset, tmp_path):
    done = viubench("eval", "--testset", viubench_testset, "--model", "random", "--out",
                    str(tmp_path / "run"), "--max-error-rate", "5")
    assert done.returncode == 2
    assert done.stderr.strip() == ("viubench eval: error: --max-error-rate 5: expected a"
                                   " fraction between 0 and 1")


class Scripted:
    """In-process adapter whose answers are scripted per call, to test the runner itself."""

    default_concurrency = 1
    default_batch_size = 4

    def __init__(self, script) -> None:
        self.script = script
        self.calls = 0

    def generate(self, requests):
        self.calls += 1
        return self.script(self.calls, requests)

    def describe(self):
        return {"adapter": "scripted"}

    def close(self):
        pass


def test_retry_after_is_honoured_and_no_error_becomes_text(viubench_testset, tmp_path):
    def script(call, requests):
        if call == 1:
            return [Response(error="busy", kind="rate_limit", retry_after=0.3) for _ in requests]
        return [Response(text="0.0-1.0") for _ in requests]

    adapter = Scripted(script)
    run_eval(viubench_testset, parse_spec("scripted"), adapter, str(tmp_path / "r"),
             GenerationSettings(), RunOptions(batch_size=4, limit=4,
                                              retry=RetryPolicy(3, base=0.01, cap=0.02)))
    got = records(str(tmp_path / "r"))
    assert [r["attempts"] for r in got] == [2] * 4 and all(r["text"] == "0.0-1.0" for r in got)
    # The backoff alone would wait at most 0.02 s; the server asked for 0.3 s, and got it.
    assert [r["waited"] for r in got] == [0.3] * 4


def test_a_retry_after_holds_back_the_other_requests_too(viubench_testset, tmp_path):
    asked = []

    def script(call, requests):
        asked.extend(r.id for r in requests)
        if call == 1:
            return [Response(error="busy", kind="rate_limit", retry_after=0.2)]
        return [Response(text="0.0-1.0") for _ in requests]

    run = str(tmp_path / "r")
    run_eval(viubench_testset, parse_spec("scripted"), Scripted(script), run,
             GenerationSettings(), RunOptions(batch_size=1, limit=3,
                                              retry=RetryPolicy(3, base=0.01, cap=0.02)))
    first, second, third = [s["id"] for s in samples(viubench_testset)[:3]]
    # The slot was free at once, but the server's Retry-After held the next sample back too;
    # when the gate opened, the waiting retry went first.
    assert asked == [first, first, second, third]
    assert [(r["id"], r["attempts"], r["waited"]) for r in records(run)] == [
        (first, 2, 0.2), (second, 1, 0.0), (third, 1, 0.0)]


def test_backoff_grows_with_the_failures_the_server_did_not_time(viubench_testset, tmp_path):
    def script(call, requests):
        if call <= 2:
            return [Response(error="busy", kind="rate_limit", retry_after=0.2)]
        if call == 3:
            return [Response(error="reset", kind="transient")]
        return [Response(text="0.0-1.0")]

    run = str(tmp_path / "r")
    run_eval(viubench_testset, parse_spec("scripted"), Scripted(script), run,
             GenerationSettings(), RunOptions(batch_size=1, limit=1,
                                              retry=RetryPolicy(6, base=0.1, cap=10)))
    (record,) = records(run)
    # two Retry-Afters of 0.2 s, then the first backoff, in [0.05, 0.1]; counting attempts
    # instead would have made it the third, in [0.2, 0.4]
    assert record["attempts"] == 4 and 0.45 <= record["waited"] <= 0.5


def test_backlog_orders_waiting_jobs_and_gates_them_by_retry_after():
    backlog: Backlog[str] = Backlog()
    assert backlog.is_open(0.0) and backlog.next_change(0.0) is None
    assert backlog.put("a", 1.0, now=0.0) == 1.0
    assert backlog.put("b", 0.5, now=0.0) == 0.5
    assert backlog.take(0.4) is None and backlog.next_change(0.4) == pytest.approx(0.1)
    assert backlog.take(0.5) == "b"
    backlog.rate_limited(3.0, now=0.6)           # a 429: nothing goes before 3.6
    assert not backlog.is_open(1.0) and backlog.take(1.0) is None
    assert backlog.next_change(1.0) == pytest.approx(2.6)
    assert backlog.put("c", 0.1, now=1.0) == pytest.approx(2.6)   # waits for the gate
    backlog.rate_limited(1.0, now=2.0)           # a shorter wait never reopens the gate early
    assert backlog.take(3.5) is None
    assert [backlog.take(3.6), backlog.take(3.6), backlog.take(3.6)] == ["a", "c", None]
    assert len(backlog) == 0 and backlog.next_change(3.6) is None


def test_breaker_trips_on_a_streak_of_transient_failures_only():
    down = Response(error="connection refused", kind="transient")
    breaker = Breaker(limit=2)                   # never below MIN_STREAK
    assert breaker.limit == MIN_STREAK
    for _ in range(MIN_STREAK - 1):
        breaker.record(down)
    for alive in (Response(text="1"), Response(error="no", kind="fatal"),
                  Response(error="slow down", kind="rate_limit")):
        breaker.record(alive)                    # the server is there: start again
        assert breaker.streak == 0
        for _ in range(MIN_STREAK - 1):
            breaker.record(down)
        assert not breaker.tripped
    breaker.record(down)
    assert breaker.tripped and "connection refused" in breaker.reason()


def test_retry_waits_are_the_servers_retry_after_else_a_jittered_backoff():
    policy = RetryPolicy(max_attempts=3, base=1.0, cap=4.0, max_retry_after=30.0)
    rng = random.Random(0)
    assert all(0.5 <= policy.delay(1, None, rng) <= 1.0 for _ in range(50))
    assert all(2.0 <= policy.delay(5, None, rng) <= 4.0 for _ in range(50))
    # the server's word is the wait, shorter or longer than the backoff would be
    assert policy.delay(5, 0.1, rng) == 0.1 and policy.delay(1, 10.0, rng) == 10.0
    assert policy.delay(1, 999.0, rng) == 30.0
    assert policy.told_wait(0.0) is None and policy.told_wait(None) is None
    assert policy.gives_up(3) and not policy.gives_up(2)


def test_wrong_number_of_responses_aborts_and_records_nothing(viubench_testset, tmp_path):
    adapter = Scripted(lambda call, requests: [Response(text="1")])
    with pytest.raises(RunAborted, match="1 responses for 4 requests"):
        run_eval(viubench_testset, parse_spec("scripted"), adapter, str(tmp_path / "r"),
                 GenerationSettings(), RunOptions(batch_size=4))
    assert records(str(tmp_path / "r")) == []


def test_an_adapter_exception_is_a_recorded_error_not_an_answer(viubench_testset, tmp_path):
    def script(call, requests):
        raise RuntimeError("CUDA out of memory")

    run = str(tmp_path / "r")
    run_eval(viubench_testset, parse_spec("scripted"), Scripted(script), run,
             GenerationSettings(), RunOptions(limit=3))
    got = records(run)
    assert len(got) == 3 and all(r["text"] is None and r["kind"] == "fatal" for r in got)
    assert "CUDA out of memory" in got[0]["error"]
    assert score_run(run)["totals"] == {"n": 3, "answered": 0, "parse_failures": 0,
                                        "strict_parse_failures": 0, "errors": 3, "missing": 0}


def test_a_run_with_other_settings_is_refused_and_secrets_are_redacted(viubench_testset,
                                                                       tmp_path):
    run = str(tmp_path / "r")
    spec = ["--model", "slow_random delay=0 api_key=sk-very-secret", "--adapter-module",
            "user_adapter"]
    done = viubench("eval", "--testset", viubench_testset, *spec, "--out", run, "--limit", "2",
                    env_path=TESTS)
    assert done.returncode == 0, done.stderr
    for name in os.listdir(run):
        with open(os.path.join(run, name)) as handle:
            assert "sk-very-secret" not in handle.read()
    wrong = viubench("eval", "--testset", viubench_testset, "--model",
                     "constant text=1 api_key=sk-very-secret", "--out", str(tmp_path / "x"))
    assert wrong.returncode == 2 and "sk-very-secret" not in wrong.stderr + wrong.stdout
    refused = viubench("eval", "--testset", viubench_testset, *spec, "--out", run,
                       "--max-new-tokens", "9", env_path=TESTS)
    assert refused.returncode == 2 and "generation settings" in refused.stderr


def test_limit_scores_only_the_scope_and_missing_samples_count(viubench_testset, tmp_path):
    run = str(tmp_path / "r")
    assert viubench("eval", "--testset", viubench_testset, "--model", "random", "--out", run,
                    "--limit", "5").returncode == 0
    assert results(run)["totals"]["n"] == 5
    # Drop two answers by hand: they are missing, scored 0, and still in the denominator.
    path = os.path.join(run, PREDICTIONS)
    lines = open(path).read().splitlines()
    open(path, "w").write("\n".join(lines[:-2]) + "\n")
    assert score_run(run)["totals"]["missing"] == 2


def test_user_adapter_by_module_class_decorator_and_entry_point(viubench_testset, tmp_path):
    by_class = viubench("eval", "--testset", viubench_testset, "--model",
                        "user_adapter:SlowRandom delay=0", "--out", str(tmp_path / "a"),
                        "--limit", "3", env_path=TESTS)
    assert by_class.returncode == 0, by_class.stderr
    by_mark = viubench("eval", "--testset", viubench_testset, "--model", "slow_random delay=0",
                       "--adapter-module", "user_adapter", "--out", str(tmp_path / "b"),
                       "--limit", "3", env_path=TESTS)
    assert by_mark.returncode == 0, by_mark.stderr
    site = str(tmp_path / "site")
    fake_distribution(site, "viubench_user_adapters",
                      "[viubench.adapters]\nmy_random = user_adapter:SlowRandom\n")
    path = os.pathsep.join([site, TESTS])
    assert "my_random" in viubench("list", "adapters", env_path=path).stdout
    by_entry = viubench("eval", "--testset", viubench_testset, "--model", "my_random delay=0",
                        "--out", str(tmp_path / "c"), "--limit", "3", env_path=path)
    assert by_entry.returncode == 0, by_entry.stderr
    texts = [[r["text"] for r in records(str(tmp_path / d))] for d in "abc"]
    assert texts[0] == texts[1] == texts[2] and len(texts[0]) == 3


def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(viubench_testset, tmp_path):
    whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
    model = ["--model", "slow_random delay=0", "--adapter-module", "user_adapter",
             "--batch-size", "1"]
    assert viubench("eval", "--testset", viubench_testset, "--out", whole, *model,
                    env_path=TESTS).returncode == 0
    # The child answers 10 samples and hangs (see user_adapter.SlowRandom): the kill lands
    # mid-run however fast or slow the machine is.
    env = dict(os.environ, PYTHONPATH=TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""),
               VIUBENCH_TEST_STALL_AFTER="10")
    child = subprocess.Popen([sys.executable, "-m", "viubench.cli", "eval", "--testset",
                              viubench_testset, "--out", killed, *model], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = os.path.join(killed, PREDICTIONS)
    safety = time.monotonic() + 300     # a net against a hang, not a timing assumption
    while child.poll() is None and (not os.path.exists(path) or len(records(killed)) < 10):
        assert time.monotonic() < safety, "the run wrote fewer than 10 answers in 5 minutes"
        time.sleep(0.02)
    assert child.poll() is None, "the stalled run ended by itself"
    child.send_signal(signal.SIGKILL)
    child.wait()
    with open(path, "a") as handle:   # as if killed in the middle of writing a line
        handle.write('{"record": "prediction", "id": "torn')
    partial = len(records_tolerant(killed))
    assert partial == 10
    resumed = viubench("eval", "--testset", viubench_testset, "--out", killed, *model,
                       env_path=TESTS)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{partial} samples already answered" in resumed.stderr
    got = records(killed)
    assert len(got) == len({r["id"] for r in got}) == len(samples(viubench_testset))
    assert results(killed)["variants"] == results(whole)["variants"]


def records_tolerant(rundir: str) -> list[dict]:
    return [r for r in read_run(rundir)[1] if r["record"] == "prediction"]


def test_random_baseline_matches_the_papers_random_row(real_videos, tmp_path):
    """SPEC §7: counting 11.1 / 6.3 and jigsaw 0.1 / 0.0 lie inside our 95% CIs."""
    from viubench.build import BuildSpec, build

    testset = str(tmp_path / "ts")
    selection = [("object_counting", "easy"), ("object_counting", "hard"),
                 ("temporal_jigsaw", "easy"), ("temporal_jigsaw", "hard")]
    build(BuildSpec(real_videos, tuple(selection), seed=3, per_video=60), testset)
    run = str(tmp_path / "run")
    assert viubench("eval", "--testset", testset, "--model", "random", "--out",
                    run).returncode == 0
    paper = {"object_counting:easy": 11.1, "object_counting:hard": 6.3,
             "temporal_jigsaw:easy": 0.1, "temporal_jigsaw:hard": 0.0}
    got = results(run)["variants"]
    for key, reported in paper.items():
        low, high = got[key]["ci95"]
        assert got[key]["n"] == 240
        assert low <= reported <= high, (key, got[key]["score"], low, high)


def test_request_text_only_drops_media():
    request = Request("x", "t", "v", ({"type": "text", "text": "a"},
                                      {"type": "image", "image": "/f.jpg"},
                                      {"type": "video", "fps": 1.0, "frames": ["/f.jpg"]}), 8)
    assert [p["type"] for p in request.text_only().parts] == ["text"]


def test_a_malformed_prompt_part_is_one_error_line_naming_the_sample(viubench_testset,
                                                                       tmp_path):
    copy = str(tmp_path / "ts")
    shutil.copytree(viubench_testset, copy)
    path = os.path.join(copy, "samples.jsonl")
    lines = open(path).read().splitlines()
    first = json.loads(lines[0])
    first["prompt"][0]["type"] = "audio"
    lines[0] = json.dumps(first)
    open(path, "w").write("\n".join(lines) + "\n")
    done = viubench("eval", "--testset", copy, "--model", "random", "--out",
                    str(tmp_path / "run"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "samples.jsonl:1: a prompt part of no known type" in done.stderr
    assert "no known type ('audio')" in done.stderr
    assert not os.path.exists(os.path.join(tmp_path, "run", "predictions.jsonl"))
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("viubench eval: error:")
