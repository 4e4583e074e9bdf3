"""How much of a run was answered, so that a failed run never reads as a plain score.

A sample whose request failed (`error`) or was never made (`missing`: an interrupted run) scores
0, exactly like a wrong answer (`score.py`). A leaderboard row or a comparison therefore carries
the run's coverage, answered / n over the samples its cells are made of, with the errors, the
samples never answered and the replies that did not parse (answered, scored 0 by the model's own
doing, so they do not lower coverage). A run whose coverage is below `min_coverage` has status
`incomplete` and its cells that count unanswered samples are marked `*`; a run that answered
nothing is `failed` whatever the threshold, and its cells say `failed (0/n answered)` instead of
a number. The default threshold is 1.0: any unanswered sample pulls a score down by up to 100/n
points, which is the size of the differences between models a leaderboard is read for, and a
rerun of `viubench eval` asks those samples again, so a complete run is always within reach.

Rows come from `leaderboard.build_leaderboard` or from a CSV (`leaderboard.read_csv`): values
are numbers or strings. Reported rows (published numbers) have no counts and no status: they are
shown as published, never marked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .answers import LENIENT

COMPLETE, INCOMPLETE, FAILED, EMPTY = "complete", "incomplete", "failed", "empty"
MARKED = (INCOMPLETE, FAILED)
DEFAULT_MIN_COVERAGE = 1.0
STATUSES = ("answered", "error", "missing")     # a score record's `status`
KINDS = ("answered", "errors", "missing", "parse_failures")
INCOMPLETE_NOTE = ("`*`: the cell counts samples the model never answered (errors, never asked)"
                   " as wrong; `failed (0/n answered)`: none of the cell's samples was answered")


def number(value: Any) -> float | None:
    """A float from a float, int or CSV string; None for '', None, NaN or junk."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(result) else result


def check_min_coverage(value: float) -> float:
    """A coverage threshold between 0 and 1, or ValueError."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"--min-coverage {value}: expected a fraction between 0 and 1")
    return value


def round_down(fraction: float, places: int) -> str:
    """A fraction with `places` decimals, rounded down so that only 1 reads as 1 (the 1e-9
    absorbs binary error: 0.29 * 100 is 28.999999999999996)."""
    return f"{math.floor(fraction * 10 ** places + 1e-9) / 10 ** places:.{places}f}"


def percent(fraction: float) -> str:
    """'99.9%' rounded down, so that only a complete run shows 100%."""
    return round_down(100 * fraction, 1) + "%"


def outcome(record: Mapping[str, Any], where: str) -> tuple[str, bool]:
    """(status, reply unparseable) of one score record; ValueError naming `where` if the
    status is not one the scorer writes."""
    status = record.get("status")
    if status not in STATUSES:
        raise ValueError(f"{where}: sample {record.get('id')!r} has status {status!r}, not one"
                         f" of {', '.join(STATUSES)}")
    return status, unparseable(record)


def unparseable(record: Mapping[str, Any], policy: str = LENIENT) -> bool:
    """An answered sample whose reply did not parse under `policy`."""
    parse_errors = record.get("parse_errors") or {}
    return record.get("status") == "answered" and parse_errors.get(policy) is not None


@dataclass(frozen=True)
class Coverage:
    """Outcome counts of a set of samples."""

    answered: int = 0
    errors: int = 0
    missing: int = 0
    parse_failures: int = 0       # answered, but the reply did not parse

    @property
    def n(self) -> int:
        return self.answered + self.errors + self.missing

    @property
    def fraction(self) -> float | None:
        return self.answered / self.n if self.n else None

    def status(self, min_coverage: float = DEFAULT_MIN_COVERAGE) -> str:
        if not self.n:
            return EMPTY
        if not self.answered:
            return FAILED
        # a tolerance so that 19/20 meets 0.95 despite binary fractions
        return INCOMPLETE if self.answered / self.n < min_coverage - 1e-9 else COMPLETE

    def describe(self) -> str:
        """'30 of 36 samples answered (83.3%; 4 errors, 2 never answered, 1 unparseable)'."""
        share = f"{percent(self.fraction)}; " if self.fraction is not None else ""
        return (f"{self.answered} of {self.n} samples answered ({share}{self.errors} errors,"
                f" {self.missing} never answered, {self.parse_failures} unparseable)")


class Tally:
    """Outcome counts per leaderboard column of one run: every coverage is summed from it."""

    def __init__(self, width: int) -> None:
        self.counts = np.zeros((len(KINDS), width), dtype=np.int64)

    def add(self, slot: int, status: str, parse_failed: bool) -> None:
        kind = {"answered": 0, "error": 1, "missing": 2}[status]
        self.counts[kind, slot] += 1
        self.counts[3, slot] += parse_failed

    def coverage(self, used: np.ndarray | None = None) -> Coverage:
        """The coverage of the columns `used` selects (a boolean mask), or of all of them."""
        counts = self.counts if used is None else self.counts[:, used]
        return Coverage(*(int(total) for total in counts.sum(axis=1)))


def row_fields(coverage: Coverage, min_coverage: float) -> dict[str, Any]:
    """A leaderboard row's status and counts (`coverage` is a fraction, None when empty)."""
    return {"status": coverage.status(min_coverage), "coverage": coverage.fraction,
            "answered": coverage.answered, "n": coverage.n, "errors": coverage.errors,
            "missing": coverage.missing, "parse_failures": coverage.parse_failures}


