"""A user task and a user adapter, copied out of the README into a folder outside the
repository, through build, verify, eval (random, prior, scripted, the user's adapter), score,
leaderboard, compare and analyze, with the console script, as a user would run them."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import samples_of
from helpers import TESTS

README = os.path.join(os.path.dirname(TESTS), "README.md")
TASK = "my_task:TASK"
PER_VIDEO = 6


def readme_files() -> dict[str, str]:
    """The files the README shows, by name (`<!-- file: NAME -->` before a python block)."""
    with open(README, encoding="utf-8") as handle:
        text = handle.read()
    return dict(re.findall(r"<!-- file: (\S+) -->\n```python\n(.*?)```", text, re.S))


def test_the_readme_task_is_the_one_the_other_tests_use():
    with open(os.path.join(TESTS, "user_task.py"), encoding="utf-8") as handle:
        assert readme_files()["my_task.py"] == handle.read()


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user")
    for name, code in readme_files().items():
        (folder / name).write_text(code)
    return folder


@pytest.fixture(scope="module")
def run(user_folder):
    script = os.path.join(os.path.dirname(sys.executable), "viubench")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def call(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([script, *args], capture_output=True, text=True,
                              cwd=str(user_folder), env=env, timeout=600)
        if ok:
            assert done.returncode == 0, (args, done.stderr)
            assert "Traceback" not in done.stderr
        return done
    return call


@pytest.fixture(scope="module")
def testset(run, user_folder, real_videos) -> str:
    run("build", "--videos", real_videos, "--out", "ts", "--suite", "direction",
        "--task-module", TASK, "--per-video", str(PER_VIDEO), "--workers", "1")
    run("verify", "ts", "--task-module", TASK)
    return str(user_folder / "ts")


def results(user_folder, name: str) -> dict:
    with open(user_folder / "runs" / name / "results.json", encoding="utf-8") as handle:
        return json.load(handle)


def cell(found: dict) -> dict:
    (only,) = [v for k, v in found["variants"].items() if k.startswith("playback_direction")]
    return only


def test_baselines_answer_a_user_task(run, testset, user_folder):
    samples = samples_of(testset)
    assert len(samples) == 4 * PER_VIDEO
    for name in ("random", "prior"):
        run("eval", "--testset", "ts", "--model", name, "--task-module", TASK,
            "--out", f"runs/{name}")
        found = cell(results(user_folder, name))
        assert found["n"] == len(samples) and found["errors"] == 0
    # The prior answers the first of two equally likely answers: it scores their share.
    forwards = sum(s["answer"] == "forwards" for s in samples)
    assert cell(results(user_folder, "prior"))["score"] == pytest.approx(
        100 * forwards / len(samples), abs=0.01)


def test_the_scripted_adapter_scores_exactly_what_was_written(run, testset, user_folder):
    samples = samples_of(testset)
    replies = {}
    for number, sample in enumerate(samples):
        wrong = "backwards" if sample["answer"] == "forwards" else "forwards"
        replies[sample["id"]] = (f"It plays {sample['answer']}." if number % 3 == 0
                                 else wrong if number % 3 == 1
                                 else [{"error": "busy", "kind": "transient"}, "no idea"])
    (user_folder / "replies.json").write_text(json.dumps(replies))
    run("eval", "--testset", "ts", "--model", "scripted:replies.json", "--out", "runs/scripted",
        "--task-module", TASK, "--retry-base", "0", "--retry-cap", "0")
    found = cell(results(user_folder, "scripted"))
    right = len(range(0, len(samples), 3))
    assert found["score"] == pytest.approx(100 * right / len(samples), abs=0.01)
    assert found["errors"] == 0          # the transient error was retried and answered
    scores = [json.loads(line) for line in open(user_folder / "runs/scripted/scores.jsonl")]
    failures = [s for s in scores if s["parse_errors"]["lenient"]]
    assert len(failures) == len(range(2, len(samples), 3))
    assert all(s["parsed"]["lenient"] is None for s in failures)


def test_the_user_adapter_then_leaderboard_compare_and_analyze(run, testset, user_folder):
    run("eval", "--testset", "ts", "--model", "my_model max_frames=4", "--adapter-module",
        "my_adapter", "--task-module", TASK, "--out", "runs/mine")
    header = json.loads(open(user_folder / "runs/mine/predictions.jsonl").readline())
    assert header["adapter"]["fingerprint"] == {"adapter": "my_model", "max_frames": 4}
    assert cell(results(user_folder, "mine"))["errors"] == 0
    run("score", "runs/mine", "--task-module", TASK)
    run("leaderboard", "runs/random", "runs/mine", "--label", "random", "--label", "mine",
        "--suite", "direction", "--task-module", TASK, "--out", "direction.csv")
    with open(user_folder / "direction.csv", encoding="utf-8") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"random", "mine"}      # a user suite shows no paper rows
    for name, row in rows.items():
        measured = cell(results(user_folder, name))
        assert float(row["Playback direction default"]) == pytest.approx(measured["score"],
                                                                          abs=0.05)
        assert int(row["Playback direction default n"]) == 4 * PER_VIDEO
    compared = run("compare", "runs/mine", "runs/random", "--suite", "direction",
                   "--task-module", TASK)
    assert "Playback direction default" in compared.stdout and "no common" not in compared.stdout
    run("analyze", "runs/random", "runs/mine", "--task-module", TASK, "--out", "analysis")
    with open(user_folder / "analysis" / "items.csv", encoding="utf-8") as handle:
        items = list(csv.DictReader(handle))
    assert len(items) == 4 * PER_VIDEO
    with open(user_folder / "analysis" / "shortcuts.csv", encoding="utf-8") as handle:
        (random_row,) = [r for r in csv.DictReader(handle) if r["run"] == "random"]
    # Chance comes from the task's answer space: two answers, so about 50.
    assert 40 < float(random_row["chance"]) < 60


def test_analyze_reads_a_test_set_before_any_model_runs(run, testset, user_folder):
    run("analyze", "--testset", "ts", "--task-module", TASK, "--out", "ts-analysis")
    with open(user_folder / "ts-analysis" / "testset_variants.csv", encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    answers = [s["answer"] for s in samples_of(testset)]
    forwards = answers.count("forwards") / len(answers)
    assert row["variant"] == "playback_direction:default" and int(row["samples"]) == 24
    assert float(row["prior"]) == pytest.approx(100 * forwards, abs=0.01)
    assert float(row["top_answer_share"]) == pytest.approx(100 * max(forwards, 1 - forwards),
                                                           abs=0.01)
    assert 30 < float(row["chance"]) < 70
    both = run("analyze", "runs/random", "--testset", "ts", "--out", "x", ok=False)
    assert both.returncode == 2 and "not both or neither" in both.stderr


def test_a_test_set_never_makes_viubench_import_code(run, testset, user_folder):
    """build.json names a module that would leave a mark if imported; no command imports it,
    each stops with one line asking for --task-module."""
    hostile = user_folder / "ts-hostile"
    shutil.copytree(testset, hostile)
    (user_folder / "canary.py").write_text(
        "open('IMPORTED', 'w').close()\nfrom my_task import TASK\n")
    build = json.loads((hostile / "build.json").read_text())
    build["spec"]["extra_tasks"] = ["canary:TASK"]
    (hostile / "build.json").write_text(json.dumps(build))
    run("eval", "--testset", "ts-hostile", "--model", "constant text=forwards", "--out",
        "runs/hostile", ok=False)
    for args in (["verify", "ts-hostile"], ["score", "runs/hostile"],
                 ["analyze", "--testset", "ts-hostile", "--out", "hostile-analysis"],
                 ["analyze", "runs/hostile", "--out", "hostile-analysis"]):
        done = run(*args, ok=False)
        assert done.returncode == 2, (args, done.stderr)
        errors = [line for line in done.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and "uses task 'playback_direction'" in errors[0], args
        assert "--task-module" in errors[0] and "Traceback" not in done.stderr
    assert not (user_folder / "IMPORTED").exists()
    run("verify", "ts-hostile", "--task-module", TASK)      # the user's own module: fine
    assert not (user_folder / "IMPORTED").exists()


def test_a_user_task_of_a_builtin_name_warns(run, user_folder):
    (user_folder / "shadow.py").write_text(
        "from my_task import PlaybackDirection\n\n\n"
        "class Shadow(PlaybackDirection):\n    name = 'temporal_jigsaw'\n\n\nTASK = Shadow()\n")
    listed = run("list", "tasks", "--task-module", "shadow:TASK")
    assert "warning: task 'temporal_jigsaw' from shadow:TASK replaces" in listed.stderr
    assert listed.stderr.count("\n") == 1
