"""`viubench build --executor ray`: the same bytes as the local build, on one local Ray cluster
(two CPUs, no dashboard, no network) shared by the module."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from unittest import mock

import pytest
from user_task import PlaybackDirection

from helpers import kill_when, lines_in, recipe_args
from viubench.build import BuildSpec, Job, build
from viubench.cli import main
from viubench.registry import load_tasks, select
from viubench.testset import BUILD, SAMPLES, VIDEOS
from viubench.verify import verify

ray = pytest.importorskip("ray", reason="the Ray executor's tests need ray (the ray extra)")
# Ray 2.60's servers (GCS, raylet, workers) listen on every interface whatever node address it
# is given, and test servers here bind 127.0.0.1 only: the cluster starts only where asked, in a
# network namespace whose only interface is loopback. .ci/run does so; by hand (Linux):
#   VIUBENCH_TEST_RAY=1 unshare --map-root-user --net --pid --fork --mount-proc --kill-child \
#     sh -c 'ip link set lo up && .venv/bin/python -m pytest -q tests/test_build_ray.py'
# The tests that need no cluster run everywhere ray is installed.
OPT_IN = "VIUBENCH_TEST_RAY"
NO_CLUSTER = (f"a local Ray cluster listens on all interfaces: {OPT_IN}=1 runs the tests that"
              " start one, in a loopback-only network namespace (the command is in this file;"
              " .ci/run does it)")

from viubench.build_ray import RayBuildError, run_job  # noqa: E402  (needs ray only to run)

TESTS = os.path.dirname(os.path.abspath(__file__))
STALLED = "carphone_distorted.mp4"       # the third of the four clips, sorted
CRASH_DIR = "VIUBENCH_TEST_CRASH_DIR"    # cluster environment: where CrashingDirection marks


class CrashingDirection(PlaybackDirection):
    """Kills its Ray worker the first time it draws from a video (a lost worker), then draws
    as the README's task does; outside the test cluster it never crashes."""

    name = "crashing_direction"

    def draw(self, rng, clip, variant, donors):
        folder = os.environ.get(CRASH_DIR)
        if folder and not os.path.exists(os.path.join(folder, clip.video_hash)):
            open(os.path.join(folder, clip.video_hash), "w").close()
            os._exit(1)
        return super().draw(rng, clip, variant, donors)


CRASHING = CrashingDirection()


@pytest.fixture(scope="module")
def crashes(tmp_path_factory) -> str:
    """Where `CrashingDirection` marks the videos it crashed on, in the test cluster."""
    return str(tmp_path_factory.mktemp("crashes"))


@pytest.fixture(scope="module")
def ray_cluster(crashes):
    """The address of a local Ray cluster whose workers import the tests' task modules, hang
    in `stall_task` on STALLED and crash once per video in `CrashingDirection`."""
    if os.environ.get(OPT_IN) != "1":
        pytest.skip(NO_CLUSTER)
    env = {"RAY_USAGE_STATS_ENABLED": "0", CRASH_DIR: crashes,
           "PYTHONPATH": TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "VIUBENCH_TEST_STALL_VIDEO": STALLED}
    with mock.patch.dict(os.environ, env):     # the cluster's processes inherit it
        context = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True,
                           logging_level="WARNING", log_to_driver=False)
    yield context.address_info["gcs_address"]
    ray.shutdown()


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def contents(out: str) -> tuple[bytes, list[dict], dict[str, str]]:
    """samples.jsonl's bytes, videos.jsonl without timings, and every media file's hash."""
    videos = [json.loads(line) for line in read_bytes(os.path.join(out, VIDEOS)).splitlines()]
    for record in videos:
        del record["timings"]
    media = {}
    for folder, _, files in os.walk(os.path.join(out, "media")):
        for name in files:
            path = os.path.join(folder, name)
            media[os.path.relpath(path, out)] = hashlib.sha256(read_bytes(path)).hexdigest()
    return read_bytes(os.path.join(out, SAMPLES)), videos, media


def test_ray_build_is_the_local_build(ray_cluster, real_videos, viubench_testset, tmp_path):
    """The `viubench` suite on the real clips, built on Ray: the local build's bytes."""
    out = str(tmp_path / "ray")
    spec = BuildSpec(real_videos, tuple(select(load_tasks(), "viubench")), seed=0, per_video=1)
    summary = build(spec, out, executor="ray")
    assert summary["status"] == "complete" and summary["samples"] == 36
    assert contents(out) == contents(viubench_testset)
    assert verify(out).ok


def test_ray_recipe_build_with_top_up_rounds(ray_cluster, real_videos, tmp_path):
    """The quota build through the CLI, each round planned from the earlier rounds' records."""
    args = recipe_args(real_videos, tmp_path / "videos")
    local, on_ray = str(tmp_path / "local"), str(tmp_path / "ray")
    assert main([*args, "--out", local, "--workers", "1"]) == 0
    assert main([*args, "--out", on_ray, "--executor", "ray", "--address", ray_cluster]) == 0
    assert contents(on_ray) == contents(local)
    assert max(record.get("round", 0) for record in contents(local)[1]) >= 2


