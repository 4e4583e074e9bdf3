"""The run folder: the one owner of its layout, its records, and their readers and writers.

    predictions.jsonl   a header record (test set, adapter, generation settings, tool version,
                        the shard of a `--shard` run),
                        scope records (`--limit`), then one prediction record per answer; only
                        ever appended to, so a run resumes after a kill at any moment
    scores.jsonl        one score record per sample in scope (`viubench score`)
    results.json        per-variant results, with what they were computed from: the tool and
                        task versions and the hash of predictions.jsonl

Scores are re-computed only when asked (`viubench score`) or when they are stale, and then the
reason is said (`stale_reason`): never judged by file times.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any, Iterator, Mapping, Sequence, TypedDict

from . import __version__
from .records import append_jsonl, file_hash, read_jsonl, replaced, write_json
from .testset import load_build, samples_path

PREDICTIONS, SCORES, RESULTS = "predictions.jsonl", "scores.jsonl", "results.json"


class PredictionRecord(TypedDict):
    """One answer (or error) of the model to one sample; the last one of a sample counts."""

    record: str                 # "prediction"
    id: str
    task: str
    variant: str
    text: str | None
    error: str | None
    kind: str | None            # transient | rate_limit | fatal, for an error
    attempts: int
    seconds: float              # from the first attempt to this answer
    waited: float               # of which spent waiting between attempts (backoff, Retry-After)
    info: dict[str, Any]        # what the adapter reports (e.g. how video went in)


class ScoreRecord(TypedDict):
    """One sample's outcome: what each parse policy read, its metrics and rewards."""

    id: str
    task: str
    variant: str
    video: str
    status: str                 # answered | error | missing
    error: str | None
    parsed: dict[str, Any]      # policy -> parsed value (None: the parse failed)
    parse_errors: dict[str, str | None]
    metrics: dict[str, float]
    score: float
    rewards: dict[str, float]


def testset_fingerprint(testset: str) -> dict[str, Any]:
    build = load_build(testset)
    return {"path": os.path.abspath(testset), "hash": file_hash(samples_path(testset)),
            "samples": build["samples"], "tool_version": build["tool_version"]}


def make_header(testset: str, spec: str, fingerprint: Mapping[str, Any],
                generation: Mapping[str, Any],
                shard: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The first record of a run; a shard run (`viubench.shards`) records its shard, an
    unsharded run has no `shard` key."""
    header = {"record": "header", "tool": "viubench", "tool_version": __version__,
              "testset": testset_fingerprint(testset),
              "adapter": {"spec": spec, "fingerprint": dict(fingerprint)},
              "generation": dict(generation),
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if shard is not None:
        header["shard"] = dict(shard)
    return header


def differing_settings(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two headers that makes them different runs."""
    checks = {"test set": ("testset", "hash"), "adapter spec": ("adapter", "spec"),
              "adapter fingerprint": ("adapter", "fingerprint"),
              "generation settings": ("generation", None), "shard": ("shard", None)}
    differs = []
    for label, (section, key) in checks.items():
        a, b = old.get(section) or {}, new.get(section) or {}
        if (a.get(key) if key else a) != (b.get(key) if key else b):
            differs.append(label)
    return differs


def scope_record(limit: int | None) -> dict[str, Any]:
    return {"record": "scope", "limit": limit}


def prediction_record(sample_id: str, task: str, variant: str, text: str | None,
                      error: str | None, kind: str | None, attempts: int, seconds: float,
                      waited: float, info: Mapping[str, Any]) -> PredictionRecord:
    return {"record": "prediction", "id": sample_id, "task": task, "variant": variant,
            "text": text, "error": error, "kind": kind, "attempts": attempts,
            "seconds": round(seconds, 3), "waited": round(waited, 3), "info": dict(info)}


def read_run(rundir: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(header, later records) of a run folder; a torn last line is ignored."""
    path = os.path.join(rundir, PREDICTIONS)
    if not os.path.exists(path):
        return None, []
    records = list(read_jsonl(path))
    if not records:
        return None, []
    if records[0].get("record") != "header":
        raise ValueError(f"{path} does not start with a run header")
    return records[0], records[1:]


def read_header(rundir: str) -> dict[str, Any] | None:
    """A run's header alone (its first line; the answers are not read), or None."""
    path = os.path.join(rundir, PREDICTIONS)
    if not os.path.exists(path):
        return None
    header = next(read_jsonl(path), None)
    if header is not None and header.get("record") != "header":
        raise ValueError(f"{path} does not start with a run header")
    return header


def latest(records: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The last prediction record of each sample id (the one that counts)."""
    return {r["id"]: r for r in records if r.get("record") == "prediction"}


def run_scope(records: Sequence[Mapping[str, Any]]) -> int | None:
    """How many leading samples of the test set the run covers (None: all), as last set."""
    scopes = [r["limit"] for r in records if r.get("record") == "scope"]
    return scopes[-1] if scopes else None


def predictions_hash(rundir: str) -> str:
    return file_hash(os.path.join(rundir, PREDICTIONS))


def scores_writer(rundir: str) -> contextlib.AbstractContextManager[Any]:
    """A handle to write score records to; scores.jsonl is replaced only when all are written."""
    return replaced(os.path.join(rundir, SCORES))


def write_score(handle: Any, record: ScoreRecord) -> None:
    append_jsonl(handle, record)


def iter_scores(rundir: str) -> Iterator[dict[str, Any]]:
    """Score records of a run (`records.read_jsonl`: the one JSONL reader)."""
    return read_jsonl(os.path.join(rundir, SCORES))


def write_results(rundir: str, results: Mapping[str, Any]) -> None:
    write_json(os.path.join(rundir, RESULTS), results)


def read_results(rundir: str) -> dict[str, Any]:
    path = os.path.join(rundir, RESULTS)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error})") from None


def stale_reason(rundir: str, task_versions: Mapping[str, str]) -> str | None:
    """Why the run's scores must be re-computed, or None when they are current: missing,
    predictions changed since, another viubench, or another version of a task scored."""
    if not all(os.path.exists(os.path.join(rundir, name)) for name in (SCORES, RESULTS)):
        return "it has not been scored"
    results = read_results(rundir)
    if results.get("predictions_hash") != predictions_hash(rundir):
        return "its predictions changed since it was scored"
    if results.get("tool_version") != __version__:
        return f"it was scored by viubench {results.get('tool_version')}, this is {__version__}"
    for task, version in sorted(results.get("task_versions", {}).items()):
        if task_versions.get(task, version) != version:
            return (f"task {task} is version {task_versions[task]} now, it was scored under"
                    f" {version}")
    return None
