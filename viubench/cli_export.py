"""`viubench export SET --format verl|easyr1|trl|hf|lmms-eval`: a built set as the files a trainer
(verl, EasyR1, TRL), the Hugging Face `datasets` library or lmms-eval reads."""

from __future__ import annotations

import argparse

TRAINER_FORMATS = ("verl", "easyr1", "trl")


def add_parser(commands) -> None:
    export = commands.add_parser("export", help="write a built set as the dataset a trainer"
                                                " reads (verl, EasyR1, TRL), a Hugging Face"
                                                " dataset (hf) or an lmms-eval task folder")
    export.add_argument("testset", metavar="SET", help="a folder made by viubench build")
    export.add_argument("--format", required=True, choices=[*TRAINER_FORMATS, "hf", "lmms-eval"])
    export.add_argument("--out", required=True,
                        help="a new or empty folder (or an earlier export of the same format)")
    export.add_argument("--reward-policy", metavar="POLICY",
                        help="the reward policy every row names (default: each task's own"
                             " first policy, strict for the built-in tasks)")
    export.add_argument("--limit", type=int, help="only the first N samples of the set")
    export.add_argument("--model", default="Qwen/Qwen2.5-VL-7B-Instruct",
                        help="the model path put in the printed training command")
    export.add_argument("--push-to-hub", metavar="REPO",
                        help="(hf) also push the dataset to this Hugging Face Hub repository"
                             " (needs network and a token; never done otherwise)")
    export.set_defaults(handler=export_command)


def export_command(args: argparse.Namespace) -> int:
    if args.format == "hf":
        from .hf_dataset import run_export_hf

        return run_export_hf(args)
    if args.format == "lmms-eval":
        from .lmms_eval_task import run_export_lmms_eval

        return run_export_lmms_eval(args)
    from .export import run_export

    return run_export(args)
