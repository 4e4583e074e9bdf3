"""`viubench import hf|lmms-eval SOURCE --out DIR`: a test set from a Hugging Face dataset, or a
run folder from an lmms-eval run's per-sample logs."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    command = commands.add_parser("import", help="a test set from a Hugging Face dataset (hf), or"
                                                 " a run folder from lmms-eval's sample logs")
    command.add_argument("source_format", metavar="FORMAT", choices=["hf", "lmms-eval"],
                         help="hf or lmms-eval")
    command.add_argument("source", metavar="SOURCE",
                         help="hf: a folder written by `export --format hf` (or a Hub dataset"
                              " repository, which needs network); lmms-eval: the --output_path"
                              " folder of an lmms-eval run made with --log_samples")
    command.add_argument("--out", required=True,
                         help="hf: the test-set folder to write; lmms-eval: the run folder")
    command.add_argument("--testset",
                         help="(lmms-eval) the viubench test set the lmms-eval task was"
                              " exported from")
    command.set_defaults(handler=import_command)


def import_command(args: argparse.Namespace) -> int:
    if args.source_format == "hf":
        from .hf_import import run_import_hf

        return run_import_hf(args)
    from .lmms_eval_run import run_import_lmms_eval

    return run_import_lmms_eval(args)
