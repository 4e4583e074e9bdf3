"""Masked Video Prediction on real footage: targets, distractors, gap and answer checked from the
pixels; metrics on hand-written replies; determinism, verify, CLI, and the random baseline."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil

import numpy as np
import pytest

import clipmaker as cm
from conftest import frames_of, samples_of
from helpers import viubench
from viubench.answers import STRICT, VIDEOSSR
from viubench.build import BuildSpec, build
from viubench.clips import read_clips
from viubench.media import MediaStore, clean_key
from viubench.registry import load_tasks
from viubench.task import Parsed
from viubench.testset import load_build
from viubench.verify import verify
from viubench.video import FrameProtocol, VideoError

from viubench.tasks.frame_similarity import similarity
from viubench.tasks.masked_prediction import (PROTOCOL, MaskedPrediction, chance_exact, gap_frame,
                                              order_score)

TASK = load_tasks()["masked_prediction"]
VARIANTS = tuple(TASK.variants)
JPEG_TOLERANCE = 4.0      # mean absolute difference of a JPEG (quality 90) from its frame


def tiny_embed(frames: np.ndarray) -> np.ndarray:
    """A stand-in for a CLIP image tower: mean-centred 8x8 grayscale thumbnails."""
    gray = frames.astype(np.float64).mean(axis=3)
    n, h, w = gray.shape
    cells = gray[:, :h - h % 8, :w - w % 8].reshape(n, 8, h // 8, 8, w // 8).mean(axis=(2, 4))
    flat = cells.reshape(n, -1)
    return flat - flat.mean(axis=1, keepdims=True)


EMBED_TASK = MaskedPrediction("mvp_tiny_embedder", similarity="test_masked_prediction:tiny_embed",
                              kappa=0.9)


@pytest.fixture(scope="module")
def built(real_videos, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("mvp") / "testset")
    spec = BuildSpec(real_videos, tuple(("masked_prediction", v) for v in VARIANTS), seed=11,
                     per_video=3)
    summary = build(spec, out)
    return out, spec, summary


@pytest.fixture(scope="module")
def samples(built):
    return samples_of(built[0])


@pytest.fixture(scope="module")
def clips(real_videos):
    """Every real video decoded under the MVP protocol, independently of the builds."""
    return {name: read_clips(real_videos, name, [PROTOCOL], "pyav")[PROTOCOL]
            for name in sorted(os.listdir(real_videos))}


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).mean())


def parts(sample):
    video = next(p for p in sample["prompt"] if p["type"] == "video")
    images = [p["image"] for p in sample["prompt"] if p["type"] == "image"]
    labels = [p["text"] for p in sample["prompt"] if p["type"] == "text"
              and p["text"].startswith("Candidate ")]
    return video["frames"], images, labels


def answer_labels(sample) -> list[int]:
    return [int(x) for x in sample["answer"].split(",")]


def test_rate_protocol_samples_two_frames_a_second_and_leaves_the_default_alone():
    hour = PROTOCOL.indices(30 * 3600, 30.0)       # 1 h at 30 fps: the central 120 s, 2 fps
    assert len(hour) == 240 and set(np.diff(hour)) == {15}
    assert abs((hour[0] + hour[-1]) / 2 - 30 * 3600 / 2) < 30
    minutes = PROTOCOL.indices(25 * 100, 25.0)     # 100 s: 90 s window -> 180 frames at 2 fps
    assert len(minutes) == 180 and set(np.diff(minutes)) == {12, 13}
    minute = PROTOCOL.indices(25 * 40, 25.0)       # 40 s: 36 s window: faster, so that 96
    assert len(minute) == 96 and set(np.diff(minute)) <= {9, 10}
    short = PROTOCOL.indices(132, 25.0)            # 5.3 s: 96 of the window's 119 frames
    assert len(short) == 96 and short == sorted(set(short)) and 6 <= short[0] < short[-1] < 125
    assert len(PROTOCOL.indices(60, 25.0)) == 54   # fewer than 96, at least 48: every frame
    with pytest.raises(VideoError, match="too short"):
        PROTOCOL.indices(50, 25.0)
    with pytest.raises(VideoError, match="unknown frame rate"):
        PROTOCOL.indices(1000, 0.0)
    default = FrameProtocol()
    assert default.indices(132) == default.indices(132, 25.0) and len(default.indices(132)) == 48
    assert default == FrameProtocol(rate=0.0) and hash(default) == hash(FrameProtocol())
    assert len({default, PROTOCOL}) == 2


def test_every_variant_builds_and_records_its_protocol_and_knobs(built, samples, clips):
    _, _, summary = built
    assert set(summary["counts"]) == {f"masked_prediction:{v}" for v in VARIANTS}
    for sample in samples:
        video = sample["video"]
        clip = clips[video["path"]]
        assert sample["frames"]["indices"] == clip.indices == PROTOCOL.indices(
            video["frame_count"], video["fps"])
        assert sample["frames"]["sample_fps"] == pytest.approx(clip.sample_fps)
        draws, params = sample["draws"], TASK.variants[sample["variant"]].params
        assert draws["similarity"] == "block-ssim" and draws["kappa"] == params["kappa"]
        assert draws["sample_rate"] == pytest.approx(clip.sample_fps / draws["stride"], abs=1e-3)
        assert next(p for p in sample["prompt"] if p["type"] == "video")["fps"] == \
            draws["sample_rate"]
        assert (draws["context_frames"], draws["masked"], draws["distractors"],
                draws["radius_s"]) == (params["context"], params["masked"],
                                       params["distractors"], params["radius_s"])
        assert len(draws["pool"]) == draws["masked"] + draws["distractors"]
        assert set(TASK.knobs(sample)) >= {"context_frames", "masked", "distractors", "kappa",
                                           "radius_s"}


def similarities(clip, draws) -> np.ndarray:
    measure = similarity(draws["similarity"])
    described = measure.describe(clip.frames)
    return measure.compare(described, described)


def test_context_is_the_greedy_near_duplicate_removal(samples, clips):
    for sample in samples:
        clip, draws = clips[sample["video"]["path"]], sample["draws"]
        sim = similarities(clip, draws)
        context, kappa, stride = draws["context"], draws["kappa"], draws["stride"]
        assert all(p % stride == 0 for p in context)
        assert len(context) == draws["context_frames"] and context == sorted(set(context))
        for kept, following, recorded in zip(context, context[1:], draws["context_similarity"]):
            assert sim[kept, following] <= kappa
            assert sim[kept, following] == pytest.approx(recorded, abs=1e-4)
            # every frame skipped in between was a near-duplicate of the last kept frame
            assert all(sim[kept, p] > kappa for p in range(kept + stride, following, stride))


def test_targets_are_exactly_the_masked_frames_in_temporal_order(samples, clips, built):
    out = built[0]
    for sample in samples:
        clip, draws = clips[sample["video"]["path"]], sample["draws"]
        shown, images, labels = parts(sample)
        context, at, m = draws["context"], draws["gap_start"], draws["masked"]
        assert labels == [f"Candidate {i}:" for i in range(1, len(images) + 1)]
        clean = [MediaStore.relpath(clean_key(i, clip.size, clip.backend), clip.video_hash)
                 for i in clip.indices]
        assert [shown[i] for i in range(len(shown)) if not at <= i < at + m] == \
            [clean[p] for p in context[:at] + context[at + m:]]
        truth = answer_labels(sample)
        assert len(truth) == m == len(set(truth))
        for k, label in enumerate(truth):
            got = frames_of(out, [images[label - 1]])[0]
            distances = [mad(got, frame) for frame in clip.frames]
            # from pixels: the k-th answer label shows the k-th masked frame, and no other
            assert int(np.argmin(distances)) == context[at + k]
            assert distances[context[at + k]] < JPEG_TOLERANCE
        sources = [clip.indices[context[at + k]] for k in range(m)]
        assert sources == sorted(sources) and len(set(sources)) == m   # temporal order
        target_positions = {e["position"] for e in draws["pool"] if e["kind"] == "target"}
        assert target_positions == set(context[at:at + m])


def test_no_distractor_is_a_near_duplicate_of_a_context_frame_or_another(samples, clips, built):
    out = built[0]
    for sample in samples:
        clip, draws = clips[sample["video"]["path"]], sample["draws"]
        measure = similarity(draws["similarity"])
        _, images, _ = parts(sample)
        context, at, m, kappa = (draws["context"], draws["gap_start"], draws["masked"],
                                 draws["kappa"])
        targets = measure.describe(clip.frames[context[at:at + m]])
        visible = measure.describe(clip.frames[context[:at] + context[at + m:]])
        chosen = []
        for label, entry in enumerate(draws["pool"], start=1):
            if entry["kind"] == "target":
                continue
            frame = clip.frames[entry["position"]]
            got = frames_of(out, [images[label - 1]])[0]
            assert mad(got, frame) < JPEG_TOLERANCE          # the shown image is that frame
            described = measure.describe(np.ascontiguousarray(frame)[None])
            to_targets = measure.compare(described, targets).max()
            to_visible = measure.compare(described, visible).max()
            assert to_targets <= kappa and to_targets == pytest.approx(entry["similarity"],
                                                                       abs=1e-4)
            assert to_visible <= kappa and to_visible == pytest.approx(
                entry["context_similarity"], abs=1e-4)
            chosen.append(described)
            position = entry["position"]   # near the gap, outside it, not a context frame
            assert not context[at - 1] <= position <= context[at + m]
            assert position not in context and entry["distance_s"] <= draws["radius_s"]
        among = measure.compare(np.concatenate(chosen), np.concatenate(chosen))
        assert (among[~np.eye(len(chosen), dtype=bool)] <= kappa).all()


def _profile(sim: np.ndarray, draws, position: int) -> np.ndarray:
    context, at, m = draws["context"], draws["gap_start"], draws["masked"]
    shown = context[:at] + context[at + m:]
    others = [t for t in context[at:at + m] if t != position]
    return np.array([sim[position, shown].max(),
                     max(sim[position, context[at - 1]], sim[position, context[at + m]]),
                     sim[position, others].max()])


def _from_gap(draws, position: int) -> int:
    left, right = draws["context"][draws["gap_start"] - 1], draws["context"][
        draws["gap_start"] + draws["masked"]]
    return left - position if position < left else position - right


def test_each_distractor_is_the_frame_nearest_in_profile_to_its_target(samples, clips):
    """Re-derived from the similarities: for each slot in order, the frame within the radius,
    outside the gap, near-duplicate of no context frame nor of an earlier pick, whose highest
    similarity to a shown frame, to a gap border and to a target is nearest (L1) to its
    target's (to a shown frame, a border, another target); the nearest to the gap on ties."""
    for sample in samples:
        clip, draws = clips[sample["video"]["path"]], sample["draws"]
        sim = similarities(clip, draws)
        context, at, m, kappa = (draws["context"], draws["gap_start"], draws["masked"],
                                 draws["kappa"])
        valid = [p for p in range(len(sim))
                 if not context[at - 1] <= p <= context[at + m] and p not in context
                 and _from_gap(draws, p) <= draws["radius_s"] * clip.sample_fps
                 and sim[p, context].max() <= kappa]
        valid.sort(key=lambda p: (_from_gap(draws, p), p))
        picked: list[tuple[int, int]] = []
        for k in draws["matching"]:
            taken = [q for q, _ in picked]
            free = [p for p in valid if p not in taken and all(sim[p, q] <= kappa for q in taken)]
            want = _profile(sim, draws, context[at + k])
            picked.append((min(free, key=lambda p: np.abs(_profile(sim, draws, p) - want).sum()),
                           k))
        recorded = [(e["position"], e["matches"]) for e in draws["pool"] if e["kind"] != "target"]
        assert sorted(recorded) == sorted(picked)
        assert set(draws["matching"]) == set(range(m))


