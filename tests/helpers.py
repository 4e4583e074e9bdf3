"""Helpers shared by test modules: run the `viubench` command line in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

TESTS = os.path.dirname(os.path.abspath(__file__))


def viubench(*args: str, env_path: str | None = None, timeout: float = 600,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m viubench.cli ARGS` with `env_path` prepended to PYTHONPATH and `env` set."""
    env = dict(os.environ, **(env or {}))
    if env_path:
        env["PYTHONPATH"] = env_path + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "viubench.cli", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


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
