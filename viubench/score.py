"""Score a run folder: per-sample scores (`scores.jsonl`) and per-variant results (`results.json`).

Every sample in the run's scope is in the denominator. A sample whose last record is an error,
or that was never answered (an interrupted run), scores 0 and is counted as such; an answer that
cannot be parsed scores 0 and is counted as a parse failure. Each reply is parsed once under
every policy that matters (`viubench.answers`): the benchmark metric reads the `lenient` parse,
each of the task's `reward_policies` (e.g. `strict`, `videossr`) gives a training reward. Every
parsed value and parse error is recorded in `scores.jsonl`.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any, Mapping, Sequence

from . import __version__
from .answers import LENIENT, STRICT
from .folderlock import exclusive
from .registry import load_tasks, task_of
from .runfolder import (ScoreRecord, latest, predictions_hash, read_header, read_run, run_scope,
                        scores_writer, stale_reason, write_results, write_score)
from .records import file_hash
from .stats import score_interval
from .task import Parsed, Task
from .testset import iter_samples, samples_path


def reply_outcome(task: Task, text: str, variant: str, answer: str) -> dict[str, Any]:
    """A reply parsed (without the answer) under the lenient policy and every reward policy of
    its task: the parsed values and errors per policy, the benchmark metrics and the reward per
    policy."""
    policies = [LENIENT, *task.reward_policies]
    parsed = {policy: task.parse(text, variant, policy) for policy in policies}
    metrics = task.metrics(parsed[LENIENT], answer)
    return {"parsed": {policy: _plain(p.value) for policy, p in parsed.items()},
            "parse_errors": {policy: p.error for policy, p in parsed.items()},
            "metrics": metrics, "score": metrics["score"],
            "rewards": {policy: task.reward(parsed[policy], answer)
                        for policy in task.reward_policies}}


def _plain(value: Any) -> Any:
    """A parsed value as JSON keeps it (tuples become lists)."""
    return list(value) if isinstance(value, tuple) else value


def sample_score(task: Task, sample: Mapping[str, Any],
                 prediction: Mapping[str, Any] | None) -> ScoreRecord:
    """One sample's outcome: status, what each policy parsed, metric values, rewards."""
    if prediction is None or prediction["error"] is not None:
        status = "missing" if prediction is None else "error"
        zero = {key: 0.0 for key in task.metrics(Parsed(error=status), sample["answer"])}
        outcome: dict[str, Any] = {"parsed": {}, "parse_errors": {}, "metrics": zero,
                                   "score": 0.0,
                                   "rewards": dict.fromkeys(task.reward_policies, 0.0)}
        error = prediction["error"] if prediction else None
    else:
        status, error = "answered", None
        outcome = reply_outcome(task, prediction["text"], sample["variant"], sample["answer"])
    return {"id": sample["id"], "task": sample["task"], "variant": sample["variant"],
            "video": sample["video"]["hash"], "status": status, "error": error,
            "parsed": outcome["parsed"], "parse_errors": outcome["parse_errors"],
            "metrics": outcome["metrics"], "score": outcome["score"],
            "rewards": outcome["rewards"]}


def _run_tasks(header: Mapping[str, Any], testset: str | None,
               task_modules: Sequence[str]) -> tuple[str, dict]:
    """The test set a run answered (checked by hash) and the tasks that can score it: built-in,
    installed, or the user's `task_modules`; never modules the test set names."""
    testset = testset or header["testset"]["path"]
    if file_hash(samples_path(testset)) != header["testset"]["hash"]:
        raise ValueError(f"{testset} is not the test set this run answered (hash differs)")
    return testset, load_tasks(task_modules)


def score_run(rundir: str, testset: str | None = None,
              task_modules: Sequence[str] = ()) -> dict[str, Any]:
    """Write `scores.jsonl` and `results.json` for a run folder; returns the results. The
    folder is locked meanwhile: a run still being written is not scored."""
    with exclusive(rundir, "score"):
        return _score_locked(rundir, testset, task_modules)