def test_gap_is_visible_and_as_long_as_the_masked_run(samples, clips, built):
    out = built[0]
    for sample in samples:
        clip, draws = clips[sample["video"]["path"]], sample["draws"]
        shown, _, _ = parts(sample)
        at, m, n = draws["gap_start"], draws["masked"], draws["context_frames"]
        assert 1 <= at and at + m <= n - 1 and len(shown) == n
        gap_paths = {shown[i] for i in range(at, at + m)}
        assert len(gap_paths) == 1 and not gap_paths & (set(shown[:at]) | set(shown[at + m:]))
        gap = frames_of(out, list(gap_paths))[0]
        assert mad(gap, gap_frame(clip.size)) < JPEG_TOLERANCE
        assert min(mad(gap, frame) for frame in clip.frames) > 25
        assert "grey frame with dark diagonal stripes" in sample["prompt"][0]["text"]


TRUTH = "3,7,1,5"
TRUTH_VARIANT = "mvp-hard"      # 4 masked frames, like TRUTH


@pytest.mark.parametrize("text, exact, f1, order, fine", [
    ("3,7,1,5", 1, 1, 1, 1),                                  # perfect
    ("5,1,7,3", 0, 1, 0, 0.5),                                # reversed
    ("3,7,2,4", 0, 0.5, 1, 0.5),                              # half right, in order
    ("7,3,2,4", 0, 0.5, 0, 0.25),                             # half right, swapped
    ("3,2,4,6", 0, 0.25, 1, 0.25),                            # one right
    ("3,3,3,3", 0, 0.25, 1, 0.25),                            # one label repeated
    ("2,4,6,8", 0, 0, 0, 0),                                  # all wrong
    ("3,1,7,5", 0, 1, 1 - 2 / 8, 1 - 1 / 8),                  # one adjacent swap
])
def test_metrics_on_hand_written_replies(text, exact, f1, order, fine):
    got = TASK.metrics(TASK.parse(text, TRUTH_VARIANT), TRUTH)
    assert got == pytest.approx({"score": exact, "exact": exact, "f1": f1, "order": order,
                                 "fine": fine})
    assert TASK.reward(TASK.parse(text, TRUTH_VARIANT, STRICT), TRUTH) == pytest.approx(fine)


