"""Object Counting against the VideoSSR authors' rules: the Eq. 1 count distribution, frame
choice, shape geometry, how often the authors' painter overlaps shapes (against an independent
Monte Carlo of their placement rule), hidden shapes, the clean painter, pixels on real footage,
and the exact prior baseline."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from tasks import counting_geometry as geometry
from tasks import prompts
from tasks.object_counting import (SHAPES, TASK, answer_counts, count_pmf, draw_counts,
                                   pick_frames)
from viubench.clips import read_clips
from viubench.task import Clip, DonorSource, Parsed, TaskSkip, TextPart, VideoPart
from viubench.video import FrameProtocol, VideoInfo

NO_DONORS = DonorSource([], lambda path, size: None)
WIDE, SQUARE = (682, 384), (384, 384)


def blank_clip(width: int, height: int) -> Clip:
    """48 black frames: drawing needs only the frame size."""
    frames = np.zeros((48, height, width, 3), dtype=np.uint8)
    info = VideoInfo("blank.mp4", "h264", width, height, 48, 2.0, 24.0)
    return Clip("blank.mp4", "hash-blank", info, list(range(48)), frames, 2.0, "pyav")


def params_of(variant: str):
    return TASK.variants[variant].params


# --- Eq. 1: the distribution of the answers --------------------------------------------------

@pytest.mark.parametrize("top_frames,top_count", [(3, 3), (4, 4), (2, 5)])
def test_count_pmf_equals_brute_force(top_frames, top_count):
    brute: Counter = Counter()
    for k in range(1, top_frames + 1):
        for counts in itertools.product(range(1, top_count + 1), repeat=k):
            brute[sum(counts)] += Fraction(1, top_frames * top_count ** k)
    assert count_pmf(top_frames, top_count) == dict(brute)
    assert sum(brute.values()) == 1


def generator_totals(variant: str, draws: int) -> list[int]:
    """Per-shape answers of `draws` samples of the generator's own count step."""
    rng = random.Random(2024)
    totals = []
    for _ in range(draws):
        for chosen in draw_counts(rng, 48, params_of(variant)).values():
            totals.append(sum(count for _, count in chosen))
    return totals


def chi_square_p(totals: list[int], pmf: dict[int, Fraction]) -> float:
    """Goodness of fit of `totals` to `pmf`, neighbouring values pooled until each bin expects
    at least 5 (values outside the pmf's support pool with their neighbours)."""
    seen = Counter(totals)
    values = sorted(set(seen) | set(pmf))
    observed, expected, bin_seen, bin_expected = [], [], 0, 0.0
    for value in values:
        bin_seen += seen[value]
        bin_expected += float(pmf.get(value, 0)) * len(totals)
        if bin_expected >= 5:
            observed.append(bin_seen)
            expected.append(bin_expected)
            bin_seen, bin_expected = 0, 0.0
    observed[-1] += bin_seen
    expected[-1] += bin_expected
    return float(stats.chisquare(observed, expected).pvalue)


def product_pmf(top_frames: int, top_count: int) -> dict[int, Fraction]:
    """The old k*j rule: one count j painted on each of k frames."""
    pmf: Counter = Counter()
    for k in range(1, top_frames + 1):
        for j in range(1, top_count + 1):
            pmf[k * j] += Fraction(1, top_frames * top_count)
    return dict(pmf)


@pytest.mark.parametrize("variant,top", [("easy", 3), ("hard", 4)])
def test_generator_totals_fit_eq1_and_reject_the_product_rule(variant, top):
    totals = generator_totals(variant, 3400)          # 10,200 per-shape answers
    assert chi_square_p(totals, count_pmf(top, top)) > 0.001
    assert chi_square_p(totals, product_pmf(top, top)) < 1e-6
    assert min(totals) == 1 and max(totals) <= top * top