def row_status(row: Mapping[str, Any]) -> str:
    """A row's status; '' for a reported row (it has none)."""
    return str(row.get("status") or "").strip()


def is_marked(row: Mapping[str, Any]) -> bool:
    return row_status(row) in MARKED


def row_coverage(row: Mapping[str, Any]) -> Coverage | None:
    """The counts a measured row carries (from a build or its CSV); None for a reported row."""
    values = [number(row.get(kind)) for kind in KINDS]
    if any(value is None for value in values[:3]):
        return None
    return Coverage(*(int(value or 0) for value in values))


def cell_mark(row: Mapping[str, Any], name: str) -> str | None:
    """FAILED or INCOMPLETE for a cell of a marked row that counts unanswered samples, else
    None. A row without per-cell counts (an older CSV) marks every cell as the row is marked."""
    if not is_marked(row):
        return None
    answered, n = number(row.get(f"{name} answered")), number(row.get(f"{name} n"))
    if answered is None or n is None:
        return row_status(row)
    if not n or answered >= n:
        return None
    return FAILED if not answered else INCOMPLETE


def failed_text(row: Mapping[str, Any], name: str) -> str:
    """'failed (0/4 answered)': what a failed cell shows instead of its score."""
    n = number(row.get(f"{name} n"))
    return f"failed (0/{int(n)} answered)" if n is not None else "failed"


def warning_line(who: str, coverage: Coverage, status: str, where: str = "") -> str | None:
    """One console line for a marked or empty run, None for a complete one."""
    place = f" ({where})" if where else ""
    if status == FAILED:
        return (f"{who}{place} FAILED: {coverage.describe()}; its scores are not the model's,"
                " every sample counts as wrong")
    if status == INCOMPLETE:
        return (f"{who}{place} is incomplete: {coverage.describe()}; unanswered samples count as"
                " wrong in the cells marked *")
    if status == EMPTY:
        return f"{who}{place} has no sample in the columns shown (see --suite)"
    return None


def row_warning(row: Mapping[str, Any]) -> str | None:
    """The console line of a leaderboard row (measured or a CSV with counts), or None."""
    coverage = row_coverage(row)
    if coverage is None:
        return None
    return warning_line(str(row.get("model", "")), coverage, row_status(row),
                        str(row.get("run") or ""))
