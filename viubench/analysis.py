"""Analyses of scored runs; `analyze` writes a PNG and a CSV for each:

* knobs: accuracy (mean score x100) per task against each difficulty knob (`Task.knobs(sample)`
  if the task has it, plus video duration and megapixels), one line per run, with 95% CIs. A
  numeric knob with over 10 values is cut into 4 quantile bins. Runs may use other test sets.
* items: per common sample, each run's score, the mean, and whether all runs fail / solve it;
  a histogram of the per-item mean per task.
* shortcuts: non-visual runs (fingerprint `blind`, `constant`; `random` as reference; `whole`
  and `prior`, the answer-distribution baselines, in role `prior`; the `similarity` solvers
  `context`, `continuity` and `cohesion` in role `non-semantic`) against chance per variant
  on the common samples. Chance: expected score of `random_answer` by Monte Carlo (per-sample
  generator seeded by its id; 50 draws each, at most 40,000 in all, spread by a hash of the
  id); an item's chance is its draws' mean shrunk to the variant's by 4 pseudo-draws.
  `leak`: a non-visual or non-semantic run's CI lower bound exceeds chance. `above_chance`: a
  `prior` run's does (the answer distribution is worth that much). Items non-visual runs score
  above chance are listed.

CIs are `stats.score_interval`, or past 5,000 (point, video) pairs in a run one bootstrap over
its videos shared by all its points (as the leaderboard does). Files are read once each."""

from __future__ import annotations

import csv
import os
import random
import zlib
from collections import defaultdict
from typing import Any, Hashable, Iterable, Mapping, NamedTuple, Sequence, cast

import numpy as np

from .score import ensure_scored
from .runfolder import iter_scores
from .registry import load_tasks, task_of
from .stats import score_interval, video_bootstrap, widened
from .testset import iter_samples

KNOB_LEVELS, QUANTILE_BINS = 10, 4
CHANCE_DRAWS, CHANCE_BUDGET, SHRINK = 50, 40_000, 4
NON_VISUAL, REFERENCE, PRIOR = ("blind", "constant"), ("random",), ("whole", "prior")
NON_SEMANTIC = ("similarity:context", "similarity:continuity", "similarity:cohesion")
LEAKY_ROLES = ("non-visual", "non-semantic")
EXACT_CLUSTERS = 5000
Groups = Mapping[Hashable, tuple[list[float], list[str]]]


class _Run(NamedTuple):
    label: str
    kind: str                  # the adapter fingerprint's "adapter" (random, blind, ...)
    testset: str
    scores: dict[str, float]   # sample id -> score in [0, 1]


class _Item(NamedTuple):
    task: str
    variant: str
    video: str
    knobs: dict[str, Any]
    chance_sum: float          # total score of the item's random-answer draws
    chance_draws: int


def analyze(rundirs: Sequence[str], out: str, labels: Sequence[str] = (),
            task_modules: Sequence[str] = ()) -> list[str]:
    """Write the knob, item and shortcut analyses of `rundirs` into `out`; return the paths."""
    if not rundirs:
        raise ValueError("analyze needs at least one run folder")
    os.makedirs(out, exist_ok=True)
    runs = _load_runs(rundirs, labels, task_modules)
    common = set.intersection(*(set(run.scores) for run in runs))
    items = _load_items(runs, common, load_tasks(task_modules))
    common = {sid for sid in common if sid in items}
    paths = [os.path.join(out, name) for name in ("knobs.csv", "knobs.png", "items.csv",
             "items.png", "shortcuts.csv", "shortcut_items.csv", "shortcuts.png")]
    knob_rows, item_rows = _knob_rows(runs, items), _item_rows(runs, items, common)
    variant_rows, solved_rows = _audit(runs, items, common)
    stats = ["n", "score", "ci_low", "ci_high"]
    write_csv_rows(paths[0], knob_rows, ["task", "knob", "level", "run", *stats, "videos"])
    write_csv_rows(paths[2], item_rows, ["id", "task", "variant", "video", "mean_score", "flag",
                                     *(f"score[{run.label}]" for run in runs)])
    write_csv_rows(paths[4], variant_rows, ["task", "variant", "run", "adapter", "role", *stats,
                                        "chance", "solved_items", "flag"])
    write_csv_rows(paths[5], solved_rows, ["run", "task", "variant", "id", "video", "score",
                                       "chance", "margin", "variant_flag"])
    _plot_knobs(knob_rows, [run.label for run in runs], paths[1])
    _plot_items(item_rows, paths[3])
    _plot_audit(variant_rows, paths[6])
    return paths