@pytest.mark.parametrize("variant,top", [("easy", 3), ("hard", 4)])
def test_frames_of_a_shape_are_apart_unshared_and_exactly_k(variant, top):
    rng = random.Random(5)
    frame_counts: Counter = Counter()
    for _ in range(3000):
        chosen = draw_counts(rng, 48, params_of(variant))
        used = [position for pairs in chosen.values() for position, _ in pairs]
        assert len(used) == len(set(used))                      # one kind per frame
        for pairs in chosen.values():
            positions = [position for position, _ in pairs]
            assert all(b - a > 8 for a, b in zip(positions, positions[1:]))
            assert all(1 <= count <= top for _, count in pairs)
            frame_counts[len(pairs)] += 1
    # k is uniform: the walk never stops short (the authors' script does for ~0.16% of hard k).
    observed = [frame_counts[k] for k in range(1, top + 1)]
    assert sum(observed) == 9000
    assert stats.chisquare(observed).pvalue > 0.001


def test_pick_frames_keeps_exactly_k_or_skips():
    rng = random.Random(0)
    for _ in range(500):
        kept = pick_frames(rng, list(range(36)), 4, 8)   # 0, 9, 18, 27 barely fit
        assert len(kept) == 4 and all(abs(a - b) > 8 for a, b in itertools.combinations(kept, 2))
    with pytest.raises(TaskSkip):
        pick_frames(rng, list(range(27)), 4, 8)


def test_draws_record_frames_counts_and_instances():
    clip = blank_clip(*WIDE)
    for seed in range(4):
        draws = TASK.draw(random.Random(seed), clip, "hard", NO_DONORS)
        assert json.loads(json.dumps(draws)) == draws
        for spec in draws["shapes"].values():
            assert set(spec) == {"frames", "hidden"}
            for frame in spec["frames"]:
                assert len(frame["instances"]) == frame["count"]
                for instance in frame["instances"]:
                    assert set(instance) == {"centre", "size", "colour", "angle"}
                    assert 76 <= instance["size"] <= 153           # int(0.2*384)..int(0.4*384)
                    assert all(50 <= c <= 255 for c in instance["colour"])
                    assert 0 <= instance["angle"] < 360
        rendered = TASK.render(clip, "hard", json.loads(json.dumps(draws)), NO_DONORS)
        assert rendered.answer == ",".join(map(str, answer_counts(draws)))
        assert TASK.knobs({"draws": draws})["total_shapes"] == sum(answer_counts(draws))


# --- geometry ---------------------------------------------------------------------------------

# Corners computed with OpenCV 5.1: cv2.getRotationMatrix2D((0, 0), angle, 1) applied to the
# authors' float32 outline, plus the centre, cast to int32 (their draw_square / draw_triangle).
OPENCV_CORNERS = [
    ("square", [200, 150], 101, 0.0, [(150, 100), (250, 100), (250, 200), (150, 200)]),
    ("square", [200, 150], 100, 90.0, [(150, 200), (150, 100), (250, 100), (250, 200)]),
    ("square", [321, 187], 77, 30.0, [(269, 173), (334, 135), (372, 200), (307, 238)]),
    ("triangle", [200, 150], 100, 0.0, [(200, 107), (150, 193), (250, 193)]),
    ("triangle", [200, 150], 100, 90.0, [(157, 150), (243, 200), (243, 100)]),
    ("triangle", [321, 187], 131, 217.25, [(355, 231), (338, 102), (235, 181)]),
]


@pytest.mark.parametrize("shape,centre,size,angle,expected", OPENCV_CORNERS)
def test_corners_match_opencv(shape, centre, size, angle, expected):
    instance = {"centre": centre, "size": size, "colour": [255, 255, 255], "angle": angle}
    assert geometry.corners(shape, instance) == expected


