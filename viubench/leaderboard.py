"""Leaderboards: one row per run in a suite's column layout, every cell with its n and 95% CI.

Columns come from the tasks (`Task.columns`): for the `viubench` suite the nine VIUBench
sub-columns, then one average per task group and `Overall`, the unweighted mean of the
sub-columns (SPEC §7). CIs come from one bootstrap over source videos shared by all columns of a
run, so a group average's CI accounts for its columns sharing videos. Every measured row carries
its coverage (answered / n, errors, never answered, unparseable) and a status; a run under the
coverage threshold is marked, never shown as a plain score (`viubench.coverage`).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .coverage import (DEFAULT_MIN_COVERAGE, FAILED, INCOMPLETE, INCOMPLETE_NOTE, Tally,
                       cell_mark, failed_text, is_marked, number, outcome, row_coverage,
                       round_down, row_fields, row_status)
from .registry import load_tasks, suites
from .score import ensure_scored
from .runfolder import SCORES, iter_scores
from .stats import video_bootstrap, wilson_interval
from .task import Task

OVERALL = "Overall"


@dataclass(frozen=True)
class Column:
    key: str      # "task:variant"
    group: str    # "Counting"
    label: str    # "Easy"
    in_overall: bool = True   # Overall averages the columns of the first suite only

    @property
    def name(self) -> str:
        return f"{self.group} {self.label}"


def layout(tasks: Mapping[str, Task], suite: str = "viubench") -> list[Column]:
    """The columns of one suite or of several ("viubench,mvp"), grouped by task, groups in the
    tasks' declared order; Overall averages the first suite's columns (VIUBench's nine)."""
    available = suites(tasks)
    columns = []
    for order, name in enumerate(suite.split(",")):
        if name not in available:
            raise ValueError(f"unknown suite {name!r}; suites: {', '.join(sorted(available))}")
        for task_name, variant in available[name]:
            declared = getattr(tasks[task_name], "columns", None)
            group = declared.group if declared else task_name
            label = declared.labels.get(variant, variant) if declared else variant
            rank = declared.rank if declared else 99
            columns.append((number, rank, Column(f"{task_name}:{variant}", group, label,
                                                 in_overall=order == 0)))
    return [column for *_, column in sorted(columns, key=lambda item: item[:2])]


def groups(columns: Sequence[Column]) -> dict[str, list[int]]:
    """Group name -> positions of its columns (in layout order)."""
    found: dict[str, list[int]] = {}
    for position, column in enumerate(columns):
        found.setdefault(column.group, []).append(position)
    return found


@dataclass
class RunScores:
    """Per-video sums of one run's sample scores, per column: what every statistic needs."""

    label: str
    rundir: str
    testset_hash: str
    width: int = 0                                                # number of columns
    sums: dict[str, np.ndarray] = field(default_factory=dict)     # video -> [columns]
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    squares: np.ndarray | None = None                             # [columns] sum of score^2
    tally: Tally = field(init=False)                              # answered, errors, ...

    def __post_init__(self) -> None:
        self.tally = Tally(self.width)

    def add(self, slot: int | None, video: str, value: float) -> None:
        """Count one sample's value (score, or paired difference) in column `slot`."""
        if slot is None:
            return
        if self.squares is None:
            self.squares = np.zeros(self.width)
        if video not in self.sums:
            self.sums[video] = np.zeros(self.width)
            self.counts[video] = np.zeros(self.width)
        self.sums[video][slot] += value
        self.counts[video][slot] += 1
        self.squares[slot] += value ** 2


def load_run(rundir: str, columns: Sequence[Column], label: str | None = None,
             task_modules: Sequence[str] = ()) -> RunScores:
    """Stream a run's scores.jsonl into per-video, per-column sums and outcome counts."""
    header = ensure_scored(rundir, task_modules)
    run = RunScores(label or header["adapter"]["spec"], rundir, header["testset"]["hash"],
                    len(columns))
    position = {column.key: i for i, column in enumerate(columns)}
    where = os.path.join(rundir, SCORES)
    for row in iter_scores(rundir):
        slot = position.get(f"{row['task']}:{row['variant']}")
        if slot is not None:
            run.add(slot, row["video"], row["score"])
            run.tally.add(slot, *outcome(row, where))
    return run


def _matrices(run: RunScores) -> tuple[np.ndarray, np.ndarray]:
    """[videos, columns] sums and counts ([0, columns] for a run with nothing in them)."""
    videos = sorted(run.sums)
    if not videos:
        return np.zeros((0, run.width)), np.zeros((0, run.width))
    return (np.array([run.sums[v] for v in videos]), np.array([run.counts[v] for v in videos]))


def composite_weights(columns: Sequence[Column]) -> tuple[list[str], np.ndarray]:
    """Every reported cell as a weighting of column means: columns, group averages, Overall."""
    names = [column.name for column in columns]
    rows = list(np.eye(len(columns)))
    for group, positions in groups(columns).items():
        names.append(group)
        rows.append(np.isin(np.arange(len(columns)), positions) / len(positions))
    names.append(OVERALL)
    counted = np.array([column.in_overall for column in columns], dtype=float)
    rows.append(counted / counted.sum())
    return names, np.array(rows)


@dataclass(frozen=True)
class Estimate:
    name: str
    value: float     # in score units (0..1), not x100
    low: float
    high: float
    n: int


def cell_estimates(run: RunScores, columns: Sequence[Column], seed: int = 0) -> list[Estimate]:
    """Every cell's mean with a 95% CI: the video bootstrap, never narrower than the
    independent-samples normal interval. Works for scores and for paired differences."""
    sums, counts = _matrices(run)
    n = counts.sum(axis=0)
    means = np.divide(sums.sum(axis=0), n, out=np.full(len(columns), np.nan), where=n > 0)
    names, weights = composite_weights(columns)
    columns_boot = _bootstrap(sums, counts, seed)
    columns_boot[:, n == 0] = 0.0   # empty columns: their cells are reported empty anyway
    boot = columns_boot @ weights.T                             # [resamples, cells]
    normal = _normal_halfwidths(run, means, n, weights)
    estimates = []
    for cell, (name, weighting) in enumerate(zip(names, weights)):
        used = weighting > 0
        value = float(weighting[used] @ means[used])   # NaN if any column it uses is empty
        low, high = np.nanpercentile(boot[:, cell], [2.5, 97.5]) if boot.size else (value, value)
        estimates.append(Estimate(name, value, min(float(low), value - normal[cell]),
                                  max(float(high), value + normal[cell]),
                                  int(n[weighting > 0].sum())))
    return estimates


def run_row(run: RunScores, columns: Sequence[Column], seed: int = 0,
            min_coverage: float = DEFAULT_MIN_COVERAGE) -> dict[str, Any]:
    """Status and coverage of one run's leaderboard row, then score (x100), n, answered and
    95% CI of every cell."""
    row: dict[str, Any] = {"model": run.label, "source": "measured", "run": run.rundir,
                           "testset": run.testset_hash,
                           **row_fields(run.tally.coverage(), min_coverage)}
    _, weights = composite_weights(columns)
    for cell, weighting in zip(cell_estimates(run, columns, seed), weights):
        row[f"{cell.name} answered"] = run.tally.coverage(weighting > 0).answered
        if np.isnan(cell.value):   # a column the run has no samples in (an average over it too)
            row.update({cell.name: "", f"{cell.name} n": cell.n, f"{cell.name} ci_low": "",
                        f"{cell.name} ci_high": ""})
            continue
        low, high = cell.low, cell.high
        if high - low <= 0:   # every outcome identical: the bootstrap says nothing
            low, high = wilson_interval(cell.value, cell.n)
        row[cell.name] = 100 * cell.value
        row[f"{cell.name} n"] = cell.n
        row[f"{cell.name} ci_low"] = 100 * max(low, 0.0)
        row[f"{cell.name} ci_high"] = 100 * min(high, 1.0)
    return row


def _bootstrap(sums: np.ndarray, counts: np.ndarray, seed: int) -> np.ndarray:
    """[resamples, columns] column means over videos resampled with replacement."""
    if sums.shape[0] < 2:
        return np.empty((0, sums.shape[1]))
    return video_bootstrap(sums, counts, seed=seed)


def _normal_halfwidths(run: RunScores, means: np.ndarray, n: np.ndarray,
                       weights: np.ndarray) -> np.ndarray:
    """1.96 x standard error of each cell if samples were independent (the CI's floor)."""
    squares = run.squares if run.squares is not None else np.zeros(len(means))
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = np.where(n > 1, (squares - n * means ** 2) / (n - 1), 0.0)
        column_var = np.nan_to_num(np.maximum(variance, 0) / n)
    return 1.959964 * np.sqrt(weights ** 2 @ column_var)


def cell_names(columns: Sequence[Column]) -> list[str]:
    return composite_weights(columns)[0]


ROW_COUNTS = ["status", "coverage", "answered", "n", "errors", "missing", "parse_failures"]


def csv_header(columns: Sequence[Column]) -> list[str]:
    names = cell_names(columns)
    return ["model", "source", *ROW_COUNTS, *names,
            *(f"{name} {suffix}" for name in names
              for suffix in ("n", "answered", "ci_low", "ci_high")),
            "run", "testset"]


def write_csv(path: str, rows: Iterable[Mapping[str, Any]], columns: Sequence[Column]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=csv_header(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: csv_cell(key, value) for key, value in row.items()})


def csv_cell(key: str, value: Any) -> Any:
    """Scores with one decimal; coverage with four, rounded down (only 1.0000 is complete)."""
    if not isinstance(value, float):
        return value
    if key == "coverage":
        return round_down(value, 4)
    return f"{value:.1f}"


def read_csv(path: str) -> list[dict[str, Any]]:
    """Rows of a leaderboard CSV (reported or measured); empty cells stay empty strings."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def build_leaderboard(rundirs: Sequence[str], labels: Sequence[str] = (),
                      suite: str = "viubench,mvp", extra_tasks: Sequence[str] = (),
                      min_coverage: float = DEFAULT_MIN_COVERAGE
                      ) -> tuple[list[Column], list[dict[str, Any]]]:
    """Columns and one measured row per run (runs must share a test set to be compared);
    `extra_tasks` (module:attribute) add user tasks' columns and suites; a run that answered
    fewer than `min_coverage` of its samples is marked `incomplete` (none: `failed`)."""
    tasks = load_tasks(extra_tasks)
    columns = layout(tasks, suite)
    runs = [load_run(d, columns, labels[i] if i < len(labels) else None, extra_tasks)
            for i, d in enumerate(rundirs)]
    return columns, [run_row(run, columns, min_coverage=min_coverage) for run in runs]


def format_cell(row: Mapping[str, Any], name: str) -> str:
    """Plain text of a cell: '58.7 [55.1, 62.0]', '58.7' without a CI, '–' when missing;
    in a marked row '12.5* [0.0, 30.0]' or 'failed (0/4 answered)' (`coverage.cell_mark`)."""
    value, low, high = (number(row.get(name)), number(row.get(f"{name} ci_low")),
                        number(row.get(f"{name} ci_high")))
    if value is None:
        return "–"
    mark = cell_mark(row, name)
    if mark == FAILED:
        return failed_text(row, name)
    text = f"{value:.1f}" + ("*" if mark == INCOMPLETE else "")
    if low is None or high is None:
        return text
    return f"{text} [{low:.1f}, {high:.1f}]"


def coverage_cells(row: Mapping[str, Any]) -> list[str]:
    """Status, answered / n, errors, never answered, unparseable of a row ('–' for a reported
    row, which has no counts)."""
    coverage = row_coverage(row)
    if coverage is None:
        return [row_status(row) or "–", "–", "–", "–", "–"]
    return [row_status(row), f"{coverage.answered}/{coverage.n}", str(coverage.errors),
            str(coverage.missing), str(coverage.parse_failures)]


COVERAGE_HEADINGS = ["Status", "Answered", "Errors", "Never answered", "Unparseable"]


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """Coverage and scores with their CIs, one row per model (measured and reported); a note
    under the table when a row is marked."""
    names = cell_names(columns)
    headings = ["Model", "Source", *COVERAGE_HEADINGS, *names]
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    for row in rows:
        cells = [str(row["model"]), str(row["source"]), *coverage_cells(row),
                 *(format_cell(row, name) for name in names)]
        lines.append("| " + " | ".join(cells) + " |")
    if any(is_marked(row) for row in rows):
        lines += ["", INCOMPLETE_NOTE]
    return "\n".join(lines) + "\n"

