"""Packaging: a built wheel, not the checkout, carries what a user needs (its dependencies, the
paper's reported rows for the leaderboard)."""

from __future__ import annotations

import csv
import glob
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from helpers import TESTS
from viubench.adapters import create, parse_spec
from viubench.runner import GenerationSettings, RunOptions, run_eval

REPO = os.path.dirname(TESTS)
NOT_SOURCE = (".git", ".venv*", "build", "dist", "*.egg-info", "tests", "viubench-demo", "out",
              "paper2700", ".scratch", "__pycache__", ".*_cache")


def _setuptools_builds_offline() -> bool:
    """Whether this environment's setuptools can build the wheel without fetching a newer one
    (pyproject.toml asks for setuptools>=68)."""
    try:
        import setuptools
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 68


@pytest.mark.skipif(not _setuptools_builds_offline(),
                    reason="needs setuptools>=68 installed to build a wheel without the network")
def test_a_built_wheel_puts_the_papers_rows_on_the_leaderboard(viubench_testset, tmp_path):
    wheels, target = str(tmp_path / "wheels"), str(tmp_path / "installed")
    source = str(tmp_path / "source")   # a copy, so no stale build/ folder can help
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    pip = [sys.executable, "-m", "pip", "-q"]
    built = subprocess.run([*pip, "wheel", source, "--no-deps", "--no-build-isolation", "-w",
                            wheels], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    [wheel] = glob.glob(os.path.join(wheels, "viubench-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        [metadata] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        requires = {line.split(":", 1)[1].split(">")[0].split(";")[0].strip().lower()
                    for line in archive.read(metadata).decode().splitlines()
                    if line.startswith("Requires-Dist:") and "extra ==" not in line}
    assert requires >= {"numpy", "av", "pillow", "tqdm", "scikit-video", "matplotlib"}, requires
    installed = subprocess.run([*pip, "install", "--no-deps", "--target", target, wheel],
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    run = str(tmp_path / "run")
    spec = parse_spec("random")
    run_eval(viubench_testset, spec, create(spec), run, GenerationSettings(), RunOptions())
    out = str(tmp_path / "board" / "board.csv")
    # run from outside the checkout with the installed wheel first on the path: its code, its data
    env = {**os.environ, "PYTHONPATH": target}
    located = subprocess.run([sys.executable, "-c", "import viubench; print(viubench.__file__)"],
                             capture_output=True, text=True, cwd=str(tmp_path), env=env)
    assert located.stdout.startswith(target), located.stdout + located.stderr
    done = subprocess.run([sys.executable, "-m", "viubench.cli", "leaderboard", run, "--out", out],
                          capture_output=True, text=True, cwd=str(tmp_path), env=env)
    assert done.returncode == 0, done.stderr
    with open(out, encoding="utf-8") as handle:
        models = [row["model"] for row in csv.DictReader(handle)]
    assert models[0] == "random" and "GPT-5" in models and len(models) == 15


def test_the_public_api_resolves_and_import_stays_light():
    import subprocess
    import sys

    import viubench

    for name in viubench.__all__:
        assert getattr(viubench, name) is not None, name
    probe = ("import sys, viubench; heavy = {'numpy', 'av', 'torch', 'PIL'} & set(sys.modules);"
             " print(sorted(heavy))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
