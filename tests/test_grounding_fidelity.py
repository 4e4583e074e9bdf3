"""Anomaly Grounding against the VideoSSR authors' rules, on small synthetic clips: every
family's pixels, the run geometry of the speed families, the question's wording, and the exact
expected IoU of the `whole` and `prior` baselines."""

from __future__ import annotations

import itertools
import random
import re
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from tasks import perturbations as pt
from tasks import prompts
from tasks.anomaly_grounding import TASK, VIUBENCH_FAMILIES, stutter_offsets
from viubench.task import Clip, DonorSource, Parsed, TextPart, VideoPart
from viubench.video import VideoInfo

FPS = 2.0   # every frame time k / 2 is exact at one decimal
LENGTHS = range(8, 17)


def synthetic_clip(width: int = 20, height: int = 12, seed: int = 0, fps: float = FPS,
                   name: str = "synthetic.mp4") -> Clip:
    """48 frames of random colour noise (no symmetry, so every move of a pixel shows)."""
    frames = np.random.default_rng(seed).integers(0, 256, (48, height, width, 3), dtype=np.uint8)
    info = VideoInfo(name, "h264", width, height, 48, fps, 48 / fps)
    return Clip(name, f"hash-{seed}", info, list(range(48)), frames, fps, "pyav")


def donors_for(clip: Clip) -> DonorSource:
    donor = synthetic_clip(clip.size[0], clip.size[1], seed=99, name="donor.mp4")
    return DonorSource(["donor.mp4", clip.video_path], lambda path, size: donor)


def sample(family: str, seed: int = 0, clip: Clip | None = None):
    """(clip, draws, shown frames as arrays, rendered) of one drawn sample."""
    clip = clip or synthetic_clip()
    donors = donors_for(clip)
    draws = TASK.draw(random.Random(seed), clip, family, donors)
    rendered = TASK.render(clip, family, draws, donors)
    video = rendered.prompt[0]
    assert isinstance(video, VideoPart)
    shown = [clip.frames[f] if isinstance(f, int) else f for f in video.frames]
    return clip, draws, shown, rendered


def run_frames(family: str, seed: int = 0, clip: Clip | None = None):
    clip, draws, shown, _ = sample(family, seed, clip)
    start, length = draws["start"], draws["length"]
    return clip, draws, shown[start:start + length]


def pil(frame: np.ndarray) -> Image.Image:
    return Image.fromarray(frame)


# Each per-frame family against the authors' PIL operation, written out independently.
REFERENCE = {
    "grayscale": lambda im: ImageOps.grayscale(im).convert("RGB"),
    "invert": ImageOps.invert,
    "channel_swap": lambda im: Image.merge("RGB", im.split()[::-1]),
    "rotate180": lambda im: im.rotate(180),
    "mirror": ImageOps.mirror,
    "blur": lambda im: im.filter(ImageFilter.GaussianBlur(radius=2)),
    "saturation": lambda im: ImageEnhance.Color(im).enhance(2.0),
}


@pytest.mark.parametrize("family", sorted(REFERENCE))
def test_frame_families_equal_the_authors_operations(family):
    clip, draws, frames = run_frames(family)
    for offset, got in enumerate(frames):
        want = np.asarray(REFERENCE[family](pil(clip.frames[draws["start"] + offset])))
        assert np.array_equal(got, want), (family, offset)


def test_rotations_turn_clockwise():
    frame = np.zeros((16, 16, 3), dtype=np.uint8)
    frame[0, 0] = (255, 0, 0)    # a red top-left corner ...
    frame[0, 1] = (0, 255, 0)    # ... with a green pixel to its right
    turned = pt.rotate(frame, 90)
    assert tuple(turned[0, 15]) == (255, 0, 0) and tuple(turned[1, 15]) == (0, 255, 0)
    assert np.array_equal(turned, np.asarray(pil(frame).rotate(-90, expand=True)))
    assert np.array_equal(pt.rotate(frame, 270), np.asarray(pil(frame).rotate(90, expand=True)))
    assert tuple(pt.rotate(frame, 270)[15, 0]) == (255, 0, 0)


