"""Metrics shared by tasks (interval IoU, footrule-based order score) and the confidence
intervals every report uses (the video bootstrap, normal and Wilson intervals)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

RESAMPLES = 2000
BOOTSTRAP_CHUNK = 4_000_000   # resample weights held at once (videos x replicates)


def interval_iou(pred: tuple[float, float], true: tuple[float, float]) -> float:
    """Temporal IoU of two [start, end] intervals (0 when they do not overlap)."""
    inter = max(0.0, min(pred[1], true[1]) - max(pred[0], true[0]))
    union = max(pred[1], true[1]) - min(pred[0], true[0])
    return inter / union if union > 0 else float(pred == true)


def footrule_score(pred: Sequence[int], true: Sequence[int]) -> float:
    """1 - (sum of position displacements) / max possible, for two orderings of the same items.

    The maximum of Spearman's footrule over permutations of n items is floor(n^2 / 2).
    """
    if sorted(pred) != sorted(true) or len(set(true)) != len(true):
        raise ValueError("footrule needs two orderings of the same distinct items")
    n = len(true)
    if n < 2:
        return 1.0
    where = {item: position for position, item in enumerate(pred)}
    displacement = sum(abs(where[item] - position) for position, item in enumerate(true))
    return 1.0 - displacement / (n * n // 2)


def video_bootstrap(sums: np.ndarray, counts: np.ndarray, resamples: int = RESAMPLES,
                    seed: int = 0) -> np.ndarray:
    """[resamples, columns] column means over videos drawn with replacement.

    `sums` and `counts` are [videos, columns]: each video's score sum and sample count per
    column. Each replicate draws as many videos as there are, uniformly with replacement, and
    takes every column's mean over the drawn videos' samples (a ratio estimator; NaN where a
    replicate drew no sample of a column). Deterministic for a seed; memory is bounded by
    drawing at most BOOTSTRAP_CHUNK video picks at a time.
    """
    videos, columns = sums.shape
    both = np.concatenate([sums, counts], axis=1).astype(float)
    rng = np.random.default_rng(seed)
    step = max(8, min(256, BOOTSTRAP_CHUNK // max(videos, 1)))
    means = []
    for start in range(0, resamples, step):
        size = min(step, resamples - start)
        picks = rng.integers(0, videos, size=(size, videos)) + videos * np.arange(size)[:, None]
        weights = np.bincount(picks.ravel(), minlength=size * videos).reshape(size, videos)
        totals = weights.astype(float) @ both
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append(totals[:, :columns] / totals[:, columns:])
    return np.concatenate(means) if means else np.empty((0, columns))


def cluster_bootstrap_ci(values: Sequence[float], clusters: Sequence[str], level: float = 0.95,
                         resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of a mean, resampling whole clusters (source videos).

    Samples cut from one video are not independent (one hard video drags all its samples
    down), so the unit resampled is the video (`video_bootstrap`). With a single cluster the
    spread between videos is unknown and the samples themselves are resampled instead.
    """
    scores = np.asarray(values, dtype=float)
    if scores.size == 0:
        return (float("nan"), float("nan"))
    labels = list(clusters) if len(set(clusters)) > 1 else [str(i) for i in range(scores.size)]
    _, inverse = np.unique(np.asarray(labels), return_inverse=True)
    sums = np.bincount(inverse, weights=scores)[:, None]
    counts = np.bincount(inverse)[:, None]
    means = video_bootstrap(sums, counts, resamples, seed)[:, 0]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def wilson_interval(mean: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a mean of n values in [0, 1].

    Exact for 0/1 outcomes and conservative for other bounded values (a Bernoulli has the
    largest variance of any [0, 1] variable with that mean). Unlike a bootstrap it stays wide
    when every outcome is the same (0 hits out of 240 gives [0, 0.016], not [0, 0]).
    """
    if n == 0:
        return (float("nan"), float("nan"))
    centre = (mean + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((mean * (1 - mean) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    # Rounding can put a bound a hair past the mean (0/n gives 1e-17, not 0): clamp so the
    # interval always holds its mean (plots draw mean - low as a non-negative error bar).
    return (max(0.0, min(mean, centre - half)), min(1.0, max(mean, centre + half)))


def normal_interval(values: Sequence[float], z: float = 1.959964) -> tuple[float, float]:
    """mean +- z * s / sqrt(n), treating the values as independent, clipped to [0, 1]."""
    n = len(values)
    mean = sum(values) / n
    spread = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5 if n > 1 else 0.0
    half = z * spread / n ** 0.5
    return (max(0.0, mean - half), min(1.0, mean + half))


def score_interval(values: Sequence[float], clusters: Sequence[str]) -> tuple[float, float]:
    """95% CI of a mean score in [0, 1].

    The video-clustered bootstrap is the honest interval when samples from one video move
    together, but with few videos it is too narrow (it sees only k clusters), so the interval
    is never narrower than the independent-samples normal interval: their union. Where every
    outcome is the same both collapse to a point, and the Wilson interval is used instead
    (0 hits in 240 samples says "below about 1.6%", not "exactly 0").
    """
    if not values:
        return (float("nan"), float("nan"))
    return widened(cluster_bootstrap_ci(values, clusters), values)


def widened(bootstrap: tuple[float, float], values: Sequence[float]) -> tuple[float, float]:
    """A bootstrap interval of `values`' mean made at least as wide as the normal interval;
    Wilson's where all values are equal (see `score_interval`)."""
    normal = normal_interval(values)
    low, high = min(bootstrap[0], normal[0]), max(bootstrap[1], normal[1])
    # Identical outcomes are decided on the values: the intervals' width is then rounding
    # error, not information (seven scores of 1/3 gave [0.3333333333333333, 0.33333333333333337]).
    if high - low > 0 and min(values) < max(values):
        return (low, high)
    return wilson_interval(sum(values) / len(values), len(values))
