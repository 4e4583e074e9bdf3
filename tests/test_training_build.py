"""Training sets: recipes scaled to exact per-variant counts, dealt over the videos (several
replicas per video in a small folder, one video per sample in a large one), deterministic
across worker counts and interruptions, at the training resolution, and never drawn from a
video whose content is in a given test set."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import shutil
import warnings

import pytest
from PIL import Image

import clipmaker
from helpers import StopAfter, viubench
from viubench.build import BuildSpec, build
from viubench.leakage import shared_videos, video_hashes
from viubench.recipes import MVP_MIX, RECIPES, VIDEOSSR_30K, plan_round, scaled, video_order
from viubench.testset import BUILD, SAMPLES, VIDEOS, iter_samples

# videossr30k scaled to 24 samples, by hand: shares 2.4 x 4, 9.6, 4.8 -> floors 2,2,2,2,9,4
# (21); the 3 left go to the largest remainders .8 (counting), .6 (jigsaw), then the first
# of the four .4 ties (channel_swap).
SCALED_24 = {"anomaly_grounding:channel_swap": 3, "anomaly_grounding:mirror": 2,
             "anomaly_grounding:zoom_out": 2, "anomaly_grounding:rotate180": 2,
             "temporal_jigsaw:easy": 10, "object_counting:easy": 5}
PAPER_MIX = {"anomaly_grounding:channel_swap": 3000, "anomaly_grounding:mirror": 3000,
             "anomaly_grounding:zoom_out": 3000, "anomaly_grounding:rotate180": 3000,
             "temporal_jigsaw:easy": 12000, "object_counting:easy": 6000}


def as_dict(quotas) -> dict[str, int]:
    return {f"{task}:{variant}": count for task, variant, count in quotas}


def recipe_spec(videos: str, samples: int = 24, **overrides) -> BuildSpec:
    quotas = scaled(VIDEOSSR_30K.quotas, samples)
    fields = dict(selection=tuple((t, v) for t, v, _ in quotas), per_video=4,
                  max_pixels=256 * 256, purpose="training", recipe="videossr30k", quotas=quotas)
    return BuildSpec(videos, **{**fields, **overrides})


def counts_of(folder: str) -> dict[str, int]:
    return dict(collections.Counter(f"{s['task']}:{s['variant']}" for s in iter_samples(folder)))


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def media_hashes(folder: str) -> dict[str, str]:
    root = os.path.join(folder, "media")
    return {os.path.relpath(os.path.join(d, f), root):
            hashlib.sha256(read_bytes(os.path.join(d, f))).hexdigest()
            for d, _, files in os.walk(root) for f in files}


def video_log(folder: str) -> list[dict]:
    """videos.jsonl without the timings (the only part that varies between runs)."""
    with open(os.path.join(folder, VIDEOS), encoding="utf-8") as handle:
        return [{k: v for k, v in json.loads(line).items() if k != "timings"}
                for line in handle]


def same_build(a: str, b: str) -> None:
    assert read_bytes(os.path.join(a, SAMPLES)) == read_bytes(os.path.join(b, SAMPLES))
    assert media_hashes(a) == media_hashes(b)
    assert video_log(a) == video_log(b)


# --- recipes and planning (pure) ---------------------------------------------------------

def test_recipes_are_the_published_mix_and_ours():
    assert as_dict(VIDEOSSR_30K.quotas) == PAPER_MIX and VIDEOSSR_30K.size == 30000
    assert as_dict(MVP_MIX.quotas) == {"masked_prediction:mvp-easy": 7500,
                                       "masked_prediction:standard": 15000,
                                       "masked_prediction:mvp-hard": 7500}
    assert set(RECIPES) == {"videossr30k", "mvp"}


def test_scaling_is_largest_remainder_and_sums_to_the_total():
    assert as_dict(scaled(VIDEOSSR_30K.quotas, 24)) == SCALED_24
    assert as_dict(scaled(VIDEOSSR_30K.quotas, 30000)) == PAPER_MIX
    assert as_dict(scaled(VIDEOSSR_30K.quotas, 10)) == {   # 1,1,1,1,4,2: all exact
        "anomaly_grounding:channel_swap": 1, "anomaly_grounding:mirror": 1,
        "anomaly_grounding:zoom_out": 1, "anomaly_grounding:rotate180": 1,
        "temporal_jigsaw:easy": 4, "object_counting:easy": 2}
    assert [n for *_, n in scaled(MVP_MIX.quotas, 13)] == [3, 7, 3]   # 3.25, 6.5, 3.25
    for total in range(1, 300):
        counts = [n for *_, n in scaled(VIDEOSSR_30K.quotas, total)]
        assert sum(counts) == total
        exact = [q * total / 30000 for *_, q in VIDEOSSR_30K.quotas]
        assert all(abs(n - e) < 1 for n, e in zip(counts, exact))
    with pytest.raises(ValueError, match="at least 1"):
        scaled(VIDEOSSR_30K.quotas, 0)


def items_per_video(dealt) -> dict[str, collections.Counter]:
    return {path: collections.Counter(f"{t}:{v}" for t, v, _ in items) for path, items in dealt}


def test_a_large_folder_gets_one_sample_per_video():
    order = video_order([f"v{i:03d}.mp4" for i in range(100)], seed=0)
    dealt = plan_round(scaled(VIDEOSSR_30K.quotas, 24), order, [], collections.Counter(), 4,
                       first=True)
    assert len(dealt) == 24 and all(len(items) == 1 for _, items in dealt)
    assert sum(items_per_video(dealt).values(), collections.Counter()) == SCALED_24
    assert [path for path, _ in dealt] == order[:24]    # the seeded order, not file order
    assert order != sorted(order)


def test_a_small_folder_shares_load_and_variants_evenly():
    order = [f"v{i}.mp4" for i in range(5)]
    assigned: collections.Counter = collections.Counter()
    dealt = plan_round(scaled(VIDEOSSR_30K.quotas, 24), order, [], assigned, 4, first=True)
    per_video = items_per_video(dealt)
    loads = [sum(c.values()) for c in per_video.values()]
    assert sorted(loads) == [4, 5, 5, 5, 5]
    for key, quota in SCALED_24.items():     # each variant: floor or ceiling of quota / 5
        shares = [per_video[p][key] for p in order]
        assert sum(shares) == quota and max(shares) - min(shares) <= 1
    replicas = [r for _, items in dealt for t, _, r in items if t == "temporal_jigsaw"]
    assert sorted(replicas) == [0] * 5 + [1] * 5        # jigsaw 10 over 5 videos: two each


def test_a_later_round_fills_only_what_is_missing_and_avoids_what_failed():
    quotas = (("temporal_jigsaw", "easy", 4), ("object_counting", "easy", 2))
    jig, count = ("temporal_jigsaw", "easy"), ("object_counting", "easy")
    order = ["a", "b", "c", "d", "e"]
    assigned: collections.Counter = collections.Counter()
    first = plan_round(quotas, order, [], assigned, 2, first=True)
    assert first == [("a", [(*jig, 0), (*count, 0)]), ("b", [(*jig, 0)]), ("c", [(*jig, 0)]),
                     ("d", [(*jig, 0)]), ("e", [(*count, 0)])]
    earlier = [   # a did not load; d skipped its jigsaw; e made its counting sample, a not
        {"path": "a", "status": "skipped", "counts": {}},
        {"path": "b", "status": "ok", "counts": {"temporal_jigsaw:easy": 1}},
        {"path": "c", "status": "ok", "counts": {"temporal_jigsaw:easy": 1}},
        {"path": "d", "status": "ok", "counts": {},
         "sample_skips": [{"sample": "temporal_jigsaw:easy", "reason": "no"}]},
        {"path": "e", "status": "ok", "counts": {"object_counting:easy": 1}}]
    second = plan_round(quotas, order, earlier, assigned, 2, first=False)
    assert second == [("b", [(*jig, 1)]), ("c", [(*jig, 1)]), ("d", [(*count, 0)])]


def test_a_later_round_prefers_videos_not_yet_tried():
    order = [f"f{i}" for i in range(10)]
    assigned: collections.Counter = collections.Counter()
    quotas = (("temporal_jigsaw", "easy", 3),)
    first = plan_round(quotas, order, [], assigned, 4, first=True)
    assert [path for path, _ in first] == ["f0", "f1", "f2"]
    earlier = [{"path": "f0", "status": "skipped"},
               {"path": "f1", "status": "ok", "counts": {"temporal_jigsaw:easy": 1}},
               {"path": "f2", "status": "ok", "counts": {"temporal_jigsaw:easy": 1}}]
    assert plan_round(quotas, order, earlier, assigned, 4, first=False) == \
        [("f3", [("temporal_jigsaw", "easy", 0)])]


# --- builds from real clips -----------------------------------------------------------------

@pytest.fixture(scope="module")
def reference(real_videos, tmp_path_factory) -> str:
    """videossr30k at 24 samples over the 4 real clips, one worker, never interrupted."""
    out = str(tmp_path_factory.mktemp("train") / "ref")
    build(recipe_spec(real_videos), out, workers=1)
    return out


def test_scaled_recipe_gives_exact_counts_at_training_resolution(reference):
    assert counts_of(reference) == SCALED_24
    summary = json.loads(read_bytes(os.path.join(reference, BUILD)))
    assert summary["purpose"] == "training" and summary["spec"]["max_pixels"] == 65536
    assert summary["quotas"]["short"] == 0 and summary["quotas"]["wanted"] == 24
    assert summary["videos"] == {"processed": 4, "ok": 4, "skipped": 0}
    sizes = {Image.open(os.path.join(reference, "media", d, f)).size
             for d in os.listdir(os.path.join(reference, "media"))
             for f in os.listdir(os.path.join(reference, "media", d))}
    assert sizes and all(128 * 128 <= w * h <= 256 * 256 for w, h in sizes)
    for sample in iter_samples(reference):
        assert tuple(sample["frames"]["pixel_bounds"]) == (128 * 128, 256 * 256)
    per_video = collections.Counter(s["video"]["path"] for s in iter_samples(reference))
    assert sorted(per_video.values()) == [6, 6, 6, 6]


def test_builds_are_identical_across_runs_and_worker_counts(real_videos, reference, tmp_path):
    again, parallel = str(tmp_path / "again"), str(tmp_path / "parallel")
    build(recipe_spec(real_videos), again, workers=1)
    build(recipe_spec(real_videos), parallel, workers=2)
    same_build(reference, again)
    same_build(reference, parallel)


@pytest.fixture(scope="module")
def rough_folder(real_videos, tmp_path_factory) -> str:
    """The 4 real clips, a copy of one under another name, a too short clip and an empty
    file: 3 of 7 videos yield nothing, so their samples are dealt again in a second round."""
    folder = tmp_path_factory.mktemp("rough")
    for name in os.listdir(real_videos):
        shutil.copy(os.path.join(real_videos, name), folder / name)
    shutil.copy(os.path.join(real_videos, "bikes.mp4"), folder / "bikes_copy.mp4")
    clipmaker.write_bad(str(folder), ["too_short", "empty"])
    return str(folder)


@pytest.fixture(scope="module")
def rough_reference(rough_folder, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("rough_ref") / "ts")
    build(recipe_spec(rough_folder), out, workers=1)
    return out


def test_failed_videos_are_topped_up_in_a_later_round(rough_reference):
    assert counts_of(rough_reference) == SCALED_24
    summary = json.loads(read_bytes(os.path.join(rough_reference, BUILD)))
    assert summary["videos"] == {"processed": 7, "ok": 4, "skipped": 3}
    reasons = {s["path"]: s["reason"] for s in summary["skipped"]}
    duplicate = {path: reason for path, reason in reasons.items() if "duplicate" in reason}
    assert duplicate in ({"bikes_copy.mp4": "duplicate of bikes.mp4 (same content)"},
                         {"bikes.mp4": "duplicate of bikes_copy.mp4 (same content)"})
    assert "too short" in reasons["short_30f.mp4"] and "empty" in reasons["empty.mp4"]
    assert max(r.get("round", 0) for r in video_log(rough_reference)) == 2
    ids = [s["id"] for s in iter_samples(rough_reference)]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("stop_after", [2, 8])   # in the first round, in the second
def test_an_interrupted_build_resumes_to_the_same_result(rough_folder, rough_reference,
                                                         stop_after, tmp_path):
    out = str(tmp_path / "ts")
    with pytest.raises(KeyboardInterrupt):
        build(recipe_spec(rough_folder), out, workers=1, observer=StopAfter(stop_after))
    assert json.loads(read_bytes(os.path.join(out, BUILD)))["status"] == "running"
    assert len(video_log(out)) == stop_after
    summary = build(recipe_spec(rough_folder), out, workers=2)
    assert summary["status"] == "complete"
    same_build(rough_reference, out)


def test_a_recipe_build_resumes_only_over_the_same_videos(real_videos, tmp_path):
    out = str(tmp_path / "ts")
    build(recipe_spec(real_videos, samples=6), out, limit=3)
    with pytest.raises(ValueError, match="recipe build over other videos"):
        build(recipe_spec(real_videos, samples=6), out)


# --- leakage ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def held_out(real_videos, tmp_path_factory) -> tuple[str, str]:
    """(test set, its source folder): a tiny test set from a copy of bikes.mp4 renamed."""
    root = tmp_path_factory.mktemp("held_out")
    shutil.copy(os.path.join(real_videos, "bikes.mp4"), root / "held_out.mp4")
    testset = str(root / "testset")
    build(BuildSpec(str(root), (("temporal_jigsaw", "easy"),)), testset, workers=1)
    return testset, str(root)


def test_exclude_testset_skips_exactly_the_shared_videos(real_videos, held_out, tmp_path):
    testset, _ = held_out
    out = str(tmp_path / "train")
    done = viubench("build", "--videos", real_videos, "--out", out, "--recipe", "videossr30k",
                    "--samples", "24", "--for-training", "--exclude-testset", testset,
                    "--workers", "1")
    assert done.returncode == 0, done.stderr
    summary = json.loads(read_bytes(os.path.join(out, BUILD)))
    assert summary["leakage"] == {"testsets": [os.path.abspath(testset)], "testset_videos": 1,
                                  "excluded": 1}
    assert summary["skipped"] == [{"path": "bikes.mp4", "reason":
                                   "excluded for leakage: same content as held_out.mp4 of the"
                                   f" test set {os.path.abspath(testset)}"}]
    assert "excluded for leakage: 1 videos" in done.stdout
    test_hashes = set(video_hashes(testset))
    assert not any(s["video"]["hash"] in test_hashes for s in iter_samples(out))
    assert not os.path.exists(os.path.join(out, "media", next(iter(test_hashes))[:16]))
    assert shared_videos(out, testset) == []
    assert counts_of(out) == SCALED_24          # the other three videos made up for it
    again = viubench("build", "--videos", real_videos, "--out", out, "--recipe", "videossr30k",
                     "--samples", "24", "--for-training", "--workers", "1")
    assert again.returncode == 2 and "different settings" in again.stderr


def test_without_exclusion_the_overlap_is_found_afterwards(reference, held_out):
    testset, _ = held_out
    shared = shared_videos(reference, testset)
    assert [(s.train_path, s.test_path) for s in shared] == [("bikes.mp4", "held_out.mp4")]


# --- the command line ------------------------------------------------------------------------

def test_console_names_the_shortfall_of_a_folder_too_small(real_videos, tmp_path):
    out = str(tmp_path / "small")
    done = viubench("build", "--videos", real_videos, "--out", out, "--recipe", "videossr30k",
                    "--samples", "24", "--per-video", "1", "--for-training", "--workers", "1")
    assert done.returncode == 0, done.stderr
    # one sample of a variant per video, 4 videos: jigsaw 4 of 10, counting 4 of 5
    lines = [line for line in done.stdout.splitlines() if "SHORTFALL" in line]
    assert len(lines) == 1
    assert "7 of the 24 samples of recipe videossr30k" in lines[0]
    assert "temporal_jigsaw:easy 4 of 10; object_counting:easy 4 of 5" in lines[0]
    quotas = json.loads(read_bytes(os.path.join(out, BUILD)))["quotas"]
    assert quotas["short"] == 7 and quotas["variants"]["temporal_jigsaw:easy"] == \
        {"wanted": 10, "made": 4}


def test_conflicting_options_are_refused_in_one_line(real_videos, tmp_path):
    both = viubench("build", "--videos", real_videos, "--out", str(tmp_path / "a"),
                    "--recipe", "mvp", "--suite", "viubench")
    assert both.returncode == 2 and "leave out --suite" in both.stderr
    samples = viubench("build", "--videos", real_videos, "--out", str(tmp_path / "b"),
                       "--samples", "10")
    assert samples.returncode == 2 and "give --recipe" in samples.stderr
    missing = viubench("build", "--videos", real_videos, "--out", str(tmp_path / "c"),
                       "--recipe", "mvp", "--exclude-testset", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "nothing" in missing.stderr
    assert missing.stderr.count("\n") == 1


def test_evaluating_on_a_training_set_warns(reference, viubench_testset, tmp_path):
    from viubench.adapters import create, parse_spec
    from viubench.runner import GenerationSettings, RunOptions, run_eval

    spec = parse_spec("random")
    options = RunOptions(limit=2)
    with pytest.warns(UserWarning, match="built for training.*not held-out"):
        run_eval(reference, spec, create(spec), str(tmp_path / "on_train"),
                 GenerationSettings(), options)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_eval(viubench_testset, spec, create(spec), str(tmp_path / "on_test"),
                 GenerationSettings(), options)
