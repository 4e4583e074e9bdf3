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
