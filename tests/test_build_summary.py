"""The build summary: per task variant, how many videos yielded samples and the top skip
reasons, in build.json (`variants`) and on the console, for real builds (also resumed ones)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

import clipmaker
from helpers import TESTS, viubench
from user_task import PlaybackDirection
from viubench.build import BuildSpec, build, reason_group, top_reasons
from viubench.task import TaskSkip, Variant

WIDE = 300   # `picky:wide` needs frames at least this wide


class Picky(PlaybackDirection):
    """A user task whose variants skip by a known rule: `any` never skips, `wide` skips videos
    narrower than WIDE pixels, `never` skips every video (for two reasons)."""

    name = "picky"
    variants = {"any": Variant("easy", {}, "always"), "wide": Variant("easy", {}, "wide only"),
                "never": Variant("hard", {}, "never")}
    suites = {"picky": ("any", "wide", "never")}

    def draw(self, rng, clip, variant, donors):
        width = clip.info.width
        if variant != "any" and width < WIDE:
            raise TaskSkip(f"only {width} pixels wide, {WIDE} needed")
        if variant == "never":
            raise TaskSkip(f"rejected: a video of {clip.info.height} lines")
        return super().draw(rng, clip, variant, donors)


PICKY = Picky()
SELECTION = (("picky", "any"), ("picky", "wide"), ("picky", "never"))
SETTLED = ("started", "seconds", "timings")   # build.json fields that vary between runs


@pytest.fixture(scope="module")
def videos(real_videos, tmp_path_factory) -> str:
    """bikes (640 wide), two carphone clips (176) and a synthetic 160x120 clip load; a too
    short clip and an empty file do not."""
    folder = tmp_path_factory.mktemp("picky_videos")
    for name in ("bikes.mp4", "carphone_distorted.mp4", "carphone_pristine.mp4"):
        shutil.copy(os.path.join(real_videos, name), folder / name)
    clipmaker.h264_mp4(str(folder / "h264_160x120.mp4"))
    clipmaker.write_bad(str(folder), ["too_short", "empty"])
    return str(folder)


@pytest.fixture(scope="module")
def built(videos, tmp_path_factory) -> dict:
    """build.json of an uninterrupted build, 2 samples per variant per video."""
    spec = BuildSpec(videos, SELECTION, per_video=2, extra_tasks=("test_build_summary:PICKY",))
    return build(spec, str(tmp_path_factory.mktemp("picky") / "ts"))


def test_reasons_differing_only_in_numbers_group_together():
    assert reason_group("at most 4 of the 48 frames (similarity <= 0.9)") == \
        reason_group("at most 17 of the 48 frames (similarity <= 0.85)") == \
        "at most # of the # frames (similarity <= #)"
    skips = [("a", "x 1"), ("a", "y 2"), ("b", "y 3"), ("c", "x 4"), ("c", "z")]
    assert top_reasons(skips, limit=2) == [
        {"reason": "x #", "example": "x 1", "count": 2, "videos": 2},
        {"reason": "y #", "example": "y 2", "count": 2, "videos": 2}]


def test_build_json_counts_videos_with_samples_and_groups_skip_reasons(built):
    variants = built["variants"]
    assert set(variants) == {"picky:any", "picky:wide", "picky:never"}
    loaded = {"videos": 4, "videos_not_loaded": 2}
    assert variants["picky:any"] == {"samples": 8, "videos_with_samples": 4, "skipped": 0,
                                     "skip_reasons": [], **loaded}
    narrow = {"reason": "only # pixels wide, # needed", "example": "only 176 pixels wide, 300"
              " needed", "count": 6, "videos": 3}
    assert variants["picky:wide"] == {"samples": 2, "videos_with_samples": 1, "skipped": 6,
                                      "skip_reasons": [narrow], **loaded}
    assert variants["picky:never"] == {
        "samples": 0, "videos_with_samples": 0, "skipped": 8, **loaded,
        "skip_reasons": [narrow, {"reason": "rejected: a video of # lines", "count": 2,
                                  "example": "rejected: a video of 272 lines", "videos": 1}]}
    assert {s["path"] for s in built["skipped"]} == {"empty.mp4", "short_30f.mp4"}


def test_resumed_build_has_the_same_summary(videos, built, tmp_path):
    spec = BuildSpec(videos, SELECTION, per_video=2, extra_tasks=("test_build_summary:PICKY",))
    out = str(tmp_path / "ts")
    partial = build(spec, out, limit=2)
    assert partial["variants"]["picky:wide"]["videos"] == 2
    resumed = build(spec, out)
    assert resumed["variants"] == built["variants"]
    assert {k: v for k, v in resumed.items() if k not in SETTLED} == \
        {k: v for k, v in built.items() if k not in SETTLED}


def test_records_without_skips_or_counts_are_read_as_holding_none(videos, tmp_path):
    """A per-video record lacking `sample_skips` or `counts` (an older log) does not crash."""
    spec = BuildSpec(videos, SELECTION, extra_tasks=("test_build_summary:PICKY",))
    out = str(tmp_path / "ts")
    build(spec, out, limit=2)
    log = os.path.join(out, "videos.jsonl")
    records = [json.loads(line) for line in open(log)]
    del records[0]["counts"], records[1]["sample_skips"]
    with open(log, "w") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in records)
    resumed = build(spec, out, limit=3)["variants"]
    assert (resumed["picky:never"]["videos"], resumed["picky:never"]["skipped"]) == (3, 2)
    assert (resumed["picky:any"]["samples"], resumed["picky:any"]["videos_with_samples"]) == \
        (2, 2)


def test_console_prints_one_line_per_variant(videos, tmp_path):
    done = viubench("build", "--videos", videos, "--out", str(tmp_path / "ts"), "--suite",
                    "picky", "--task-module", "test_build_summary:PICKY", "--workers", "1",
                    env_path=TESTS)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith(": 5 samples from 4 videos (2 skipped)")
    assert lines[1:4] == [
        "  picky:any: 4 samples from 4 of 6 videos (2 not loaded)",
        "  picky:never: 0 samples from 0 of 6 videos (2 not loaded); 4 skipped:"
        " only # pixels wide, # needed (3), rejected: a video of # lines (1)",
        "  picky:wide: 1 samples from 1 of 6 videos (2 not loaded); 3 skipped:"
        " only # pixels wide, # needed (3)"]
    assert lines[4].startswith("  skipped empty.mp4: ")
    assert lines[5].startswith("  skipped short_30f.mp4: too short")