def test_circle_radius_and_painting_order():
    first = {"centre": [50, 50], "size": 41, "colour": [200, 60, 60], "angle": 0.0}
    second = {"centre": [60, 50], "size": 40, "colour": [60, 200, 60], "angle": 0.0}
    frame = geometry.paint(np.zeros((100, 100, 3), np.uint8), "circle", [first, second])
    mask = geometry.instance_mask("circle", first, 100, 100)
    ys, xs = np.nonzero(mask)
    assert xs.min() == 30 and xs.max() == 70 and ys.min() == 30 and ys.max() == 70  # radius 20
    assert list(frame[50, 60]) == second["colour"] and list(frame[50, 31]) == first["colour"]


def test_videossr_centre_falls_back_without_spacing_when_the_box_is_empty():
    # 20 x 20 frame: central box 14 wide, margin int(0.75 * 10) = 7 leaves nothing inside it.
    rng = random.Random(0)
    centres = {tuple(geometry.videossr_centre(rng, 10, [[10, 10]], 20, 20)) for _ in range(300)}
    assert {c for xy in centres for c in xy} == set(range(7, 14))    # uniform in [7, 20 - 7]
    assert any(math.dist(centre, (10, 10)) < 10 for centre in centres)  # no spacing check


# --- overlaps and hidden shapes -------------------------------------------------------------

def placement_monte_carlo(rng: random.Random, shape: str, count: int, width: int,
                          height: int) -> bool:
    """Whether one frame of the authors' placement overlaps, judged on exact geometry (our own
    code: centres by their rule, circles by radii, polygons by separating axes)."""
    smallest = min(width, height)
    box_w, box_h = int(0.7 * width), int(0.7 * height)
    left, top = (width - box_w) // 2, (height - box_h) // 2
    placed: list[tuple[tuple[int, int], int, float]] = []
    for _ in range(count):
        size = rng.randint(int(0.2 * smallest), int(0.4 * smallest))
        margin = int(0.75 * size)
        for _ in range(20):
            centre = (rng.randint(left + margin, left + box_w - margin),
                      rng.randint(top + margin, top + box_h - margin))
            if all(math.dist(centre, other) >= size for other, _, _ in placed):
                break
        placed.append((centre, size, rng.uniform(0, 2 * math.pi)))
    return any(_shapes_meet(shape, a, b) for a, b in itertools.combinations(placed, 2))


def _shapes_meet(shape, a, b) -> bool:
    if shape == "circle":
        return math.dist(a[0], b[0]) < a[1] // 2 + b[1] // 2
    first, second = _polygon(shape, *a), _polygon(shape, *b)
    return not any(_separates(axis, first, second)
                   for axis in _normals(first) + _normals(second))


def _polygon(shape, centre, size, turn):
    half, tall = size // 2, int(size * math.sqrt(3) / 2) / 2
    outline = ([(-half, -half), (half, -half), (half, half), (-half, half)]
               if shape == "square" else [(0, -tall), (-half, tall), (half, tall)])
    cos, sin = math.cos(turn), math.sin(turn)
    return [(centre[0] + x * cos - y * sin, centre[1] + x * sin + y * cos) for x, y in outline]


def _normals(points):
    return [(y2 - y1, x1 - x2) for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1])]


def _separates(axis, first, second) -> bool:
    a = [axis[0] * x + axis[1] * y for x, y in first]
    b = [axis[0] * x + axis[1] * y for x, y in second]
    return max(a) < min(b) or max(b) < min(a)


def painted_overlap_rate(count: int, width: int, height: int, frames: int) -> float:
    """Share of the generator's frames (shape kinds in turn) where two painted masks meet."""
    rng = random.Random(11)
    hits = 0
    for index in range(frames):
        shape = SHAPES[index % 3]
        masks = [geometry.instance_mask(shape, instance, width, height)
                 for instance in geometry.place_videossr(rng, shape, count, width, height)]
        hits += any(np.any(a & b) for a, b in itertools.combinations(masks, 2))
    return hits / frames


