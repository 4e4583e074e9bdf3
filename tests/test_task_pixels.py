"""Answers checked against the pixels of built samples (real footage, every variant)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from conftest import frames_of, samples_of
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


def test_grounding_changed_frames_are_exactly_the_interval(samples, clips, all_variants_testset):
    for sample in of_task(samples, "anomaly_grounding"):
        clip = clips[sample["video"]["path"]]
        shown = video_frames(sample)
        assert len(shown) == 48
        changed = {i for i, (a, b) in enumerate(zip(shown, clean_paths(clip))) if a != b}
        start, length = sample["draws"]["start"], sample["draws"]["length"]
        interval = set(range(start, start + length))
        if sample["variant"] == "stutter":
            holds = sample["draws"]["holds"]
            firsts = {start + (i * length) // holds for i in range(holds)}
            assert changed == interval - firsts
        else:
            assert changed == interval, sample["variant"]
        # The changed media really differ in pixels from the clean frames.
        for position in changed:
            pair = [shown[position], clean_paths(clip)[position]]
            got, clean = frames_of(all_variants_testset, pair)
            assert np.abs(got.astype(int) - clean).mean() > 0.1
        fps = sample["frames"]["sample_fps"]
        assert sample["answer"] == f"{start / fps:.1f}-{(start + length) / fps:.1f}"
        assert 8 <= length <= 16 and 0 <= start <= 48 - length


def test_grounding_families_do_what_they_say(samples, clips, real_videos):
    for sample in of_task(samples, "anomaly_grounding"):
        clip = clips[sample["video"]["path"]]
        frames = rendered_frames(sample, clip, real_videos)
        start, length = sample["draws"]["start"], sample["draws"]["length"]
        family = sample["variant"]
        for offset in range(length):
            got, clean = frames[start + offset], clip.frames[start + offset]
            assert got.shape == clean.shape  # no family ever changes the frame size
            _check_family(family, got, clean, clip, sample["draws"], offset)


def _check_family(family, got, clean, clip, draws, offset):
    h, w = clean.shape[:2]
    if family == "mirror":
        assert np.array_equal(got, clean[:, ::-1])
    elif family == "rotate180":
        assert np.array_equal(got, clean[::-1, ::-1])
    elif family == "channel_swap":
        assert np.array_equal(got, clean[:, :, ::-1])
    elif family == "invert":
        assert np.array_equal(got, 255 - clean)
    elif family == "grayscale":
        assert np.array_equal(got[..., 0], got[..., 1]) and np.array_equal(got[..., 1], got[..., 2])
    elif family in ("rotate90", "rotate270", "zoom_out"):
        # Content is letterboxed: a black band on the left and right (or all around).
        assert got[:, :2].max() == 0 and got[:, -2:].max() == 0
    elif family == "shuffle":
        source = draws["start"] + draws["order"][offset]
        assert source != draws["start"] + offset and np.array_equal(got, clip.frames[source])
    elif family == "noise":
        diff = got.astype(float) - clean
        assert 20 < diff.std() < 80
    elif family in ("blur", "saturation", "zoom_in"):
        assert not np.array_equal(got, clean)
    elif family == "swap":
        assert draws["donor"]["path"] != clip.video_path


def test_jigsaw_answer_restores_chronological_frames(samples, clips, all_variants_testset):
    for sample in of_task(samples, "temporal_jigsaw"):
        clip = clips[sample["video"]["path"]]
        parts = sample["prompt"]
        shown = [p["frames"] for p in parts if p["type"] == "video"]
        n = sample["draws"]["clips"]
        assert len(shown) == n and len(sample["answer"]) == n
        labels = [p["text"] for p in parts if p["type"] == "text" and p["text"].startswith("Clip ")]
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


FILL = {"circle": 1.0, "square": 2 / math.pi, "triangle": 3 * math.sqrt(3) / (4 * math.pi)}


def _classify(area: float, size: float) -> str:
    ratio = area / (math.pi * (size / 2) ** 2)
    return min(FILL, key=lambda shape: abs(FILL[shape] - ratio))


def test_counting_shapes_are_where_and_how_many_the_answer_says(samples, clips, real_videos):
    for sample in of_task(samples, "object_counting"):
        clip = clips[sample["video"]["path"]]
        frames = rendered_frames(sample, clip, real_videos)
        counted = {shape: 0 for shape in FILL}
        drawn_on = set()
        for position, (got, clean) in enumerate(zip(frames, clip.frames)):
            mask = np.any(got != clean, axis=2)
            if not mask.any():
                continue
            drawn_on.add(position)
            labels, found = ndimage.label(mask, structure=np.ones((3, 3)))
            for component in range(1, found + 1):
                blob = labels == component
                ys, xs = np.nonzero(blob)
                size = max(np.ptp(xs), np.ptp(ys)) + 1
                instance = _instance_at(sample, position, xs.mean(), ys.mean())
                counted[_classify(blob.sum(), instance["size"])] += 1
                assert np.all(got[blob][len(got[blob]) // 2] == instance["colour"])
                assert size <= instance["size"] + 2
        truth = [int(x) for x in sample["answer"].split(",")]
        assert [counted[s] for s in ("circle", "square", "triangle")] == truth
        chosen = {f for spec in sample["draws"]["shapes"].values() for f in spec["frames"]}
        assert drawn_on == chosen
        for spec in sample["draws"]["shapes"].values():
            assert all(b - a > 8 for a, b in zip(spec["frames"], spec["frames"][1:]))
        top = 3 if sample["variant"] == "easy" else 4
        assert all(1 <= v <= top * top for v in truth)


def _instance_at(sample, position, x, y):
    for spec in sample["draws"]["shapes"].values():
        if position in spec["frames"]:
            instances = spec["instances"][spec["frames"].index(position)]
            return min(instances, key=lambda i: math.dist(i["centre"], (x, y)))
    raise AssertionError(f"shape drawn on frame {position}, which no draw chose")
