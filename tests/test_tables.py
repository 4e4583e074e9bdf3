"""The pandas tables (`viubench.tables`) against the files the command line writes for the same
runs: samples.jsonl, scores.jsonl, results.json and the leaderboard CSV."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys

import pytest
from helpers import viubench

pd = pytest.importorskip("pandas", reason="the tables need the pandas extra")

from viubench import leaderboard_table, load_run, load_testset  # noqa: E402
from viubench.testset import BadTestSet  # noqa: E402


def jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def results(rundir: str) -> dict:
    with open(os.path.join(rundir, "results.json"), encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def runs(viubench_testset, tmp_path_factory) -> dict[str, str]:
    """Runs made by the command line: two baselines and a scripted run with a fatal error, an
    unparseable reply and a transient error retried into an answer."""
    root = tmp_path_factory.mktemp("tables")
    ids = [s["id"] for s in jsonl(os.path.join(viubench_testset, "samples.jsonl"))]
    replies = str(root / "replies.json")
    with open(replies, "w", encoding="utf-8") as handle:
        json.dump({ids[0]: {"error": "backend down", "kind": "fatal"}, ids[1]: "no idea",
                   ids[2]: [{"error": "busy", "kind": "transient"}, "2.0-3.0"]}, handle)
    made = {}
    for name, spec, wanted in (("random", "random", 0), ("constant", "constant text=1,2,3", 0),
                               ("scripted", f"scripted:{replies} default=1,1,1", 1)):
        made[name] = str(root / name)
        done = viubench("eval", "--testset", viubench_testset, "--model", spec, "--out",
                        made[name], "--retry-base", "0.01")
        assert done.returncode == wanted, done.stderr   # 1: an error beyond --max-error-rate
    return made


def test_load_testset_is_samples_jsonl(viubench_testset):
    table = load_testset(viubench_testset)
    records = jsonl(os.path.join(viubench_testset, "samples.jsonl"))
    assert len(table) == len(records) == 36
    for row, record in zip(table.to_dict("records"), records):
        video, frames = record["video"], record["frames"]
        assert row == {"id": record["id"], "task": record["task"], "variant": record["variant"],
                       "difficulty": record["difficulty"], "answer": record["answer"],
                       "version": record["version"], "prompt_set": record["prompt_set"],
                       "seed": record["seed"], "replica": record["replica"],
                       "video_path": video["path"], "video_hash": video["hash"],
                       "video_duration": video["duration"], "video_fps": video["fps"],
                       "video_frame_count": video["frame_count"],
                       "sampled_frames": len(frames["indices"]),
                       "sample_fps": frames["sample_fps"], "draws": record["draws"]}
    counts = table.groupby("task").size().to_dict()
    assert counts == {"anomaly_grounding": 20, "object_counting": 8, "temporal_jigsaw": 8}


@pytest.mark.parametrize("name", ["random", "constant", "scripted"])
def test_load_run_numbers_are_the_cli_scores(runs, name, viubench_testset):
    table = load_run(runs[name])
    scores = jsonl(os.path.join(runs[name], "scores.jsonl"))
    samples = {s["id"]: s for s in jsonl(os.path.join(viubench_testset, "samples.jsonl"))}
    assert list(table["id"]) == [s["id"] for s in scores]
    for row, scored in zip(table.to_dict("records"), scores):
        assert row["score"] == scored["score"] and row["status"] == scored["status"]
        assert row["answer"] == samples[scored["id"]]["answer"]
        assert row["parsed_by_policy"] == scored["parsed"]
        for metric, value in scored["metrics"].items():
            assert metric == "score" or row[f"metric_{metric}"] == value
        for policy, value in scored["rewards"].items():
            assert row[f"reward_{policy}"] == value
    summary = results(runs[name])
    by_variant = table.groupby(["task", "variant"])
    assert len(by_variant) == len(summary["variants"])
    for (task, variant), rows in by_variant:
        expected = summary["variants"][f"{task}:{variant}"]
        assert 100 * rows["score"].mean() == pytest.approx(expected["score"], rel=1e-12)
        assert expected["n"] == len(rows) and expected["videos"] == rows["video"].nunique()
        assert expected["answered"] == (rows["status"] == "answered").sum()
        assert expected["errors"] == (rows["status"] == "error").sum()
        assert expected["parse_failures"] == rows["parse_failure"].sum()
        for metric, value in expected["metrics"].items():
            column = rows["score" if metric == "score" else f"metric_{metric}"]
            assert 100 * column.mean() == pytest.approx(value, rel=1e-12, abs=1e-12)


def test_errors_are_errors_not_answers(runs, viubench_testset):
    table = load_run(runs["scripted"]).set_index("id")
    samples = jsonl(os.path.join(viubench_testset, "samples.jsonl"))
    failed, unparsed, retried = (s["id"] for s in samples[:3])   # as scripted in `runs`
    error = table.loc[failed]
    assert (error["status"], error["error"], error["error_kind"]) == ("error", "backend down",
                                                                      "fatal")
    assert pd.isna(error["text"]) and error["parsed"] is None and error["score"] == 0.0
    assert not error["parse_failure"]   # a failed request is no reply that did not parse
    bad = table.loc[unparsed]
    assert (bad["status"], bad["text"], bad["parse_failure"]) == ("answered", "no idea", True)
    assert bad["parse_error"] and bad["parsed"] is None and pd.isna(bad["error"])
    again = table.loc[retried]
    assert (again["status"], again["text"], again["attempts"]) == ("answered", "2.0-3.0", 2)
    assert again["parsed"] == [2.0, 3.0]
    totals = results(runs["scripted"])["totals"]
    assert totals["errors"] == (table["status"] == "error").sum() == 1
    assert totals["parse_failures"] == table["parse_failure"].sum()


def normalised(frame):
    """Every column as plain Python cells: numbers as floats, text as str, missing as None."""
    out = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            out[name] = [None if math.isnan(v) else v for v in column.astype("float64")]
        else:
            out[name] = [None if pd.isna(v) else str(v) for v in column]
    return out


def test_leaderboard_table_is_the_cli_csv(runs, tmp_path):
    labels = ["random", "constant", "scripted"]
    out = str(tmp_path / "board.csv")
    arguments = [runs[name] for name in labels]
    for label in labels:
        arguments += ["--label", label]
    done = viubench("leaderboard", *arguments, "--out", out)
    assert done.returncode == 0, done.stderr
    written = pd.read_csv(out)
    with pytest.warns(UserWarning, match="scripted"):
        table = leaderboard_table([runs[name] for name in labels], labels, reported=True)
    assert list(table.columns) == list(written.columns)
    assert len(table) == len(written) == 3 + 14        # the paper's rows come with reported=True
    assert normalised(table) == normalised(written)
    assert list(table["status"][:3]) == ["complete", "complete", "incomplete"]
    assert table["errors"][2] == 1
    measured = leaderboard_table(runs["random"])
    assert normalised(measured) == normalised(written.iloc[:1].assign(model="random"))


def test_a_stale_or_interrupted_run_is_scored_first(runs, viubench_testset, tmp_path):
    copy = str(tmp_path / "cut")
    shutil.copytree(runs["random"], copy)
    path = os.path.join(copy, "predictions.jsonl")
    with open(path, encoding="utf-8") as handle:
        lines = handle.readlines()
    with open(path, "w", encoding="utf-8") as handle:   # the last answer never came
        handle.writelines(lines[:-1])
    moved = str(tmp_path / "moved")
    shutil.copytree(viubench_testset, moved)
    with pytest.warns(UserWarning, match="predictions changed"):
        table = load_run(copy, testset=moved)
    assert table["status"].value_counts().to_dict() == {"answered": 35, "missing": 1}
    missing = table[table["status"] == "missing"].iloc[0]
    assert pd.isna(missing["text"]) and missing["score"] == 0.0 and pd.isna(missing["attempts"])
    assert results(copy)["totals"]["missing"] == 1     # what `viubench score` now says too
    original = load_run(runs["random"])
    same = table["status"] == "answered"
    assert list(table["score"][same]) == list(original["score"][same])


def test_bad_folders_give_one_line_errors(runs, viubench_testset, all_variants_testset,
                                          tmp_path):
    empty = str(tmp_path / "empty")
    os.makedirs(empty)
    failures = []
    with pytest.raises(ValueError, match="holds no run") as caught:
        load_run(empty)
    failures.append(caught.value)
    with pytest.raises(ValueError, match="holds no run") as caught:
        leaderboard_table([empty])
    failures.append(caught.value)
    with pytest.raises(ValueError, match="hash differs") as caught:
        load_run(runs["random"], testset=all_variants_testset)
    failures.append(caught.value)
    with pytest.raises(FileNotFoundError, match="not a viubench test set") as caught:
        load_testset(empty)
    failures.append(caught.value)
    broken = str(tmp_path / "broken")
    shutil.copytree(viubench_testset, broken)
    with open(os.path.join(broken, "samples.jsonl"), "a", encoding="utf-8") as handle:
        handle.write('{"id": "x", "task": 3}\n')
    with pytest.raises(BadTestSet, match=r"samples.jsonl:37: field 'task'") as caught:
        load_testset(broken)
    failures.append(caught.value)
    assert all("\n" not in str(failure) for failure in failures)


def test_without_pandas_the_error_says_what_to_install(monkeypatch, viubench_testset):
    monkeypatch.setitem(sys.modules, "pandas", None)   # `import pandas` raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'viubench\[pandas\]'"):
        load_testset(viubench_testset)