def _load_runs(rundirs: Sequence[str], labels: Sequence[str],
               task_modules: Sequence[str]) -> list[_Run]:
    """Each run's header and per-sample scores (scoring it first where needed)."""
    runs: list[_Run] = []
    for number, rundir in enumerate(rundirs):
        header = ensure_scored(rundir, task_modules)
        label = labels[number] if number < len(labels) else header["adapter"]["spec"]
        label = f"{label} #{number + 1}" if label in {run.label for run in runs} else label
        fingerprint = header["adapter"].get("fingerprint") or {}
        scores = {row["id"]: float(row["score"]) for row in iter_scores(rundir)}
        runs.append(_Run(label, _kind(fingerprint), header["testset"]["path"], scores))
    return runs


def _load_items(runs: Sequence[_Run], common: set[str],
                tasks: Mapping[str, Any]) -> dict[str, _Item]:
    """One pass over each test set: knobs of every scored sample, chance of common ones."""
    wanted = set().union(*(run.scores for run in runs))
    quota = min(float(CHANCE_DRAWS), CHANCE_BUDGET / max(1, len(common)))
    items: dict[str, _Item] = {}
    drawn: set[tuple[str, str]] = set()
    for testset in dict.fromkeys(run.testset for run in runs):
        for sample in iter_samples(testset):
            sid = sample["id"]
            if sid not in wanted or sid in items:
                continue
            task = task_of(tasks, sample["task"], testset)
            key = (sample["task"], sample["variant"])
            total, draws = 0.0, 0
            if sid in common and hasattr(task, "random_answer"):
                # floor(quota), or one more with probability its fraction (by the id's hash)
                draws = max(int(quota + zlib.crc32(sid.encode()) / 2 ** 32), int(key not in drawn))
                chance = chance_total(task, sample, draws) if draws else 0.0
                total, draws = (0.0, 0) if chance is None else (chance, draws)
                drawn.add(key)
            items[sid] = _Item(sample["task"], sample["variant"], sample["video"]["hash"],
                               sample_knobs(task, sample), total, draws)
    return items


def sample_knobs(task: Any, sample: Mapping[str, Any]) -> dict[str, Any]:
    """The task's own knobs (if it declares `knobs`), then the engine's."""
    method = getattr(task, "knobs", None)
    found = dict(method(sample)) if callable(method) else {}
    video = sample["video"]
    return {**found, "duration_s": round(float(video["duration"]), 2),
            "megapixels": round(video["width"] * video["height"] / 1e6, 3)}


def chance_total(task: Any, sample: Mapping[str, Any], draws: int) -> float | None:
    """Total score of `draws` random answers to one sample (generator seeded by its id); None
    when the task offers no random answer."""
    rng = random.Random(f"viubench-chance:{sample['id']}")
    answer, total = sample["answer"], 0.0
    for _ in range(draws):
        text = task.random_answer(rng, sample["variant"], timeline=sample["frames"])
        if text is None:
            return None
        total += task.metrics(task.parse(text, sample["variant"]), answer)["score"]
    return total


def _grouped(triples: Iterable[tuple[Hashable, float, str]]) -> Groups:
    """(key, score, video) triples -> key -> (scores, videos)."""
    groups: dict[Hashable, tuple[list[float], list[str]]] = defaultdict(lambda: ([], []))
    for key, score, video in triples:
        groups[key][0].append(score)
        groups[key][1].append(video)
    return dict(groups)


def _stats(scores: Sequence[float], interval: tuple[float, float]) -> dict[str, Any]:
    return {"n": len(scores), "score": _pct(sum(scores) / len(scores)),
            "ci_low": _pct(interval[0]), "ci_high": _pct(interval[1])}


def _intervals(groups: Groups) -> dict[Hashable, tuple[float, float]]:
    """95% CI of each group's mean score: `score_interval` per group, or one bootstrap shared
    by all groups when that would be slow (many videos)."""
    clusters = sum(len(set(videos)) for _, videos in groups.values())
    if clusters <= EXACT_CLUSTERS:
        return {key: score_interval(values, videos) for key, (values, videos) in groups.items()}
    return _shared_intervals(groups)