# Measured on masks (20,000 frames each, shape kinds in turn): 3 shapes at 682x384 overlap on
# 68.3% of frames (circles 65%, squares 87%, triangles 53%), 4 shapes on 92.7%; at 384x384,
# 3 shapes on 97.4% and 4 on 99.8%. Masks count shapes that merely share a boundary pixel as
# overlapping, which puts them up to about one point above exact geometry.
@pytest.mark.parametrize("count,size,expected", [(3, WIDE, 0.68), (4, WIDE, 0.93),
                                                 (3, SQUARE, 0.97)])
def test_authors_painter_overlaps_as_often_as_their_rule_implies(count, size, expected):
    frames = 2000
    painted = painted_overlap_rate(count, *size, frames)
    rng = random.Random(3)
    trials = 8000
    modelled = sum(placement_monte_carlo(rng, SHAPES[i % 3], count, *size)
                   for i in range(trials)) / trials
    tolerance = 4.5 * math.sqrt(modelled * (1 - modelled) * (1 / frames + 1 / trials))
    assert abs(painted - modelled) <= max(tolerance, 0.01)
    assert abs(painted - expected) < 0.05


def hidden_by_masks(shape: str, instances, width: int, height: int) -> int:
    """Instances wholly covered by the instances painted after them (recomputed here)."""
    masks = [geometry.instance_mask(shape, instance, width, height) for instance in instances]
    return sum(not np.any(mask & ~np.logical_or.reduce(masks[i + 1:] or [np.zeros_like(mask)]))
               for i, mask in enumerate(masks))


def test_hidden_counts_wholly_covered_shapes():
    clip = blank_clip(*SQUARE)
    total_hidden = 0
    for seed in range(40):
        draws = TASK.draw(random.Random(seed), clip, "hard", NO_DONORS)
        for shape, spec in draws["shapes"].items():
            expected = sum(hidden_by_masks(shape, frame["instances"], *SQUARE)
                           for frame in spec["frames"])
            assert spec["hidden"] == expected
            total_hidden += expected
    assert total_hidden > 0                    # the check above met hidden shapes


@pytest.mark.parametrize("variant", ["easy_clean", "hard_clean"])
@pytest.mark.parametrize("size", [WIDE, SQUARE])
def test_clean_painter_never_overlaps_and_stays_inside(variant, size):
    clip = blank_clip(*size)
    for seed in range(6):
        draws = TASK.draw(random.Random(seed), clip, variant, NO_DONORS)
        for shape, spec in draws["shapes"].items():
            assert spec["hidden"] == 0
            for frame in spec["frames"]:
                masks = [geometry.instance_mask(shape, i, *size) for i in frame["instances"]]
                assert not np.any(np.sum(masks, axis=0) > 1)           # pixel masks disjoint
                for mask in masks:
                    assert not (mask[0].any() or mask[-1].any()
                                or mask[:, 0].any() or mask[:, -1].any())


# --- pixels on real footage ------------------------------------------------------------------

def assert_paint_matches_draws(frames, clip, draws) -> None:
    """Painted pixels differ from the clean frame only inside the recorded instances' masks;
    every instance not wholly covered by later ones shows its colour on its visible part;
    unpainted frames are untouched."""
    width, height = clip.size
    painted = set()
    for shape, spec in draws["shapes"].items():
        for frame in spec["frames"]:
            position, instances = frame["position"], frame["instances"]
            painted.add(position)
            got = np.asarray(frames[position])
            masks = [geometry.instance_mask(shape, i, width, height) for i in instances]
            changed = np.any(got != clip.frames[position], axis=2)
            assert not np.any(changed & ~np.logical_or.reduce(masks))
            for index, (instance, mask) in enumerate(zip(instances, masks)):
                later = np.logical_or.reduce(masks[index + 1:] or [np.zeros_like(mask)])
                visible = mask & ~later
                if visible.any():
                    assert np.all(got[visible] == instance["colour"])
    for position, frame in enumerate(frames):
        if position not in painted:
            assert np.array_equal(np.asarray(frame), clip.frames[position])


