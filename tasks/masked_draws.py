"""The geometry of an MVP draw on a similarity matrix: the sampling grid, the context chain, the
masked run, and which frames may be distractors. Pure functions of arrays and an rng.

Rules (kappa: the near-duplicate threshold; a frame is a near-duplicate of another when their
similarity is above kappa):
* the grid: every `stride`-th decoded frame; the sparsest stride tried first is the one closest
  to 1 fps (the paper's rate), then denser ones, down to every decoded frame;
* the context: from a start on the grid, a frame is kept when it is not a near-duplicate of the
  last kept one, until N are kept. A run of m of them, never the first or last, is masked;
* a distractor is never a near-duplicate of any context frame (shown or masked) nor of another
  distractor, and never lies between the gap's borders. Every grid frame inside the context's
  span is, by the chain rule, a near-duplicate of a kept frame, so same-video distractors come
  from outside the span: the temporal neighbourhood of the context, within `radius` seconds of
  the gap.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

TARGET_RATE = 1.0   # frames per second, the MVP paper's decoding rate

Candidate = tuple[str, int]   # (source: neighbour, mirror or donor; position in that source)


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
        """Decoded frames between `position` (outside the context's span) and the gap."""
        left, right = self.borders
        return left - position if position < left else position - right


def neighbours(grid: Sequence[int], gap: Gap, radius: float | None) -> list[int]:
    """Grid positions outside the context's span, at most `radius` decoded frames from the gap
    (any distance if None), nearest first (earlier first on ties)."""
    first, last = gap.context[0], gap.context[-1]
    outside = [p for p in grid if p < first or p > last]
    if radius is not None:
        outside = [p for p in outside if gap.distance(p) <= radius]
    return sorted(outside, key=lambda p: (gap.distance(p), p))


def spread(ordered: Sequence[Candidate], similar: Callable[[Candidate, list[Candidate]],
                                                        np.ndarray],
           kappa: float, count: int) -> list[Candidate] | None:
    """The first `count` of `ordered` taken greedily, each a near-duplicate of no candidate
    taken before it (`similar(c, taken)`: c's similarity to each); None if too few."""
    taken: list[Candidate] = []
    for candidate in ordered:
        if not taken or similar(candidate, taken).max() <= kappa:
            taken.append(candidate)
            if len(taken) == count:
                return taken
    return None


def shuffled(rng: random.Random, items: Sequence[Candidate]) -> list[Candidate]:
    out = list(items)
    rng.shuffle(out)
    return out
