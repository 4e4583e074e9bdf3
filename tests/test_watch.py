"""`viubench watch`: checkpoint completeness, the learning curve files, the watcher in process,
and `watch` as a subprocess killed and restarted while checkpoints are written."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from checkpoint_writer import (fake_checkpoint, half_written_checkpoint, safetensors_bytes,
                               tiny_qwen_checkpoint)
from helpers import TESTS
from viubench.adapters import parse_spec
from viubench.cli import main
from viubench.learning_curve import (COLUMNS, draw_png, points_from_results,
                                     points_without_score, read_csv, write_csv)
from viubench.runfolder import PREDICTIONS
from viubench.runner import RunOptions
from viubench.testset import iter_samples
from viubench.checkpoints import (Checkpoint, Readiness, completeness_problem, find_checkpoints,
                                  safetensors_problem, weights_problem)
from viubench.watch import (LOG, Watcher, WatchError, WatchSettings, check_template, log_record,
                            read_log, spec_for)

DEADLINE = 240.0    # seconds a condition may take to come true on a loaded machine


# ---------------------------------------------------------------- completeness


def write(path: str, data: bytes) -> str:
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def test_a_whole_safetensors_file_passes_and_any_cut_is_caught(tmp_path):
    whole = safetensors_bytes({"a": 10, "b": 3})
    assert safetensors_problem(write(str(tmp_path / "w.safetensors"), whole)) is None
    for cut in (4, 8 + 10, len(whole) - 1):
        problem = safetensors_problem(write(str(tmp_path / "c.safetensors"), whole[:cut]))
        assert problem is not None and "c.safetensors" in problem
    longer = write(str(tmp_path / "l.safetensors"), whole + b"\0")
    assert "holds" in safetensors_problem(longer)
    garbage = write(str(tmp_path / "g.safetensors"), (16).to_bytes(8, "little") + b"x" * 16)
    assert "header" in safetensors_problem(garbage)


def test_a_sharded_checkpoint_needs_every_shard_whole(tmp_path):
    folder = fake_checkpoint(str(tmp_path), 5)
    os.remove(os.path.join(folder, "model.safetensors"))
    shard = safetensors_bytes({"w": 8})
    index = {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                            "b": "model-00002-of-00002.safetensors"}}
    write(os.path.join(folder, "model.safetensors.index.json"), json.dumps(index).encode())
    write(os.path.join(folder, "model-00001-of-00002.safetensors"), shard)
    assert "model-00002-of-00002.safetensors is missing" in weights_problem(folder)
    write(os.path.join(folder, "model-00002-of-00002.safetensors"), shard[:-3])
    assert "model-00002-of-00002.safetensors holds" in weights_problem(folder)
    write(os.path.join(folder, "model-00002-of-00002.safetensors"), shard)
    assert weights_problem(folder) is None and completeness_problem(folder) is None
    index["weight_map"]["c"] = "../outside.safetensors"
    write(os.path.join(folder, "model.safetensors.index.json"), json.dumps(index).encode())
    assert "outside the folder" in weights_problem(folder)


def test_trainer_state_config_and_weights_are_all_required(tmp_path):
    assert "trainer_state.json" in completeness_problem(half_written_checkpoint(str(tmp_path), 3))
    folder = fake_checkpoint(str(tmp_path), 4)
    assert completeness_problem(folder) is None
    os.remove(os.path.join(folder, "config.json"))
    assert "config.json" in completeness_problem(folder)
    write(os.path.join(folder, "adapter_config.json"), b"{}")    # a PEFT adapter checkpoint
    assert completeness_problem(folder) is None
    os.remove(os.path.join(folder, "model.safetensors"))
    write(os.path.join(folder, "training_args.bin"), b"pickle")  # not weights
    assert completeness_problem(folder) == "no weight files yet"
    write(os.path.join(folder, "pytorch_model.bin"), b"weights")  # present is all .bin can say
    assert completeness_problem(folder) is None


def test_a_checkpoint_is_ready_only_when_unchanged_between_two_polls(tmp_path):
    folder = fake_checkpoint(str(tmp_path), 7)
    checkpoint = Checkpoint(7, "checkpoint-7", folder)
    readiness = Readiness()
    assert readiness.problem(checkpoint) is not None          # first sight: not yet
    optimizer = write(os.path.join(folder, "optimizer.pt"), b"1")
    assert readiness.problem(checkpoint) == "still being written"   # a new file
    os.utime(optimizer, ns=(1, 1))
    assert readiness.problem(checkpoint) == "still being written"   # same size, other mtime
    assert readiness.problem(checkpoint) is None              # unchanged since the last poll
    shutil.rmtree(folder)
    assert readiness.problem(checkpoint) == "deleted"


def test_only_checkpoint_folders_count_in_step_order(tmp_path):
    for name in ("checkpoint-20", "checkpoint-3", "tmp-checkpoint-5", "checkpoint-x", "runs"):
        os.makedirs(tmp_path / name)
    write(str(tmp_path / "checkpoint-9"), b"a file")
    os.symlink(tmp_path / "checkpoint-3", tmp_path / "checkpoint-4")
    assert [c.name for c in find_checkpoints(str(tmp_path))] == ["checkpoint-3", "checkpoint-20"]


# ---------------------------------------------------------------- spec template, bad input


def test_the_spec_template_is_filled_in_target_and_options(tmp_path):
    checkpoint = Checkpoint(200, "checkpoint-200", "/runs/x/checkpoint-200")
    spec = spec_for(parse_spec("openai:{name} base_url=http://h/{step}/v1 seed=1"), checkpoint)
    assert spec.target == "checkpoint-200"
    assert dict(spec.options) == {"base_url": "http://h/200/v1", "seed": "1"}
    assert spec_for(parse_spec("hf:{checkpoint}"), checkpoint).target == checkpoint.path
    with pytest.raises(WatchError, match="checkpoint"):
        check_template(parse_spec("hf:/fixed/model"), ())


def test_bad_input_exits_2_with_one_line(tmp_path, viubench_testset, capsys):
    cases = [([str(tmp_path / "missing"), "--model", "hf:{checkpoint}"], "no such folder"),
             ([str(tmp_path), "--model", "hf:/one/model"], "{checkpoint}"),
             ([str(tmp_path), "--model", "nonesuch:{checkpoint}"], "unknown adapter"),
             ([str(tmp_path), "--model", "random:{name}", "--out", str(tmp_path)], "CKPT_DIR"),
             ([str(tmp_path), "--model", "random:{name}", "--every", "0"], "--every")]
    for args, words in cases:
        assert main(["watch", *args, "--testset", viubench_testset, "--once"]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("viubench watch: error:") and words in error
        assert len(error.splitlines()) == 1
    assert not os.path.exists(tmp_path / "viubench-watch")


def test_train_set_sharing_videos_with_the_test_set_is_warned(tmp_path, viubench_testset,
                                                              capsys):
    args = [str(tmp_path), "--testset", viubench_testset, "--model", "random seed={step}",
            "--train-set", viubench_testset, "--once", "--poll", "0"]
    assert main(["watch", *args]) == 0
    error = capsys.readouterr().err
    assert "warning:" in error and "also in the test set" in error


def test_a_log_line_cut_by_a_kill_is_dropped_before_appending(tmp_path):
    out = str(tmp_path)
    good = log_record(Checkpoint(5, "checkpoint-5", "/x/checkpoint-5"), "evaluated", None)
    with open(os.path.join(out, LOG), "w") as handle:
        handle.write(json.dumps(good) + "\n" + '{"checkpoint": "checkpoint-6", "st')
    assert list(read_log(out)) == ["checkpoint-5"]
    with open(os.path.join(out, LOG)) as handle:
        assert handle.read() == json.dumps(good) + "\n"
    with open(os.path.join(out, LOG), "a") as handle:
        handle.write('{"checkpoint": "../etc", "step": 1, "status": "evaluated"}\n')
    with pytest.raises(WatchError, match=f"{LOG}:2: not a watch record"):
        read_log(out)


# ---------------------------------------------------------------- the curve files


RESULTS = {"variants": {
    "object_counting:easy": {"n": 4, "answered": 4, "errors": 0, "score": 50.0,
                             "ci95": [10.0, 90.0], "metrics": {"score": 50.0, "exact": 50.0},
                             "rewards": {"strict": 0.5}},
    "temporal_jigsaw:hard": {"n": 2, "answered": 1, "errors": 1, "score": 25.0,
                             "ci95": [0.5, 80.0], "metrics": {"score": 25.0},
                             "rewards": {}}}}


def test_curve_csv_has_its_columns_and_failed_rows_carry_no_value(tmp_path):
    points = [*points_from_results(200, "checkpoint-200", RESULTS),
              *points_from_results(100, "checkpoint-100", RESULTS, "failed", "too many errors"),
              *points_without_score(300, "checkpoint-300", ["object_counting:easy"], "skipped",
                                    "deleted before it was evaluated")]
    path = str(tmp_path / "curve.csv")
    write_csv(path, points)
    rows = read_csv(path)
    with open(path) as handle:
        assert handle.readline().strip().split(",") == COLUMNS
    assert [r["step"] for r in rows] == sorted((r["step"] for r in rows), key=int)
    ok = [r for r in rows if r["checkpoint"] == "checkpoint-200"]
    score = next(r for r in ok if r["metric"] == "score" and r["task"] == "object_counting")
    assert (float(score["value"]), float(score["ci_low"]), float(score["ci_high"])) == \
        (50.0, 10.0, 90.0)
    assert (score["n"], score["answered"], score["status"]) == ("4", "4", "ok")
    assert {r["metric"] for r in ok} == {"score", "exact", "reward_strict"}
    unscored = [r for r in rows if r["checkpoint"] != "checkpoint-200"]
    assert unscored and all(r["value"] == r["ci_low"] == r["ci_high"] == "" for r in unscored)
    assert {r["status"] for r in unscored} == {"failed", "skipped"}
    assert all(r["note"] for r in unscored)


def test_curve_png_is_a_valid_image_with_failed_and_empty_curves(tmp_path):
    from PIL import Image

    points = [*points_from_results(10, "checkpoint-10", RESULTS),
              *points_from_results(20, "checkpoint-20", RESULTS),
              *points_without_score(30, "checkpoint-30", ["temporal_jigsaw:hard"], "failed",
                                    "cannot load")]
    for name, drawn in (("curve.png", points), ("empty.png", [])):
        path = str(tmp_path / name)
        draw_png(path, drawn, "hf:{checkpoint} on testset")
        with Image.open(path) as picture:
            picture.verify()
            assert picture.format == "PNG" and picture.size[0] > 300
    assert sorted(os.listdir(tmp_path)) == ["curve.png", "empty.png"]   # no .part left


# ---------------------------------------------------------------- the watcher in process


def settings(ckpts: str, testset: str, model: str, limit: int = 4) -> WatchSettings:
    return WatchSettings(ckpts, testset, parse_spec(model), os.path.join(ckpts, "viubench-watch"),
                         options=RunOptions(limit=limit), poll=0.0)


def score_rows(out: str) -> Counter:
    rows = read_csv(os.path.join(out, "curve.csv"))
    return Counter((r["checkpoint"], r["status"]) for r in rows if r["metric"] == "score")


def test_rotation_before_and_after_evaluation(tmp_path, viubench_testset, capsys):
    ckpts = str(tmp_path / "run")
    fake_checkpoint(ckpts, 100)
    watcher = Watcher(settings(ckpts, viubench_testset, "random seed={step}", limit=3))
    assert watcher.poll_once().evaluated == 0      # seen once
    assert watcher.poll_once().evaluated == 1      # unchanged: evaluated
    fake_checkpoint(ckpts, 200)
    watcher.poll_once()                            # seen, not yet evaluated
    shutil.rmtree(os.path.join(ckpts, "checkpoint-200"))    # the trainer's rotation
    shutil.rmtree(os.path.join(ckpts, "checkpoint-100"))    # after its evaluation
    assert watcher.poll_once().evaluated == 0
    watcher.redraw()
    out = watcher.settings.out
    keys = len(watcher.keys)
    assert score_rows(out) == {("checkpoint-100", "ok"): keys, ("checkpoint-200", "skipped"): keys}
    assert "checkpoint-200 was deleted before it was evaluated" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(out, "checkpoint-200"))


def test_a_failing_checkpoint_is_failed_on_the_curve_and_watch_goes_on(tmp_path,
                                                                        viubench_testset, capsys):
    ckpts = str(tmp_path / "run")
    for step in (1, 2):
        fake_checkpoint(ckpts, step)
    # user_adapter.Flaky always fails the samples whose id % 4 == 0 (fatal errors)
    watcher = Watcher(settings(ckpts, viubench_testset, "user_adapter:Flaky seed={step}",
                               limit=12))
    watcher.poll_once()
    assert watcher.poll_once().evaluated == 2
    err = capsys.readouterr().err
    assert err.count("FAILED (no score)") == 2 and "checkpoint-2 FAILED" in err
    rows = read_csv(os.path.join(watcher.settings.out, "curve.csv"))
    assert rows and all(r["status"] == "failed" and r["value"] == "" for r in rows)
    assert all("errors" in r["note"] for r in rows)
    assert watcher.poll_once().evaluated == 0        # not tried again in this session


def test_a_checkpoint_the_adapter_cannot_load_is_failed_not_scored(tmp_path, viubench_testset,
                                                                     capsys):
    pytest.importorskip("transformers", reason="the hf adapter needs transformers")
    ckpts = str(tmp_path / "run")
    fake_checkpoint(ckpts, 50)                    # complete, but no model transformers knows
    watcher = Watcher(settings(ckpts, viubench_testset, "hf:{checkpoint}", limit=2))
    watcher.poll_once()
    assert watcher.poll_once().evaluated == 1
    assert "checkpoint-50 FAILED (no score): cannot load hf:" in capsys.readouterr().err
    assert score_rows(watcher.settings.out) == {("checkpoint-50", "failed"): len(watcher.keys)}
    assert not os.path.exists(os.path.join(watcher.settings.out, "checkpoint-50",
                                           "results.json"))


# ---------------------------------------------------------------- watch as a subprocess


def start_watch(ckpts: str, testset: str, *args: str, env: dict | None = None,
                log: str) -> subprocess.Popen:
    environment = dict(os.environ if env is None else env)
    environment["PYTHONPATH"] = TESTS + os.pathsep + environment.get("PYTHONPATH", "")
    with open(log, "ab") as output:
        return subprocess.Popen([sys.executable, "-m", "viubench.cli", "watch", ckpts,
                                 "--testset", testset, "--poll", "0.3", *args],
                                stdout=output, stderr=subprocess.STDOUT, env=environment)


def wait_for(condition, child: subprocess.Popen, log: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            with open(log, errors="replace") as handle:
                pytest.fail(f"watch did not get there (exit {child.poll()}):\n{handle.read()}")
        time.sleep(0.2)


def scored(out: str, name: str) -> bool:
    path = os.path.join(out, "curve.csv")
    return os.path.exists(path) and any(r["checkpoint"] == name for r in read_csv(path))


def predictions(rundir: str) -> list[dict]:
    with open(os.path.join(rundir, PREDICTIONS)) as handle:
        return [json.loads(line) for line in handle]


def test_watch_killed_and_restarted_keeps_one_point_per_checkpoint(tmp_path, viubench_testset):
    """Tiny random Qwen2-VL checkpoints written one by one (in place, trainer_state.json last)
    while `watch` runs; a half-written checkpoint stays; watch is SIGKILLed and restarted."""
    pytest.importorskip("transformers", reason="the hf adapter needs transformers")
    ckpts, log = str(tmp_path / "run"), str(tmp_path / "watch.log")
    out = os.path.join(ckpts, "viubench-watch")
    os.makedirs(ckpts)
    model = ["--model", "hf:{checkpoint} max_frames=2 batch_size=3", "--limit", "3",
             "--max-new-tokens", "4"]
    child = start_watch(ckpts, viubench_testset, *model, log=log)
    tiny_qwen_checkpoint(ckpts, 10)
    wait_for(lambda: scored(out, "checkpoint-10"), child, log)
    half_written_checkpoint(ckpts, 15)           # never completed
    tiny_qwen_checkpoint(ckpts, 20)
    wait_for(lambda: scored(out, "checkpoint-20"), child, log)
    child.send_signal(signal.SIGKILL)
    child.wait()
    tiny_qwen_checkpoint(ckpts, 30)              # written while nobody watches
    again = start_watch(ckpts, viubench_testset, *model, "--once", log=log)
    assert again.wait(timeout=DEADLINE) == 0, open(log).read()
    rows = [r for r in read_csv(os.path.join(out, "curve.csv")) if r["metric"] == "score"]
    points = Counter((r["checkpoint"], r["task"], r["variant"]) for r in rows)
    assert {name for name, *_ in points} == {"checkpoint-10", "checkpoint-20", "checkpoint-30"}
    assert set(points.values()) == {1}
    assert len(points) == 3 * len({(task, variant) for _, task, variant in points})
    assert all(r["status"] == "ok" and r["value"] != "" for r in rows)
    shown = sorted(name for name in os.listdir(out) if not name.startswith("."))
    assert shown == ["checkpoint-10", "checkpoint-20", "checkpoint-30", "curve.csv", "curve.png",
                     LOG]   # no run folder for checkpoint-15
    for name in ("checkpoint-10", "checkpoint-20"):   # finished runs were not asked again
        records = predictions(os.path.join(out, name))
        assert sum(r["record"] == "header" for r in records) == 1
        assert sum(r["record"] == "prediction" for r in records) == 3
    console = open(log).read()
    assert "checkpoint-30 (step 30):" in console
    assert "left for a later run: checkpoint-15: no trainer_state.json yet" in console


def test_a_kill_mid_evaluation_resumes_that_checkpoint(tmp_path, viubench_testset):
    """A user adapter (tests/user_adapter.py) that hangs after two answers: the kill lands in
    the middle of a checkpoint's run, and the restart resumes it instead of starting over."""
    ckpts, log = str(tmp_path / "run"), str(tmp_path / "watch.log")
    out = os.path.join(ckpts, "viubench-watch")
    for step in (1, 2):
        fake_checkpoint(ckpts, step)
    model = ["--model", "slow_random:{checkpoint} delay=0", "--adapter-module", "user_adapter",
             "--batch-size", "1", "--limit", "5"]
    env = {**os.environ, "VIUBENCH_TEST_STALL_AFTER": "2"}
    child = start_watch(ckpts, viubench_testset, *model, env=env, log=log)
    first = os.path.join(out, "checkpoint-1")
    wait_for(lambda: os.path.exists(os.path.join(first, PREDICTIONS))
             and sum(r["record"] == "prediction" for r in predictions(first)) >= 2, child, log)
    child.send_signal(signal.SIGKILL)
    child.wait()
    before = predictions(first)
    again = start_watch(ckpts, viubench_testset, *model, "--once", log=log)
    assert again.wait(timeout=DEADLINE) == 0, open(log).read()
    assert predictions(first)[:len(before)] == before    # the same run, carried on
    for name in ("checkpoint-1", "checkpoint-2"):
        records = predictions(os.path.join(out, name))
        answers = [r["id"] for r in records if r["record"] == "prediction"]
        assert len(answers) == len(set(answers)) == 5      # resumed: nobody asked twice
    keys = {(s["task"], s["variant"]) for s in iter_samples(viubench_testset, 5)}
    assert score_rows(out) == {("checkpoint-1", "ok"): len(keys),
                               ("checkpoint-2", "ok"): len(keys)}
