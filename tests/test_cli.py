"""The command line: list, build, verify, user tasks by module:attribute and by entry point,
Ctrl-C and a closed pipe without a traceback."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest

import viubench.cli as cli
from helpers import TESTS, fake_distribution, viubench
from viubench.adapters import available_adapters, create, parse_spec
from viubench.media import jpeg_encoder
from viubench.registry import load_tasks


@pytest.fixture(scope="module")
def two_videos(real_videos, tmp_path_factory):
    folder = tmp_path_factory.mktemp("two")
    for name in ("bikes.mp4", "carphone_pristine.mp4"):
        shutil.copy(os.path.join(real_videos, name), folder / name)
    return str(folder)


def test_list_shows_tasks_variants_and_suites():
    tasks = viubench("list")
    assert tasks.returncode == 0
    for word in ("anomaly_grounding", "stutter", "object_counting", "hard", "easy_trim"):
        assert word in tasks.stdout
    suites = viubench("list", "suites")
    assert "viubench (9)" in suites.stdout and "all (29)" in suites.stdout


def test_build_then_verify_then_tamper(two_videos, tmp_path):
    out = str(tmp_path / "ts")
    done = viubench("build", "--videos", two_videos, "--out", out, "--seed", "3",
                    "--tasks", "object_counting", "temporal_jigsaw:hard", "--workers", "1")
    assert done.returncode == 0, done.stderr
    summary = json.load(open(os.path.join(out, "build.json")))
    assert summary["counts"] == {"object_counting:easy": 2, "object_counting:hard": 2,
                                 "object_counting:easy_clean": 2,
                                 "object_counting:hard_clean": 2, "temporal_jigsaw:hard": 2}
    verified = viubench("verify", out)
    assert verified.returncode == 0 and "verifying" in verified.stderr   # a progress bar
    assert "10/10" in verified.stderr and "verified 10 samples" in verified.stdout
    lines = open(os.path.join(out, "samples.jsonl")).read().splitlines()
    record = json.loads(lines[0])
    record["answer"] = "9,9,9"
    lines[0] = json.dumps(record)
    open(os.path.join(out, "samples.jsonl"), "w").write("\n".join(lines) + "\n")
    broken = viubench("verify", out)
    assert broken.returncode == 1 and "answer differs" in broken.stderr


def test_verify_catches_a_replaced_media_file(two_videos, tmp_path):
    out = str(tmp_path / "ts")
    assert viubench("build", "--videos", two_videos, "--out", out, "--tasks",
                    "anomaly_grounding:mirror").returncode == 0
    record = json.loads(open(os.path.join(out, "samples.jsonl")).readline())
    start = record["draws"]["start"]
    victim = os.path.join(out, record["prompt"][0]["frames"][start])
    other = os.path.join(out, record["prompt"][0]["frames"][0])
    shutil.copy(other, victim)
    broken = viubench("verify", out)
    assert broken.returncode == 1 and "does not hold the re-derived frame" in broken.stderr
    assert "note: the set's frames were encoded" not in broken.stderr   # same encoder here
    build_path = os.path.join(out, "build.json")
    with open(build_path, encoding="utf-8") as handle:
        build_record = json.load(handle)
    assert build_record["encoder"] == jpeg_encoder()
    build_record["encoder"] = dict(build_record["encoder"], libjpeg_turbo="2.0.9")
    with open(build_path, "w", encoding="utf-8") as handle:
        json.dump(build_record, handle)
    noted = viubench("verify", out)
    assert noted.returncode == 1 and "libjpeg-turbo 2.0.9" in noted.stderr
    assert f"libjpeg-turbo {jpeg_encoder()['libjpeg_turbo']}" in noted.stderr


def test_bad_selection_is_a_clear_error(two_videos, tmp_path):
    result = viubench("build", "--videos", two_videos, "--out", str(tmp_path / "x"),
                      "--tasks", "anomaly_grounding:spin")
    assert result.returncode == 2 and "no variant 'spin'" in result.stderr
    missing = viubench("build", "--videos", str(tmp_path / "nope"), "--out", str(tmp_path / "y"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_user_task_by_module_attribute(two_videos, tmp_path):
    out = str(tmp_path / "ts")
    built = viubench("build", "--videos", two_videos, "--out", out, "--suite", "direction",
                     "--task-module", "user_task:TASK", "--per-video", "3", env_path=TESTS)
    assert built.returncode == 0, built.stderr
    records = [json.loads(line) for line in open(os.path.join(out, "samples.jsonl"))]
    assert len(records) == 6 and {r["task"] for r in records} == {"playback_direction"}
    for record in records:
        assert record["answer"] == ("backwards" if record["draws"]["reversed"] else "forwards")
    assert viubench("verify", out, "--task-module", "user_task:TASK",
                    env_path=TESTS).returncode == 0
    runs = [str(tmp_path / name) for name in ("forwards", "backwards")]
    for run, text in zip(runs, ("forwards", "backwards")):
        asked = viubench("eval", "--testset", out, "--model", f"constant text={text}", "--out",
                         run, "--task-module", "user_task:TASK", env_path=TESTS)
        assert asked.returncode == 0, asked.stderr
    forwards = sum(r["answer"] == "forwards" for r in records)
    # the user task's suite and columns, on the leaderboard and in compare
    board = viubench("leaderboard", *runs, "--suite", "direction", "--task-module",
                     "user_task:TASK", "--out", str(tmp_path / "board.csv"), env_path=TESTS)
    assert board.returncode == 0, board.stderr
    rows = {row["model"]: row for row in csv.DictReader(open(tmp_path / "board.csv"))}
    assert float(rows["constant text=forwards"]["Overall"]) == pytest.approx(100 * forwards / 6,
                                                                            abs=0.05)
    compared = viubench("compare", *runs, "--suite", "direction", "--task-module",
                        "user_task:TASK", env_path=TESTS)
    assert compared.returncode == 0 and compared.stdout.splitlines()[-1].split()[-1] == "6"
    # without it, the default suite's columns are empty, not a crash
    plain = viubench("leaderboard", *runs, "--out", str(tmp_path / "plain.csv"), env_path=TESTS)
    assert plain.returncode == 0, plain.stderr


def test_user_task_by_entry_point(two_videos, tmp_path):
    site = tmp_path / "site"
    fake_distribution(str(site), "viubench_user_tasks",
                      "[viubench.tasks]\ndirection = user_task:TASK\n")
    path = os.pathsep.join([str(site), TESTS])
    listed = viubench("list", env_path=path)
    assert "playback_direction" in listed.stdout
    out = str(tmp_path / "ts")
    built = viubench("build", "--videos", two_videos, "--out", out, "--suite", "direction",
                     env_path=path)
    assert built.returncode == 0, built.stderr
    assert viubench("verify", out, env_path=path).returncode == 0


def test_ctrl_c_is_one_line_and_exit_code_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "list", interrupted)
    assert cli.main(["list"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("viubench list: interrupted") and err.count("\n") == 1


def test_a_closed_pipe_stops_quietly():
    """`viubench ... | head -1`: the reader leaves while output is still being written."""
    script = ("import viubench.cli as c; "
              "c.COMMANDS['list'] = lambda args: [print('x' * 99) for _ in range(10 ** 5)] and 0; "
              "raise SystemExit(c.main(['list']))")
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    reader = subprocess.Popen(["head", "-1"], stdin=writer.stdout, stdout=subprocess.PIPE)
    writer.stdout.close()
    first, _ = reader.communicate()
    err = writer.stderr.read().decode()
    assert writer.wait() == 141 and first == b"x" * 99 + b"\n"
    assert err == "", err


def test_a_task_module_in_the_current_folder_needs_no_pythonpath(two_videos, tmp_path):
    """The console script, run where the user's module lies, as the README shows it."""
    shutil.copy(os.path.join(TESTS, "user_task.py"), tmp_path / "my_task.py")
    script = os.path.join(os.path.dirname(sys.executable), "viubench")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([script, *args], capture_output=True, text=True,
                              cwd=str(tmp_path), env=env)

    built = run("build", "--videos", two_videos, "--out", "ts", "--suite", "direction",
                "--task-module", "my_task:TASK", "--per-video", "1")
    assert built.returncode == 0, built.stderr
    assert run("verify", "ts", "--task-module", "my_task:TASK").returncode == 0
    for reference, words in (("no_such_module:TASK", "cannot import module 'no_such_module'"),
                             ("my_task:NOPE", "my_task has no attribute 'NOPE'")):
        failed = run("list", "--task-module", reference)
        assert failed.returncode == 2 and words in failed.stderr
        assert "Traceback" not in failed.stderr and failed.stderr.count("\n") == 1