def _score_locked(rundir: str, testset: str | None,
                  task_modules: Sequence[str]) -> dict[str, Any]:
    header, predictions = read_run(rundir)
    if header is None:
        raise ValueError(f"{rundir} holds no run (no predictions.jsonl header)")
    shard = header.get("shard")
    if isinstance(shard, dict):   # its other samples belong to other shards: never "missing"
        raise ValueError(f"{rundir} is shard {shard.get('index')}/{shard.get('count')} of a"
                         " run: merge the shards (viubench merge) and score the merged run")
    testset, tasks = _run_tasks(header, testset, task_modules)
    answers = latest(predictions)
    groups: dict[str, list[ScoreRecord]] = defaultdict(list)
    with scores_writer(rundir) as handle:
        for sample in iter_samples(testset, run_scope(predictions)):
            task = task_of(tasks, sample["task"], testset)
            scored = sample_score(task, sample, answers.get(sample["id"]))
            write_score(handle, scored)
            groups[f"{sample['task']}:{sample['variant']}"].append(scored)
    used = sorted({key.partition(":")[0] for key in groups})
    results = {"tool_version": __version__, "run": header["adapter"],
               "testset": header["testset"], "generation": header["generation"],
               "predictions_hash": predictions_hash(rundir),
               "task_versions": {name: tasks[name].version for name in used},
               "variants": {key: summarize(rows) for key, rows in sorted(groups.items())}}
    results["totals"] = _totals(results["variants"].values())
    write_results(rundir, results)
    return results


def ensure_scored(rundir: str, task_modules: Sequence[str] = (),
                  testset: str | None = None, stacklevel: int = 2) -> dict[str, Any]:
    """The run's header, after scoring it if its scores are stale (and saying why, as a
    warning the console prints in one line); `testset` where the test set lies now if it
    has moved (checked by hash)."""
    header = read_header(rundir)
    if header is None:
        raise ValueError(f"{rundir} holds no run (no predictions.jsonl header)")
    testset, tasks = _run_tasks(header, testset, task_modules)
    reason = stale_reason(rundir, {name: task.version for name, task in tasks.items()})
    if reason is not None:
        warnings.warn(f"scoring {rundir}: {reason}", UserWarning, stacklevel=stacklevel)
        score_run(rundir, testset, task_modules)
    return header


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Metric (x100) with n and a 95% CI (`stats.score_interval`), plus failure counts."""
    scores = [row["score"] for row in rows]
    videos = [row["video"] for row in rows]
    low, high = score_interval(scores, videos)
    metric_names = rows[0]["metrics"].keys() if rows else []
    return {
        "n": len(rows), "videos": len(set(videos)),
        "score": 100 * sum(scores) / len(rows), "ci95": [100 * low, 100 * high],
        "metrics": {name: 100 * sum(r["metrics"][name] for r in rows) / len(rows)
                    for name in metric_names},
        "rewards": _mean_rewards(rows),
        "answered": sum(row["status"] == "answered" for row in rows),
        "parse_failures": _failures(rows, LENIENT),
        "strict_parse_failures": _failures(rows, STRICT),
        "errors": sum(row["status"] == "error" for row in rows),
        "missing": sum(row["status"] == "missing" for row in rows),
    }


def _mean_rewards(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean reward per reward policy."""
    policies = rows[0]["rewards"] if rows else {}
    return {policy: sum(row["rewards"][policy] for row in rows) / len(rows)
            for policy in policies}


def _failures(rows: Sequence[Mapping[str, Any]], policy: str) -> int:
    """Answered samples whose reply did not parse under `policy` (0 if the task never uses it)."""
    return sum(row["status"] == "answered" and row["parse_errors"].get(policy) is not None
               for row in rows)


def _totals(summaries) -> dict[str, int]:
    keys = ("n", "answered", "parse_failures", "strict_parse_failures", "errors", "missing")
    totals = dict.fromkeys(keys, 0)
    for summary in summaries:
        for key in keys:
            totals[key] += summary[key]
    return totals


def format_results(results: Mapping[str, Any]) -> str:
    """A plain-text table of a run's results."""
    lines = [f"{'task:variant':34s} {'score':>6s} {'95% CI':>14s} {'n':>5s} {'parse✗':>6s}"
             f" {'errors':>6s} {'missing':>7s}"]
    for key, row in results["variants"].items():
        low, high = row["ci95"]
        lines.append(f"{key:34s} {row['score']:6.1f} {f'[{low:.1f}, {high:.1f}]':>14s}"
                     f" {row['n']:5d} {row['parse_failures']:6d} {row['errors']:6d}"
                     f" {row['missing']:7d}")
    return "\n".join(lines)
