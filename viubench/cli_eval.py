"""`viubench eval`: parse the command line into a run, carry it out, score it, say how it went.

The exit status tells a script whether the run can be trusted: 0 when every sample in scope has
an answer (or the errors stay within `--max-error-rate`), 1 when more samples ended in an error,
2 for bad input, 3 when the run was stopped (bad credentials, a server that does not answer);
the coverage line (answered of n, errors by kind, never asked) is printed in every case.
With `--shard I/N` the run asks only that shard's samples (`viubench.shards`); its coverage and
exit status are about them, and it is scored once merged (`viubench merge`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from .adapters import AdapterAbort, AdapterSpec, create, parse_spec
from .progress import RunProgress
from .retry import RetryPolicy
from .runfolder import latest, read_run
from .runner import GenerationSettings, RunAborted, RunOptions, run_eval
from .score import format_results, score_run
from .shards import Shard, parse_shard
from .testset import sample_ids


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


@dataclass(frozen=True)
class Outcome:
    """Where the samples in a run's scope stand: by the last record of each."""

    n: int
    answered: int
    errors: Mapping[str, int] = field(default_factory=dict)   # kind -> samples

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def unasked(self) -> int:
        return self.n - self.answered - self.failed

    @property
    def error_rate(self) -> float:
        return self.failed / self.n if self.n else 0.0

    def describe(self) -> str:
        """'coverage: 280 of 288 answered; 8 errors (fatal 3, transient 5); 0 never asked'."""
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(self.errors.items()))
        return (f"coverage: {self.answered} of {self.n} answered; {self.failed} errors"
                f"{f' ({kinds})' if kinds else ''}; {self.unasked} never asked")


def run_outcome(rundir: str, testset: str, limit: int | None,
                shard: Shard | None = None) -> Outcome:
    """The outcome of every sample in scope (of the shard's samples, for a shard run), as the
    run folder holds it now."""
    _, records = read_run(rundir)
    last = latest(records)
    scope = sample_ids(testset, limit)   # the run has just checked these records
    if shard:
        scope = [sample_id for sample_id in scope if shard.holds(sample_id)]
    finals = [last.get(sample_id) for sample_id in scope]
    errors = Counter(str(r["kind"]) for r in finals if r is not None and r["error"] is not None)
    answered = sum(1 for r in finals if r is not None and r["error"] is None)
    return Outcome(len(scope), answered, dict(errors))


def error_rate_limit(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"--max-error-rate {value:g}: expected a fraction between 0 and 1")
    return value


def eval_command(args: argparse.Namespace) -> int:
    spec = parse_spec(args.model, args.model_arg)
    rundir = args.out or default_rundir(spec)
    generation = generation_settings(args.max_new_tokens)
    max_error_rate = error_rate_limit(args.max_error_rate)
    shard = parse_shard(args.shard) if args.shard else None
    options = RunOptions(args.concurrency, args.batch_size, args.limit,
                         keep_errors=args.keep_errors,
                         retry=RetryPolicy(args.max_attempts, args.retry_base, args.retry_cap),
                         shard=shard)
    try:
        adapter = create(spec, args.adapter_module, args.task_module)
    except AdapterAbort as error:
        print(f"viubench eval: cannot start {spec.redacted()}: {error}", file=sys.stderr)
        return 2
    try:
        with RunProgress(spec.redacted(), args.keep_errors) as progress:
            counts = run_eval(args.testset, spec, adapter, rundir, generation, options,
                              progress)
    except RunAborted as aborted:
        outcome = run_outcome(rundir, args.testset, args.limit, shard)
        print(f"{rundir}: {outcome.describe()}")
        _say(f"viubench eval: stopped: {aborted}\n  answers so far are kept in {rundir};"
             " run the same command again to resume")
        return 3
    finally:
        adapter.close()
    outcome = run_outcome(rundir, args.testset, args.limit, shard)
    print(f"{rundir}: {counts['answered']} answered, {counts['errors']} errors this session")
    print(f"{rundir}: {outcome.describe()}")
    if shard:
        print(f"{rundir}: shard {shard.describe()}, not scored alone: when every shard has run,"
              " `viubench merge` them into one run folder, which is scored")
    elif not args.no_score:
        print(format_results(score_run(rundir, args.testset, args.task_module)))
    if outcome.error_rate > max_error_rate:
        _say(f"viubench eval: FAILED: {outcome.failed} of {outcome.n} samples"
             f" ({100 * outcome.error_rate:.1f}%) ended in an error, more than --max-error-rate"
             f" {max_error_rate:g} allows; run the same command again to ask them again")
        return 1
    return 0


def _say(line: str) -> None:
    """A line on stderr after everything already printed on stdout."""
    sys.stdout.flush()
    print(line, file=sys.stderr)
