"""Answers checked against the pixels of built samples (real footage, every variant)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
import pytest
from scipy import ndimage

from conftest import frames_of, samples_of
from test_counting_fidelity import assert_paint_matches_draws
from tasks.counting_geometry import reach
from tasks import perturbations as pt
from tasks.anomaly_grounding import stutter_offsets
from viubench.build import BuildSpec, Donors
from viubench.clips import read_clips
from viubench.media import MediaStore, clean_key
from viubench.registry import load_tasks
from viubench.video import FrameProtocol

TASKS = load_tasks()


@pytest.fixture(scope="module")
def samples(all_variants_testset):
    return samples_of(all_variants_testset)


@pytest.fixture(scope="module")
def clips(real_videos, samples):
    """The clean 48-frame clip of every source video, decoded independently of the build."""
    protocol = FrameProtocol()
    paths = {s["video"]["path"] for s in samples}
    return {p: read_clips(real_videos, p, [protocol], "pyav")[protocol] for p in paths}


def clean_paths(clip) -> list[str]:
    return [MediaStore.relpath(clean_key(index, clip.size, clip.backend), clip.video_hash)
            for index in clip.indices]


def rendered_frames(sample, clip, real_videos) -> list[np.ndarray]:
    """The frames the sample shows, re-rendered as raw arrays (before JPEG)."""
    task = TASKS[sample["task"]]
    spec = BuildSpec(real_videos, ())
    donors = Donors(spec, task.protocol, [])
    rendered = task.render(clip, sample["variant"], sample["draws"], donors.source)
    frames = []
    for part in rendered.prompt:
        for ref in getattr(part, "frames", []):
            frames.append(clip.frames[ref] if isinstance(ref, int) else ref)
    return frames


def video_frames(sample) -> list[str]:
    return [p for part in sample["prompt"] if part["type"] == "video" for p in part["frames"]]


def of_task(samples, task):
    found = [s for s in samples if s["task"] == task]
    assert found, f"no {task} samples"
    return found


def test_every_variant_was_built(samples):
    built = {(s["task"], s["variant"]) for s in samples}
    expected = {(t.name, v) for t in TASKS.values() for v in t.variants}
    assert built == expected


def _expected_run(sample, clean: list[str]) -> list[str] | None:
    """The clean media a run-level family shows in place of its run (None: synthesized)."""
    draws, variant = sample["draws"], sample["variant"]
    start, length = draws["start"], draws["length"]
    if variant in ("shuffle", "shuffle_derange"):
        return [clean[start + source] for source in draws["order"]]
    if variant == "stutter":
        return [clean[start + offset] for offset in stutter_offsets(length, draws["holds"])]
    if variant == "slow_motion":
        return [path for path in clean[start:start + length] for _ in (0, 1)]
    if variant == "fast_forward":
        return clean[start:start + 2 * length:2]
    return None


def test_grounding_changed_frames_are_exactly_the_interval(samples, clips, all_variants_testset):
    for sample in of_task(samples, "anomaly_grounding"):
        clip = clips[sample["video"]["path"]]
        shown, clean = video_frames(sample), clean_paths(clip)
        params = TASKS["anomaly_grounding"].variants[sample["variant"]].params
        start, length = sample["draws"]["start"], sample["draws"]["length"]
        source_end = start + params["source_run"] * length
        shown_end = start + params["shown_run"] * length
        assert 8 <= length <= 16 and 0 <= start <= 48 - params["source_run"] * length
        assert len(shown) == 48 + shown_end - source_end
        assert shown[:start] == clean[:start] and shown[shown_end:] == clean[source_end:]
        run = shown[start:shown_end]
        expected = _expected_run(sample, clean)
        if expected is not None:
            assert run == expected, sample["variant"]
        else:  # synthesized frames: every one really differs in pixels from its clean frame
            assert len(run) == length
            for got, want in zip(run, clean[start:source_end]):
                changed, original = frames_of(all_variants_testset, [got, want])
                assert np.abs(changed.astype(int) - original).mean() > 0.1, sample["variant"]
        fps = sample["frames"]["sample_fps"]
        assert sample["answer"] == f"{start / fps:.1f}-{shown_end / fps:.1f}"


def test_grounding_families_do_what_they_say(samples, clips, real_videos):
    for sample in of_task(samples, "anomaly_grounding"):
        clip = clips[sample["video"]["path"]]
        frames = rendered_frames(sample, clip, real_videos)
        assert all(f.shape == clip.frames[0].shape for f in frames)  # the size never changes
        if sample["variant"] in ("slow_motion", "fast_forward"):
            continue  # clean frames only, checked by path above
        start, length = sample["draws"]["start"], sample["draws"]["length"]
        for offset in range(length):
            got, clean = frames[start + offset], clip.frames[start + offset]
            _check_family(sample["variant"], got, clean, clip, sample["draws"], offset)


def _check_family(family, got, clean, clip, draws, offset):
    h, w = clean.shape[:2]
    if family == "mirror":
        assert np.array_equal(got, clean[:, ::-1])
    elif family == "rotate180":
        assert np.array_equal(got, clean[::-1, ::-1])
    elif family in ("rotate90", "rotate270"):
        # clockwise quarter turn, fitted centred on black (a band on the left and right)
        turns = {"rotate90": -1, "rotate270": 1}[family]
        assert np.array_equal(got, pt.letterbox(np.rot90(clean, turns).copy(), w, h))
        assert got[:, :2].max() == 0 and got[:, -2:].max() == 0
    elif family == "channel_swap":
        assert np.array_equal(got, clean[:, :, ::-1])
    elif family == "invert":
        assert np.array_equal(got, 255 - clean)
    elif family == "grayscale":
        assert np.array_equal(got[..., 0], got[..., 1]) and np.array_equal(got[..., 1], got[..., 2])
    elif family == "zoom_out":
        # shrunk by 1.2-1.4 and centred on black: a black band on every side
        assert got[:2].max() == 0 and got[-2:].max() == 0
        assert got[:, :2].max() == 0 and got[:, -2:].max() == 0
    elif family in ("shuffle", "shuffle_derange"):
        source = draws["start"] + draws["order"][offset]
        assert np.array_equal(got, clip.frames[source])
        if family == "shuffle_derange":
            assert source != draws["start"] + offset
    elif family == "stutter":
        held = stutter_offsets(draws["length"], draws["holds"])[offset]
        assert np.array_equal(got, clip.frames[draws["start"] + held])
    elif family == "noise":
        diff = got.astype(float) - clean
        assert 20 < diff.std() < 80
    elif family == "saturation":
        # PIL's Color enhance at factor 2: grey + 2 (pixel - grey), grey the 601-2 luma
        grey = np.asarray(Image.fromarray(clean).convert("L")).astype(float)[..., None]
        want = np.clip(grey + 2 * (clean - grey), 0, 255)
        assert np.abs(got - want).max() <= 1
    elif family == "blur":
        _check_blur(got, clean)
    elif family == "zoom_in":
        _check_zoom_in(got, clean, draws["scales"][offset])
    elif family == "swap":
        assert draws["donor"]["path"] != clip.video_path


def _check_blur(got, clean):
    """A Gaussian of radius 2: the mean colour kept, fine detail (the Laplacian's energy)
    mostly gone, and close to scipy's Gaussian of sigma 2 away from the borders."""
    from scipy.ndimage import gaussian_filter, laplace

    assert abs(got.mean() - clean.mean()) < 1.0
    grey, sharp = got.astype(float).mean(axis=2), clean.astype(float).mean(axis=2)
    assert laplace(grey).var() < 0.25 * laplace(sharp).var()
    want = gaussian_filter(clean.astype(float), sigma=(2, 2, 0))
    assert np.abs(got - want)[8:-8, 8:-8].mean() < 2.0


def _check_zoom_in(got, clean, scale):
    """The centred 1/scale box, enlarged: shrunk back by `scale` it matches the clean frame's
    centre (and not its whole picture)."""
    h, w = clean.shape[:2]
    crop_w, crop_h = round(w / scale), round(h / scale)
    left, top = (w - crop_w) // 2, (h - crop_h) // 2
    centre = clean[top:top + crop_h, left:left + crop_w].astype(float)
    shrunk = np.asarray(Image.fromarray(got).resize((crop_w, crop_h), Image.Resampling.BOX))
    whole = np.asarray(Image.fromarray(clean).resize((crop_w, crop_h), Image.Resampling.BOX))
    # resampling twice costs a few grey levels (up to ~8 on the 176x144 carphone clip); the
    # unzoomed picture is 20-55 away
    assert np.abs(shrunk - centre).mean() < 12.0
    assert np.abs(shrunk - centre).mean() < 0.3 * np.abs(whole - centre).mean()


def test_jigsaw_answer_restores_chronological_frames(samples, clips, all_variants_testset):
    for sample in of_task(samples, "temporal_jigsaw"):
        clip = clips[sample["video"]["path"]]
        parts = sample["prompt"]
        shown = [p["frames"] for p in parts if p["type"] == "video"]
        n = sample["draws"]["clips"]
        assert len(shown) == n and len(sample["answer"]) == n
        # the clips first, each after its label, then the question
        assert [p["type"] for p in parts] == ["text", "video"] * n + ["text"]
        labels = [p["text"] for p in parts[:-1] if p["type"] == "text"]
        assert labels == [f"Clip {i}:" for i in range(1, n + 1)]
        restored = [path for label in sample["answer"] for path in shown[int(label) - 1]]
        clean = clean_paths(clip)
        positions = [clean.index(p) for p in restored]
        assert positions == sorted(positions)  # chronological after reordering
        if sample["draws"]["trim"]:
            assert len(positions) < 48
        else:
            assert positions == list(range(48))
        assert [int(c) for c in sample["answer"]] != list(range(1, n + 1))  # never in order
        # pixels: the first restored clip's first frame is the clean frame it claims to be
        got, want = frames_of(all_variants_testset, [restored[0], clean[positions[0]]])
        assert np.array_equal(got, want)


# Painted area / (pi * (size / 2) ** 2) of each shape: circle radius size // 2, square of side
# 2 * (size // 2), triangle of base 2 * (size // 2) and height size * sqrt(3) / 2.
FILL = {"circle": 1.0, "square": 4 / math.pi, "triangle": math.sqrt(3) / math.pi}
COUNTED = ("circle", "square", "triangle")


def _classify(area: float, size: float) -> str:
    ratio = area / (math.pi * (size / 2) ** 2)
    return min(FILL, key=lambda shape: abs(FILL[shape] - ratio))


def test_counting_shapes_are_where_and_how_many_the_answer_says(samples, clips, real_videos):
    for sample in of_task(samples, "object_counting"):
        clip = clips[sample["video"]["path"]]
        frames = rendered_frames(sample, clip, real_videos)
        draws = sample["draws"]
        assert_paint_matches_draws(frames, clip, draws)
        truth = [int(x) for x in sample["answer"].split(",")]
        assert truth == [sum(len(frame["instances"]) for frame in draws["shapes"][shape]["frames"])
                         for shape in COUNTED]
        drawn_on = {position for position, (got, clean) in enumerate(zip(frames, clip.frames))
                    if np.any(got != clean)}
        chosen = [frame["position"]
                  for spec in draws["shapes"].values() for frame in spec["frames"]]
        assert drawn_on == set(chosen) and len(chosen) == len(drawn_on)
        for spec in draws["shapes"].values():
            positions = [frame["position"] for frame in spec["frames"]]
            assert all(b - a > 8 for a, b in zip(positions, positions[1:]))
        top = 4 if sample["variant"].startswith("hard") else 3
        assert all(1 <= v <= top * top for v in truth)
        if sample["variant"].endswith("_clean"):   # separate shapes: count them from the pixels
            assert _counted_from_pixels(sample, frames, clip) == truth


def _counted_from_pixels(sample, frames, clip) -> list[int]:
    """Shapes per kind found as connected changed regions, each classified by its area."""
    counted = {shape: 0 for shape in FILL}
    for position, (got, clean) in enumerate(zip(frames, clip.frames)):
        labels, found = ndimage.label(np.any(got != clean, axis=2), structure=np.ones((3, 3)))
        for component in range(1, found + 1):
            blob = labels == component
            ys, xs = np.nonzero(blob)
            shape, instance = _instance_at(sample, position, xs.mean(), ys.mean())
            counted[_classify(blob.sum(), instance["size"])] += 1
            assert np.all(got[blob][len(got[blob]) // 2] == instance["colour"])
            assert max(np.ptp(xs), np.ptp(ys)) + 1 <= 2 * reach(shape, instance["size"])
    return [counted[shape] for shape in COUNTED]


def _instance_at(sample, position, x, y):
    """(shape, recorded instance) nearest to (x, y) on the frame at `position`."""
    for shape, spec in sample["draws"]["shapes"].items():
        for frame in spec["frames"]:
            if frame["position"] == position:
                nearest = min(frame["instances"], key=lambda i: math.dist(i["centre"], (x, y)))
                return shape, nearest
    raise AssertionError(f"shape drawn on frame {position}, which no draw chose")
