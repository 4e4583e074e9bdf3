"""The geometry of an MVP draw on a similarity matrix: the sampling grid, the context chain, the
masked run, and which frames may be distractors. Pure functions of arrays.

Rules (kappa: the near-duplicate threshold; a frame is a near-duplicate of another when their
similarity is above kappa):
* the grid: every `stride`-th decoded frame; the sparsest stride tried first is the one closest
  to 1 fps (the paper's rate), then denser ones, down to every decoded frame;
* the context: from a start on the grid, a frame is kept when it is not a near-duplicate of the
  last kept one, until N are kept. A run of m of them, never the first or last, is masked;
* distractors: decoded frames (on the grid or between its frames) within `radius` of the gap,
  never between the gap's borders, never a context frame, a near-duplicate of no context frame
  (shown or masked) and of no other distractor; each is the one whose *profile* (its highest
  similarity to a shown frame, to the gap's two borders and to a target) is closest to that of a
  target (whose third value is its highest similarity to another target), so no candidate gives
  itself away by how much it resembles the context, the gap's borders or the hidden frames.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np

TARGET_RATE = 1.0   # frames per second, the MVP paper's decoding rate


def strides(sample_fps: float) -> list[int]:
    """Grid strides over the decoded frames, sparsest first: the one whose rate is closest to
    1 fps, then each denser one, down to 1 (every decoded frame)."""
    return list(range(max(1, round(sample_fps / TARGET_RATE)), 0, -1))


def chain(sim: np.ndarray, kappa: float, start: int, wanted: int) -> list[int]:
    """Greedy near-duplicate removal from `start`: keep a frame if its similarity to the last
    kept frame is <= kappa, until `wanted` frames are kept (or the frames run out)."""
    kept = [start]
    for position in range(start + 1, len(sim)):
        if len(kept) == wanted:
            break
        if sim[kept[-1], position] <= kappa:
            kept.append(position)
    return kept


def chains(sim: np.ndarray, kappa: float, wanted: int) -> dict[int, list[int]]:
    """Start -> the N kept frames, for every start from which N frames can be kept."""
    found = {s: chain(sim, kappa, s, wanted) for s in range(len(sim))}
    return {s: kept for s, kept in found.items() if len(kept) == wanted}


def most_distinct(sim: np.ndarray, kappa: float) -> int:
    """The most frames any start keeps (for the skip reason)."""
    return max(len(chain(sim, kappa, s, len(sim))) for s in range(len(sim)))


@dataclass(frozen=True)
class Gap:
    """N context frames (decoded-frame positions) with the run [at, at + m) masked."""

    context: list[int]
    at: int
    masked: int

    @property
    def targets(self) -> list[int]:
        return self.context[self.at:self.at + self.masked]

    @property
    def visible(self) -> list[int]:
        return self.context[:self.at] + self.context[self.at + self.masked:]

    @property
    def borders(self) -> tuple[int, int]:
        """The shown frames just before and just after the gap."""
        return self.context[self.at - 1], self.context[self.at + self.masked]

    def distance(self, position: int) -> int:
        """Decoded frames between `position` (not between the borders) and the gap."""
        left, right = self.borders
        return left - position if position < left else position - right


def neighbours(count: int, gap: Gap, radius: float | None) -> list[int]:
    """Decoded-frame positions (of `count`) that may be distractors before the similarity
    rules: not a context frame, not between the gap's borders, at most `radius` decoded frames
    from the gap (any distance if None); nearest first (earlier first on ties)."""
    left, right = gap.borders
    context = set(gap.context)
    near = [p for p in range(count) if not left <= p <= right and p not in context]
    if radius is not None:
        near = [p for p in near if gap.distance(p) <= radius]
    return sorted(near, key=lambda p: (gap.distance(p), p))


def profiles(sim: np.ndarray, gap: Gap, positions: Sequence[int]) -> np.ndarray:
    """[len(positions), 3]: each frame's highest similarity to a shown context frame, to the
    gap's two borders, and to a target other than itself (what the `context`, `continuity` and
    `cohesion` solvers look at)."""
    rows = sim[list(positions)]
    itself = np.asarray(positions)[:, None] == np.asarray(gap.targets)[None, :]
    others = np.where(itself, -np.inf, rows[:, gap.targets]).max(axis=1) if gap.masked > 1 \
        else np.zeros(len(rows))
    return np.stack([rows[:, gap.visible].max(axis=1), rows[:, list(gap.borders)].max(axis=1),
                     others], axis=1)


def matching_slots(rng: random.Random, masked: int, count: int) -> list[int]:
    """For each of `count` distractors, the target it is matched to: the targets in a random
    order, repeated as needed."""
    order = list(range(masked))
    rng.shuffle(order)
    return [order[slot % masked] for slot in range(count)]


def matched(sim: np.ndarray, gap: Gap, candidates: Sequence[int], kappa: float,
            slots: Sequence[int]) -> list[tuple[int, int]] | None:
    """Distractors as (position, k), one per slot, each matched to target k = the slot's: the
    candidate whose profile is nearest to that target's (L1 distance; the first in
    `candidates` on ties), among those near-duplicates of no distractor taken before; None if
    the candidates run out. `candidates` must already be near-duplicates of no context frame."""
    if not candidates:
        return None
    wanted = profiles(sim, gap, gap.targets)
    have = profiles(sim, gap, candidates)
    free = np.ones(len(candidates), dtype=bool)
    taken: list[tuple[int, int]] = []
    for k in slots:
        if not free.any():
            return None
        cost = np.abs(have - wanted[k]).sum(axis=1)
        cost[~free] = np.inf
        best = int(np.argmin(cost))
        taken.append((candidates[best], k))
        free &= sim[candidates[best], list(candidates)] <= kappa
        free[best] = False
    return taken


def spread(positions: Sequence[int], sim: np.ndarray, kappa: float) -> bool:
    """Whether no two of `positions` are near-duplicates of each other."""
    among = sim[np.ix_(list(positions), list(positions))]
    return bool((among[~np.eye(len(positions), dtype=bool)] <= kappa).all())
