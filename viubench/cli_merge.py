"""`viubench merge RUNDIR... --out RUNDIR`: the shards of one evaluation as one scored run."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    merge = commands.add_parser("merge", help="merge the shard runs of one evaluation"
                                              " (eval --shard I/N) into one run, then score it")
    merge.add_argument("rundirs", nargs="+", metavar="RUNDIR",
                       help="the run folders of shards 0/N ... N-1/N, each once")
    merge.add_argument("--out", required=True, help="the merged run folder (must be new)")
    merge.add_argument("--testset", help="where the test set is now (default: as recorded)")
    merge.add_argument("--task-module", action="append", default=[], metavar="MODULE:ATTR",
                       help="a user task the test set uses (never imported from the test set)")
    merge.add_argument("--no-score", action="store_true", help="only merge the predictions")
    merge.set_defaults(handler=merge_command)


def merge_command(args: argparse.Namespace) -> int:
    from .merge import merge_runs
    from .score import format_results, score_run

    merged = merge_runs(args.rundirs, args.out, args.testset)
    never = f"; {merged.missing} never answered (run their shard again)" if merged.missing \
        else ""
    print(f"{merged.rundir}: merged {merged.shards} shards, {merged.samples} samples in"
          f" scope{never}")
    if not args.no_score:
        print(format_results(score_run(merged.rundir, args.testset, args.task_module)))
    return 0
