"""The learning curve of `viubench watch`: one point per checkpoint x task:variant x metric.

    curve.csv   step, checkpoint, task, variant, metric, value, ci_low, ci_high, n, answered,
                errors, status, note; one row per checkpoint x task:variant x metric, sorted by
                step. `score` (x100) carries its 95% CI (`viubench.score.summarize`); the
                task's other metrics (x100) and mean rewards per policy (0..1) have none. A
                checkpoint that failed or was skipped has rows with an empty value, its status
                and the reason in `note`: never a score.
    curve.png   score against step, one line per task:variant with its CI as a band; failed
                and skipped checkpoints as labelled vertical lines.

Both files are replaced whole (written aside, then renamed), so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable, Mapping, Sequence

from .records import replaced

CURVE_CSV, CURVE_PNG = "curve.csv", "curve.png"
OK, FAILED, SKIPPED = "ok", "failed", "skipped"
SCORE = "score"


@dataclass(frozen=True)
class CurvePoint:
    """One row of curve.csv."""

    step: int
    checkpoint: str
    task: str
    variant: str
    metric: str
    value: float | None          # None unless status is `ok`
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    answered: int | None = None
    errors: int | None = None
    status: str = OK
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.task}:{self.variant}"


COLUMNS = [item.name for item in fields(CurvePoint)]


def points_from_results(step: int, checkpoint: str, results: Mapping[str, Any],
                        status: str = OK, note: str = "") -> list[CurvePoint]:
    """A scored run's rows (results.json's `variants`): `score` with its CI, then the other
    metrics and mean rewards. With a status other than `ok` the counts stay and values go."""
    points = []
    for key, row in sorted(results["variants"].items()):
        task, _, variant = key.partition(":")
        for metric, value, low, high in _metric_values(row):
            if status != OK:
                value = low = high = None
            points.append(CurvePoint(step, checkpoint, task, variant, metric, value, low, high,
                                     int(row["n"]), int(row["answered"]), int(row["errors"]),
                                     status, note))
    return points


def _metric_values(row: Mapping[str, Any]
                   ) -> list[tuple[str, float | None, float | None, float | None]]:
    """(metric, value, CI low, CI high) of one results.json variant: score first."""
    low, high = (float(bound) for bound in row["ci95"])
    values: list[tuple[str, float | None, float | None, float | None]] = [
        (SCORE, float(row["score"]), low, high)]
    values += [(name, float(value), None, None)
               for name, value in sorted(row.get("metrics", {}).items()) if name != SCORE]
    values += [(f"reward_{policy}", float(value), None, None)
               for policy, value in sorted(row.get("rewards", {}).items())]
    return values


def points_without_score(step: int, checkpoint: str, keys: Iterable[str], status: str,
                         note: str) -> list[CurvePoint]:
    """Rows of a checkpoint that has no results (its model did not load, it was deleted before
    it was evaluated): one `score` row per task:variant with no value."""
    points = []
    for key in sorted(keys):
        task, _, variant = key.partition(":")
        points.append(CurvePoint(step, checkpoint, task, variant, SCORE, None, status=status,
                                 note=note))
    return points


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return value


def write_csv(path: str, points: Sequence[CurvePoint]) -> None:
    """curve.csv, replaced whole; rows sorted by step, task:variant, metric."""
    ordered = sorted(points, key=lambda p: (p.step, p.checkpoint, p.key, p.metric != SCORE,
                                            p.metric))
    with replaced(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for point in ordered:
            writer.writerow({name: _cell(value) for name, value in asdict(point).items()})


def read_csv(path: str) -> list[dict[str, str]]:
    """Rows of a curve.csv as written (every value a string; empty where there is none)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def draw_png(path: str, points: Sequence[CurvePoint], title: str) -> None:
    """curve.png: score against step per task:variant with its CI band, replaced whole."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(9, 5), dpi=100)
    axes = figure.add_subplot()
    scores = [p for p in points if p.metric == SCORE and p.status == OK]
    for key in sorted({p.key for p in scores}):
        line = sorted((p for p in scores if p.key == key), key=lambda p: p.step)
        steps = [p.step for p in line]
        drawn = axes.plot(steps, [_or(p.value, None) for p in line], marker="o", label=key)
        axes.fill_between(steps, [_or(p.ci_low, p.value) for p in line],
                          [_or(p.ci_high, p.value) for p in line],
                          color=drawn[0].get_color(), alpha=0.15, linewidth=0)
    _mark_unscored(axes, points)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("training step")
    axes.set_ylabel("score (x100, 95% CI band)")
    axes.set_ylim(-2, 102)
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    if scores:
        axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    part = path + ".part"
    figure.savefig(part, format="png")
    os.replace(part, path)


def _or(value: float | None, default: float | None) -> float:
    chosen = value if value is not None else default
    return float("nan") if chosen is None else chosen


def _mark_unscored(axes: Any, points: Sequence[CurvePoint]) -> None:
    """A dotted vertical line and its status at each failed or skipped checkpoint."""
    unscored = {(p.step, p.status) for p in points if p.status != OK}
    for step, status in sorted(unscored):
        axes.axvline(step, color="red" if status == FAILED else "grey", linestyle=":")
        axes.text(step, 100, f" {status}", rotation=90, va="top", fontsize=8,
                  color="red" if status == FAILED else "grey")
