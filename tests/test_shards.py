"""`viubench eval --shard I/N` and `viubench merge`: a content-stable split of the samples, and
shard runs (one killed and resumed) that merge into exactly the unsharded run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from helpers import TESTS, viubench
from viubench.cli import main
from viubench.merge import MergeError, merge_runs
from viubench.runfolder import PREDICTIONS, SCORES, read_run
from viubench.shards import Shard, parse_shard, shard_of
from viubench.testset import sample_ids

SLOW_RANDOM = ["--model", "slow_random delay=0", "--adapter-module", "user_adapter",
               "--batch-size", "1"]


def predictions(rundir: str) -> list[dict]:
    """The prediction records of a run, in file order (a torn last line is left out)."""
    return [r for r in read_run(rundir)[1] if r["record"] == "prediction"]


def answers(rundir: str) -> list[tuple]:
    """What a run answered, per sample in file order, without the timings."""
    return [(r["id"], r["task"], r["variant"], r["text"], r["error"], r["kind"])
            for r in predictions(rundir)]


def results_without_hash(rundir: str) -> dict:
    """results.json less the hash of predictions.jsonl (whose timings differ run to run)."""
    with open(os.path.join(rundir, "results.json")) as handle:
        results = json.load(handle)
    assert len(results.pop("predictions_hash")) > 10
    return results


def test_assignment_is_stable_balanced_and_independent_of_order_and_limit(viubench_testset):
    # pinned: a shard run made by one viubench must merge with one made by the next
    assert (shard_of("a", 8), shard_of("b", 8), shard_of("0123abcd", 8)) == PINNED
    ids = [f"{random.Random(n).getrandbits(64):016x}" for n in range(6000)]
    sizes = Counter(shard_of(i, 3) for i in ids)
    assert sorted(sizes) == [0, 1, 2] and all(1800 < n < 2200 for n in sizes.values())
    shards = [Shard(i, 3) for i in range(3)]
    records = [{"id": i} for i in ids]
    chosen = [[r["id"] for r in shard.select(records)] for shard in shards]
    assert sorted(sum(chosen, [])) == sorted(ids)   # every sample in exactly one shard
    shuffled = random.Random(1).sample(records, len(records))
    for shard, picked in zip(shards, chosen):
        # neither the order of the file nor the other samples (a limit) change a sample's shard
        assert sorted(r["id"] for r in shard.select(shuffled)) == sorted(picked)
        assert [r["id"] for r in shard.select(records[:100])] == \
            [i for i in picked if i in set(ids[:100])]
    real = sample_ids(viubench_testset)
    assert len(real) == 36 and all(Counter(shard_of(i, 3) for i in real)[k] >= 6
                                   for k in range(3))


PINNED = (7, 5, 5)   # blake2b(id, digest_size=8), big-endian, mod 8


def test_shard_syntax_is_zero_based_and_checked():
    assert parse_shard("0/8") == Shard(0, 8) and parse_shard("7/8") == Shard(7, 8)
    assert parse_shard("0/1").holds("anything")
    for bad in ("8/8", "0/0", "-1/3", "1", "a/3", "1/b", "1/2/3", ""):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


def test_three_shards_one_killed_and_resumed_merge_into_the_unsharded_run(viubench_testset,
                                                                         tmp_path):
    whole, merged = str(tmp_path / "whole"), str(tmp_path / "merged")
    shards = [str(tmp_path / f"shard-{i}") for i in range(3)]
    done = viubench("eval", "--testset", viubench_testset, "--out", whole, *SLOW_RANDOM,
                    env_path=TESTS)
    assert done.returncode == 0, done.stderr
    for i in (0, 2):
        done = viubench("eval", "--testset", viubench_testset, "--out", shards[i],
                        "--shard", f"{i}/3", *SLOW_RANDOM, env_path=TESTS)
        assert done.returncode == 0, done.stderr
        size = sum(shard_of(s, 3) == i for s in sample_ids(viubench_testset))
        assert f"coverage: {size} of {size} answered" in done.stdout
        assert "not scored alone" in done.stdout and not os.path.exists(
            os.path.join(shards[i], SCORES))
    # Shard 1 answers 3 samples and hangs (user_adapter.SlowRandom), is killed, then resumed.
    env = dict(os.environ, PYTHONPATH=TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""),
               VIUBENCH_TEST_STALL_AFTER="3")
    child = subprocess.Popen([sys.executable, "-m", "viubench.cli", "eval", "--testset",
                              viubench_testset, "--out", shards[1], "--shard", "1/3",
                              *SLOW_RANDOM], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    path = os.path.join(shards[1], PREDICTIONS)
    safety = time.monotonic() + 300     # a net against a hang, not a timing assumption
    while child.poll() is None and (not os.path.exists(path) or len(predictions(shards[1])) < 3):
        assert time.monotonic() < safety, "the shard wrote fewer than 3 answers in 5 minutes"
        time.sleep(0.02)
    assert child.poll() is None, "the stalled shard ended by itself"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert len(predictions(shards[1])) == 3
    early = viubench("merge", *shards, "--out", str(tmp_path / "early"), env_path=TESTS)
    assert early.returncode == 0 and "never answered" in early.stdout   # said, not hidden
    resumed = viubench("eval", "--testset", viubench_testset, "--out", shards[1],
                       "--shard", "1/3", *SLOW_RANDOM, env_path=TESTS)
    assert resumed.returncode == 0, resumed.stderr
    assert "3 samples already answered" in resumed.stderr
    # shards in any order on the command line
    done = viubench("merge", shards[2], shards[0], shards[1], "--out", merged, env_path=TESTS)
    assert done.returncode == 0, done.stderr
    assert "merged 3 shards, 36 samples" in done.stdout and "never" not in done.stdout
    assert answers(merged) == answers(whole) and len(answers(merged)) == 36
    with open(os.path.join(whole, PREDICTIONS)) as a, open(os.path.join(merged, PREDICTIONS)) as b:
        first_whole, first_merged = json.loads(a.readline()), json.loads(b.readline())
        assert a.readline() == b.readline()   # the scope record
    assert sorted(first_merged) == sorted(first_whole)   # an unsharded header, no shard key
    for key in ("testset", "adapter", "generation", "tool_version"):
        assert first_merged[key] == first_whole[key]
    with open(os.path.join(whole, SCORES)) as a, open(os.path.join(merged, SCORES)) as b:
        assert a.read() == b.read()
    assert results_without_hash(merged) == results_without_hash(whole)


def eval_in_process(testset: str, out: str, *args: str) -> None:
    assert main(["eval", "--testset", testset, "--out", out, "--limit", "9", *args]) == 0


def test_a_resume_with_another_shard_or_none_is_refused(viubench_testset, tmp_path, capsys):
    run = str(tmp_path / "r")
    eval_in_process(viubench_testset, run, "--model", "random", "--shard", "0/3")
    for other in (["--shard", "1/3"], ["--shard", "0/2"], []):
        capsys.readouterr()
        assert main(["eval", "--testset", viubench_testset, "--out", run, "--limit", "9",
                     "--model", "random", *other]) == 2
        err = capsys.readouterr().err
        assert "different shard" in err and len(err.strip().splitlines()) == 1
    for bad in ("3/3", "0/0", "x"):
        assert main(["eval", "--testset", viubench_testset, "--out", str(tmp_path / bad[0]),
                     "--model", "random", "--shard", bad]) == 2
        err = capsys.readouterr().err
        assert "--shard" in err and len(err.strip().splitlines()) == 1
    # a shard alone is no run to score: its other samples are the other shards', not missing
    assert main(["score", run]) == 2
    err = capsys.readouterr().err
    assert "is shard 0/3 of a run: merge the shards" in err and len(err.strip().splitlines()) == 1


def test_runs_that_are_not_the_shards_of_one_run_are_refused(viubench_testset, tmp_path,
                                                            capsys):
    def run(name: str, *args: str) -> str:
        out = str(tmp_path / name)
        eval_in_process(viubench_testset, out, *args)
        return out

    random_ = [run(f"r{i}", "--model", "random", "--shard", f"{i}/3") for i in range(3)]
    constant = run("c1", "--model", "constant text=1", "--shard", "1/3")
    halves = run("h1", "--model", "random", "--shard", "1/2")
    again = run("r0-again", "--model", "random", "--shard", "0/3")
    whole = run("whole", "--model", "random")
    out = str(tmp_path / "out")
    cases = {"shard 2/3 missing": random_[:2],
             "different shard counts": [*random_[:2], halves],
             "different adapter": [random_[0], constant, random_[2]],
             "both shard 0/3": [*random_, again],
             "not a shard run": [*random_, whole],
             "is one of the shards": random_}
    for message, inputs in cases.items():
        target = random_[0] if message == "is one of the shards" else out
        with pytest.raises(MergeError, match=message):
            merge_runs(inputs, target)
        assert not os.path.exists(os.path.join(out, PREDICTIONS))
    # a shard whose file holds an answer of another shard's sample (hand-edited, untrusted)
    foreign = next(i for i in sample_ids(viubench_testset, 9) if shard_of(i, 3) != 1)
    with open(os.path.join(constant, PREDICTIONS), "a") as handle:
        handle.write(json.dumps({"record": "prediction", "id": foreign}) + "\n")
    with pytest.raises(MergeError, match="not in shard 1/3"):
        merge_runs([random_[0], constant, random_[2]], out)
    # through the command line: one error line, exit 2; a merged folder is never overwritten
    capsys.readouterr()
    assert main(["merge", *random_[:2], "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("viubench merge: error:") and len(err.strip().splitlines()) == 1
    assert main(["merge", *random_, "--out", out]) == 0
    assert main(["merge", *random_, "--out", out]) == 2
    assert "already holds a run" in capsys.readouterr().err
