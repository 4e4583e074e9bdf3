"""Confidence intervals, the retry policy and run coverage, on numbers worked out by hand."""

from __future__ import annotations

import random

import numpy as np
import pytest

from viubench.coverage import (Coverage, Tally, cell_mark, check_min_coverage, outcome,
                               percent, row_coverage)
from viubench.retry import RetryPolicy
from viubench.stats import (BOOTSTRAP_CHUNK, cluster_bootstrap_ci, normal_interval,
                              score_interval, video_bootstrap, wilson_interval)


def test_wilson_interval_matches_the_closed_form():
    low, high = wilson_interval(0.0, 240)
    assert low == 0.0 and high == pytest.approx(1.959964 ** 2 / (240 + 1.959964 ** 2))
    low, high = wilson_interval(0.5, 100)
    assert (low, high) == pytest.approx((0.4038, 0.5962), abs=1e-4)


def test_normal_interval_by_hand():
    values = [0.0, 1.0] * 50   # mean 0.5, s = sqrt(100 * 0.25 / 99)
    half = 1.959964 * (25 / 99) ** 0.5 / 10
    assert normal_interval(values) == pytest.approx((0.5 - half, 0.5 + half))


def test_cluster_bootstrap_sees_videos_that_move_together():
    # 10 videos, each all-right or all-wrong: clustering must widen the interval a lot.
    values = [float(v % 2) for v in range(10) for _ in range(20)]
    clusters = [str(v) for v in range(10) for _ in range(20)]
    clustered = cluster_bootstrap_ci(values, clusters)
    independent = normal_interval(values)
    assert clustered[1] - clustered[0] > 2.5 * (independent[1] - independent[0])
    assert cluster_bootstrap_ci(values, clusters) == clustered   # seeded: deterministic
    assert score_interval(values, clusters) == pytest.approx(clustered)


def test_video_bootstrap_draws_whole_videos_with_replacement():
    # 4 videos; column 0 everywhere (video means 0, 1/3, 2/3, 1), column 1 only in video 3.
    sums = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 2.0]])
    counts = np.array([[3, 0], [3, 0], [3, 0], [3, 2]])
    means = video_bootstrap(sums, counts, resamples=4000, seed=3)
    assert means.shape == (4000, 2)
    assert np.array_equal(means, video_bootstrap(sums, counts, resamples=4000, seed=3),
                          equal_nan=True)
    # every replicate mean is a mean of 4 video means drawn from {0, 1/3, 2/3, 1}
    assert np.allclose(np.round(means[:, 0] * 12), means[:, 0] * 12)
    assert means[:, 0].mean() == pytest.approx(0.5, abs=0.01)
    assert means[:, 0].var() == pytest.approx((5 / 36) / 4, rel=0.1)   # var of video means / 4
    # column 1: NaN exactly when video 3 was not drawn, P = (3/4)^4
    missing = np.isnan(means[:, 1]).mean()
    assert missing == pytest.approx(0.75 ** 4, abs=0.03)
    assert np.all(means[~np.isnan(means[:, 1]), 1] == 1.0)


def test_video_bootstrap_gives_the_same_draws_in_chunks(monkeypatch):
    sums = np.arange(30.0).reshape(30, 1)
    counts = np.full((30, 1), 2)
    whole = video_bootstrap(sums, counts, resamples=64)
    monkeypatch.setattr("viubench.stats.BOOTSTRAP_CHUNK", 30 * 8)   # 8 replicates a chunk
    chunked = video_bootstrap(sums, counts, resamples=64)
    assert BOOTSTRAP_CHUNK > 30 * 8
    assert np.array_equal(chunked, whole)   # the memory bound never changes the answer


def test_identical_outcomes_get_the_wilson_interval():
    assert score_interval([0.0] * 50, ["a", "b"] * 25) == wilson_interval(0.0, 50)


def test_retry_delays_grow_jitter_and_honour_retry_after():
    policy = RetryPolicy(max_attempts=4, base=1.0, cap=5.0)
    rng = random.Random(1)
    for attempt, bound in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)):
        waits = [policy.delay(attempt, None, rng) for _ in range(200)]
        assert bound / 2 <= min(waits) and max(waits) <= bound
        assert max(waits) - min(waits) > bound / 4        # jittered, not constant
    assert policy.delay(1, 30.0, rng) == 30.0              # the server asked for 30 s
    assert policy.delay(1, 1e6, rng) == policy.max_retry_after
    assert not policy.gives_up(3) and policy.gives_up(4)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_coverage_status_at_its_thresholds():
    assert Coverage(answered=19, errors=1).status(0.95) == "complete"     # 19/20 meets 95%
    assert Coverage(answered=18, errors=2).status(0.95) == "incomplete"
    assert Coverage(answered=35, missing=1).status() == "incomplete"       # default: all of n
    assert Coverage(answered=36).status() == "complete"
    assert Coverage(errors=3, missing=1).status(0.0) == "failed"           # at any threshold
    assert Coverage().status() == "empty" and Coverage().fraction is None
    assert Coverage(answered=2, errors=1, missing=1, parse_failures=1).n == 4  # parse ⊂ answered
    assert percent(2699 / 2700) == "99.9%" and percent(1.0) == "100.0%"   # rounded down
    assert percent(0.29) == "29.0%"            # not 28.9: 0.29 * 100 is 28.999999999999996
    for bad in (-0.1, 1.01):
        with pytest.raises(ValueError, match="between 0 and 1"):
            check_min_coverage(bad)


def test_tally_sums_the_columns_a_cell_uses():
    tally = Tally(3)
    for slot, status, unparseable in ((0, "answered", False), (0, "error", False),
                                      (1, "answered", True), (2, "missing", False)):
        tally.add(slot, status, unparseable)
    assert tally.coverage() == Coverage(answered=2, errors=1, missing=1, parse_failures=1)
    assert tally.coverage(np.array([False, True, True])) == Coverage(1, 0, 1, 1)
    assert outcome({"id": "x", "status": "answered", "parse_errors": {"lenient": "no number"}},
                   "s.jsonl") == ("answered", True)
    assert outcome({"id": "x", "status": "error", "parse_errors": {}}, "s.jsonl") == (
        "error", False)
    with pytest.raises(ValueError, match="^s.jsonl: sample 'x' has status None"):
        outcome({"id": "x"}, "s.jsonl")


def test_cell_marks_follow_the_row_status_and_the_cells_own_counts():
    row = {"status": "incomplete", "answered": "5", "n": "8", "errors": "3", "missing": "0",
           "A": "50.0", "A n": "4", "A answered": "4", "B": "0.0", "B n": "4",
           "B answered": "1", "C": "0.0", "C n": "4", "C answered": "0", "D": "", "D n": "0",
           "D answered": "0"}
    assert [cell_mark(row, name) for name in "ABCD"] == [None, "incomplete", "failed", None]
    assert [cell_mark({**row, "status": "complete"}, name) for name in "ABCD"] == [None] * 4
    assert cell_mark({"status": "failed", "A": "0.0", "A n": "4"}, "A") == "failed"  # no counts
    assert row_coverage(row) == Coverage(answered=5, errors=3)
    assert row_coverage({"model": "GPT-5", "Overall": "58.7"}) is None      # a reported row
