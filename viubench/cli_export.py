"""`viubench export TESTSET --format verl|easyr1|trl`: the files a trainer reads."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    export = commands.add_parser("export", help="write a built set as the dataset a trainer"
                                                " reads (verl, EasyR1 or TRL)")
    export.add_argument("testset", metavar="SET", help="a folder made by viubench build")
    export.add_argument("--format", required=True, choices=["verl", "easyr1", "trl"])
    export.add_argument("--out", required=True)
    export.set_defaults(handler=export_command)


def export_command(args: argparse.Namespace) -> int:
    from .export import run_export

    return run_export(args)
