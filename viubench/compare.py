"""Paired comparison of two runs on the same test set: did the checkpoint really improve?

For every leaderboard cell: the difference B - A of the scores (x100) over the samples both runs
scored, its 95% CI (the video bootstrap of the per-sample differences, never narrower than the
independent-samples interval; `leaderboard.cell_estimates`), and a two-sided p-value from a paired
sign-flip permutation test: if A and B are equally good, each sample's difference is as likely
to be negated, so the observed difference is compared with 10,000 random negations (seeded).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .leaderboard import RunScores, cell_estimates, composite_weights, layout
from .score import ensure_scored
from .runfolder import iter_scores
from .registry import load_tasks

FLIPS = 10_000


def _scores(rundir: str) -> dict[str, tuple[str, str, float]]:
    return {row["id"]: (f"{row['task']}:{row['variant']}", row["video"], row["score"])
            for row in iter_scores(rundir)}


def compare_runs(run_a: str, run_b: str, suite: str = "viubench,mvp", seed: int = 0,
                 extra_tasks: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One row per leaderboard cell: difference B - A (x100), CI, p-value, n (None for all but
    n in a cell without samples both runs scored)."""
    hash_a = ensure_scored(run_a, extra_tasks)["testset"]["hash"]
    hash_b = ensure_scored(run_b, extra_tasks)["testset"]["hash"]
    if hash_a != hash_b:
        raise ValueError(f"{run_a} and {run_b} answered different test sets; a paired"
                         " comparison needs the same samples")
    columns = layout(load_tasks(extra_tasks), suite)
    position = {column.key: i for i, column in enumerate(columns)}
    scores_b = _scores(run_b)
    deltas = RunScores("B - A", run_b, hash_b, len(columns))
    slots, values = [], []
    for sample_id, (key, video, score_a) in _scores(run_a).items():
        if key in position and sample_id in scores_b:
            difference = scores_b[sample_id][2] - score_a
            deltas.add(position[key], video, difference)
            slots.append(position[key])
            values.append(difference)
    p_values = _sign_flip_p_values(np.array(slots, dtype=int), np.array(values), columns, seed)
    return [{"cell": cell.name, "difference": 100 * cell.value, "ci_low": 100 * cell.low,
             "ci_high": 100 * cell.high, "p_value": p, "n": cell.n} if cell.n else
            {"cell": cell.name, "difference": None, "ci_low": None, "ci_high": None,
             "p_value": None, "n": 0}
            for cell, p in zip(cell_estimates(deltas, columns, seed), p_values)]


def _sign_flip_p_values(slots: np.ndarray, deltas: np.ndarray, columns: Sequence,
                        seed: int) -> list[float]:
    """Two-sided permutation p-value of every cell's mean difference."""
    _, weights = composite_weights(columns)
    per_column = np.maximum(np.bincount(slots, minlength=len(columns)), 1)
    shares = weights[:, slots] / per_column[slots]            # [cells, samples]
    observed = np.abs(shares @ deltas)
    rng = np.random.default_rng(seed + 1)
    extreme = np.zeros(len(observed))
    chunk = max(1, 4_000_000 // max(deltas.size, 1))   # bounded memory: ~32 MB of signs
    for start in range(0, FLIPS, chunk):
        signs = rng.choice([-1.0, 1.0], size=(min(chunk, FLIPS - start), deltas.size))
        extreme += (np.abs((signs * deltas) @ shares.T) >= observed - 1e-12).sum(axis=0)
    return [float((1 + e) / (1 + FLIPS)) for e in extreme]


def format_comparison(rows: Sequence[dict[str, Any]], label_a: str, label_b: str) -> str:
    width = max([20, *(len(row["cell"]) for row in rows)])
    lines = [f"B - A   with A = {label_a}   B = {label_b}",
             f"{'cell':{width}s} {'B - A':>7s} {'95% CI':>16s} {'p':>7s} {'n':>6s}"]
    for row in rows:
        if not row["n"]:
            lines.append(f"{row['cell']:{width}s} {'-':>7s} {'no common samples':>16s}"
                         f" {'-':>7s} {0:6d}")
            continue
        interval = f"[{row['ci_low']:.1f}, {row['ci_high']:.1f}]"
        lines.append(f"{row['cell']:{width}s} {row['difference']:7.1f} {interval:>16s}"
                     f" {row['p_value']:7.4f} {row['n']:6d}")
    return "\n".join(lines)
