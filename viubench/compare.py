"""Paired comparison of two runs on the same test set: did the checkpoint really improve?

For every leaderboard cell: the difference B - A of the scores (x100) over the samples both runs
scored, its 95% CI (the video bootstrap of the per-sample differences, never narrower than the
independent-samples interval; `leaderboard.cell_estimates`), and a two-sided p-value from a paired
sign-flip permutation test: if A and B are equally good, each sample's difference is as likely
to be negated, so the observed difference is compared with 10,000 random negations (seeded).
Each run's coverage heads the table (`viubench.coverage`): where a run under the threshold left
samples of a cell unanswered, the difference is marked `*`, or replaced by 'B failed (0/n
answered)' when it answered none of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .coverage import (DEFAULT_MIN_COVERAGE, FAILED, INCOMPLETE, MARKED, Coverage, Tally,
                       outcome, percent)
from .leaderboard import RunScores, cell_estimates, composite_weights, layout
from .score import ensure_scored
from .runfolder import SCORES, iter_scores
from .registry import load_tasks

FLIPS = 10_000

Scored = tuple[int, str, float, str, bool]    # column slot, video, score, status, unparseable


@dataclass(frozen=True)
class Comparison:
    """Per-cell rows of a paired comparison, and how much of each run was answered."""

    cells: list[dict[str, Any]]
    coverage_a: Coverage
    coverage_b: Coverage


def _scores(rundir: str, position: dict[str, int]) -> dict[str, Scored]:
    """The run's samples in the compared columns: id -> (slot, video, score, status,
    unparseable)."""
    where = os.path.join(rundir, SCORES)
    found = {}
    for row in iter_scores(rundir):
        slot = position.get(f"{row['task']}:{row['variant']}")
        if slot is not None:
            found[row["id"]] = (slot, row["video"], row["score"], *outcome(row, where))
    return found


def _tally(scores: dict[str, Scored], width: int, ids: Sequence[str] | None = None) -> Tally:
    """Outcome counts of a run's samples (of `ids` only, when given)."""
    tally = Tally(width)
    for sample_id in scores if ids is None else ids:
        slot, _, _, status, unparseable = scores[sample_id]
        tally.add(slot, status, unparseable)
    return tally


def paired_comparison(run_a: str, run_b: str, suite: str = "viubench,mvp", seed: int = 0,
                      extra_tasks: Sequence[str] = ()) -> Comparison:
    """One row per leaderboard cell: difference B - A (x100), CI, p-value, n (None for all but
    n in a cell without samples both runs scored), and how many of those n samples each run
    answered (`answered_a`, `answered_b`); with both runs' coverage."""
    hash_a = ensure_scored(run_a, extra_tasks)["testset"]["hash"]
    hash_b = ensure_scored(run_b, extra_tasks)["testset"]["hash"]
    if hash_a != hash_b:
        raise ValueError(f"{run_a} and {run_b} answered different test sets; a paired"
                         " comparison needs the same samples")
    columns = layout(load_tasks(extra_tasks), suite)
    position = {column.key: i for i, column in enumerate(columns)}
    scores_a, scores_b = _scores(run_a, position), _scores(run_b, position)
    paired = [sample_id for sample_id in scores_a if sample_id in scores_b]
    deltas = RunScores("B - A", run_b, hash_b, len(columns))
    for sample_id in paired:
        slot, video, score_a, *_ = scores_a[sample_id]
        deltas.add(slot, video, scores_b[sample_id][2] - score_a)
    slots = np.array([scores_a[sample_id][0] for sample_id in paired], dtype=int)
    values = np.array([scores_b[i][2] - scores_a[i][2] for i in paired])
    p_values = _sign_flip_p_values(slots, values, columns, seed)
    answered = [_tally(scores, len(columns), paired) for scores in (scores_a, scores_b)]
    _, weights = composite_weights(columns)
    cells = []
    for cell, p, weighting in zip(cell_estimates(deltas, columns, seed), p_values, weights):
        row = ({"cell": cell.name, "difference": 100 * cell.value, "ci_low": 100 * cell.low,
                "ci_high": 100 * cell.high, "p_value": p, "n": cell.n} if cell.n else
               {"cell": cell.name, "difference": None, "ci_low": None, "ci_high": None,
                "p_value": None, "n": 0})
        row["answered_a"], row["answered_b"] = (tally.coverage(weighting > 0).answered
                                                for tally in answered)
        cells.append(row)
    return Comparison(cells, _tally(scores_a, len(columns)).coverage(),
                      _tally(scores_b, len(columns)).coverage())


def compare_runs(run_a: str, run_b: str, suite: str = "viubench,mvp", seed: int = 0,
                 extra_tasks: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The cells of `paired_comparison`: one row per leaderboard cell."""
    return paired_comparison(run_a, run_b, suite, seed, extra_tasks).cells


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


def _mark(row: dict[str, Any], statuses: dict[str, str]) -> tuple[str, str]:
    """(FAILED / INCOMPLETE / '', which run) of a cell: a marked run that answered none, or not
    all, of the cell's paired samples."""
    for side in ("a", "b"):
        answered = row[f"answered_{side}"]
        if statuses[side] in MARKED and row["n"] and answered < row["n"]:
            return (FAILED if not answered else INCOMPLETE), side.upper()
    return "", ""


def format_comparison(comparison: Comparison, label_a: str, label_b: str,
                      min_coverage: float = DEFAULT_MIN_COVERAGE) -> str:
    """The comparison as a table, headed by each run's coverage. A run under `min_coverage`
    marks its cells: `*` after a difference that counts its unanswered samples as wrong,
    'A failed (0/n answered)' instead of the numbers where it answered none."""
    rows = comparison.cells
    statuses = {"a": comparison.coverage_a.status(min_coverage),
                "b": comparison.coverage_b.status(min_coverage)}
    width = max([20, *(len(row["cell"]) for row in rows)])
    lines = [f"B - A   with A = {label_a}   B = {label_b}"]
    for side, coverage in (("A", comparison.coverage_a), ("B", comparison.coverage_b)):
        lines.append(f"{side}: {statuses[side.lower()]}, {coverage.describe()}")
    if any(status in MARKED for status in statuses.values()):
        lines.append(f"cells marked * count unanswered samples as wrong (coverage under"
                     f" {percent(min_coverage)})")
    lines.append(f"{'cell':{width}s} {'B - A':>7s} {'95% CI':>16s} {'p':>7s} {'n':>6s}")
    for row in rows:
        lines.append(_format_row(row, width, *_mark(row, statuses)))
    return "\n".join(lines)


def _format_row(row: dict[str, Any], width: int, mark: str, side: str) -> str:
    if not row["n"]:
        return (f"{row['cell']:{width}s} {'-':>7s} {'no common samples':>16s}"
                f" {'-':>7s} {0:6d}")
    if mark == FAILED:
        failed = f"{side} failed (0/{row['n']} answered)"
        return f"{row['cell']:{width}s} {'-':>7s} {failed:>16s} {'-':>7s} {row['n']:6d}"
    star = "*" if mark == INCOMPLETE else ""
    interval = f"[{row['ci_low']:.1f}, {row['ci_high']:.1f}]"
    return (f"{row['cell']:{width}s} {row['difference']:6.1f}{star or ' '} {interval:>16s}"
            f" {row['p_value']:7.4f} {row['n']:6d}")
