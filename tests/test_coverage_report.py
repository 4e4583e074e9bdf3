"""A run that failed is never a plain score: leaderboards (CSV, Markdown, HTML, console) and
`compare` carry every run's coverage and mark a run under the threshold, end to end from real
run folders: one whose model server is down (nothing listens on its port), one missing a few
answers, one complete."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket

import pytest
from helpers import viubench

from viubench.adapters import create, parse_spec
from viubench.compare import paired_comparison
from viubench.leaderboard import build_leaderboard, markdown_table, read_csv
from viubench.runner import GenerationSettings, RunOptions, run_eval
from viubench.score import score_run

N = 36                                   # the viubench_testset fixture: 9 columns x 4 videos
BROKEN_VARIANT = ("object_counting", "easy")          # the partial run answers none of these
SHAKY_VARIANT = ("anomaly_grounding", "channel_swap")  # ... and 2 of these 4
CLEAN = ["Jigsaw Easy", "Jigsaw Hard", "Jigsaw", "Grounding Rotate", "Counting Hard"]


def _free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _scripted_run(testset: str, rundir: str, replies: dict) -> str:
    """A run of the scripted adapter (samples without a reply get a fatal error), scored."""
    path = rundir + "-replies.json"
    with open(path, "w") as handle:
        json.dump(replies, handle)
    spec = parse_spec(f"scripted:{path}")
    run_eval(testset, spec, create(spec), rundir, GenerationSettings(), RunOptions())
    score_run(rundir)
    return rundir


@pytest.fixture(scope="module")
def runs(viubench_testset, tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("coverage")
    with open(os.path.join(viubench_testset, "samples.jsonl")) as handle:
        samples = [json.loads(line) for line in handle]
    answers = {s["id"]: s["answer"] for s in samples}
    shaky = [s["id"] for s in samples if (s["task"], s["variant"]) == SHAKY_VARIANT][:2]
    partial = {i: a for i, a in answers.items() if i not in shaky and not any(
        s["id"] == i and (s["task"], s["variant"]) == BROKEN_VARIANT for s in samples)}
    down = str(root / "down")
    # the audit's case: the model server is down. Whatever eval's exit status, the folder
    # holds a run with no answer.
    viubench("eval", "--testset", viubench_testset, "--out", down, "--max-attempts", "1",
             "--model", f"openai:m base_url=http://127.0.0.1:{_free_port()}/v1 api_key=x")
    score_run(down)
    return {"down": down,
            "partial": _scripted_run(viubench_testset, str(root / "partial"), partial),
            "complete": _scripted_run(viubench_testset, str(root / "complete"), answers)}


@pytest.fixture(scope="module")
def board(runs, tmp_path_factory):
    """`viubench leaderboard` of the three runs, beside the paper's reported rows."""
    out = str(tmp_path_factory.mktemp("board") / "board.csv")
    done = viubench("leaderboard", runs["down"], runs["partial"], runs["complete"],
                    "--label", "down", "--label", "partial", "--label", "complete",
                    "--out", out)
    assert done.returncode == 0, done.stderr
    with open(out) as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    return done, out, rows


