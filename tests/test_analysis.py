"""`viubench.analysis`: accuracy by difficulty knob, per-item difficulty and the shortcut audit,
checked against hand computations on runs of model-free and scripted adapters."""

from __future__ import annotations

import csv
import json
import os
import shutil
import random
from collections import Counter, defaultdict

import numpy as np
import pytest
from PIL import Image

from viubench.adapters import Response, create, parse_spec
from viubench.analysis import sample_knobs, _levels, _shared_intervals, analyze
from viubench.runner import GenerationSettings, RunOptions, run_eval
from viubench.stats import score_interval

GROUNDING, COUNTING, JIGSAW = "anomaly_grounding", "object_counting", "temporal_jigsaw"


class Scripted:
    """Answers a sample's true answer where `rule(sample)` holds, else words with no answer."""

    default_concurrency = 1
    default_batch_size = 8

    def __init__(self, samples: dict, rule, kind: str) -> None:
        self.samples, self.rule, self.kind = samples, rule, kind

    def generate(self, requests):
        return [Response(text=self.samples[r.id]["answer"] if self.rule(self.samples[r.id])
                         else "no idea") for r in requests]

    def describe(self):
        return {"adapter": self.kind}

    def close(self):
        pass


def short(sample) -> bool:
    return sample["task"] == GROUNDING and sample["draws"]["length"] <= 12


SCRIPTS = {"oracle": (lambda s: True, "oracle"), "short": (short, "scripted"),
           "leaky": (lambda s: s["task"] == COUNTING, "blind")}
BASELINES = {"random": "random", "constant": "constant text=1,1,1",
             "blind": "blind:constant text=1,1,1"}


def load_samples(testset: str) -> dict:
    with open(os.path.join(testset, "samples.jsonl")) as handle:
        return {s["id"]: s for s in map(json.loads, handle)}


def evaluate(testset: str, rundir: str, name: str, samples: dict, limit=None) -> str:
    if name in SCRIPTS:
        rule, kind = SCRIPTS[name]
        spec, adapter = parse_spec(name), Scripted(samples, rule, kind)
    else:
        spec = parse_spec(BASELINES[name])
        adapter = create(spec)
    run_eval(testset, spec, adapter, rundir, GenerationSettings(), RunOptions(limit=limit))
    return rundir


@pytest.fixture(scope="module")
def runs(viubench_testset, tmp_path_factory) -> dict:
    root, samples = tmp_path_factory.mktemp("runs"), load_samples(viubench_testset)
    return {name: evaluate(viubench_testset, str(root / name), name, samples)
            for name in [*BASELINES, *SCRIPTS]}


@pytest.fixture(scope="module")
def analysed(runs, tmp_path_factory) -> tuple[str, list[str]]:
    out = str(tmp_path_factory.mktemp("analysis"))
    return out, analyze(list(runs.values()), out, labels=list(runs))


def rows(path: str) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_png_is_a_real_non_blank_picture_and_every_csv_has_a_header(analysed):
    out, paths = analysed
    assert sorted(os.path.basename(p) for p in paths) == sorted(
        ["knobs.csv", "knobs.png", "items.csv", "items.png", "shortcuts.csv",
         "shortcut_items.csv", "shortcuts.png"])
    for path in paths:
        assert os.path.getsize(path) > 0
        if path.endswith(".png"):
            with Image.open(path) as image:
                assert image.format == "PNG"
                pixels = np.asarray(image.convert("RGB"), dtype=float)
            assert pixels.shape[0] > 200 and pixels.shape[1] > 300
            assert pixels.std() > 10 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20
        else:
            with open(path) as handle:
                assert handle.readline().strip()


