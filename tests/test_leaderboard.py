"""Leaderboard cells, CIs and paired comparisons against hand computations and simulations."""

from __future__ import annotations

import csv
import json
import os
import shutil

import numpy as np
import pytest

from viubench.adapters import Response, create, parse_spec
from viubench.compare import compare_runs
from viubench.leaderboard import RunScores, build_leaderboard, cell_estimates, layout
from viubench.registry import load_tasks
from viubench.score import score_run
from viubench.runner import GenerationSettings, RunOptions, run_eval

LEADERBOARDS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "leaderboards")
SUBCOLUMNS = ["Counting Easy", "Counting Hard", "Grounding Channel", "Grounding Rotate",
              "Grounding ZoomOut", "Grounding Mirror", "Grounding Shuffle", "Jigsaw Easy",
              "Jigsaw Hard"]


class Oracle:
    """Answers the true answer on the samples `keep` accepts, garbage elsewhere."""

    default_concurrency, default_batch_size = 1, 8

    def __init__(self, testset: str, keep) -> None:
        with open(os.path.join(testset, "samples.jsonl")) as handle:
            self.samples = {s["id"]: s for s in map(json.loads, handle)}
        self.keep = keep

    def generate(self, requests):
        return [Response(text=self.samples[r.id]["answer"] if self.keep(self.samples[r.id])
                         else "no idea") for r in requests]

    def describe(self):
        return {"adapter": "oracle"}

    def close(self):
        pass


def _run(testset, adapter, rundir, name="oracle"):
    run_eval(testset, parse_spec(name), adapter, rundir, GenerationSettings(), RunOptions())
    return rundir


