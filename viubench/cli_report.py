"""`viubench leaderboard | compare | analyze`: the command glue around the report modules."""

from __future__ import annotations

import argparse
import os
import warnings
from importlib import resources
from typing import Any, Iterable

COVERAGE_HELP = ("mark a run that answered fewer than this fraction of its samples as"
                 " incomplete (default 1.0: any error or unanswered sample; a run that answered"
                 " none is failed at any threshold)")


def add_parsers(commands: Any) -> None:
    board = commands.add_parser("leaderboard", help="leaderboard CSV + markdown + HTML of runs")
    board.add_argument("rundirs", nargs="+", metavar="RUNDIR")
    board.add_argument("--out", required=True, help="CSV path, e.g. leaderboards/mine.csv;"
                                                    " .md, .html and .png are written beside it")
    board.add_argument("--label", action="append", default=[],
                       help="row name for each RUNDIR in order (default: the model spec)")
    board.add_argument("--suite", default="viubench,mvp",
                       help="suites whose columns to show; Overall averages the first one's")
    board.add_argument("--reported", default=None,
                       help="CSV of published rows to show beside yours (default: the paper's"
                            " table for the suite, shipped with viubench; 'none' to omit)")
    board.add_argument("--title", default=None)
    board.add_argument("--task-module", action="append", default=[], metavar="MODULE:ATTR",
                       help="a user task whose columns and suites to show (repeatable)")
    board.add_argument("--min-coverage", type=float, default=1.0, metavar="FRACTION",
                       help=COVERAGE_HELP)

    compare = commands.add_parser("compare", help="paired difference of two runs with CIs")
    compare.add_argument("run_a", metavar="RUN_A")
    compare.add_argument("run_b", metavar="RUN_B")
    compare.add_argument("--suite", default="viubench,mvp")
    compare.add_argument("--task-module", action="append", default=[], metavar="MODULE:ATTR",
                         help="a user task whose columns and suites to compare (repeatable)")
    compare.add_argument("--min-coverage", type=float, default=1.0, metavar="FRACTION",
                         help=COVERAGE_HELP)

    analyze = commands.add_parser("analyze", help="difficulty analyses and a shortcut audit")
    analyze.add_argument("rundirs", nargs="*", metavar="RUNDIR")
    analyze.add_argument("--testset", help="analyse a test set itself (answer distribution,"
                                           " chance, prior, difficulty mix), without runs")
    analyze.add_argument("--task-module", action="append", default=[], metavar="MODULE:ATTR",
                         help="a user task the test set uses (never imported from the test"
                              " set)")
    analyze.add_argument("--out", required=True)
    analyze.add_argument("--label", action="append", default=[])


def reported_rows(option: str | None, suite: str) -> list[dict[str, Any]]:
    from .leaderboard import read_csv

    if option == "none":
        return []
    if option is not None:
        return read_csv(option)
    shipped = resources.files("viubench.leaderboards") / f"{suite.split(',')[0]}_reported.csv"
    if not shipped.is_file():
        return []
    with resources.as_file(shipped) as path:
        return read_csv(str(path))


def leaderboard_command(args: argparse.Namespace) -> int:
    from .coverage import check_min_coverage, row_warning
    from .leaderboard import build_leaderboard, markdown_table, write_csv

    columns, measured = build_leaderboard(args.rundirs, args.label, args.suite, args.task_module,
                                          check_min_coverage(args.min_coverage))
    rows = measured + reported_rows(args.reported, args.suite)
    warn_lines(row_warning(row) for row in rows)
    stem = os.path.splitext(args.out)[0]
    write_csv(args.out, rows, columns)
    with open(stem + ".md", "w", encoding="utf-8") as handle:
        handle.write(markdown_table(rows, columns))
    written = [args.out, stem + ".md", *_write_html(stem, rows, columns, args)]
    print(markdown_table(rows, columns))
    print("wrote " + ", ".join(written))
    return 0


def _write_html(stem: str, rows: list[dict[str, Any]], columns, args) -> list[str]:
    from .html_report import write_html, write_pngs

    title = args.title or f"{args.suite.split(',')[0]} leaderboard"
    write_html(stem + ".html", rows, columns, title)
    return [stem + ".html", *write_pngs(stem, rows, columns)]


def compare_command(args: argparse.Namespace) -> int:
    from .compare import format_comparison, paired_comparison
    from .coverage import check_min_coverage, warning_line

    threshold = check_min_coverage(args.min_coverage)
    comparison = paired_comparison(args.run_a, args.run_b, args.suite,
                                   extra_tasks=args.task_module)
    warn_lines(warning_line(f"run {side}", coverage, coverage.status(threshold), rundir)
          for side, coverage, rundir in (("A", comparison.coverage_a, args.run_a),
                                         ("B", comparison.coverage_b, args.run_b)))
    print(format_comparison(comparison, args.run_a, args.run_b, threshold))
    return 0


def warn_lines(lines: Iterable[str | None]) -> None:
    """One console warning per line that is not None (a run marked for its coverage)."""
    for line in lines:
        if line is not None:
            warnings.warn(line, UserWarning, stacklevel=2)


def analyze_command(args: argparse.Namespace) -> int:
    from .analysis import analyze
    from .testset_analysis import analyze_testset

    if bool(args.testset) == bool(args.rundirs):
        raise ValueError("analyze takes run folders or --testset TESTSET, not both or neither")
    paths = (analyze_testset(args.testset, args.out, args.task_module) if args.testset
             else analyze(args.rundirs, args.out, args.label, args.task_module))
    for path in paths:
        print(f"wrote {path}")
    return 0