def test_knob_table_matches_hand_counts(analysed, viubench_testset):
    samples = list(load_samples(viubench_testset).values())
    table = rows(os.path.join(analysed[0], "knobs.csv"))
    assert {(r["task"], r["knob"]) for r in table} == {
        (t, k) for t, knobs in {GROUNDING: ("segment_length", "family"),
                                COUNTING: ("total_shapes", "max_count", "hidden_shapes"),
                                JIGSAW: ("clips", "trim")}.items()
        for k in (*knobs, "duration_s", "megapixels")}
    oracle = [r for r in table if r["run"] == "oracle"]
    assert oracle and all(float(r["score"]) == 100 and float(r["ci_high"]) == 100 for r in oracle)
    for task in (GROUNDING, COUNTING, JIGSAW):   # each knob's points partition the task's samples
        per_knob = Counter()
        for r in oracle:
            if r["task"] == task:
                per_knob[r["knob"]] += int(r["n"])
        assert set(per_knob.values()) == {sum(s["task"] == task for s in samples)}
    durations = Counter((s["task"], f"{round(s['video']['duration'], 2):g}") for s in samples)
    assert {(r["task"], r["level"]): int(r["n"]) for r in oracle
            if r["knob"] == "duration_s"} == dict(durations)
    for r in table:
        assert float(r["ci_low"]) <= float(r["score"]) <= float(r["ci_high"])


def test_accuracy_by_segment_length_and_family_follows_the_script(analysed, viubench_testset):
    samples = [s for s in load_samples(viubench_testset).values() if s["task"] == GROUNDING]
    table = [r for r in rows(os.path.join(analysed[0], "knobs.csv")) if r["run"] == "short"]
    lengths = {int(r["level"]): float(r["score"]) for r in table if r["knob"] == "segment_length"}
    assert lengths == {s["draws"]["length"]: 100.0 * (s["draws"]["length"] <= 12)
                       for s in samples}
    by_family = defaultdict(list)
    for s in samples:
        by_family[s["variant"]].append(short(s))
    families = {r["level"]: float(r["score"]) for r in table if r["knob"] == "family"}
    assert families == pytest.approx({f: 100 * sum(v) / len(v) for f, v in by_family.items()},
                                     abs=0.01)
    assert all(float(r["score"]) == 0 for r in table if r["task"] != GROUNDING)


def test_items_table_means_and_flags(runs, analysed, viubench_testset, tmp_path):
    samples = load_samples(viubench_testset)
    table = rows(os.path.join(analysed[0], "items.csv"))
    assert len(table) == len(samples) and {r["id"] for r in table} == set(samples)
    assert [f"score[{name}]" in table[0] for name in runs] == [True] * len(runs)
    assert all(r["flag"] == "" for r in table)   # the oracle solves all, `blind` fails some
    out = str(tmp_path / "two")
    analyze([runs["short"], runs["leaky"]], out, labels=["short", "leaky"])
    for r in rows(os.path.join(out, "items.csv")):
        hits = [short(samples[r["id"]]), samples[r["id"]]["task"] == COUNTING]
        assert float(r["mean_score"]) == 50.0 * sum(hits)
        assert r["flag"] == ("all_fail" if not any(hits) else "")
    assert {r["flag"] for r in rows(os.path.join(out, "items.csv"))} == {"all_fail", ""}


def test_shortcut_audit_flags_the_leaking_task_only(analysed):
    table = rows(os.path.join(analysed[0], "shortcuts.csv"))
    assert {r["run"] for r in table} == {"random", "constant", "blind", "leaky"}
    assert {r["role"] for r in table if r["run"] == "random"} == {"reference"}
    leaks = {(r["run"], r["task"], r["variant"]) for r in table if r["flag"] == "leak"}
    assert leaks == {("leaky", COUNTING, "easy"), ("leaky", COUNTING, "hard")}
    chance = {(r["task"], r["variant"]): float(r["chance"]) for r in table}
    assert chance[(COUNTING, "easy")] == pytest.approx(100 / 9, abs=4)
    assert chance[(COUNTING, "hard")] == pytest.approx(100 / 16, abs=3)
    assert chance[(JIGSAW, "easy")] < 1 and chance[(JIGSAW, "hard")] < 1
    assert all(10 < chance[(GROUNDING, v)] < 35 for t, v in chance if t == GROUNDING)
    solved = rows(os.path.join(analysed[0], "shortcut_items.csv"))
    mine = [r for r in solved if r["run"] == "leaky"]
    assert len(mine) == 8 and {r["task"] for r in mine} == {COUNTING}
    assert {r["variant_flag"] for r in mine} == {"leak"}
    assert all(float(r["score"]) > float(r["chance"]) for r in solved)
    assert not any(r["run"] == "random" for r in solved)   # the reference lists no items