def _shared_intervals(groups: Groups, seed: int = 0) -> dict[Hashable, tuple[float, float]]:
    """Percentile CIs from one bootstrap over all the groups' videos (each replicate draws the
    videos with replacement), widened to the normal interval, Wilson when all outcomes agree."""
    keys = list(groups)
    index = {v: i for i, v in enumerate(sorted({v for _, vs in groups.values() for v in vs}))}
    sums, counts = np.zeros((len(index), len(keys))), np.zeros((len(index), len(keys)))
    for column, key in enumerate(keys):
        values, videos = groups[key]
        where = np.fromiter((index[v] for v in videos), dtype=np.int64, count=len(videos))
        sums[:, column] = np.bincount(where, weights=values, minlength=len(index))
        counts[:, column] = np.bincount(where, minlength=len(index))
    means = video_bootstrap(sums, counts, seed=seed)
    lows, highs = np.nanpercentile(means, [2.5, 97.5], axis=0)
    return {key: widened((lows[column], highs[column]), groups[key][0])
            for column, key in enumerate(keys)}


def _levels(values: Sequence[Any]) -> tuple[dict[Any, str], list[str]]:
    """Value -> point label, and the labels in order: one per value, or quantile bins."""
    distinct = set(values)
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in distinct):
        return {v: str(v) for v in distinct}, sorted({str(v) for v in distinct})
    numbers = sorted(distinct)
    if len(numbers) <= KNOB_LEVELS:
        return {v: f"{v:g}" for v in numbers}, [f"{v:g}" for v in numbers]
    cuts = np.unique(np.quantile(np.asarray(values, float), np.linspace(0, 1, QUANTILE_BINS + 1)
                                 [1:-1]))
    array = np.asarray(numbers, float)
    bins = np.searchsorted(cuts, array, side="right")
    names = {b: f"{array[bins == b].min():g}..{array[bins == b].max():g}" for b in np.unique(bins)}
    return {v: names[int(b)] for v, b in zip(numbers, bins)}, list(names.values())


def _knob_rows(runs: Sequence[_Run], items: Mapping[str, _Item]) -> list[dict[str, Any]]:
    """Accuracy per (task, knob, level, run) with n and 95% CI, in plotting order."""
    values: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for item in items.values():
        for knob, value in item.knobs.items():
            if value is not None:
                values[(item.task, knob)].append(value)
    levels = {key: _levels(found) for key, found in values.items()}
    order = {key: position for position, key in enumerate(values)}
    rows = []
    for run_number, run in enumerate(runs):
        groups = _grouped(((items[sid].task, knob, levels[(items[sid].task, knob)][0][value]),
                           score, items[sid].video) for sid, score in run.scores.items()
                          if sid in items for knob, value in items[sid].knobs.items()
                          if value is not None)
        for key, interval in _intervals(groups).items():
            task, knob, level = cast("tuple[str, str, Any]", key)
            scores, videos = groups[key]
            rows.append({"task": task, "knob": knob, "level": level, "run": run.label,
                         **_stats(scores, interval), "videos": len(set(videos)),
                         "_order": (order[(task, knob)], levels[(task, knob)][1].index(level),
                                    run_number)})
    rows.sort(key=lambda row: row["_order"])
    return [{k: v for k, v in row.items() if k != "_order"} for row in rows]


def _item_rows(runs: Sequence[_Run], items: Mapping[str, _Item],
               common: set[str]) -> list[dict[str, Any]]:
    """Every common sample with each run's score (x100), their mean, and an all-fail /
    all-solve flag."""
    rows = []
    for sid in sorted(common, key=lambda s: (items[s].task, items[s].variant, s)):
        item, scores = items[sid], [run.scores[sid] for run in runs]
        flag = "all_fail" if max(scores) <= 0 else "all_solve" if min(scores) >= 1 else ""
        row = {"id": sid, "task": item.task, "variant": item.variant, "video": item.video,
               "mean_score": _pct(sum(scores) / len(scores)), "flag": flag}
        row.update({f"score[{run.label}]": _pct(s) for run, s in zip(runs, scores)})
        rows.append(row)
    return rows


def _audit(runs: Sequence[_Run], items: Mapping[str, _Item],
           common: set[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per variant: each non-visual / reference run's score and CI against chance; and the
    items non-visual runs score above their own chance."""
    totals: dict[tuple[str, str], np.ndarray] = defaultdict(lambda: np.zeros(2))
    for sid in common:
        totals[(items[sid].task, items[sid].variant)] += (items[sid].chance_sum,
                                                          items[sid].chance_draws)
    chance = {key: s / d if d else float("nan") for key, (s, d) in sorted(totals.items())}
    baselines = [run for run in runs
                 if run.kind in NON_VISUAL + REFERENCE + PRIOR + NON_SEMANTIC]
    rows = [] if baselines else [{"task": t, "variant": v, "run": "", "adapter": "",
                                  "role": "", "chance": _pct(c)} for (t, v), c in chance.items()]
    solved: list[dict[str, Any]] = []
    ordered = sorted(common)
    for run in baselines:
        groups = _grouped(((items[sid].task, items[sid].variant), run.scores[sid],
                           items[sid].video) for sid in ordered)
        intervals = _intervals(groups)
        role = _role(run.kind)
        found = _solved(run, items, ordered, chance) if role in LEAKY_ROLES else {}
        for key in chance:
            above = role != "reference" and intervals[key][0] > chance[key]
            flag = ("leak" if role in LEAKY_ROLES else "above_chance") if above else ""
            rows.append({"task": key[0], "variant": key[1], "run": run.label,
                         "adapter": run.kind, "role": role,
                         **_stats(groups[key][0], intervals[key]), "chance": _pct(chance[key]),
                         "solved_items": len(found.get(key, ())), "flag": flag})
            solved += [{**row, "variant_flag": flag} for row in found.get(key, ())]
    return rows, solved


def _kind(fingerprint: Mapping[str, Any]) -> str:
    """The adapter's name, with the solver for the `similarity` baseline."""
    kind = str(fingerprint.get("adapter", ""))
    return f"{kind}:{fingerprint.get('solver', '')}" if kind == "similarity" else kind


def _role(kind: str) -> str:
    """reference (random guessing), prior (answer-distribution baselines), non-semantic (pixel
    similarity solvers) or non-visual."""
    if kind in REFERENCE:
        return "reference"
    if kind in PRIOR:
        return "prior"
    return "non-semantic" if kind in NON_SEMANTIC else "non-visual"


def _solved(run: _Run, items: Mapping[str, _Item], ordered: Sequence[str],
            chance: Mapping[tuple[str, str], float]) -> dict[tuple[str, str], list[dict]]:
    """Per variant, the items the run scores above the item's chance, largest margin first."""
    found: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for sid in ordered:
        item, score = items[sid], run.scores[sid]
        mean = chance[(item.task, item.variant)]
        if np.isnan(mean):
            continue
        level = (item.chance_sum + SHRINK * mean) / (item.chance_draws + SHRINK)
        if score > level + 1e-9:
            found[(item.task, item.variant)].append({
                "run": run.label, "task": item.task, "variant": item.variant, "id": sid,
                "video": item.video, "score": _pct(score), "chance": _pct(level),
                "margin": _pct(score - level)})
    return {key: sorted(rows, key=lambda row: -row["margin"]) for key, rows in found.items()}


def _pct(value: float) -> float:
    return round(100 * value, 2)


def write_csv_rows(path: str, rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _figure(rows: int, cols: int, width: float, height: float) -> tuple[Any, np.ndarray]:
    """A pyplot-free Matplotlib figure on its own Agg canvas (no global state), and its axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * max(cols, 1), height * max(rows, 1)), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(max(rows, 1), max(cols, 1), squeeze=False)


def _errorbars(axes: Any, x: Sequence[float], rows: Sequence[Mapping[str, Any]],
               **style: Any) -> None:
    y = np.array([row["score"] for row in rows], dtype=float)
    low, high = (np.array([row[k] for row in rows], dtype=float) for k in ("ci_low", "ci_high"))
    # clipped at 0: a value rounded outside its CI must not stop the plot
    axes.errorbar(x, y, yerr=[np.maximum(0, y - low), np.maximum(0, high - y)], capsize=3,
                  **style)


def _plot_knobs(rows: Sequence[Mapping[str, Any]], runs: Sequence[str], path: str) -> None:
    """A grid: one row of panels per task, one panel per knob, one line per run."""
    panels: dict[str, dict[str, list[Mapping[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        panels[row["task"]][row["knob"]].append(row)
    cols = max((len(knobs) for knobs in panels.values()), default=1)
    figure, axes = _figure(len(panels), cols, 3.6, 2.9)
    for plot in axes.flat:
        plot.set_axis_off()
    for r, (task, knobs) in enumerate(panels.items()):
        for c, (knob, found) in enumerate(knobs.items()):
            _knob_panel(axes[r, c], f"{task}: {knob}", found, runs)
    handles, names = axes[0, 0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, names, loc="outside lower center", ncol=min(4, len(names)))
    figure.savefig(path, dpi=90)


def _knob_panel(plot: Any, title: str, rows: Sequence[Mapping[str, Any]],
                runs: Sequence[str]) -> None:
    plot.set_axis_on()
    labels = list(dict.fromkeys(row["level"] for row in rows))
    for number, run in enumerate(runs):
        mine = [row for row in rows if row["run"] == run]
        x = [labels.index(row["level"]) + 0.08 * (number - (len(runs) - 1) / 2) for row in mine]
        _errorbars(plot, x, mine, marker="o", label=run, color=f"C{number % 10}")
    plot.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 4 else 0,
                    fontsize=8)
    plot.set(xlim=(-0.5, len(labels) - 0.5), ylim=(-4, 104), title=title, ylabel="score (x100)")


def _plot_items(rows: Sequence[Mapping[str, Any]], path: str) -> None:
    """One histogram per task of the per-item mean score."""
    tasks: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        tasks[row["task"]].append(row)
    figure, axes = _figure(1, len(tasks), 4.0, 3.2)
    for plot, (task, found) in zip(axes.flat, tasks.items()):
        flags = [row["flag"] for row in found]
        plot.hist([row["mean_score"] for row in found], bins=np.linspace(0, 100, 11),
                  edgecolor="white")
        plot.set(xlabel="mean score over runs (x100)", ylabel="items", xlim=(0, 100))
        plot.set_title(f"{task}\n{len(found)} items, {flags.count('all_fail')} all fail,"
                       f" {flags.count('all_solve')} all solve", fontsize=9)
    figure.savefig(path, dpi=90)


def _plot_audit(rows: Sequence[Mapping[str, Any]], path: str) -> None:
    """Per variant: chance (black bar) and each baseline run's score with its CI."""
    keys = list(dict.fromkeys(f"{row['task']}:{row['variant']}" for row in rows))
    figure, axes = _figure(1, 1, max(6.0, 0.9 * len(keys)), 4.2)
    plot, where = axes[0, 0], {key: position for position, key in enumerate(keys)}
    chance = {f"{row['task']}:{row['variant']}": row["chance"] for row in rows}
    plot.hlines([chance[k] for k in keys], np.arange(len(keys)) - 0.4,
                np.arange(len(keys)) + 0.4, colors="black", label="chance")
    runs = list(dict.fromkeys(row["run"] for row in rows if row["run"]))
    for number, run in enumerate(runs):
        mine = [row for row in rows if row["run"] == run]
        x = [where[f"{row['task']}:{row['variant']}"] + 0.6 * (number + 0.5) / len(runs) - 0.3
             for row in mine]
        _errorbars(plot, x, mine, fmt="o", color=f"C{number % 10}",
                   mfc="white" if mine[0]["role"] == "reference" else None,
                   label=f"{run} ({mine[0]['role']})")
        for xi, row in ((xi, row) for xi, row in zip(x, mine) if row["flag"]):
            plot.annotate(row["flag"], (xi, row["ci_high"] + 2), color="red", ha="center",
                          fontsize=8)
    plot.set_xticks(range(len(keys)), keys, rotation=30, ha="right", fontsize=8)
    plot.set(ylim=(-4, 110), ylabel="score (x100)",
             title="baselines against chance (leak / above_chance: CI above chance)")
    plot.legend(fontsize=8)
    figure.savefig(path, dpi=90)