def test_ray_packed_build_is_the_local_packed_build(ray_cluster, real_videos, tmp_path):
    """--pack 2: the frames come back from the Ray tasks and the driver packs them; the packs
    are the local packed build's bytes, round 2's frames in packs of their own."""
    args = [*recipe_args(real_videos, tmp_path / "videos"), "--pack", "2"]
    local, on_ray = str(tmp_path / "local"), str(tmp_path / "ray")
    assert main([*args, "--out", local, "--workers", "2"]) == 0
    assert main([*args, "--out", on_ray, "--executor", "ray", "--address", ray_cluster]) == 0
    assert contents(on_ray) == contents(local)
    assert any(name.endswith(".zip") for name in contents(local)[2])
    assert verify(on_ray).ok


def test_failed_video_is_a_skip_and_a_lost_worker_is_retried(ray_cluster, crashes,
                                                             real_videos, tmp_path):
    """A file that is no video is recorded as skipped, as locally; every video's first task
    kills its worker, and the retries give the local build's bytes."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in sorted(os.listdir(real_videos))[:2]:
        os.symlink(os.path.join(real_videos, name), videos / name)
    (videos / "broken.mp4").write_bytes(b"not a video")
    spec = BuildSpec(str(videos), (("crashing_direction", "default"),),
                     extra_tasks=("test_build_ray:CRASHING",))
    local, on_ray = str(tmp_path / "local"), str(tmp_path / "ray")
    build(spec, local)
    summary = build(spec, on_ray, executor="ray")
    assert contents(on_ray) == contents(local)
    assert [s["path"] for s in summary["skipped"]] == ["broken.mp4"]
    assert summary["samples"] == 2
    assert len(os.listdir(crashes)) == 2      # each video's first try lost its worker


def test_worker_refuses_other_version_or_unshared_storage(real_videos, tmp_path):
    """What a worker checks before a job: the driver's viubench, and the build's storage."""
    spec = BuildSpec(real_videos, (("temporal_jigsaw", "easy"),))
    job = Job("bikes.mp4", (("temporal_jigsaw", "easy", 0),))
    with pytest.raises(RayBuildError, match="install the same version"):
        run_job("0.0-other", spec, str(tmp_path), job, ["bikes.mp4"])
    with pytest.raises(RayBuildError, match="storage every node mounts"):
        run_job(_version(), spec, str(tmp_path), job, ["bikes.mp4"])
    (tmp_path / BUILD).write_text("{}")
    assert run_job(_version(), spec, str(tmp_path), job, ["bikes.mp4"]).status == "ok"


def _version() -> str:
    from viubench import __version__

    return __version__


def test_missing_ray_is_one_line_naming_the_extra(real_videos, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)     # `import ray` fails as if not installed
    spec = BuildSpec(real_videos, (("temporal_jigsaw", "easy"),))
    with pytest.raises(ValueError, match=r"pip install 'viubench\[ray\]'"):
        build(spec, str(tmp_path / "ts"), executor="ray")


def test_unknown_executor_and_address_without_ray(real_videos, tmp_path):
    spec = BuildSpec(real_videos, (("temporal_jigsaw", "easy"),))
    with pytest.raises(ValueError, match="unknown executor"):
        build(spec, str(tmp_path / "a"), executor="dask")
    with pytest.raises(ValueError, match="give --executor ray"):
        build(spec, str(tmp_path / "b"), address="127.0.0.1:6379")


def test_killed_ray_build_resumes_identically(ray_cluster, real_videos, tmp_path):
    """A CLI build on the cluster (--address), SIGKILLed once videos are logged while a task
    hangs on the third video (so it cannot finish first), resumed locally: the bytes of a
    build never killed."""
    args = ["build", "--videos", real_videos, "--tasks", "temporal_jigsaw:easy",
            "stalling_direction:default", "--task-module", "stall_task:TASK"]
    whole, out = str(tmp_path / "whole"), str(tmp_path / "killed")
    assert main([*args, "--out", whole, "--workers", "1"]) == 0
    env = dict(os.environ, PYTHONPATH=TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""),
               RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token")
    with open(tmp_path / "stderr", "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "viubench.cli", *args, "--out", out, "--executor", "ray",
             "--address", ray_cluster], stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    videos = os.path.join(out, VIDEOS)
    kill_when(process, lambda: lines_in(videos) >= 1, "video built")
    assert json.loads(read_bytes(os.path.join(out, BUILD)))["status"] == "running"
    assert 1 <= read_bytes(videos).count(b"\n") < 4
    assert main([*args, "--out", out, "--workers", "1"]) == 0
    assert contents(out) == contents(whole)
