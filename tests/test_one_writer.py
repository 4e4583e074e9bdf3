"""One writer per folder, and no process outliving the command that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import TESTS, viubench
from viubench.folderlock import exclusive


def _refused(done, folder) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    line, = [x for x in done.stderr.splitlines() if "error" in x]
    assert f"{folder} is being written by process {os.getpid()} (test holder" in line


def test_a_second_writer_stops_at_once(real_videos, viubench_testset, tmp_path):
    """While this process holds a folder, build, eval and score into it each stop with one line
    naming the holder, and write nothing; once it is free they work."""
    out, run = tmp_path / "ts", tmp_path / "run"
    build = ["build", "--videos", real_videos, "--out", str(out), "--tasks",
             "temporal_jigsaw:easy", "--limit", "1"]
    with exclusive(str(out), "test holder"):
        _refused(viubench(*build), out)
        assert sorted(os.listdir(out)) == [".viubench.lock"]
    assert viubench(*build).returncode == 0
    ask = ["eval", "--testset", viubench_testset, "--model", "constant text=1", "--out", str(run)]
    with exclusive(str(run), "test holder"):
        _refused(viubench(*ask), run)
        assert sorted(os.listdir(run)) == [".viubench.lock"]
    assert viubench(*ask).returncode == 0
    with exclusive(str(run), "test holder"):
        _refused(viubench("score", str(run)), run)


def _env(**extra: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""),
                **extra)


def _children(pid: int) -> set[int]:
    """Live processes whose parent is `pid` (read from /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            state, parent = _stat(int(entry))
            if parent == pid and state not in ("Z", "X", None):
                found.add(int(entry))
    return found


def _stat(pid: int) -> tuple[str | None, int | None]:
    """(state, parent pid) of a process, (None, None) once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rpartition(")")[2].split()
    except OSError:
        return None, None
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    return _stat(pid)[0] not in ("Z", "X", None)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process table from /proc")
def test_workers_die_with_a_killed_build(real_videos, tmp_path):
    """SIGKILL a two-worker build while one worker hangs inside a task (it would hang for five
    minutes): both workers and multiprocessing's helper are gone shortly after, and a second
    build of the folder is not refused."""
    out, mark = tmp_path / "ts", tmp_path / "stalled"
    command = [sys.executable, "-m", "viubench.cli", "build", "--videos", real_videos,
               "--out", str(out), "--tasks", "stalling_direction:default", "--task-module",
               "stall_task:TASK", "--workers", "2"]
    # Output goes to a file: a pipe would stay open as long as any orphan lives.
    with open(tmp_path / "stderr", "w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr,
                                   env=_env(VIUBENCH_TEST_STALL_VIDEO="bikes.mp4",
                                            VIUBENCH_TEST_STALL_MARK=str(mark)))
    safety = time.monotonic() + 300     # nets against a hang, not timing assumptions
    try:
        while not mark.exists():
            assert process.poll() is None, (tmp_path / "stderr").read_text()
            assert time.monotonic() < safety, "the worker never reached the stalling video"
            time.sleep(0.02)
        helpers = _children(process.pid)
        assert len(helpers) >= 2, helpers       # two workers (and the resource tracker)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    safety = time.monotonic() + 60
    while any(_alive(pid) for pid in helpers):
        assert time.monotonic() < safety, [p for p in helpers if _alive(p)]
        time.sleep(0.05)
    done = subprocess.run([*command[:-2], "--workers", "1"], capture_output=True, text=True,
                          env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr
