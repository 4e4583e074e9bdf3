"""Score a run folder: per-sample scores (`scores.jsonl`) and per-variant results (`results.json`).

Every sample in the run's scope is in the denominator. A sample whose last record is an error,
or that was never answered (an interrupted run), scores 0 and is counted as such; an answer that
cannot be parsed scores 0 and is counted as a parse failure. The benchmark metric uses the
lenient parser; the training reward uses the strict one; both parse outcomes are recorded.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Any, Iterator, Mapping

from . import __version__
from .registry import load_tasks
from .runner import latest, read_run, run_scope
from .sample import append_jsonl, file_hash
from .scoring import score_interval
from .task import Task
from .testset import SAMPLES, iter_samples, load_build

SCORES, RESULTS = "scores.jsonl", "results.json"


def sample_score(task: Task, sample: Mapping[str, Any],
                 prediction: Mapping[str, Any] | None) -> dict[str, Any]:
    """One sample's outcome: status, parse results, metric values, reward."""
    record: dict[str, Any] = {"id": sample["id"], "task": sample["task"],
                              "variant": sample["variant"], "video": sample["video"]["hash"]}
    if prediction is None or prediction["error"] is not None:
        status = "missing" if prediction is None else "error"
        zero = {key: 0.0 for key in task.metrics(_unparsed(task, sample), sample["answer"])}
        return {**record, "status": status, "parse_error": None, "strict_parse_error": None,
                "error": prediction and prediction["error"], "metrics": zero, "score": 0.0,
                "reward": 0.0}
    text, answer = prediction["text"], sample["answer"]
    lenient = task.parse(text, answer, strict=False)
    strict = task.parse(text, answer, strict=True)
    metrics = task.metrics(lenient, answer)
    return {**record, "status": "answered", "parse_error": lenient.error,
            "strict_parse_error": strict.error, "error": None, "metrics": metrics,
            "score": metrics["score"], "reward": task.reward(text, answer)}


def _unparsed(task: Task, sample: Mapping[str, Any]):
    """A failed parse, to learn the names of a task's metrics (all zero for it)."""
    return task.parse("", sample["answer"], strict=True)


def score_run(rundir: str, testset: str | None = None) -> dict[str, Any]:
    """Write `scores.jsonl` and `results.json` for a run folder; returns the results."""
    header, predictions = read_run(rundir)
    if header is None:
        raise ValueError(f"{rundir} holds no run (no predictions.jsonl header)")
    testset = testset or header["testset"]["path"]
    if file_hash(os.path.join(testset, SAMPLES)) != header["testset"]["hash"]:
        raise ValueError(f"{testset} is not the test set this run answered (hash differs)")
    tasks = load_tasks(load_build(testset)["spec"]["extra_tasks"])
    answers = latest(predictions)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    tmp = os.path.join(rundir, SCORES + ".part")
    with open(tmp, "w", encoding="utf-8") as handle:
        for sample in _in_scope(testset, run_scope(predictions)):
            scored = sample_score(tasks[sample["task"]], sample, answers.get(sample["id"]))
            append_jsonl(handle, scored)
            groups[f"{sample['task']}:{sample['variant']}"].append(scored)
    os.replace(tmp, os.path.join(rundir, SCORES))
    results = {"tool_version": __version__, "run": header["adapter"],
               "testset": header["testset"], "generation": header["generation"],
               "variants": {key: summarize(rows) for key, rows in sorted(groups.items())}}
    results["totals"] = _totals(results["variants"].values())
    _write_json(os.path.join(rundir, RESULTS), results)
    return results


def _in_scope(testset: str, limit: int | None) -> Iterator[dict[str, Any]]:
    for number, sample in enumerate(iter_samples(testset)):
        if limit is not None and number >= limit:
            return
        yield sample


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Metric (x100) with n and a 95% CI (`scoring.score_interval`), plus failure counts."""
    scores = [row["score"] for row in rows]
    videos = [row["video"] for row in rows]
    low, high = score_interval(scores, videos)
    metric_names = rows[0]["metrics"].keys() if rows else []
    return {
        "n": len(rows), "videos": len(set(videos)),
        "score": 100 * sum(scores) / len(rows), "ci95": [100 * low, 100 * high],
        "metrics": {name: 100 * sum(r["metrics"][name] for r in rows) / len(rows)
                    for name in metric_names},
        "reward": sum(row["reward"] for row in rows) / len(rows),
        "answered": sum(row["status"] == "answered" for row in rows),
        "parse_failures": sum(row["parse_error"] is not None for row in rows),
        "strict_parse_failures": sum(row["status"] == "answered"
                                     and row["strict_parse_error"] is not None for row in rows),
        "errors": sum(row["status"] == "error" for row in rows),
        "missing": sum(row["status"] == "missing" for row in rows),
    }


def _totals(summaries) -> dict[str, int]:
    keys = ("n", "answered", "parse_failures", "strict_parse_failures", "errors", "missing")
    totals = dict.fromkeys(keys, 0)
    for summary in summaries:
        for key in keys:
            totals[key] += summary[key]
    return totals


def _write_json(path: str, value: Any) -> None:
    tmp = path + ".part"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)


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