@pytest.fixture(scope="module")
def runs(viubench_testset, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    constant = _run(viubench_testset, create(parse_spec("constant text=2,1,3")),
                    str(root / "constant"), "constant text=2,1,3")
    half = _run(viubench_testset, Oracle(viubench_testset, lambda s: s["video"]["width"] > 300),
                str(root / "half"))
    return {"constant": constant, "half": half}


@pytest.fixture(scope="module")
def tiny_run(viubench_testset, tmp_path_factory) -> str:
    """A tiny random Qwen2-VL through the transformers adapter, on the first 9 samples only."""
    pytest.importorskip("transformers", reason="the `hf` extra is not installed")
    from tiny_models import save_qwen2_vl

    root = tmp_path_factory.mktemp("tiny")
    spec = parse_spec(f"hf:{save_qwen2_vl(str(root / 'qwen2-vl'))} max_frames=2")
    tiny = str(root / "tiny")
    run_eval(viubench_testset, spec, create(spec), tiny, GenerationSettings(max_new_tokens=6),
             RunOptions(limit=9))
    return tiny


def test_layout_is_the_papers_column_order():
    assert [c.name for c in layout(load_tasks())] == SUBCOLUMNS


def test_cells_match_hand_computation(viubench_testset, runs):
    with open(os.path.join(viubench_testset, "samples.jsonl")) as handle:
        samples = [json.loads(line) for line in handle]
    columns, rows = build_leaderboard([runs["constant"], runs["half"]], ["constant", "half"])
    constant, half = rows
    by_column: dict[str, list[float]] = {}
    for sample in samples:
        name = {c.key: c.name for c in columns}[f"{sample['task']}:{sample['variant']}"]
        hits = [float(a == g) for a, g in zip(sample["answer"].split(","), "2,1,3".split(","))]
        score = sum(hits) / 3 if sample["task"] == "object_counting" else 0.0
        by_column.setdefault(name, []).append(score)
    for name in SUBCOLUMNS:
        assert constant[name] == pytest.approx(100 * np.mean(by_column[name]))
        assert constant[f"{name} n"] == 4
        assert constant[f"{name} ci_low"] <= constant[name] <= constant[f"{name} ci_high"]
    assert constant["Counting"] == pytest.approx(
        (constant["Counting Easy"] + constant["Counting Hard"]) / 2)
    assert constant["Overall"] == pytest.approx(np.mean([constant[n] for n in SUBCOLUMNS]))
    # The oracle is right exactly on the two wider videos (bigbuckbunny, bikes): 2 of 4.
    for name in SUBCOLUMNS:
        assert half[name] == pytest.approx(50.0)
    assert half["Overall"] == pytest.approx(50.0) and half["Overall n"] == 36
    # Whole videos right or wrong: the video bootstrap must see that, not 36 coin flips.
    assert half["Overall ci_high"] - half["Overall ci_low"] > 60


def test_a_tiny_model_run_sits_beside_the_baselines(runs, tiny_run):
    columns, rows = build_leaderboard([tiny_run, runs["constant"]], ["tiny", "constant"])
    tiny, constant = rows
    with open(os.path.join(tiny_run, "scores.jsonl")) as handle:
        scores = [json.loads(line) for line in handle]
    assert len(scores) == 9 and tiny["Overall n"] == 9 and constant["Overall n"] == 36
    for column in columns:
        mine = [s["score"] for s in scores if f"{s['task']}:{s['variant']}" == column.key]
        assert tiny[f"{column.name} n"] == len(mine)
        if mine:
            assert tiny[column.name] == pytest.approx(100 * np.mean(mine))
            assert tiny[f"{column.name} ci_low"] <= tiny[column.name]
    measured = [n for n in SUBCOLUMNS if tiny[f"{n} n"]]
    assert tiny["Overall"] == pytest.approx(np.mean([tiny[n] for n in measured]))


def _simulated_run(rng, videos, per_video, columns, effect):
    """A run whose videos have their own difficulty (random effect) on top of each column's."""
    run = RunScores("sim", "", "", len(columns))
    truth_columns = np.linspace(0.2, 0.7, len(columns))
    for video in range(videos):
        shift = rng.normal(0, effect)
        for slot, base in enumerate(truth_columns):
            p = float(np.clip(base + shift, 0.01, 0.99))
            for _ in range(per_video):
                run.add(slot, f"v{video}", float(rng.random() < p))
    return run, truth_columns


def test_cis_cover_the_truth_at_about_their_nominal_rate():
    columns = layout(load_tasks())
    rng = np.random.default_rng(5)
    trials, covered_cell, covered_overall = 150, 0, 0
    effect = 0.1
    # True values: the expectation over the video effect (clipping makes it differ slightly).
    draws = np.clip(np.linspace(0.2, 0.7, len(columns))[None, :]
                    + rng.normal(0, effect, (200_000, 1)), 0.01, 0.99).mean(axis=0)
    for trial in range(trials):
        run, _ = _simulated_run(rng, videos=30, per_video=3, columns=columns, effect=effect)
        estimates = {e.name: e for e in cell_estimates(run, columns, seed=trial)}
        first = estimates[columns[0].name]
        covered_cell += first.low <= draws[0] <= first.high
        overall = estimates["Overall"]
        covered_overall += overall.low <= draws.mean() <= overall.high
    assert 0.88 <= covered_cell / trials <= 0.995, covered_cell / trials
    assert 0.88 <= covered_overall / trials <= 0.995, covered_overall / trials


def test_paired_comparison_by_hand(runs):
    rows = {r["cell"]: r for r in compare_runs(runs["constant"], runs["half"])}
    _, (constant, half) = build_leaderboard([runs["constant"], runs["half"]])
    for name in [*SUBCOLUMNS, "Overall"]:
        assert rows[name]["difference"] == pytest.approx(half[name] - constant[name])
    assert rows["Overall"]["p_value"] < 0.01 and rows["Overall"]["n"] == 36
    same = {r["cell"]: r for r in compare_runs(runs["half"], runs["half"])}
    assert same["Overall"]["difference"] == 0 and same["Overall"]["p_value"] == 1.0


def test_comparing_runs_on_different_test_sets_is_refused(runs, all_variants_testset,
                                                          tmp_path):
    other = _run(all_variants_testset, create(parse_spec("random")), str(tmp_path / "o"),
                 "random")
    with pytest.raises(ValueError, match="different test sets"):
        compare_runs(runs["half"], other)


def test_reported_table_is_the_papers():
    with open(os.path.join(LEADERBOARDS, "viubench_reported.csv")) as handle:
        rows = {r["model"]: r for r in csv.DictReader(handle)}
    assert len(rows) == 14 and rows["GPT-5"]["Overall"] == "58.7"
    assert rows["VideoSSR-8B"]["Grounding ZoomOut"] == "94.4"
    assert all(r["source"].startswith("reported: VideoSSR") for r in rows.values())
    for row in rows.values():   # Overall is the mean of the nine sub-columns (paper rounding)
        assert float(row["Overall"]) == pytest.approx(
            np.mean([float(row[n]) for n in SUBCOLUMNS]), abs=0.11)


def test_commands_write_leaderboard_files_and_print_comparisons(runs, tmp_path):
    from helpers import viubench

    out = str(tmp_path / "boards" / "mine.csv")
    done = viubench("leaderboard", runs["constant"], runs["half"], "--label", "constant",
                    "--label", "half", "--out", out)
    assert done.returncode == 0, done.stderr
    with open(out) as handle:
        rows = list(csv.DictReader(handle))
    assert [r["model"] for r in rows[:2]] == ["constant", "half"] and len(rows) == 16
    for suffix in (".md", ".html", "-columns.png", "-overall.png"):
        assert os.path.getsize(out[:-4] + suffix) > 500
    compared = viubench("compare", runs["constant"], runs["half"])
    assert compared.returncode == 0 and "Overall" in compared.stdout
    # the runs hold no MVP sample: those cells say so instead of printing nan
    assert "nan" not in compared.stdout
    assert any(line.startswith("MVP Easy") and "no common samples" in line
               for line in compared.stdout.splitlines())
    analysed = viubench("analyze", runs["constant"], runs["half"], "--out", str(tmp_path / "a"))
    assert analysed.returncode == 0 and "knobs.png" in analysed.stdout


def test_columns_a_run_did_not_answer_are_empty_not_zero(viubench_testset, tmp_path):
    partial = str(tmp_path / "partial")
    run_eval(viubench_testset, parse_spec("random"), create(parse_spec("random")), partial,
             GenerationSettings(), RunOptions(limit=1))
    _, (row,) = build_leaderboard([partial])
    filled = [name for name in SUBCOLUMNS if row[name] != ""]
    assert len(filled) == 1 and row[f"{filled[0]} n"] == 1
    assert row["Overall"] == "" and row["Overall ci_low"] == ""


def test_mvp_columns_follow_and_stay_out_of_overall():
    from viubench.leaderboard import composite_weights

    columns = layout(load_tasks(), "viubench,mvp")
    assert [c.name for c in columns] == SUBCOLUMNS + ["MVP Easy", "MVP Hard"]
    names, weights = composite_weights(columns)
    assert names[-5:] == ["Counting", "Grounding", "Jigsaw", "MVP", "Overall"]
    assert weights[-1].tolist() == [1 / 9] * 9 + [0.0, 0.0]


def test_a_garbled_scores_file_is_one_error_line_naming_it(runs, tmp_path):
    from helpers import viubench

    broken = str(tmp_path / "broken")
    shutil.copytree(runs["half"], broken)
    score_run(broken)
    path = os.path.join(broken, "scores.jsonl")
    lines = open(path).read().splitlines()
    lines[3] = "not json at all"
    open(path, "w").write("\n".join(lines) + "\n")
    # the predictions did not change since scoring: scores.jsonl is read as it is
    for command in (("compare", runs["half"], broken),
                    ("leaderboard", broken, "--out", str(tmp_path / "b.csv"))):
        done = viubench(*command)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert done.stderr.strip().endswith(f"error: {path}:4: not a JSON record"
                                            " (Expecting value: line 1 column 1 (char 0))")


def test_scores_are_recomputed_only_when_stale_and_the_console_says_why(runs, tmp_path):
    from helpers import viubench
    from viubench.runfolder import PREDICTIONS, RESULTS, SCORES, stale_reason

    run = str(tmp_path / "run")
    shutil.copytree(runs["half"], run)
    score_run(run)
    versions = {"playback_direction": "x"}    # a task the run never scored: irrelevant
    assert stale_reason(run, versions) is None
    scores = open(os.path.join(run, SCORES), "rb").read()
    done = viubench("leaderboard", run, "--out", str(tmp_path / "a.csv"))
    assert done.returncode == 0 and "scoring" not in done.stderr
    assert open(os.path.join(run, SCORES), "rb").read() == scores

    results = json.load(open(os.path.join(run, RESULTS)))
    task = sorted(results["task_versions"])[0]
    assert stale_reason(run, {task: "999"}) == (
        f"task {task} is version 999 now, it was scored under {results['task_versions'][task]}")
    json.dump({**results, "tool_version": "0.0.1"}, open(os.path.join(run, RESULTS), "w"))
    assert stale_reason(run, {}).startswith("it was scored by viubench 0.0.1, this is")
    score_run(run)
    with open(os.path.join(run, PREDICTIONS), "a") as handle:
        handle.write(json.dumps({"record": "scope", "limit": None}) + "\n")
    assert stale_reason(run, {}) == "its predictions changed since it was scored"
    done = viubench("leaderboard", run, "--out", str(tmp_path / "b.csv"))
    assert done.returncode == 0
    assert done.stderr.count(f"warning: scoring {run}: its predictions changed") == 1
    assert stale_reason(run, {}) is None