MINIMAL_ADAPTER = '''
from viubench.adapters import Response


class Minimal:
    """Only what an adapter must have: no default_concurrency, no default_batch_size."""

    def __init__(self, **options):
        self.options = options

    def generate(self, requests):
        return [Response(text="1") for _ in requests]

    def describe(self):
        return {"adapter": "minimal"}

    def close(self):
        pass
'''


def test_an_adapter_without_batching_attributes_runs_one_request_at_a_time(viubench_testset,
                                                                           tmp_path):
    (tmp_path / "minimal_adapter.py").write_text(MINIMAL_ADAPTER)
    script = os.path.join(os.path.dirname(sys.executable), "viubench")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([script, "eval", "--testset", viubench_testset, "--model",
                           "minimal_adapter:Minimal", "--out", "run"], capture_output=True,
                          text=True, cwd=str(tmp_path), env=env)
    assert done.returncode == 0, done.stderr
    results = json.load(open(tmp_path / "run" / "results.json"))
    assert sum(row["n"] for row in results["variants"].values()) == 36


def test_a_user_name_that_shadows_a_built_in_wins_with_a_warning(tmp_path, monkeypatch):
    (tmp_path / "shadow_task.py").write_text(
        "from viubench.tasks.masked_prediction import MaskedPrediction\n"
        "TASK = MaskedPrediction()\n")
    (tmp_path / "shadow_adapter.py").write_text(
        "from viubench.adapters import adapter\n"
        "from viubench.model_adapters.baselines import RandomAdapter\n\n\n"
        "@adapter('random')\nclass MyRandom(RandomAdapter):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match="task 'masked_prediction' from shadow_task:TASK"
                                         " replaces the one from built-in"):
        tasks = load_tasks(["shadow_task:TASK"])
    assert type(tasks["masked_prediction"]).__module__ == "viubench.tasks.masked_prediction"
    assert tasks["masked_prediction"] is not load_tasks()["masked_prediction"]
    with pytest.warns(UserWarning, match="adapter 'random' from shadow_adapter replaces"):
        assert available_adapters(["shadow_adapter"])["random"].__name__ == "MyRandom"
    script = os.path.join(os.path.dirname(sys.executable), "viubench")
    listed = subprocess.run([script, "list", "--task-module", "shadow_task:TASK"],
                            capture_output=True, text=True, cwd=str(tmp_path))
    assert listed.returncode == 0 and listed.stderr == (
        "viubench: warning: task 'masked_prediction' from shadow_task:TASK replaces the one"
        " from built-in\n")