@pytest.mark.parametrize("text", ["The hidden frames are Candidates 3, 7, 1 and 5.",
                                  "<think>maybe 1,2,3,4</think><answer>3, 7, 1, 5</answer>",
                                  "Answer: 3 7 1 5", "candidate 3 -> candidate 7 -> 1 -> 5"])
def test_lenient_parse_finds_the_answer_in_prose(text):
    assert TASK.parse(text, TRUTH_VARIANT).value == [3, 7, 1, 5]
    assert TASK.metrics(TASK.parse(text, TRUTH_VARIANT), TRUTH)["score"] == 1.0


@pytest.mark.parametrize("text", ["", "no idea", "I think 3 and 7", "frame 12 of 48",
                                  "3,7,1", "The hidden frames are 3, 7, 1, 5, 2, 9 and 4"])
def test_garbage_scores_zero_and_counts_as_a_parse_failure(text):
    parsed = TASK.parse(text, TRUTH_VARIANT)
    assert not parsed.ok and parsed.error
    assert set(TASK.metrics(parsed, TRUTH).values()) == {0.0}
    assert TASK.reward(TASK.parse(text, TRUTH_VARIANT, STRICT), TRUTH) == 0.0


def test_strict_parse_needs_the_bare_list():
    assert TASK.reward_policies == (STRICT,)
    assert TASK.parse("3, 7, 1, 5", TRUTH_VARIANT, STRICT).value == [3, 7, 1, 5]
    assert TASK.parse("**3,7,1,5**.", TRUTH_VARIANT, STRICT).value == [3, 7, 1, 5]
    assert TASK.parse("<answer>3,7,1,5</answer>", TRUTH_VARIANT, STRICT).value == [3, 7, 1, 5]
    assert not TASK.parse("Answer: 3,7,1,5", TRUTH_VARIANT, STRICT).ok
    assert not TASK.parse("3,7,1", TRUTH_VARIANT, STRICT).ok
    assert TASK.reward(TASK.parse("The answer is 3,7,1,5", TRUTH_VARIANT, STRICT), TRUTH) == 0.0
    assert TASK.metrics(TASK.parse("The answer is 3,7,1,5", TRUTH_VARIANT), TRUTH)["score"] == 1.0
    with pytest.raises(ValueError, match="no videossr reward rule"):
        TASK.parse("3,7,1,5", TRUTH_VARIANT, VIDEOSSR)
    with pytest.raises(ValueError, match="unknown parse policy"):
        TASK.parse("3,7,1,5", TRUTH_VARIANT, "loose")
    assert order_score([9, 8], [3, 7]) == 0.0 and order_score([7], [3, 7]) == 1.0
    assert TASK.metrics(Parsed(error="x"), TRUTH)["fine"] == 0.0


