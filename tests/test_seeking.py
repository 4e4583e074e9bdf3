"""Seek-when-far decoding (`viubench.seeking`): on every codec the tests make, frames reached
by seeking to keyframes are bit for bit the frames of a decode from the start; the plan seeks
only where it saves work; a seek that misses falls back to decoding every frame; a build
records `decode: seek` per sample and verify re-derives it."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

import clipmaker as cm
from viubench.build import BuildSpec, build
from viubench.seeking import FrameIndex, seek_plan
from viubench.testset import SAMPLES
from viubench.verify import verify
from viubench.video import VideoError, decode_frames, probe

SIZE = (160, 96)
# name -> writer of a 300-frame clip with several GOPs
LONG = {
    "h264_bframes_long_gop": lambda p: cm.write_video(
        p, "libx264", 300, *SIZE, options={"preset": "veryfast", "bf": "3", "g": "120"}),
    "h264_open_gop": lambda p: cm.write_video(
        p, "libx264", 300, *SIZE, options={"preset": "veryfast", "bf": "3", "g": "40",
                                           "x264-params": "open-gop=1"}),
    "hevc_open_gop": lambda p: cm.write_video(
        p, "libx265", 300, *SIZE, options={"preset": "ultrafast", "x265-params":
                                           "log-level=error:keyint=40:open-gop=1:bframes=4"}),
    "vp9": lambda p: cm.write_video(
        p, "libvpx-vp9", 300, *SIZE, options={"deadline": "realtime", "cpu-used": "8",
                                              "crf": "30", "b": "0", "g": "40"}),
    "av1": lambda p: cm.write_video(
        p, "libsvtav1", 300, *SIZE, options={"preset": "12", "crf": "40",
                                             "svtav1-params": "lp=2:keyint=40"}),
    "mpeg4": lambda p: cm.write_video(p, "mpeg4", 300, *SIZE, bit_rate=1_000_000,
                                      options={"g": "40", "bf": "2"}),
    "mjpeg": lambda p: cm.write_video(p, "mjpeg", 300, *SIZE, pix_fmt="yuvj420p",
                                      bit_rate=4_000_000),
    "vfr": cm.vfr_mkv,
}
SUFFIX = {"vp9": ".webm", "av1": ".mkv", "mpeg4": ".avi", "mjpeg": ".avi", "vfr": ".mkv",
          "h264_open_gop": ".mkv"}


@pytest.fixture(scope="module")
def long_clips(tmp_path_factory) -> dict[str, str]:
    os.environ.setdefault("SVT_LOG", "1")
    folder = tmp_path_factory.mktemp("long_clips")
    return {name: write(str(folder / (name + SUFFIX.get(name, ".mp4"))))
            for name, write in LONG.items()}


@pytest.mark.parametrize("name", list(LONG))
def test_seeking_gives_the_frames_of_a_decode_from_the_start(long_clips, name):
    info = probe(long_clips[name])
    assert info.frames is not None and len(info.frames.keys) >= 3, "several GOPs to seek in"
    for targets in (list(range(7, 300, 37)), [0, 1, 150, 151, 299], [260, 299]):
        seeking, how = decode_frames(info, targets, SIZE, "pyav", "seek")
        whole, reference = decode_frames(info, targets, SIZE, "pyav", "all")
        assert (how, reference) == ("seek", "all")
        assert np.array_equal(seeking, whole), (name, targets)


def test_the_plan_seeks_only_past_a_keyframe_and_only_when_it_pays():
    index = FrameIndex(tuple(range(0, 3000, 10)), (0, 100, 200))
    assert index.key_before(99) == 0 and index.key_before(100) == 100
    assert index.key_before(299) == 200
    sparse = [10, 150, 250]
    assert seek_plan(index, sparse, 300) == [-1, 100, 200]
    assert seek_plan(index, [10, 20, 30], 300) is None         # no seek: decode from the start
    assert seek_plan(index, list(range(0, 300, 3)), 300) is None      # dense: decode all
    assert seek_plan(index, list(range(0, 300, 3)), 300, always=True) is not None
    assert seek_plan(None, sparse, 300) is None
    assert seek_plan(index, sparse, 301) is None                     # the index is not exact
    assert FrameIndex.from_packets([(0, True), (10, False), (10, False)]) is None
    assert FrameIndex.from_packets([(0, True), (None, False)]) is None
    assert FrameIndex.from_packets([(20, False), (0, True), (10, False)]) == \
        FrameIndex((0, 10, 20), (0,))


def test_a_seek_that_misses_decodes_every_frame_instead(long_clips):
    """Timestamps that lie (a frame listed where none is): the frames still come out right,
    decoded from the start, and the strategy says so."""
    info = probe(long_clips["h264_bframes_long_gop"])
    assert info.frames is not None
    shifted = FrameIndex(tuple(p + 1 for p in info.frames.pts), info.frames.keys)
    lying = dataclasses.replace(info, frames=shifted)
    targets = [20, 170, 290]
    frames, how = decode_frames(lying, targets, SIZE, "pyav", "seek")
    assert how == "all"
    assert np.array_equal(frames, decode_frames(info, targets, SIZE, "pyav", "all")[0])


def test_decoding_from_the_start_stops_at_the_last_frame_needed(tmp_path):
    """A clip damaged in its middle: the frames before the damage come out (decoding ends at
    the last one wanted, as the timestamps place every frame); one past it is an error."""
    clean = probe(cm.h264_mp4(str(tmp_path / "clean.mp4"), seed=14))
    damaged = probe(cm.corrupt_mp4(str(tmp_path / "damaged.mp4")))
    early = [2, 5, 10]
    frames, how = decode_frames(damaged, early, SIZE, "pyav", "all")
    assert how == "all"
    assert np.array_equal(frames, decode_frames(clean, early, SIZE, "pyav", "all")[0])
    with pytest.raises(VideoError, match="decoding failed"):
        decode_frames(damaged, [*early, 90], SIZE, "pyav", "all")


def test_a_build_records_seeking_and_verify_re_derives_it(long_clips, tmp_path):
    """48 uniform frames of a 1200-frame clip with a keyframe every 10 frames are reached by
    seeking (the plan decodes about half the frames); a 96-frame clip's 48 frames, densely
    sampled, are decoded from the start, and its records read as before seeking existed."""
    videos = tmp_path / "videos"
    videos.mkdir()
    long = cm.write_video(str(videos / "long.mp4"), "libx264", 1200, *SIZE,
                          options={"preset": "ultrafast", "bf": "2", "g": "10"})
    cm.h264_mp4(str(videos / "short.mp4"))
    out = str(tmp_path / "ts")
    build(BuildSpec(str(videos), (("temporal_jigsaw", "easy"), ("object_counting", "easy"))),
          out)
    with open(os.path.join(out, SAMPLES), encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    how = {(r["video"]["path"], r["frames"].get("decode")) for r in records}
    assert how == {("long.mp4", "seek"), ("short.mp4", None)}
    assert verify(out).ok
    info = probe(long)
    targets = sorted({i for r in records if r["video"]["path"] == "long.mp4"
                      for i in r["frames"]["indices"]})
    plan = seek_plan(info.frames, targets, info.frame_count)
    assert plan is not None and sum(key >= 0 for key in plan) >= 40