@pytest.mark.parametrize("family, degrees", [("rotate90", 90), ("rotate270", 270)])
def test_quarter_turns_of_a_wide_frame_are_letterboxed_clockwise_turns(family, degrees):
    clip, draws, frames = run_frames(family)
    w, h = clip.size
    for offset, got in enumerate(frames):
        turned = pil(clip.frames[draws["start"] + offset]).rotate(-degrees, expand=True)
        fit_w = round(turned.width * h / turned.height)   # 12 x 20 turned, fit into 20 x 12
        want = np.zeros_like(got)
        left = (w - fit_w) // 2
        want[:, left:left + fit_w] = np.asarray(turned.resize((fit_w, h),
                                                              Image.Resampling.BILINEAR))
        assert got.shape == (h, w, 3) and np.array_equal(got, want)


def test_zoom_in_is_lanczos_of_the_centred_float_box():
    clip, draws, frames = run_frames("zoom_in", clip=synthetic_clip(37, 23))
    w, h = clip.size
    scales = draws["scales"]
    assert len(scales) == draws["length"] and len(set(scales)) > 1   # one scale per frame
    for offset, (got, scale) in enumerate(zip(frames, scales)):
        assert 1.3 <= scale <= 1.5
        nw, nh = w / scale, h / scale
        box = ((w - nw) / 2, (h - nh) / 2, (w + nw) / 2, (h + nh) / 2)
        source = pil(clip.frames[draws["start"] + offset])
        want = source.crop(box).resize((w, h), Image.Resampling.LANCZOS)
        assert np.array_equal(got, np.asarray(want))


