"""The README's main job: `viubench demo` end to end on the bundled real clips."""

from __future__ import annotations

import csv
import os

from helpers import viubench


def test_demo_builds_verifies_evaluates_and_publishes(tmp_path):
    out = str(tmp_path / "demo")
    done = viubench("demo", "--out", out)
    assert done.returncode == 0, done.stderr
    assert "all match" in done.stdout
    with open(os.path.join(out, "leaderboard.csv")) as handle:
        rows = list(csv.DictReader(handle))
    assert [r["model"] for r in rows[:4]] == ["random", "whole", "prior", "blind-constant"]
    assert all(r["Overall n"] == "144" for r in rows[:4])
    with open(os.path.join(out, "analysis", "shortcuts.csv")) as handle:
        roles = {(r["run"], r["role"]) for r in csv.DictReader(handle)}
    assert {("random", "reference"), ("whole", "prior"), ("prior", "prior"),
            ("blind-constant", "non-visual")} <= roles
    assert any(r["model"] == "GPT-5" for r in rows)          # the paper's rows beside ours
    for name in ("leaderboard.html", "leaderboard-columns.png", "analysis/knobs.png",
                 "analysis/shortcuts.csv"):
        assert os.path.getsize(os.path.join(out, name)) > 1000, name
