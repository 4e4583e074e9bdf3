"""Property tests (hypothesis) of the shared metrics and confidence intervals of
`viubench.stats` and the answer regions of `viubench.answers`: bounds, the mean inside its
interval, no exception for empty, single or identical inputs. Derandomized, no example database.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from viubench.answers import LENIENT, POLICIES, STRICT, answer_region, check_policy
from viubench.stats import (cluster_bootstrap_ci, footrule_score, interval_iou, normal_interval,
                            score_interval, video_bootstrap, wilson_interval)

PROPERTY = settings(deadline=None, derandomize=True, database=None, max_examples=60)
# The bootstrap draws 2,000 replicates per call: fewer examples keep the file quick.
BOOTSTRAP = settings(PROPERTY, max_examples=30)

SCORES = st.floats(0.0, 1.0)
# Scores as tasks give them: 0/1 outcomes, thirds (counting), IoUs.
TASK_SCORES = st.one_of(st.sampled_from([0.0, 1 / 3, 2 / 3, 1.0, 0.1, 0.7]), SCORES)
VIDEOS = st.sampled_from(["v1", "v2", "v3", "v4", "v5"])
TIMES = st.floats(0.0, 1e6)
TENTHS = st.integers(0, 10**5).map(lambda tenths: tenths / 10)   # times as answers write them


@st.composite
def scored_samples(draw, min_size: int = 0) -> tuple[list[float], list[str]]:
    """(scores in [0, 1], the video of each) for 0..40 samples."""
    values = draw(st.lists(TASK_SCORES, min_size=min_size, max_size=40))
    return values, [draw(VIDEOS) for _ in values]


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def assert_holds(interval: tuple[float, float], centre: float) -> None:
    low, high = interval
    assert 0.0 <= low <= centre <= high <= 1.0, (interval, centre)


# -- metrics ------------------------------------------------------------------------------------

def spans(times: st.SearchStrategy[float]) -> st.SearchStrategy[tuple[float, float]]:
    return st.tuples(times, times).map(lambda pair: (min(pair), max(pair)))


@PROPERTY
@given(spans(TIMES), spans(TIMES))
def test_interval_iou_is_a_symmetric_fraction(pred, true):
    iou = interval_iou(pred, true)
    assert 0.0 <= iou <= 1.0 and iou == interval_iou(true, pred)
    assert interval_iou(true, true) == 1.0


@PROPERTY
@given(spans(TENTHS), spans(TENTHS))
def test_interval_iou_is_one_only_for_the_same_interval(pred, true):
    # On answers' one-decimal grid; at 1e-308 apart, float rounding makes two spans alike.
    assert (interval_iou(pred, true) == 1.0) == (pred == true)


@PROPERTY
@given(st.integers(1, 9).flatmap(lambda n: st.permutations(list(range(n)))).flatmap(
    lambda true: st.tuples(st.just(true), st.permutations(true))))
def test_footrule_score_is_a_symmetric_fraction_and_one_only_for_the_same_order(orders):
    true, pred = orders
    score = footrule_score(pred, true)
    assert 0.0 <= score <= 1.0 and score == footrule_score(true, pred)
    assert (score == 1.0) == (pred == true)
    assert footrule_score(true[::-1], true) == (1.0 if len(true) == 1 else 0.0)  # the maximum


@PROPERTY
@given(st.lists(st.integers(0, 9), max_size=9), st.lists(st.integers(0, 9), max_size=9))
def test_footrule_score_refuses_what_is_not_two_orderings_of_the_same_items(pred, true):
    if sorted(pred) == sorted(true) and len(set(true)) == len(true):
        assert 0.0 <= footrule_score(pred, true) <= 1.0
    else:
        with pytest.raises(ValueError, match="same distinct items"):
            footrule_score(pred, true)


# -- intervals ----------------------------------------------------------------------------------

@PROPERTY
@given(SCORES, st.integers(1, 10**6))
def test_wilson_interval_holds_its_mean_inside_zero_one(value, n):
    low, high = wilson_interval(value, n)
    assert_holds((low, high), value)
    assert high > low           # never a point, however many identical outcomes


def test_intervals_of_nothing_are_nan():
    assert all(math.isnan(bound) for bound in (*wilson_interval(0.5, 0),
                                               *cluster_bootstrap_ci([], []),
                                               *score_interval([], [])))


@PROPERTY
@given(scored_samples(min_size=1))
def test_normal_interval_holds_the_mean(samples):
    values, _ = samples
    assert_holds(normal_interval(values), mean(values))


@BOOTSTRAP
@given(scored_samples(min_size=1))
def test_cluster_bootstrap_stays_within_the_scores(samples):
    values, videos = samples
    low, high = cluster_bootstrap_ci(values, videos)
    slack = 1e-12   # a bootstrap mean is a ratio of float sums
    assert min(values) - slack <= low <= high <= max(values) + slack


@BOOTSTRAP
@given(scored_samples())
def test_score_interval_holds_the_mean_inside_zero_one(samples):
    values, videos = samples
    interval = score_interval(values, videos)
    if not values:
        assert all(math.isnan(bound) for bound in interval)
        return
    assert_holds(interval, mean(values))
    assert interval[1] > interval[0]


@BOOTSTRAP
@given(TASK_SCORES, st.integers(1, 40), st.lists(VIDEOS, min_size=1, max_size=5))
def test_identical_outcomes_get_the_wilson_interval(value, n, videos):
    values, clusters = [value] * n, [videos[i % len(videos)] for i in range(n)]
    assert score_interval(values, clusters) == wilson_interval(mean(values), n)


@BOOTSTRAP
@given(st.lists(st.tuples(st.floats(0, 50), st.integers(0, 50)), min_size=1, max_size=12),
       st.integers(0, 2**32 - 1))
def test_video_bootstrap_is_deterministic_and_shaped(rows, seed):
    sums = np.array([[min(total, count)] for total, count in rows], dtype=float)
    counts = np.array([[count] for _, count in rows], dtype=float)
    first = video_bootstrap(sums, counts, resamples=50, seed=seed)
    assert first.shape == (50, 1)
    assert np.array_equal(first, video_bootstrap(sums, counts, resamples=50, seed=seed),
                          equal_nan=True)


# -- answer regions -----------------------------------------------------------------------------

@PROPERTY
@given(st.text(max_size=200), st.sampled_from(POLICIES))
def test_answer_region_never_raises(text, policy):
    found, marked = answer_region(text, policy)
    assert isinstance(found, str) and isinstance(marked, bool)
    assert marked or policy == LENIENT   # only lenient reads a reply without a marker


@PROPERTY
@given(st.text(max_size=80).filter(lambda t: "<" not in t), st.text(max_size=40).filter(
    lambda t: "</answer" not in t.lower() and "<think" not in t.lower()),
    st.sampled_from([LENIENT, STRICT]))
def test_the_last_answer_tag_is_the_region(preamble, inside, policy):
    found, marked = answer_region(f"{preamble}<answer>{inside}</answer>", policy)
    assert (found, marked) == (inside.strip(), True)


@PROPERTY
@given(st.text(max_size=20).filter(lambda name: name not in POLICIES))
def test_an_unknown_policy_is_refused_by_name(name):
    with pytest.raises(ValueError, match="unknown parse policy"):
        check_policy(name)