def test_runs_over_other_test_sets_share_only_their_common_samples(runs, viubench_testset,
                                                                  tmp_path):
    """A second test set holding only the grounding samples: knobs plot both runs, the item
    table and the audit use the 20 samples both runs answered."""
    subset = tmp_path / "subset"
    shutil.copytree(os.path.join(viubench_testset, "media"), subset / "media")  # no links out
    for name in ("build.json", "videos.jsonl"):
        (subset / name).write_bytes(open(os.path.join(viubench_testset, name), "rb").read())
    samples = load_samples(viubench_testset)
    kept = [s for s in samples.values() if s["task"] == GROUNDING]
    (subset / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in kept))
    other = evaluate(str(subset), str(tmp_path / "run"), "blind", samples)
    out = str(tmp_path / "out")
    analyze([runs["oracle"], other], out)
    knob_runs = {(r["task"], r["run"]) for r in rows(os.path.join(out, "knobs.csv"))}
    assert (COUNTING, "oracle") in knob_runs and (GROUNDING, "blind:constant text=1,1,1") \
        in knob_runs and (COUNTING, "blind:constant text=1,1,1") not in knob_runs
    assert {r["id"] for r in rows(os.path.join(out, "items.csv"))} == {s["id"] for s in kept}
    assert {r["task"] for r in rows(os.path.join(out, "shortcuts.csv"))} == {GROUNDING}


def test_levels_bin_many_numbers_into_quantiles_and_keep_few_or_text_as_is():
    mapping, labels = _levels(list(range(1, 41)))
    assert labels == ["1..10", "11..20", "21..30", "31..40"] and mapping[15] == "11..20"
    assert _levels([8, 9, 9, 16])[1] == ["8", "9", "16"]
    assert _levels(["mirror", "shuffle", "mirror"])[1] == ["mirror", "shuffle"]
    sample = {"video": {"duration": 4.004, "width": 176, "height": 144}}
    assert sample_knobs(object(), sample) == {"duration_s": 4.0, "megapixels": 0.025}


def test_shared_bootstrap_agrees_with_score_interval():
    rng = random.Random(0)
    videos = [f"v{i // 3}" for i in range(900)]
    groups = {"a": ([float(rng.random() < 0.3) for _ in videos], videos),
              "b": ([rng.random() for _ in videos[:450]], videos[:450])}
    shared = _shared_intervals(groups)
    for key, (values, clusters) in groups.items():
        assert shared[key] == pytest.approx(score_interval(values, clusters), abs=0.015)
    assert _shared_intervals({"c": ([1.0] * 30, videos[:30])})["c"][0] > 0.85   # Wilson


def test_analyze_a_builtin_test_set(viubench_testset, tmp_path):
    import csv

    from viubench.testset_analysis import analyze_testset

    variants, knobs = analyze_testset(viubench_testset, str(tmp_path))
    rows = {r["variant"]: r for r in csv.DictReader(open(variants, encoding="utf-8"))}
    assert len(rows) == 9 and sum(int(r["samples"]) for r in rows.values()) == 36
    for key, row in rows.items():
        assert 0 <= float(row["chance"]) <= 100 and row["prior"] != "", key
    # one sample per video, four videos: jigsaw's prior (one fixed order) is right at most
    # as often as that order was drawn
    assert float(rows["temporal_jigsaw:easy"]["prior"]) <= 25
    levels = list(csv.DictReader(open(knobs, encoding="utf-8")))
    assert {r["task"] for r in levels} >= {"object_counting", "temporal_jigsaw"}
