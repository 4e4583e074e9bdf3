"""Solvers of MVP items that never look at meaning: they see only the pixels the model sees (the
context video with its gap, and the candidates) and compare them with a frame-similarity
measure. They audit the test set (`viubench eval --model similarity solver=...`, then
`viubench analyze`):

* `context`: takes the m candidates least similar to any shown context frame ("reject what is
  already visible");
* `continuity`: takes the m candidates most similar to the gap's borders (the shown frames just
  before and after it);
* `cohesion`: takes the m candidates most alike among themselves (the highest mean pairwise
  similarity), using only that the hidden frames are consecutive.

On a sound test set each is at chance: no candidate gives itself away by how much it resembles
the context, the gap's borders or the other candidates. MVP's distractors are matched to the
targets on the first two (tasks/masked_draws.py); the audit in docs/tasks.md gives all three.

Either orders its picks by `border` (more like the left border than the right one first) or at
`random`. Gap frames are found by their pixels (the striped grey frame).
"""

from __future__ import annotations

import itertools
import random
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from viubench.media import load_frame

from .frame_similarity import Measure

SOLVERS = ("context", "continuity", "cohesion")
ORDERS = ("border", "random")
GAP_TOLERANCE = 12.0   # mean absolute difference (0-255) to the gap frame after JPEG coding


def solve(parts: Sequence[Mapping[str, Any]], gap_of: Callable[[tuple[int, int]], np.ndarray],
          measure: Measure, solver: str, order: str, rng: random.Random) -> str:
    """The answer text of `solver` for a request's prompt parts; `gap_of(size)` is the gap
    frame of a (width, height)."""
    if solver not in SOLVERS or order not in ORDERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)} and order one of"
                         f" {', '.join(ORDERS)}")
    shown = [load_frame(p) for part in parts if part["type"] == "video"
             for p in part["frames"]]
    candidates = [load_frame(part["image"]) for part in parts if part["type"] == "image"]
    gap = gap_of((shown[0].shape[1], shown[0].shape[0]))
    hidden = [i for i, frame in enumerate(shown) if _is_gap(frame, gap)]
    if not hidden or hidden[0] == 0 or hidden[-1] == len(shown) - 1:
        raise ValueError("no gap with shown frames on both sides in the context video")
    left, right = hidden[0] - 1, hidden[-1] + 1
    visible = [i for i in range(len(shown)) if i not in hidden]
    ours = measure.describe(np.stack(candidates))
    theirs = measure.describe(np.stack([shown[i] for i in visible]))
    sim = measure.compare(ours, theirs)             # [candidates, visible frames]
    to_left, to_right = sim[:, visible.index(left)], sim[:, visible.index(right)]
    if solver == "context":
        picked = _top(sim.max(axis=1), len(hidden))
    elif solver == "continuity":
        picked = _top(-np.maximum(to_left, to_right), len(hidden))
    else:
        picked = most_cohesive(measure.compare(ours, ours), len(hidden))
    if order == "border":
        picked.sort(key=lambda i: -(to_left[i] - to_right[i]))
    else:
        rng.shuffle(picked)
    return ",".join(str(i + 1) for i in picked)


def _top(keys: np.ndarray, count: int) -> list[int]:
    """The indices of the `count` smallest keys (ties: the lower index)."""
    return [int(i) for i in np.argsort(keys, kind="stable")[:count]]


def most_cohesive(among: np.ndarray, count: int) -> list[int]:
    """The `count` candidates with the highest mean pairwise similarity (first such subset)."""
    subsets: list[tuple[int, ...]] = list(itertools.combinations(range(len(among)), count))
    scores = [float(np.mean([among[a, b] for a, b in itertools.combinations(subset, 2)]))
              for subset in subsets]
    return list(subsets[int(np.argmax(scores))])


def _is_gap(frame: np.ndarray, gap: np.ndarray) -> bool:
    if frame.shape != gap.shape:
        return False
    return float(np.abs(frame.astype(np.int16) - gap).mean()) < GAP_TOLERANCE
