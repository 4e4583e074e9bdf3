"""A disk that fills up mid-command: one error line, no traceback, and nothing already written
is lost (the same command finishes the job once there is room)."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys

import pytest

from viubench.verify import verify

pytestmark = pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"),
                                reason="simulates a full disk with a file-size limit (POSIX)")


def _capped(limit: int):
    """A child process whose files cannot grow past `limit` bytes: writes fail with EFBIG, as
    they fail with ENOSPC on a full disk (and no root is needed to arrange it)."""
    def setup() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return setup


def _viubench(*args: str, limit: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "viubench.cli", *args], capture_output=True,
                          text=True, timeout=600, preexec_fn=_capped(limit) if limit else None)


def _one_line(done: subprocess.CompletedProcess, reason: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("viubench")]
    assert len(errors) == 1 and reason in errors[0], done.stderr


def test_build_on_a_full_disk_then_with_room(real_videos, tmp_path):
    out = str(tmp_path / "ts")
    args = ["build", "--videos", real_videos, "--out", out, "--tasks", "temporal_jigsaw:easy",
            "object_counting:easy"]
    _one_line(_viubench(*args, limit=40_000), os.strerror(27))   # EFBIG: File too large
    assert _viubench(*args).returncode == 0
    assert verify(out).ok


def test_eval_on_a_full_disk_then_with_room(viubench_testset, tmp_path):
    run = str(tmp_path / "run")
    args = ["eval", "--testset", viubench_testset, "--model", "constant text=1,2,3", "--out",
            run]
    _one_line(_viubench(*args, limit=6_000), f"predictions.jsonl: {os.strerror(27)}")
    with open(os.path.join(run, "predictions.jsonl")) as handle:
        lines = handle.read().splitlines()
    assert 1 < len(lines) < 38          # header, scope and some answers were kept
    again = _viubench(*args)
    assert again.returncode == 0, again.stderr
    answered = {json.loads(line)["id"] for line in open(os.path.join(run, "predictions.jsonl"))
                if json.loads(line).get("record") == "prediction"}
    assert len(answered) == 36
