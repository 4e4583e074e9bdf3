"""How long do `score`, `leaderboard`, `compare` and `analyze` take on 100k predictions?

    python bench/report_speed.py [--samples 100000] [--scratch DIR]

A real `viubench`-suite test set is built from the bundled clips once; its records are then
replicated (fresh ids, and one synthetic source video per 9 samples so the video bootstrap has
~11k clusters, as a large benchmark would) into a 100k-sample test set. Two runs answer it: the
random baseline (through the real runner) and a noisy oracle written directly, so `compare` has
a real difference to find. Each reporting step is timed on its own; target: seconds, not minutes.
Also prints the peak RSS of the process, since every step streams over the files.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sys
import time

from viubench.adapters import create, parse_spec
from viubench.analysis import analyze
from viubench.build import BuildSpec, build
from viubench.compare import compare_runs
from viubench.demo import bundled_videos
from viubench.leaderboard import build_leaderboard, write_csv
from viubench.registry import load_tasks, select
from viubench.score import score_run
from viubench.runfolder import PREDICTIONS, make_header
from viubench.runner import GenerationSettings, RunOptions, run_eval
from viubench.records import append_jsonl, canonical_json


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:   # another file system
        shutil.copy2(source, target)


def seed_testset(folder: str) -> str:
    seed = os.path.join(folder, "seed")
    if not os.path.exists(os.path.join(seed, "build.json")):
        spec = BuildSpec(bundled_videos(), tuple(select(load_tasks(), "viubench")), seed=0,
                         per_video=4)
        build(spec, seed)
    return seed


def replicate(seed: str, out: str, count: int) -> None:
    """A test set of `count` samples made from the seed set's records (media hard-linked)."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(seed, "samples.jsonl"), encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    with open(os.path.join(out, "samples.jsonl"), "w", encoding="utf-8") as handle:
        for number in range(count):
            record = dict(records[number % len(records)])
            record["id"] = f"{number:016x}"
            record["video"] = dict(record["video"], hash=f"synthetic-video-{number // 9:06d}")
            handle.write(canonical_json(record) + "\n")
    with open(os.path.join(seed, "build.json"), encoding="utf-8") as handle:
        summary = json.load(handle)
    summary["samples"] = count
    with open(os.path.join(out, "build.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle)
    if not os.path.exists(os.path.join(out, "media")):
        # hard links: the media stay inside the test set (a link leading out is refused)
        shutil.copytree(os.path.join(seed, "media"), os.path.join(out, "media"),
                        copy_function=_link_or_copy)


def noisy_oracle_run(testset: str, rundir: str, accuracy: float) -> None:
    """A run that gives the true answer with probability `accuracy` (written directly)."""
    os.makedirs(rundir, exist_ok=True)
    spec = parse_spec("constant text=oracle")
    header = make_header(testset, spec.redacted(), create(spec).describe(),
                         GenerationSettings().as_json())
    rng = random.Random(1)
    with open(os.path.join(testset, "samples.jsonl"), encoding="utf-8") as samples, \
            open(os.path.join(rundir, PREDICTIONS), "w", encoding="utf-8") as out:
        append_jsonl(out, header)
        append_jsonl(out, {"record": "scope", "limit": None})
        for line in samples:
            sample = json.loads(line)
            text = sample["answer"] if rng.random() < accuracy else "no idea"
            out.write(canonical_json({"record": "prediction", "id": sample["id"],
                                      "task": sample["task"], "variant": sample["variant"],
                                      "text": text, "error": None, "kind": None,
                                      "attempts": 1, "seconds": 0.0, "info": {}}) + "\n")


def timed(label: str, action) -> object:
    started = time.perf_counter()
    result = action()
    print(f"  {label:52s} {time.perf_counter() - started:7.2f} s")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--scratch", default=os.path.join(os.path.dirname(__file__), ".scratch"))
    args = parser.parse_args(argv)
    folder = os.path.join(os.path.abspath(args.scratch), "report-speed")
    testset = os.path.join(folder, f"testset-{args.samples}")
    runs = [os.path.join(folder, name) for name in ("random", "oracle")]
    for rundir in runs:
        shutil.rmtree(rundir, ignore_errors=True)
    replicate(seed_testset(folder), testset, args.samples)
    print(f"viubench report speed: {args.samples} samples, {args.samples // 9} source videos"
          f" (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    spec = parse_spec("random")
    timed("eval random baseline (runner, 100k answers)",
          lambda: run_eval(testset, spec, create(spec), runs[0], GenerationSettings(),
                           RunOptions()))
    noisy_oracle_run(testset, runs[1], accuracy=0.6)
    for rundir in runs:
        timed(f"score {os.path.basename(rundir)}", lambda r=rundir: score_run(r))
    columns, rows = timed("leaderboard of both runs",
                          lambda: build_leaderboard(runs, ["random", "oracle-60%"]))
    write_csv(os.path.join(folder, "leaderboard.csv"), rows, columns)
    timed("compare oracle vs random (paired)", lambda: compare_runs(runs[0], runs[1]))
    timed("analyze both runs (knobs, items, shortcut audit)",
          lambda: analyze(runs, os.path.join(folder, "analysis")))
    overall = {row["model"]: round(row["Overall"], 1) for row in rows}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  Overall: {overall}; peak RSS of this process {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
