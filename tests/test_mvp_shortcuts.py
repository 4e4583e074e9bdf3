"""MVP on footage the bundled clips do not cover (tests/footage.py: a static camera with small
moving objects, a lecture where only an inset changes, a slow pan, scene cuts; plus opencv-doc's
real clips where installed): every moving clip yields samples, a truly static one is skipped
with its reason, solvers that only compare pixels (with the context, the gap's borders or the other
candidates) stay at chance, a solver given the true frame times scores 100%, and `verify`
re-checks every recorded similarity."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil

import numpy as np
import pytest

import footage
from conftest import samples_of
from helpers import viubench
from viubench.build import BuildSpec, build
from viubench.registry import load_tasks
from viubench.stats import wilson_interval
from viubench.tasks.masked_solvers import most_cohesive

TASK = load_tasks()["masked_prediction"]
OTHERS = ("standard", "mvp-hard")
SOLVERS = ("context", "continuity", "cohesion")


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("footage")
    footage.write_scenes(str(folder), static=True)
    for path in footage.opencv_clips():
        shutil.copy(path, folder / os.path.basename(path))
    return str(folder)


@pytest.fixture(scope="module")
def easy(videos, tmp_path_factory) -> str:
    """240+ `mvp-easy` samples (60 per moving scene)."""
    out = str(tmp_path_factory.mktemp("easy") / "ts")
    build(BuildSpec(videos, (("masked_prediction", "mvp-easy"),), seed=5, per_video=60), out,
          workers=2)
    return out


@pytest.fixture(scope="module")
def others(videos, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("others") / "ts")
    selection = tuple(("masked_prediction", v) for v in OTHERS)
    build(BuildSpec(videos, selection, seed=6, per_video=12), out, workers=2)
    return out


def run(testset: str, folder: str, spec: str) -> dict:
    done = viubench("eval", "--testset", testset, "--model", spec, "--out", folder)
    assert done.returncode == 0, done.stderr
    return json.load(open(os.path.join(folder, "results.json")))["variants"]


def exact(results: dict, variant: str) -> tuple[float, float, float]:
    """(exact match, Wilson 95% low, high) from a run's results, as fractions."""
    row = results[f"masked_prediction:{variant}"]
    hits = round(row["score"] * row["n"] / 100)
    low, high = wilson_interval(hits / row["n"], row["n"])
    return hits / row["n"], low, high


def binomial_tail(hits: int, n: int, p: float) -> float:
    """P(X >= hits) for X ~ Binomial(n, p)."""
    return sum(math.comb(n, k) * p ** k * (1 - p) ** (n - k) for k in range(hits, n + 1))


def chance(variant: str) -> float:
    params = TASK.variants[variant].params
    pool, m = params["masked"] + params["distractors"], params["masked"]
    total = 1
    for k in range(m):
        total *= pool - k
    return 1 / total


def test_every_moving_clip_yields_and_a_static_one_is_skipped(easy, others, videos):
    moving = sorted(set(os.listdir(videos)) - {"static_shot.mp4"})
    for testset in (easy, others):
        yielded = {s["video"]["path"] for s in samples_of(testset)}
        assert yielded == set(moving)
        summary = json.load(open(os.path.join(testset, "build.json")))
        for skip in summary["sample_skips"]:
            if skip["video"] == "static_shot.mp4":
                assert skip["reason"].startswith("too few distinct frames: at most 1 of the")
    per_variant = {}
    for sample in samples_of(others):
        per_variant.setdefault(sample["variant"], set()).add(sample["video"]["path"])
    for variant in OTHERS:
        assert per_variant[variant] == set(moving), variant


def at_chance(results: dict, variant: str) -> bool:
    """One-sided exact binomial test against chance: no evidence (p > 0.01) of a shortcut."""
    row = results[f"masked_prediction:{variant}"]
    hits = round(row["score"] * row["n"] / 100)
    return binomial_tail(hits, row["n"], chance(variant)) > 0.01


def test_the_issue_solver_stays_under_twice_chance(easy, tmp_path):
    """Reject what is visible, order by the borders: 50% on viubench 1's mvp-easy."""
    results = run(easy, str(tmp_path / "run"), "similarity solver=context order=border")
    assert results["masked_prediction:mvp-easy"]["n"] >= 200
    assert exact(results, "mvp-easy")[0] <= 2 * chance("mvp-easy")


