"""`viubench watch CKPT_DIR`: evaluate each checkpoint as it appears; keep a learning curve."""

from __future__ import annotations

import argparse
import os

from .cli_options import add_model_options, add_run_options

DEFAULT_POLL = 30.0


def add_parser(commands) -> None:
    watch = commands.add_parser("watch", help="evaluate training checkpoints as they appear and"
                                              " keep a learning curve (CSV and PNG)")
    watch.add_argument("checkpoints", metavar="CKPT_DIR",
                       help="the trainer's output folder (checkpoint-100, checkpoint-200, ...)")
    watch.add_argument("--testset", required=True)
    watch.add_argument("--model", required=True, metavar="SPEC",
                       help="adapter spec with {checkpoint} where the checkpoint's path goes,"
                            " e.g. 'hf:{checkpoint}' or 'vllm:{checkpoint}'; {step} and {name}"
                            " (checkpoint-200) are filled in too, in the target and options")
    add_model_options(watch)
    watch.add_argument("--out", help="where the run folders, curve.csv and curve.png go"
                                     " (default: CKPT_DIR/viubench-watch)")
    watch.add_argument("--every", type=int, default=1, metavar="N",
                       help="only checkpoints whose step is a multiple of N")
    watch.add_argument("--poll", type=float, default=DEFAULT_POLL, metavar="SECONDS",
                       help="seconds between looks at CKPT_DIR; a checkpoint is evaluated once"
                            " it is complete and unchanged over one poll")
    watch.add_argument("--once", action="store_true",
                       help="evaluate the checkpoints that are ready now (looked at twice,"
                            " --poll apart), then exit: 0, or 1 if a checkpoint failed")
    watch.add_argument("--idle-exit", type=float, metavar="SECONDS",
                       help="exit when no checkpoint appeared or finished for this long"
                            " (status as with --once)")
    watch.add_argument("--train-set", metavar="DIR",
                       help="the training set: warn when it shares source videos with --testset")
    _add_run_options(watch)
    watch.set_defaults(handler=watch_command)


def _add_run_options(watch: argparse.ArgumentParser) -> None:
    """The options of `viubench eval` that apply to each checkpoint's run."""
    add_run_options(watch)
    watch.add_argument("--max-error-rate", type=float, default=0.0, metavar="FRACTION",
                       help="a checkpoint whose share of samples ending in an error is larger"
                            " counts as failed (no score on the curve)")


def settings_from(args: argparse.Namespace):
    """The checked `WatchSettings` of a parsed command line (ValueError for bad values)."""
    from .adapters import parse_spec
    from .cli_eval import error_rate_limit, generation_settings
    from .retry import RetryPolicy
    from .runner import RunOptions
    from .watch import DEFAULT_OUT, WatchError, WatchSettings

    if args.every < 1:
        raise WatchError(f"--every {args.every}: expected a step count of at least 1")
    if args.poll < 0 or (args.idle_exit is not None and args.idle_exit < 0):
        raise WatchError("--poll and --idle-exit take a number of seconds, at least 0")
    options = RunOptions(args.concurrency, args.batch_size, args.limit,
                         retry=RetryPolicy(args.max_attempts, args.retry_base, args.retry_cap))
    return WatchSettings(
        checkpoints=os.path.abspath(args.checkpoints), testset=args.testset,
        spec=parse_spec(args.model, args.model_arg),
        out=args.out or os.path.join(args.checkpoints, DEFAULT_OUT),
        adapter_modules=tuple(args.adapter_module), task_modules=tuple(args.task_module),
        generation=generation_settings(args.max_new_tokens), options=options,
        max_error_rate=error_rate_limit(args.max_error_rate), every=args.every,
        poll=args.poll, once=args.once, idle_exit=args.idle_exit)


def watch_command(args: argparse.Namespace) -> int:
    from .leakage import warn_if_shared
    from .watch import watch

    settings = settings_from(args)
    warn_if_shared(args.train_set, settings.testset)
    return watch(settings)
