"""`viubench export TESTSET --format verl|easyr1|trl`: the files a trainer reads."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    export = commands.add_parser("export", help="write a built set as the dataset a trainer"
                                                " reads (verl, EasyR1 or TRL)")
    export.add_argument("testset", metavar="SET", help="a folder made by viubench build")
    export.add_argument("--format", required=True, choices=["verl", "easyr1", "trl"])
    export.add_argument("--out", required=True,
                        help="a new or empty folder (or an earlier export): train.parquet and"
                             " README.md are written there")
    export.add_argument("--reward-policy", metavar="POLICY",
                        help="the reward policy every row names (default: each task's own"
                             " first policy, strict for the built-in tasks)")
    export.add_argument("--limit", type=int, help="only the first N samples of the set")
    export.add_argument("--model", default="Qwen/Qwen2.5-VL-7B-Instruct",
                        help="the model path put in the printed training command")
    export.set_defaults(handler=export_command)


def export_command(args: argparse.Namespace) -> int:
    from .export import run_export

    return run_export(args)