def test_the_context_solver_is_at_chance_on_every_variant_and_measure(easy, others, tmp_path):
    for testset, variants, name in ((easy, ("mvp-easy",), "easy"), (others, OTHERS, "others")):
        for measure in ("block-ssim", "dhash"):
            results = run(testset, str(tmp_path / f"{name}_{measure}"),
                          f"similarity solver=context measure={measure}")
            for variant in variants:
                assert at_chance(results, variant), (variant, measure)


def test_analyze_flags_no_pixel_solver_but_the_named_residual(easy, others, tmp_path):
    """Each solver's exact match, with its 95% CI clustered by video (as `analyze` and the
    leaderboard report it), does not exclude chance on any variant, except the residual
    docs/tasks.md names (continuity on mvp-easy), which stays under twice chance."""
    runs = []
    for testset, name in ((easy, "easy"), (others, "others")):
        for spec in ("random", *(f"similarity solver={solver}" for solver in SOLVERS)):
            runs.append(str(tmp_path / name / spec.replace(" ", "_").replace("=", "_")))
            run(testset, runs[-1], spec)
        done = viubench("analyze", *runs[-1 - len(SOLVERS):], "--out", str(tmp_path / name / "a"))
        assert done.returncode == 0, done.stderr
    rows = [row for name in ("easy", "others")
            for row in csv.DictReader(open(tmp_path / name / "a" / "shortcuts.csv"))
            if row["role"] == "non-semantic"]
    assert {row["variant"] for row in rows} == {"mvp-easy", *OTHERS}
    assert len(rows) == len(SOLVERS) * (1 + len(OTHERS))
    flagged = [row for row in rows if row["flag"]]
    # The one residual docs/tasks.md names: on mvp-easy the continuity solver's two picks sit
    # against the gap's borders a little more often than chance. With opencv-doc's clips in the
    # footage (seed 5, 420 samples) its CI clears chance (8.57 [5.0, 11.7] vs 4.82) and analyze
    # flags it, as it should; it must stay under twice chance. Nothing else may be flagged.
    assert [(row["variant"], row["run"]) for row in flagged] in (
        [], [("mvp-easy", "similarity solver=continuity")])
    for row in flagged:
        assert float(row["score"]) < 2 * float(row["chance"]), row


def test_a_solver_given_the_true_frame_times_scores_100(easy, others):
    for sample in samples_of(easy) + samples_of(others):
        draws, frames = sample["draws"], sample["frames"]
        seconds = [index / sample["video"]["fps"] for index in frames["indices"]]
        context, at, m = draws["context"], draws["gap_start"], draws["masked"]
        left, right = seconds[context[at - 1]], seconds[context[at + m]]
        times = {label: seconds[entry["position"]]
                 for label, entry in enumerate(draws["pool"], start=1)}
        inside = sorted((t, label) for label, t in times.items() if left < t < right)
        assert ",".join(str(label) for _, label in inside) == sample["answer"]


def test_verify_rechecks_every_recorded_similarity(others, tmp_path):
    copy = str(tmp_path / "ts")
    shutil.copytree(others, copy)
    assert viubench("verify", copy).returncode == 0
    path = os.path.join(copy, "samples.jsonl")
    lines = open(path).read().splitlines()
    record = json.loads(lines[0])
    entry = next(e for e in record["draws"]["pool"] if e["kind"] != "target")
    entry["context_similarity"] = round(entry["context_similarity"] - 0.05, 4)
    lines[0] = json.dumps(record)
    open(path, "w").write("\n".join(lines) + "\n")
    broken = viubench("verify", copy)
    assert broken.returncode == 1 and "do not hold for these frames" in broken.stderr


def test_the_cohesion_solver_takes_the_most_alike_subset():
    among = [[1.0, 0.2, 0.9, 0.1], [0.2, 1.0, 0.3, 0.8], [0.9, 0.3, 1.0, 0.0],
             [0.1, 0.8, 0.0, 1.0]]
    assert most_cohesive(np.array(among), 2) == [0, 2]
    assert most_cohesive(np.array(among), 3) == [0, 1, 2]   # mean 0.467 vs 0.367, 0.333, 0.367
