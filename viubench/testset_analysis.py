"""`viubench analyze --testset TS`: what a test set offers a model that does not look, before
any model is run.

* `testset_variants.csv`, per task:variant: samples, videos, distinct answers, the share of the
  most common answer, chance (the expected score of the task's random answer, by the same
  Monte Carlo as the run analyses) and the `prior` baseline's score on this very test set (the
  task's best fixed answer under its generator's distribution, scored against the answers
  drawn). A prior far above chance, or one answer holding a large share, is a shortcut the
  answer distribution offers.
* `testset_knobs.csv`, per task, knob and level: how many samples (the difficulty mix).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from typing import Any, Mapping, Sequence

from .analysis import KNOB_LEVELS, chance_total, sample_knobs, write_csv_rows
from .registry import load_tasks, task_of
from .testset import iter_samples

DRAWS = 20   # random answers per sample for chance


def analyze_testset(testset: str, out: str, task_modules: Sequence[str] = ()) -> list[str]:
    """Write the variant and knob tables of `testset` into `out`; return their paths."""
    tasks = load_tasks(task_modules)
    by_variant: dict[str, list[dict[str, Any]]] = defaultdict(list)
    knob_counts: Counter[tuple[str, str, str]] = Counter()
    for sample in iter_samples(testset):
        task = task_of(tasks, sample["task"], testset)
        by_variant[f"{sample['task']}:{sample['variant']}"].append(_row(task, sample))
        for knob, level in sample_knobs(task, sample).items():
            knob_counts[(sample["task"], knob, str(level))] += 1
    os.makedirs(out, exist_ok=True)
    paths = [os.path.join(out, "testset_variants.csv"), os.path.join(out, "testset_knobs.csv")]
    variants = [_summary(key, rows) for key, rows in sorted(by_variant.items())]
    write_csv_rows(paths[0], variants, ["variant", "samples", "videos", "distinct_answers",
                                        "top_answer_share", "chance", "prior"])
    write_csv_rows(paths[1], _knob_rows(knob_counts), ["task", "knob", "level", "samples"])
    return paths


def _row(task: Any, sample: Mapping[str, Any]) -> dict[str, Any]:
    """One sample's answer, video, chance (None: no random answer) and prior score."""
    chance = chance_total(task, sample, DRAWS)
    prior_method = getattr(task, "prior_answer", None)
    prior_text = prior_method(sample["variant"], sample["frames"]) if prior_method else None
    prior = None if prior_text is None else task.metrics(
        task.parse(prior_text, sample["variant"]), sample["answer"])["score"]
    return {"answer": sample["answer"], "video": sample["video"]["hash"],
            "chance": None if chance is None else chance / DRAWS, "prior": prior}


def _mean100(values: Sequence[float | None]) -> float | str:
    known = [v for v in values if v is not None]
    return round(100 * sum(known) / len(known), 2) if known and len(known) == len(values) else ""


def _summary(key: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    answers = Counter(row["answer"] for row in rows)
    return {"variant": key, "samples": len(rows), "videos": len({r["video"] for r in rows}),
            "distinct_answers": len(answers),
            "top_answer_share": round(100 * answers.most_common(1)[0][1] / len(rows), 2),
            "chance": _mean100([r["chance"] for r in rows]),
            "prior": _mean100([r["prior"] for r in rows])}


def _knob_rows(counts: Counter[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """Knob levels with their sample counts; a knob of over KNOB_LEVELS levels (durations,
    sizes) is left out: its distribution is in the run analyses' quantile bins."""
    levels: dict[tuple[str, str], int] = Counter((task, knob) for task, knob, _ in counts)
    return [{"task": task, "knob": knob, "level": level, "samples": n}
            for (task, knob, level), n in sorted(counts.items())
            if levels[(task, knob)] <= KNOB_LEVELS]