def test_a_marked_adapter_needs_no_target_and_blind_finds_it(tmp_path, monkeypatch):
    (tmp_path / "marked_adapter.py").write_text(
        "from viubench.adapters import adapter\n" + MINIMAL_ADAPTER.replace(
            "class Minimal:", "@adapter('minimal')\nclass Minimal:"))
    monkeypatch.chdir(tmp_path)
    assert create(parse_spec("minimal k=v"), ["marked_adapter"]).options == {"k": "v"}
    with pytest.raises(ValueError, match="adapter 'minimal' takes no target"):
        create(parse_spec("minimal:gpt"), ["marked_adapter"])
    # blind:<spec> finds the adapter it wraps in the same --adapter-module
    blind = create(parse_spec("blind:minimal k=v"), ["marked_adapter"])
    assert type(blind.inner).__name__ == "Minimal" and blind.inner.options == {"k": "v"}


def test_help_states_the_defaults():
    def words(*args: str) -> str:    # whitespace-normalised: wrapping follows the terminal
        return " ".join(viubench(*args, "--help").stdout.split())

    build = words("build")
    assert "--seed SEED default: 0 " in build and "--workers WORKERS default: " in build
    assert "recorded per sample. (default: pyav)" in build
    assert "--max-attempts MAX_ATTEMPTS default: 6 " in words("eval")
    assert "(default: viubench,mvp)" in words("leaderboard")
