"""`viubench eval`: parse the command line into a run, carry it out, score it."""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Sequence

from .adapters import AdapterAbort, AdapterSpec, create, parse_spec
from .progress import RunProgress
from .score import format_results, score_run
from .retry import RetryPolicy
from .runner import GenerationSettings, RunAborted, RunOptions, run_eval


def generation_settings(items: Sequence[str]) -> GenerationSettings:
    """`--max-new-tokens N` for every task and/or `TASK=N` for one task."""
    default, per_task = GenerationSettings().max_new_tokens, {}
    for item in items:
        task, sep, value = item.rpartition("=")
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"--max-new-tokens {item!r}: expected N or TASK=N with N >= 1")
        if sep:
            per_task[task] = int(value)
        else:
            default = int(value)
    return GenerationSettings(default, per_task)


def default_rundir(spec: AdapterSpec) -> str:
    """runs/<adapter>-<target>: a convenience name only; nothing is read back from it."""
    words = f"{spec.name}-{os.path.basename(spec.target.rstrip('/'))}" if spec.target \
        else spec.name
    return os.path.join("runs", re.sub(r"[^A-Za-z0-9._-]+", "_", words).strip("_"))


def eval_command(args: argparse.Namespace) -> int:
    spec = parse_spec(args.model, args.model_arg)
    rundir = args.out or default_rundir(spec)
    generation = generation_settings(args.max_new_tokens)
    options = RunOptions(args.concurrency, args.batch_size, args.limit, args.retry_errors,
                         RetryPolicy(args.max_attempts, args.retry_base, args.retry_cap))
    try:
        adapter = create(spec, args.adapter_module, args.task_module)
    except AdapterAbort as error:
        print(f"viubench eval: cannot start {spec.redacted()}: {error}", file=sys.stderr)
        return 2
    try:
        with RunProgress(spec.redacted()) as progress:
            counts = run_eval(args.testset, spec, adapter, rundir, generation, options,
                              progress)
    except RunAborted as aborted:
        print(f"viubench eval: stopped: {aborted}\n  answers so far are kept in {rundir};"
              " run the same command again to resume", file=sys.stderr)
        return 3
    finally:
        adapter.close()
    print(f"{rundir}: {counts['answered']} answered, {counts['errors']} errors this session")
    if not args.no_score:
        print(format_results(score_run(rundir, args.testset, args.task_module)))
    return 0
