"""A paper-sized VIUBench (2,700 questions, 300 per column) from real footage, answered by the
model-free baselines: `random` must land on the paper's counting and jigsaw "random guess" cells,
`whole` on its grounding cells, and `prior` shows what the answer distribution alone is worth.
This is the table docs/tasks.md prints (leaderboards/viubench_bundled_2700_baselines.csv)."""

from __future__ import annotations


import pytest

from viubench.adapters import create, parse_spec
from viubench.build import BuildSpec, build
from viubench.leaderboard import build_leaderboard
from viubench.cli_report import reported_rows
from viubench.registry import load_tasks, select
from viubench.score import score_run
from viubench.runner import GenerationSettings, RunOptions, run_eval

PER_VIDEO, SEED = 75, 2025          # 4 bundled videos x 75 = 300 questions per column
COUNTING_JIGSAW = ("Counting Easy", "Counting Hard", "Jigsaw Easy", "Jigsaw Hard")
GROUNDING = ("Grounding Channel", "Grounding Rotate", "Grounding ZoomOut", "Grounding Mirror",
             "Grounding Shuffle")
BASELINES = ("random", "whole", "prior")


@pytest.fixture(scope="module")
def board(real_videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("paper")
    testset = str(out / "testset")
    spec = BuildSpec(real_videos, tuple(select(load_tasks(), "viubench")), seed=SEED,
                     per_video=PER_VIDEO)
    summary = build(spec, testset, workers=1)
    assert summary["samples"] == 2700 and set(summary["counts"].values()) == {300}
    rundirs = [str(out / name) for name in BASELINES]
    for name, rundir in zip(BASELINES, rundirs):
        run_eval(testset, parse_spec(name), create(parse_spec(name)), rundir,
                 GenerationSettings(), RunOptions())
        score_run(rundir)
    _, rows = build_leaderboard(rundirs, list(BASELINES), "viubench")
    return dict(zip(BASELINES, rows))


@pytest.fixture(scope="module")
def paper():
    return next(row for row in reported_rows(None, "viubench") if row["model"] == "Random Guess")


def inside(row, paper, column, widen: float = 1.0) -> bool:
    """The paper's cell lies inside our CI (its half-widths scaled by `widen`)."""
    value, low, high = (float(row[column]), float(row[f"{column} ci_low"]),
                        float(row[f"{column} ci_high"]))
    return value - widen * (value - low) <= float(paper[column]) <= value + widen * (high - value)


def test_random_lands_on_the_papers_counting_and_jigsaw_cells(board, paper):
    missed = [c for c in COUNTING_JIGSAW if not inside(board["random"], paper, c)]
    assert not missed, {c: (board["random"][c], paper[c]) for c in missed}


def test_whole_span_lands_on_the_papers_grounding_cells(board, paper):
    """The paper's grounding 'random guess' (25.2-25.9) is the whole sampled span: its average
    and Overall lie inside our 95% CIs, and each of the five cells inside our 99.7% interval
    (3 standard errors; with five columns one 95% miss is expected a quarter of the time)."""
    for column in ("Grounding", "Overall"):
        assert inside(board["whole"], paper, column), (column, board["whole"][column])
    missed = [c for c in GROUNDING if not inside(board["whole"], paper, c, widen=3 / 1.96)]
    assert not missed, {c: (board["whole"][c], paper[c]) for c in missed}


def test_random_interval_does_not_reproduce_the_grounding_row(board, paper):
    """A random interval drawn like the true one scores below every printed grounding cell."""
    assert all(float(board["random"][c]) < float(paper[c]) for c in GROUNDING)


def test_prior_is_a_blind_shortcut_above_random(board):
    """The best fixed answer per variant beats random guessing on counting and grounding."""
    for column in ("Counting Easy", "Counting Hard", *GROUNDING):
        assert float(board["prior"][f"{column} ci_low"]) > float(board["random"][column])
    assert float(board["prior"]["Overall"]) > float(board["whole"]["Overall"])
