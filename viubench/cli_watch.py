"""`viubench watch CKPT_DIR`: evaluate each checkpoint as it appears; keep a learning curve."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    watch = commands.add_parser("watch", help="evaluate training checkpoints as they appear and"
                                              " keep a learning curve (CSV and PNG)")
    watch.add_argument("checkpoints", metavar="CKPT_DIR",
                       help="the trainer's output folder (checkpoint-100, checkpoint-200, ...)")
    watch.add_argument("--testset", required=True)
    watch.add_argument("--model", required=True, metavar="SPEC",
                       help="adapter spec with {checkpoint} where the checkpoint's path goes,"
                            " e.g. 'hf:{checkpoint}' or 'vllm:{checkpoint}'")
    watch.set_defaults(handler=watch_command)


def watch_command(args: argparse.Namespace) -> int:
    from .watch import run_watch

    return run_watch(args)
