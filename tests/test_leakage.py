"""`viubench.leakage`: a training set and a test set that share source videos, by content."""

from __future__ import annotations

import json
import os
import shutil
import warnings

import pytest

from viubench.build import BuildSpec, build
from viubench.leakage import shared_videos, video_hashes, warn_if_shared
from viubench.records import file_hash
from viubench.testset import SAMPLES


@pytest.fixture(scope="module")
def overlapping_set(real_videos, tmp_path_factory) -> str:
    """A one-task set from a renamed copy of bikes.mp4 and a new clip-free folder otherwise."""
    root = tmp_path_factory.mktemp("leak")
    videos = root / "videos"
    videos.mkdir()
    shutil.copy(os.path.join(real_videos, "bikes.mp4"), videos / "renamed_copy.mp4")
    out = str(root / "train")
    build(BuildSpec(str(videos), (("temporal_jigsaw", "easy"),), seed=3), out, workers=1)
    return out


def test_a_renamed_copy_is_found_by_content(overlapping_set, viubench_testset, real_videos):
    shared = shared_videos(overlapping_set, viubench_testset)
    assert [(s.train_path, s.test_path) for s in shared] == [("renamed_copy.mp4", "bikes.mp4")]
    assert shared[0].hash == file_hash(os.path.join(real_videos, "bikes.mp4"))


def test_disjoint_sets_share_nothing(overlapping_set, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    record = {"id": "x", "video": {"path": "elsewhere.mp4", "hash": "0" * 32}}
    (other / SAMPLES).write_text(json.dumps(record) + "\n")
    assert shared_videos(overlapping_set, str(other)) == []
    assert video_hashes(str(other)) == {"0" * 32: "elsewhere.mp4"}


def test_the_warning_is_one_line_naming_both_paths(overlapping_set, viubench_testset):
    with pytest.warns(UserWarning) as caught:
        shared = warn_if_shared(overlapping_set, viubench_testset)
    assert len(shared) == 1 and len(caught) == 1
    message = str(caught[0].message)
    assert "\n" not in message
    assert "renamed_copy.mp4 (= bikes.mp4)" in message and "1 source videos" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_shared(None, viubench_testset) == []


def test_a_folder_that_is_no_set_is_refused(tmp_path, viubench_testset):
    with pytest.raises(FileNotFoundError, match="is not a viubench test set"):
        shared_videos(str(tmp_path), viubench_testset)
