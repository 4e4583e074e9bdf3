"""Helpers shared by test modules: run the `viubench` command line in a subprocess."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Callable

TESTS = os.path.dirname(os.path.abspath(__file__))


def viubench(*args: str, env_path: str | None = None, timeout: float = 600,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m viubench.cli ARGS` with `env_path` prepended to PYTHONPATH and `env` set."""
    env = dict(os.environ, **(env or {}))
    if env_path:
        env["PYTHONPATH"] = env_path + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "viubench.cli", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def kill_when(process: subprocess.Popen, ready: Callable[[], bool], what: str) -> None:
    """SIGKILL `process` as soon as `ready()` holds (polled); fails if the process ends first.
    The 5-minute limit is a net against a hang, not a timing assumption."""
    safety = time.monotonic() + 300
    try:
        while not ready():
            assert process.poll() is None, f"the process ended before {what}"
            assert time.monotonic() < safety, f"no {what} in 5 minutes"
            time.sleep(0.01)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.communicate()
    assert process.returncode == -signal.SIGKILL, "the process ended before it could be killed"


def lines_in(path: str) -> int:
    """Complete lines in a file (0 if it does not exist yet)."""
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as handle:
        return handle.read().count(b"\n")


class StopAfter:
    """A build observer that interrupts the build (as Ctrl-C would) after `n` videos."""

    def __init__(self, n: int) -> None:
        self.n = n

    def start(self, total: int, already_done: int) -> None:
        pass

    def update(self, result) -> None:
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt


def recipe_args(real_videos: str, videos) -> list[str]:
    """`build` arguments of a quota build over the real clips (linked into the new folder
    `videos`), a copy of one (a duplicate, skipped) and a file that is no video: what those two
    are dealt in round 1 is dealt again in round 2."""
    os.makedirs(videos)
    for name in os.listdir(real_videos):
        os.symlink(os.path.join(real_videos, name), os.path.join(videos, name))
    shutil.copy(os.path.join(real_videos, "bikes.mp4"), os.path.join(videos, "bikes_copy.mp4"))
    with open(os.path.join(videos, "broken.mp4"), "wb") as handle:
        handle.write(b"not a video")
    return ["build", "--videos", str(videos), "--recipe", "videossr30k", "--samples", "24",
            "--for-training"]


def fake_distribution(site: str, name: str, entry_points: str) -> None:
    """An installed-looking distribution under `site` that declares `entry_points`."""
    dist = os.path.join(site, f"{name}-0.1.dist-info")
    os.makedirs(dist)
    with open(os.path.join(dist, "METADATA"), "w") as handle:
        handle.write(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    with open(os.path.join(dist, "entry_points.txt"), "w") as handle:
        handle.write(entry_points)


def variant_for(task, answer: str) -> str:
    """A variant of `task` whose answers have the form of `answer` (how many clip labels or
    candidate numbers), for parsing a reply without the answer."""
    labels = len(answer.split(",")) if "," in answer else len(answer)
    for name, variant in task.variants.items():
        wanted = variant.params.get("clips", variant.params.get("masked"))
        if wanted is None or wanted == labels:
            return name
    raise ValueError(f"{task.name} has no variant with {labels} labels")