def test_zoom_out_is_lanczos_shrink_pasted_on_black():
    clip, draws, frames = run_frames("zoom_out", clip=synthetic_clip(37, 23))
    w, h = clip.size
    scales = draws["scales"]
    assert len(scales) == draws["length"] and len(set(scales)) > 1
    for offset, (got, scale) in enumerate(zip(frames, scales)):
        assert 1.2 <= scale <= 1.4
        nw, nh = int(w / scale), int(h / scale)
        shrunk = pil(clip.frames[draws["start"] + offset]).resize((nw, nh),
                                                                  Image.Resampling.LANCZOS)
        canvas = Image.new("RGB", (w, h), (0, 0, 0))
        canvas.paste(shrunk, ((w - nw) // 2, (h - nh) // 2))
        assert np.array_equal(got, np.asarray(canvas))


def test_noise_is_gaussian_of_each_frames_drawn_sigma_and_reproducible():
    grey = synthetic_clip(64, 64)
    grey.frames[:] = 128   # far from both clipping bounds
    clip, draws, frames = run_frames("noise", clip=grey)
    assert len(draws["sigmas"]) == draws["length"] and len(set(draws["sigmas"])) > 1
    for got, sigma in zip(frames, draws["sigmas"]):
        assert 35 <= sigma <= 70
        assert abs((got.astype(float) - 128).std() / sigma - 1) < 0.1
    again = run_frames("noise", clip=grey)[2]
    assert all(np.array_equal(a, b) for a, b in zip(frames, again))


def test_swap_shows_the_same_positions_of_the_donor():
    clip, draws, frames = run_frames("swap")
    donor = synthetic_clip(*clip.size, seed=99)
    start = draws["start"]
    assert draws["donor"] == {"path": "donor.mp4", "hash": "hash-99"}
    assert all(np.array_equal(got, donor.frames[start + i]) for i, got in enumerate(frames))


def _holds(offsets: list[int]) -> list[tuple[int, int]]:
    return [(value, len(list(group))) for value, group in itertools.groupby(offsets)]


def test_stutter_holds_sit_at_the_linspace_positions_with_the_stated_repeats():
    assert stutter_offsets(10, 3) == [0, 0, 0, 0, 4, 4, 4, 9, 9, 9]
    assert stutter_offsets(16, 5) == [0] * 4 + [3] * 3 + [7] * 3 + [11] * 3 + [15] * 3
    for length, holds in itertools.product(LENGTHS, (2, 3, 4, 5)):
        base, extra = divmod(length, holds)
        positions = [int(p) for p in np.linspace(0, length - 1, holds)]
        repeats = [base + 1] * extra + [base] * (holds - extra)
        assert _holds(stutter_offsets(length, holds)) == list(zip(positions, repeats))


def test_stutter_samples_show_their_holds():
    seen = set()
    for seed in range(40):
        clip, draws, frames = run_frames("stutter", seed)
        seen.add(draws["holds"])
        offsets = stutter_offsets(draws["length"], draws["holds"])
        assert all(np.array_equal(got, clip.frames[draws["start"] + off])
                   for got, off in zip(frames, offsets))
    assert seen == {2, 3, 4, 5}


@pytest.mark.parametrize("family", ["shuffle", "shuffle_derange"])
def test_shuffles_are_never_the_identity(family):
    for seed in range(60):
        clip, draws, frames = run_frames(family, seed)
        order = draws["order"]
        assert sorted(order) == list(range(draws["length"])) and order != sorted(order)
        if family == "shuffle_derange":
            assert all(source != place for place, source in enumerate(order))
        assert all(np.array_equal(got, clip.frames[draws["start"] + source])
                   for got, source in zip(frames, order))


def test_plain_shuffle_may_keep_some_frames_in_place():
    """The authors shuffle freely: only the identity is redrawn, fixed points stay possible."""
    kept = [any(s == p for p, s in enumerate(sample("shuffle", seed)[1]["order"]))
            for seed in range(30)]
    assert any(kept)


def test_slow_motion_shows_each_run_frame_twice_on_a_longer_timeline():
    for seed in range(20):
        clip, draws, shown, rendered = sample("slow_motion", seed)
        start, t = draws["start"], draws["length"]
        assert 8 <= t <= 16 and 0 <= start <= 48 - t
        frames = rendered.prompt[0].frames
        assert len(frames) == 48 + t
        assert list(frames) == [*range(start), *[i for i in range(start, start + t)
                                                 for _ in (0, 1)], *range(start + t, 48)]
        assert rendered.answer == f"{start / FPS:.1f}-{(start + 2 * t) / FPS:.1f}"


def test_fast_forward_shows_every_second_frame_of_a_double_run():
    for seed in range(20):
        clip, draws, shown, rendered = sample("fast_forward", seed)
        start, t = draws["start"], draws["length"]
        assert 8 <= t <= 16 and 0 <= start <= 48 - 2 * t
        frames = rendered.prompt[0].frames
        assert len(frames) == 48 - t
        assert list(frames) == [*range(start), *range(start, start + 2 * t, 2),
                                *range(start + 2 * t, 48)]
        assert rendered.answer == f"{start / FPS:.1f}-{(start + t) / FPS:.1f}"


def test_questions_name_the_change_and_never_the_duration_or_frame_count():
    clip = synthetic_clip(fps=3.7)   # 48 frames: 13.0 s
    allowed = {"14.5", "26.2", "90", "180", "270"}   # the format example and turn angles
    for family in TASK.variants:
        _, draws, shown, rendered = sample(family, clip=clip)
        question = [p.text for p in rendered.prompt if isinstance(p, TextPart)]
        assert len(question) == 1 and isinstance(rendered.prompt[0], VideoPart)
        numbers = set(re.findall(r"\d+(?:\.\d+)?", question[0]))
        assert numbers <= allowed, (family, numbers - allowed)
        assert "14.5-26.2" in question[0] and "second" in question[0]
        assert rendered.system == prompts.SYSTEM and rendered.prompt_set == prompts.PROMPT_SET
    assert "zoomed out" in TASK.variants["zoom_out"].description
    assert not re.search(r"black|border", TASK.variants["zoom_out"].description)
    assert "clockwise" in TASK.variants["rotate90"].description


def test_speed_families_are_variants_outside_the_viubench_suite():
    assert {"slow_motion", "fast_forward", "shuffle_derange"} <= set(TASK.variants)
    assert not {"slow_motion", "fast_forward", "shuffle_derange"} & set(VIUBENCH_FAMILIES)
    assert TASK.suites["viubench"] == VIUBENCH_FAMILIES


def test_metrics_and_reward_are_the_iou_of_the_parsed_interval():
    half = Parsed((2.0, 6.0))   # against 4.0-8.0: overlap 2 s of a 6 s union
    assert TASK.reward(half, "4.0-8.0") == pytest.approx(1 / 3)
    assert TASK.metrics(half, "4.0-8.0") == pytest.approx(
        {"score": 1 / 3, "iou": 1 / 3, "r@0.3": 1.0, "r@0.5": 0.0, "r@0.7": 0.0})
    assert TASK.metrics(Parsed((4.0, 8.0)), "4.0-8.0")["r@0.7"] == 1.0
    assert TASK.reward(Parsed((9.0, 12.0)), "4.0-8.0") == 0.0
    failed = Parsed(error="no interval")
    assert TASK.reward(failed, "4.0-8.0") == 0.0 and TASK.metrics(failed, "4.0-8.0")["score"] == 0


# ---- baselines: exact expected IoU over the generator's (t, start) distribution ----

GEOMETRY = {"mirror": (1, 1), "slow_motion": (1, 2), "fast_forward": (2, 1)}  # source, shown


def outcomes(family: str) -> list[tuple[int, int, Fraction]]:
    """(start, end, probability) of the shown run: t uniform on 8..16, then start uniform."""
    source, shown = GEOMETRY[family]
    found = []
    for t in LENGTHS:
        starts = range(48 - source * t + 1)
        found += [(s, s + shown * t, Fraction(1, 9 * len(starts))) for s in starts]
    return found


def iou(a, b, s, e):
    return Fraction(max(0, min(b, e) - max(a, s)), max(b, e) - min(a, s))


def expected(a, b, family="mirror") -> Fraction:
    return sum(p * iou(a, b, s, e) for s, e, p in outcomes(family))


def frames_of(answer: str, fps: float = 1.0) -> tuple[int, int]:
    a, b = answer.split("-")
    return round(float(a) * fps), round(float(b) * fps)


TIMELINE = {"indices": list(range(0, 480, 10)), "sample_fps": 1.0, "size": [20, 12]}


def test_whole_answer_spans_the_sampled_frames_and_scores_the_papers_random_row():
    assert TASK.whole_answer("mirror", TIMELINE) == "0.0-47.0"
    assert TASK.whole_answer("mirror", {**TIMELINE, "sample_fps": 2.0}) == "0.0-23.5"
    assert float(expected(0, 47)) == pytest.approx(0.2546067, abs=1e-7)   # paper: 25.2-25.9


def test_whole_answer_scored_through_rendered_answers_matches_the_enumeration():
    clip = synthetic_clip(4, 4)
    whole = Parsed(tuple(float(x) for x in TASK.whole_answer("mirror", TIMELINE | {
        "sample_fps": FPS}).split("-")))
    total = Fraction(0)
    for t in LENGTHS:
        for start in range(48 - t + 1):
            draws = {"family": "mirror", "length": t, "start": start}
            answer = TASK.render(clip, "mirror", draws, donors_for(clip)).answer
            total += Fraction(TASK.metrics(whole, answer)["score"]) / (9 * (49 - t))
    assert float(total) == pytest.approx(float(expected(0, 47)), abs=1e-12)


@pytest.mark.parametrize("family, interval, value", [
    ("mirror", (10, 38), 0.3060244), ("slow_motion", (13, 47), 0.4996673),
    ("fast_forward", (7, 27), 0.4193577)])
def test_prior_answer_is_the_best_fixed_interval_on_the_grid(family, interval, value):
    answer = TASK.prior_answer(family, TIMELINE)
    assert frames_of(answer) == interval
    assert TASK.prior_answer(family, {**TIMELINE, "sample_fps": FPS}) == \
        f"{interval[0] / FPS:.1f}-{interval[1] / FPS:.1f}"
    assert float(expected(*interval, family)) == pytest.approx(value, abs=1e-7)
    # every other interval on the shown grid does worse (floats: the grid is large)
    runs = [(s, e, float(p)) for s, e, p in outcomes(family)]
    top = max(e for _, e, _ in runs)
    best = sum(p * (max(0, min(interval[1], e) - max(interval[0], s))
                    / (max(interval[1], e) - min(interval[0], s))) for s, e, p in runs)
    for a in range(top):
        for b in range(a + 1, top + 1):
            if (a, b) != interval:
                score = sum(p * max(0, min(b, e) - max(a, s)) / (max(b, e) - min(a, s))
                            for s, e, p in runs)
                assert score < best - 1e-12, (a, b)


def test_prior_beats_the_whole_answer_for_every_family():
    assert expected(10, 38) > expected(0, 47)
    for family in TASK.variants:
        if family not in GEOMETRY:
            assert TASK.prior_answer(family, TIMELINE) == "10.0-38.0"


def test_random_answers_follow_each_familys_shown_run():
    rng = random.Random(3)
    for family, (source, shown) in GEOMETRY.items():
        for _ in range(200):
            a, b = frames_of(TASK.random_answer(rng, family, TIMELINE))
            t = (b - a) // shown
            assert (b - a) % shown == 0 and 8 <= t <= 16 and 0 <= a <= 48 - source * t
