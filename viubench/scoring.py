"""Metrics shared by tasks: interval IoU, exact match, footrule-based order score."""

from __future__ import annotations

from typing import Sequence


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


def cluster_bootstrap_ci(values: Sequence[float], clusters: Sequence[str], level: float = 0.95,
                         resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of a mean, resampling whole clusters (source videos).

    Samples cut from one video are not independent (one hard video drags all its samples
    down), so the unit resampled is the video: each replicate draws k videos with replacement
    and takes the mean over all their samples (a ratio estimator). With a single cluster the
    spread between videos is unknown and the samples themselves are resampled instead.
    Deterministic for a given seed.
    """
    import numpy as np

    scores = np.asarray(values, dtype=float)
    if scores.size == 0:
        return (float("nan"), float("nan"))
    labels = list(clusters) if len(set(clusters)) > 1 else [str(i) for i in range(scores.size)]
    _, inverse = np.unique(np.asarray(labels), return_inverse=True)
    sums = np.bincount(inverse, weights=scores)
    counts = np.bincount(inverse).astype(float)
    k = sums.size
    rng = np.random.default_rng(seed)
    estimates = []
    for chunk in range(0, resamples, 256):   # bounded memory: 256 x k weights at a time
        weights = rng.multinomial(k, np.full(k, 1.0 / k), size=min(256, resamples - chunk))
        estimates.append((weights @ sums) / (weights @ counts))
    means = np.concatenate(estimates)
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
    return (max(0.0, centre - half), min(1.0, centre + half))


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
    boot, normal = cluster_bootstrap_ci(values, clusters), normal_interval(values)
    low, high = min(boot[0], normal[0]), max(boot[1], normal[1])
    if high - low > 0:
        return (low, high)
    return wilson_interval(sum(values) / len(values), len(values))
