"""`viubench merge`: the shard runs of one evaluation (`viubench eval --shard I/N`) as one run.

Every input must be a shard run of the same test set (by hash), adapter spec and fingerprint,
generation settings, shard count and scope (`--limit`); each shard 0..N-1 must be there once,
and every answer a shard holds must be of one of its own samples. The merged run folder holds
the header an unsharded run of the same settings has, its scope record, and the last record of
each sample (the one that counts) copied from its shard, in test-set order: so its predictions,
scores and results are those of the unsharded run (timings aside, which are each answer's own).
A sample a shard never answered (a shard killed and not resumed) stays missing, as in any
interrupted run; the merge says how many.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .folderlock import exclusive
from .records import append_jsonl, file_hash, replaced
from .runfolder import (PREDICTIONS, differing_settings, latest, read_run, run_scope,
                        scope_record)
from .shards import Shard, shard_from_json, shard_of
from .testset import iter_samples, samples_path


class MergeError(ValueError):
    """The inputs are not the shards of one run, or the output folder is taken."""


@dataclass(frozen=True)
class ShardRun:
    """One input: its folder, header, shard, scope and the last record of each sample."""

    rundir: str
    header: Mapping[str, Any]
    shard: Shard
    limit: int | None
    answers: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Merged:
    """What a merge wrote: the shard count, samples in scope, and those with no record."""

    rundir: str
    shards: int
    samples: int
    missing: int


def merge_runs(rundirs: Sequence[str], out: str, testset: str | None = None) -> Merged:
    """Merge the shard runs `rundirs` into the new run folder `out` (not scored here: see
    `viubench.score.score_run`). Each input is locked while it is read, so a shard still being
    written is refused, and so is an `out` that already holds a run."""
    if not rundirs:
        raise MergeError("viubench merge: no run folders given")
    _check_out(rundirs, out)
    with contextlib.ExitStack() as locks:
        for rundir in rundirs:
            if not os.path.isfile(os.path.join(rundir, PREDICTIONS)):
                raise MergeError(f"{rundir} holds no run (no {PREDICTIONS})")
            locks.enter_context(exclusive(rundir, "merge (read)"))
        runs = [read_shard_run(rundir) for rundir in rundirs]
    check_shards(runs)
    testset = testset or str(runs[0].header["testset"]["path"])
    if file_hash(samples_path(testset)) != runs[0].header["testset"]["hash"]:
        raise MergeError(f"{testset} is not the test set these runs answered (hash differs)")
    with exclusive(out, "merge"):
        if os.path.exists(os.path.join(out, PREDICTIONS)):
            raise MergeError(f"{out} already holds a run; merge into a new folder")
        return _write(runs, out, testset)


def _check_out(rundirs: Sequence[str], out: str) -> None:
    real = os.path.realpath(out)
    if any(os.path.realpath(rundir) == real for rundir in rundirs):
        raise MergeError(f"{out} is one of the shards; merge into a new folder")
    if os.path.exists(os.path.join(out, PREDICTIONS)):
        raise MergeError(f"{out} already holds a run; merge into a new folder")


def read_shard_run(rundir: str) -> ShardRun:
    """One shard run, checked: a header with a shard, answers of its own samples only."""
    header, records = read_run(rundir)
    if header is None:
        raise MergeError(f"{rundir} holds no run (no {PREDICTIONS} header)")
    where = os.path.join(rundir, PREDICTIONS)
    shard = shard_from_json(header.get("shard"), where)
    if shard is None:
        raise MergeError(f"{rundir} is not a shard run (it was not made with --shard)")
    if not isinstance(header.get("testset"), dict) or not isinstance(
            header["testset"].get("path"), str):
        raise MergeError(f"{where}: a header without its test set")
    answers = latest(records)
    for sample_id in answers:
        if not shard.holds(str(sample_id)):
            raise MergeError(f"{where}: holds an answer for sample {str(sample_id)[:40]},"
                             f" which is not in shard {shard.describe()}")
    limit = run_scope(records)
    if limit is not None and type(limit) is not int:
        raise MergeError(f"{where}: a malformed scope record (limit {str(limit)[:20]!r})")
    return ShardRun(rundir, header, shard, limit, answers)


def check_shards(runs: Sequence[ShardRun]) -> None:
    """The runs are the shards 0..N-1 of one run, each once (MergeError naming the first
    difference otherwise)."""
    first = runs[0]
    for run in runs[1:]:
        differs = [d for d in differing_settings(first.header, run.header) if d != "shard"]
        if differs:
            raise MergeError(f"{run.rundir} and {first.rundir} are not shards of one run:"
                             f" different {', '.join(differs)}")
        if run.shard.count != first.shard.count:
            raise MergeError(f"{run.rundir} is shard {run.shard.describe()}, {first.rundir} is"
                             f" shard {first.shard.describe()}: different shard counts")
        if run.limit != first.limit:
            raise MergeError(f"{run.rundir} and {first.rundir} have different scopes"
                             f" (--limit {run.limit} and {first.limit})")
    seen: dict[int, str] = {}
    for run in runs:
        if run.shard.index in seen:
            raise MergeError(f"{seen[run.shard.index]} and {run.rundir} are both shard"
                             f" {run.shard.describe()}")
        seen[run.shard.index] = run.rundir
    missing = [f"{i}/{first.shard.count}" for i in range(first.shard.count) if i not in seen]
    if missing:
        raise MergeError(f"shard {', '.join(missing)} missing: run `viubench eval ... --shard"
                         f" {missing[0]}` (same settings), then merge all {first.shard.count}")


def merged_header(header: Mapping[str, Any]) -> dict[str, Any]:
    """The header of the shard runs, as the unsharded run of the same settings has it."""
    return {key: value for key, value in header.items() if key != "shard"}


def _write(runs: Sequence[ShardRun], out: str, testset: str) -> Merged:
    limit = runs[0].limit
    by_shard = {run.shard.index: run.answers for run in runs}
    count, samples, missing = runs[0].shard.count, 0, 0
    with replaced(os.path.join(out, PREDICTIONS)) as handle:
        append_jsonl(handle, merged_header(runs[0].header))
        append_jsonl(handle, scope_record(limit))
        for sample in iter_samples(testset, limit):
            samples += 1
            answer = by_shard[shard_of(sample["id"], count)].get(sample["id"])
            if answer is None:
                missing += 1
            else:
                append_jsonl(handle, answer)
    return Merged(out, count, samples, missing)