def test_random_answer_is_a_uniform_ordered_subset_of_the_pool():
    rng = random.Random(0)
    for variant, params in TASK.variants.items():
        pool, m = params.params["masked"] + params.params["distractors"], params.params["masked"]
        answers = [TASK.random_answer(rng, variant, {}) for _ in range(300)]
        for answer in answers:
            labels = [int(x) for x in answer.split(",")]
            assert len(set(labels)) == m and set(labels) <= set(range(1, pool + 1))
    assert chance_exact(5, 2) == pytest.approx(1 / 20)
    assert chance_exact(12, 4) == pytest.approx(1 / (12 * 11 * 10 * 9))


def _tree_hashes(folder: str) -> dict[str, str]:
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            if name in ("build.json", "videos.jsonl"):   # timings differ between runs
                continue
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = hashlib.sha256(
                open(path, "rb").read()).hexdigest()
    return found


def test_builds_are_deterministic_and_verify(built, tmp_path):
    out, spec, summary = built
    again = str(tmp_path / "again")
    assert build(spec, again, workers=2)["counts"] == summary["counts"]
    assert _tree_hashes(out) == _tree_hashes(again)
    result = verify(out)
    assert result.ok, result.problems[:5]
    assert result.checked == summary["samples"]


def test_cli_builds_the_mvp_suite_and_verify_catches_a_changed_pool(real_videos, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("bikes.mp4", "carphone_pristine.mp4"):
        shutil.copy(os.path.join(real_videos, name), videos / name)
    out = str(tmp_path / "ts")
    done = viubench("build", "--videos", str(videos), "--out", out, "--suite", "mvp",
                    "--per-video", "2", "--workers", "1")
    assert done.returncode == 0, done.stderr
    summary = load_build(out)
    assert set(summary["counts"]) == {"masked_prediction:mvp-easy", "masked_prediction:mvp-hard"}
    assert viubench("verify", out).returncode == 0
    lines = open(os.path.join(out, "samples.jsonl")).read().splitlines()
    record = json.loads(lines[0])
    record["draws"]["pool"].reverse()
    lines[0] = json.dumps(record)
    open(os.path.join(out, "samples.jsonl"), "w").write("\n".join(lines) + "\n")
    broken = viubench("verify", out)
    assert broken.returncode == 1 and "differs" in broken.stderr


def test_verify_names_a_sample_built_by_another_task_version(built, tmp_path):
    copy = str(tmp_path / "old")
    shutil.copytree(built[0], copy)
    path = os.path.join(copy, "samples.jsonl")
    lines = open(path).read().splitlines()
    record = json.loads(lines[0])
    record["version"] = "2"                 # a version 2 record has no matching order
    del record["draws"]["matching"]
    lines[0] = json.dumps(record)
    open(path, "w").write("\n".join(lines) + "\n")
    done = viubench("verify", copy)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert (f"sample {record['id']} (masked_prediction:{record['variant']}" in done.stderr
            and "built by masked_prediction version 2, this viubench has version 3"
            in done.stderr)


def test_short_videos_are_skipped_with_a_reason(built, tmp_path):
    videos = tmp_path / "short"
    cm.too_short_mp4(str(videos / "short.mp4"), frames=52)
    skipped = build(BuildSpec(str(videos), (("masked_prediction", "mvp-easy"),)),
                    str(tmp_path / "ts"))
    assert skipped["skipped"] == [{"path": "short.mp4", "reason": "too short: the central 90%"
                                   " holds 47 frames, fewer than the 48 needed"}]


def test_a_user_embedder_is_plugged_in_and_recorded(real_videos, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(os.path.join(real_videos, "bikes.mp4"), videos / "bikes.mp4")
    out = str(tmp_path / "ts")
    spec = BuildSpec(str(videos), (("mvp_tiny_embedder", "standard"),), per_video=3,
                     extra_tasks=("test_masked_prediction:EMBED_TASK",))
    assert build(spec, out)["samples"] == 3
    clip = read_clips(str(videos), "bikes.mp4", [PROTOCOL], "pyav")[PROTOCOL]
    vectors = tiny_embed(clip.frames)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for sample in samples_of(out):
        draws = sample["draws"]
        assert draws["similarity"] == "test_masked_prediction:tiny_embed"
        assert draws["kappa"] == 0.9
        context, at, m = draws["context"], draws["gap_start"], draws["masked"]
        targets = unit[context[at:at + m]]
        for entry in draws["pool"]:
            if entry["kind"] != "target":
                assert (unit[entry["position"]] @ targets.T).max() <= 0.9
    assert verify(out, task_modules=["test_masked_prediction:EMBED_TASK"]).ok


def test_random_baseline_matches_its_analytic_exact_match(real_videos, tmp_path):
    """Expected exact match of a uniform ordered m-subset of P labels: 1 / (P!/(P-m)!)."""
    testset = str(tmp_path / "ts")
    build(BuildSpec(real_videos, (("masked_prediction", "mvp-easy"),), seed=3, per_video=100),
          testset)
    run = str(tmp_path / "run")
    done = viubench("eval", "--testset", testset, "--model", "random", "--out", run)
    assert done.returncode == 0, done.stderr
    row = json.load(open(os.path.join(run, "results.json")))["variants"][
        "masked_prediction:mvp-easy"]
    params = TASK.variants["mvp-easy"].params
    pool, m = params["masked"] + params["distractors"], params["masked"]
    expected = 100 * chance_exact(pool, m)                       # 5.0 for P = 5, m = 2
    low, high = row["ci95"]
    assert row["n"] == 400 and row["parse_failures"] == 0
    assert low <= expected <= high, (row["score"], low, high)
    # selection F1 of a random m-subset: m / P in expectation
    assert row["metrics"]["f1"] == pytest.approx(100 * m / pool, abs=6)
    assert math.isclose(row["score"], row["metrics"]["exact"])