@pytest.fixture(scope="module")
def real_clip(real_videos):
    protocol = FrameProtocol()
    return read_clips(real_videos, "carphone_pristine.mp4", [protocol], "pyav")[protocol]


def shown_frames(clip, rendered):
    video = rendered.prompt[0]
    assert isinstance(video, VideoPart)
    return [clip.frames[ref] if isinstance(ref, int) else ref for ref in video.frames]


@pytest.mark.parametrize("variant", list(TASK.variants))
def test_pixels_on_real_footage_follow_the_draws(real_clip, variant):
    hidden = 0
    for seed in range(4 if variant.endswith("clean") else 12):
        draws = TASK.draw(random.Random(seed), real_clip, variant, NO_DONORS)
        rendered = TASK.render(real_clip, variant, draws, NO_DONORS)
        assert_paint_matches_draws(shown_frames(real_clip, rendered), real_clip, draws)
        hidden += sum(spec["hidden"] for spec in draws["shapes"].values())
    if variant == "hard":
        assert hidden > 0        # overlapping and hidden shapes were among those checked


# --- prompt, scoring, baselines --------------------------------------------------------------

def test_prompt_carries_the_authors_information_and_prompt_set():
    rendered = TASK.render(blank_clip(*WIDE), "easy",
                           TASK.draw(random.Random(0), blank_clip(*WIDE), "easy", NO_DONORS),
                           NO_DONORS)
    assert rendered.system == prompts.SYSTEM and rendered.prompt_set == prompts.PROMPT_SET
    question = rendered.prompt[1]
    assert isinstance(question, TextPart)
    for words in ("circles, squares and triangles", "colour", "angle", "several frames",
                  "more than one shape", "circles,squares,triangles", "3,1,4"):
        assert words in question.text


def test_metrics_and_reward_of_constructed_parses():
    metrics = TASK.metrics(Parsed([4, 2, 2]), "4,2,1")
    assert metrics == {"score": pytest.approx(2 / 3), "circle_exact": 1.0, "square_exact": 1.0,
                       "triangle_exact": 0.0, "all_exact": 0.0}
    assert TASK.metrics(Parsed(error="no answer"), "4,2,1")["score"] == 0.0
    assert TASK.reward(Parsed([2, 2, 2]), "4,2,1") == pytest.approx((0.5 + 1 + 0) / 3)
    assert TASK.reward(Parsed([20, 2, 1]), "4,2,1") == pytest.approx(2 / 3)
    assert TASK.reward(Parsed(error="not strict"), "4,2,1") == 0.0


@pytest.mark.parametrize("variant,mode,chance", [
    ("easy", 3, Fraction(16, 81)), ("hard", 4, Fraction(125, 1024)),
    ("easy_clean", 3, Fraction(16, 81)), ("hard_clean", 4, Fraction(125, 1024))])
def test_prior_answer_scores_exactly_the_modal_probability(variant, mode, chance):
    params = params_of(variant)
    pmf = count_pmf(params["max_frames"], params["max_per_frame"])
    prior = TASK.prior_answer(variant, {"indices": list(range(48)), "sample_fps": 2.0})
    assert prior == f"{mode},{mode},{mode}"
    guess = Parsed([int(x) for x in prior.split(",")])
    expected = sum(Fraction(TASK.metrics(guess, f"{v},{v},{v}")["score"]).limit_denominator(3)
                   * p for v, p in pmf.items())
    assert expected == chance == max(pmf.values())


@pytest.mark.parametrize("variant,top", [("easy", 9), ("hard", 16)])
def test_random_answer_is_uniform_over_the_support(variant, top):
    rng = random.Random(0)
    seen = Counter(int(x) for _ in range(2000)
                   for x in TASK.random_answer(rng, variant, {}).split(","))
    assert set(seen) == set(range(1, top + 1))