def _md_rows(text: str) -> dict[str, dict[str, str]]:
    """Markdown table rows as heading -> cell text, by model."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    headings = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]
    return {row[0]: dict(zip(headings, row)) for row in rows}


def test_rows_carry_coverage_and_status(runs):
    _, (down, partial, complete) = build_leaderboard(
        [runs["down"], runs["partial"], runs["complete"]])
    assert down["status"] == "failed" and down["answered"] == 0 and down["n"] == N
    assert down["errors"] >= 1 and down["errors"] + down["missing"] == N
    assert down["coverage"] == 0.0 and down["Overall"] == 0.0 and down["Overall answered"] == 0
    assert partial["status"] == "incomplete" and (partial["answered"], partial["n"]) == (30, N)
    assert partial["errors"] == 6 and partial["missing"] == 0
    assert partial["Counting Easy answered"] == 0 and partial["Counting Easy n"] == 4
    assert partial["Grounding Channel answered"] == 2 and partial["Counting answered"] == 4
    assert complete["status"] == "complete" and complete["coverage"] == 1.0
    assert complete["answered"] == N and complete["errors"] == complete["missing"] == 0
    assert complete["Overall"] == pytest.approx(100.0)


def test_csv_keeps_numbers_numeric_with_explicit_counts(board):
    _, _, rows = board
    down, partial, complete = rows["down"], rows["partial"], rows["complete"]
    assert (down["status"], down["coverage"], down["answered"], down["n"]) == (
        "failed", "0.0000", "0", str(N))
    assert int(down["errors"]) + int(down["missing"]) == N
    assert (partial["status"], partial["coverage"], partial["answered"], partial["errors"]) == (
        "incomplete", "0.8333", "30", "6")
    assert (complete["status"], complete["coverage"]) == ("complete", "1.0000")
    for row in (down, partial, complete):
        assert float(row["Overall"]) >= 0 and float(row["Counting Easy ci_low"]) >= 0
    assert down["Overall"] == "0.0"            # numeric: the status column says what it means
    reported = rows["GPT-5"]
    assert reported["Overall"] == "58.7" and reported["status"] == reported["answered"] == ""


def test_markdown_marks_failed_and_incomplete_rows_only(board):
    _, out, _ = board
    text = open(out[:-4] + ".md").read()
    rows = _md_rows(text)
    down, partial, complete = rows["down"], rows["partial"], rows["complete"]
    assert (down["Status"], down["Answered"]) == ("failed", f"0/{N}")
    assert int(down["Errors"]) + int(down["Never answered"]) == N
    assert down["Overall"] == f"failed (0/{N} answered)"
    assert down["Counting Easy"] == "failed (0/4 answered)"
    assert not any(re.match(r"\d", value) for key, value in down.items() if key not in (
        "Answered", "Errors", "Never answered", "Unparseable"))   # no plain score anywhere
    assert (partial["Status"], partial["Answered"], partial["Errors"]) == (
        "incomplete", f"30/{N}", "6")
    assert partial["Counting Easy"] == "failed (0/4 answered)"
    for name in ("Grounding Channel", "Counting", "Grounding", "Overall"):
        assert re.match(r"\d+\.\d\* \[", partial[name]), (name, partial[name])
    for name in CLEAN:
        assert "*" not in partial[name] and "failed" not in partial[name]
    assert complete["Status"] == "complete" and complete["Overall"].startswith("100.0 [")
    assert not any("*" in v or "failed" in v for v in complete.values())
    gpt = rows["GPT-5"]
    assert gpt["Status"] == "–" and gpt["Overall"] == "58.7"
    assert "`*`: the cell counts samples the model never answered" in text


def test_html_shades_and_marks_the_runs_and_warns(board):
    _, out, _ = board
    page = open(out[:-4] + ".html").read()
    by_model = {model: kind for kind, model in re.findall(
        r'<tr class="([a-z ]+)"><td class="model"[^>]*>([^<]+)<', page)}
    assert by_model["down"] == "measured failed"
    assert by_model["partial"] == "measured incomplete"
    assert by_model["complete"] == "measured" and by_model["GPT-5"] == "reported"
    row = re.search(r'<tr class="measured failed">(.*?)</tr>', page, re.S).group(1)
    assert row.count('<td class="failed"') == 13 and "0/4 answered" in row   # all filled cells
    shown = re.sub(r"<[^>]+>", " ", row)
    assert f"0/{N}" in shown and "failed" in shown
    warnings = re.findall(r'<p class="warning">(.*?)</p>', page)
    assert len(warnings) == 2
    assert "down" in warnings[0] and "FAILED" in warnings[0] and f"0 of {N}" in warnings[0]
    assert "partial" in warnings[1] and f"30 of {N} samples answered (83.3%" in warnings[1]


def test_console_prints_the_marked_table_and_one_warning_per_marked_row(board, runs):
    done, _, _ = board
    lines = [line for line in done.stderr.splitlines() if "warning:" in line]
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith(f"viubench: warning: down ({runs['down']}) FAILED: 0 of {N}")
    assert lines[1].startswith(f"viubench: warning: partial ({runs['partial']}) is incomplete:"
                               f" 30 of {N} samples answered (83.3%; 6 errors,")
    assert "failed (0/4 answered)" in done.stdout and "`*`" in done.stdout


def test_the_threshold_is_an_option_and_zero_coverage_always_fails(runs, tmp_path):
    out = str(tmp_path / "loose.csv")
    done = viubench("leaderboard", runs["down"], runs["partial"], "--label", "down", "--label",
                    "partial", "--out", out, "--reported", "none", "--min-coverage", "0")
    assert done.returncode == 0, done.stderr
    rows = {row["model"]: row for row in read_csv(out)}
    assert rows["partial"]["status"] == "complete" and rows["down"]["status"] == "failed"
    assert done.stderr.count("warning:") == 1
    assert "partial | measured | complete" in open(out[:-4] + ".md").read()
    refused = viubench("leaderboard", runs["down"], "--out", out, "--min-coverage", "1.5")
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        "viubench leaderboard: error: --min-coverage 1.5: expected a fraction between 0 and 1"]


def test_a_saved_board_read_back_keeps_its_marks(board):
    from viubench.leaderboard import layout
    from viubench.registry import load_tasks

    _, out, _ = board
    rows = _md_rows(markdown_table(read_csv(out), layout(load_tasks(), "viubench,mvp")))
    assert rows["down"]["Overall"] == f"failed (0/{N} answered)"
    assert re.match(r"\d+\.\d\* \[", rows["partial"]["Overall"]), rows["partial"]["Overall"]
    assert "*" not in rows["complete"]["Overall"]


def test_compare_marks_a_failed_or_incomplete_run(runs):
    failed = viubench("compare", runs["complete"], runs["down"])
    assert failed.returncode == 0, failed.stderr
    out = failed.stdout.splitlines()
    assert out[1] == f"A: complete, {N} of {N} samples answered (100.0%; 0 errors, 0 never" \
                     " answered, 0 unparseable)"
    assert out[2].startswith(f"B: failed, 0 of {N} samples answered (0.0%;")
    overall = next(line for line in out if line.startswith("Overall "))
    assert f"B failed (0/{N} answered)" in overall and not re.search(r"-?\d+\.\d", overall)
    assert [line for line in failed.stderr.splitlines() if "warning:" in line] == [
        line for line in failed.stderr.splitlines() if "run B" in line and "FAILED" in line]
    assert failed.stderr.count("warning:") == 1

    partial = viubench("compare", runs["complete"], runs["partial"])
    rows = {line.split("  ")[0]: line for line in partial.stdout.splitlines()}
    assert "B failed (0/4 answered)" in rows["Counting Easy"]
    for name in ("Grounding Channel", "Counting", "Overall"):
        assert re.search(r"-?\d+\.\d\* ", rows[name]), rows[name]
    for name in CLEAN:
        assert "*" not in rows[name] and "failed" not in rows[name]
    assert partial.stderr.count("warning:") == 1 and "run B" in partial.stderr

    same = viubench("compare", runs["complete"], runs["complete"])
    assert "warning:" not in same.stderr and "*" not in same.stdout
    assert "failed" not in same.stdout and "cells marked" not in same.stdout


def test_compare_reports_what_each_side_answered(runs):
    comparison = paired_comparison(runs["partial"], runs["down"])
    assert comparison.coverage_a.answered == 30 and comparison.coverage_b.answered == 0
    cells = {row["cell"]: row for row in comparison.cells}
    assert (cells["Counting Easy"]["answered_a"], cells["Counting Easy"]["answered_b"]) == (0, 0)
    assert cells["Overall"]["answered_a"] == 30 and cells["Overall"]["n"] == N


def test_an_unknown_sample_status_is_one_error_line_naming_the_file(runs, tmp_path):
    broken = str(tmp_path / "broken")
    shutil.copytree(runs["complete"], broken)
    path = os.path.join(broken, "scores.jsonl")
    records = [json.loads(line) for line in open(path)]
    records[2]["status"] = "fine"
    with open(path, "w") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in records)
    done = viubench("leaderboard", broken, "--out", str(tmp_path / "b.csv"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (f"viubench leaderboard: error: {path}: sample"
                                   f" {records[2]['id']!r} has status 'fine', not one of"
                                   " answered, error, missing")
