"""`viubench export --format verl|easyr1|trl`: the files load with pyarrow and `datasets`, carry
what each trainer reads (checked against verl's RLHFDataset, EasyR1's RLHFDataset and TRL 1.16's
GRPOTrainer code paths), keep every video's own fps, and route through `viubench.rewards` to
reward 1.0 for the true answer and less for a wrong one. Bad input is one error line."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from viubench.build import BuildSpec, build
from viubench.cli import main
from viubench.export import build_warnings, export_set
from viubench.registry import load_tasks, select
from viubench.rewards import (compute_score, easyr1_compute_score, parse_easyr1_ground_truth,
                              trl_reward)
from viubench.testset import iter_samples

pq = pytest.importorskip("pyarrow.parquet", reason="export writes parquet (the train extra)")
datasets = pytest.importorskip("datasets", reason="export writes with datasets (train extra)")

VERL_COLUMNS = {"data_source", "prompt", "videos", "images", "reward_model", "extra_info"}


@pytest.fixture(scope="module")
def training_set(real_videos, tmp_path_factory) -> str:
    """Every variant, one sample per video, at training resolution (65536 pixels)."""
    out = str(tmp_path_factory.mktemp("export") / "set")
    spec = BuildSpec(real_videos, tuple(select(load_tasks(), "all")), seed=3, per_video=1,
                     max_pixels=65536)
    build(spec, out, workers=1)
    return out


@pytest.fixture(scope="module")
def samples(training_set) -> dict[str, dict]:
    return {sample["id"]: sample for sample in iter_samples(training_set)}


@pytest.fixture(scope="module")
def exports(training_set, tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("exports")
    for fmt in ("verl", "easyr1", "trl"):
        export_set(training_set, fmt, str(root / fmt))
    return {fmt: str(root / fmt) for fmt in ("verl", "easyr1", "trl")}


def parquet_rows(folder: str) -> list[dict]:
    """The rows as pyarrow reads them, checked equal (but for images) to `datasets`' view."""
    path = os.path.join(folder, "train.parquet")
    rows = pq.read_table(path).to_pylist()
    loaded = datasets.load_dataset("parquet", data_files=path, split="train")
    assert len(loaded) == len(rows)
    return rows


def video_parts(sample: dict) -> list[dict]:
    return [part for part in sample["prompt"] if part["type"] == "video"]


def media_in_order(sample: dict, root: str) -> list[str]:
    """The absolute paths of every frame and image of a sample, in prompt order."""
    paths: list[str] = []
    for part in sample["prompt"]:
        if part["type"] == "video":
            paths.extend(part["frames"])
        elif part["type"] == "image":
            paths.append(part["image"])
    return [os.path.join(os.path.realpath(root), rel) for rel in paths]


def wrong_answers(samples: dict[str, dict]) -> dict[str, str]:
    """For each sample, another sample's answer of the same task and variant that differs."""
    by_variant: dict[tuple[str, str], set[str]] = {}
    for sample in samples.values():
        by_variant.setdefault((sample["task"], sample["variant"]), set()).add(sample["answer"])
    return {sid: min(by_variant[(s["task"], s["variant"])] - {s["answer"]})
            for sid, s in samples.items()
            if by_variant[(s["task"], s["variant"])] - {s["answer"]}}


def test_verl_rows(exports, samples, training_set):
    rows = parquet_rows(exports["verl"])
    assert VERL_COLUMNS <= set(rows[0]) and len(rows) == len(samples)
    wrong = wrong_answers(samples)
    assert len(wrong) > len(samples) // 2
    root = os.path.realpath(training_set)
    for row in rows:
        sample = samples[row["extra_info"]["id"]]
        assert row["data_source"] == f"viubench/{sample['task']}/{sample['variant']}"
        user = [m for m in row["prompt"] if m["role"] == "user"]
        assert len(user) == 1 and row["prompt"][0] == {"role": "system",
                                                       "content": sample["system"]}
        # verl's _build_messages splits the content on exactly these two placeholders
        pieces = re.split("(<image>|<video>)", user[0]["content"])
        assert pieces.count("<video>") == len(row["videos"]) == len(video_parts(sample))
        assert pieces.count("<image>") == len(row["images"])
        for entry, part in zip(row["videos"], video_parts(sample)):
            assert entry["sample_fps"] == part["fps"]     # the sample's own rate, not 2 fps
            assert entry["video"] == [os.path.join(root, rel) for rel in part["frames"]]
            assert [entry["min_pixels"], entry["max_pixels"]] == sample["frames"]["pixel_bounds"]
        for path in [p for e in row["videos"] for p in e["video"]] + [
                e["image"] for e in row["images"]]:
            assert path.startswith(root + os.sep) and os.path.isfile(path)
        truth = row["reward_model"]
        assert truth["style"] == "rule" and truth["ground_truth"] == sample["answer"]
        assert compute_score(row["data_source"], sample["answer"], truth["ground_truth"],
                             row["extra_info"]) == 1.0
        if sample["id"] in wrong:
            assert compute_score(row["data_source"], wrong[sample["id"]],
                                 truth["ground_truth"], row["extra_info"]) < 1.0


def test_easyr1_rows(exports, samples, training_set):
    rows = parquet_rows(exports["easyr1"])
    assert {"prompt", "answer", "images"} <= set(rows[0]) and "videos" not in rows[0]
    wrong = wrong_answers(samples)
    for row in rows:
        sample = samples[row["id"]]
        # EasyR1 takes a row's images branch: one {"type": "image"} per <image> split
        assert len(row["prompt"].split("<image>")) - 1 == len(row["images"])
        assert "<video>" not in row["prompt"] and row["prompt"].startswith(sample["system"])
        assert row["images"] == media_in_order(sample, training_set)
        fps = [part["fps"] for part in video_parts(sample)]
        assert row["video_fps"] == fps
        for part in video_parts(sample):
            assert f"(video, {len(part['frames'])} frames at {part['fps']:.3g} fps)\n<image>" \
                in row["prompt"]
        assert parse_easyr1_ground_truth(row["answer"])["answer"] == sample["answer"]
        scored = easyr1_compute_score([
            {"response": sample["answer"], "response_length": 3, "ground_truth": row["answer"]},
            {"response": wrong.get(sample["id"], "?"), "response_length": 3,
             "ground_truth": row["answer"]}])
        assert scored[0]["overall"] == 1.0 and scored[1]["overall"] < 1.0


def test_trl_rows_load_as_trl_grpo_loads_them(exports, samples, training_set):
    pytest.importorskip("trl", reason="the TRL check uses TRL's own message preparation")
    from trl.data_utils import prepare_multimodal_messages

    loaded = datasets.load_dataset(exports["trl"])["train"]    # what `--dataset_name DIR` does
    assert isinstance(loaded.features["images"].feature, datasets.Image)
    wrong = wrong_answers(samples)
    for row in loaded:
        sample = samples[row["id"]]
        parts = [p for m in row["prompt"] for p in m["content"]]
        assert sum(p["type"] == "image" for p in parts) == len(row["images"])
        assert [img.size for img in row["images"][:1]] == [tuple(sample["frames"]["size"])]
        prepared = prepare_multimodal_messages(row["prompt"], images=row["images"])
        assert sum("image" in p for m in prepared for p in m["content"]) == len(row["images"])
        assert row["video_fps"] == [part["fps"] for part in video_parts(sample)]
        lines = [p["text"] for p in parts if p["type"] == "text" and p["text"].startswith("(")]
        assert lines == [f"(video, {len(part['frames'])} frames at {part['fps']:.3g} fps)"
                         for part in video_parts(sample)]
        replies = [[{"role": "assistant", "content": sample["answer"]}],
                   wrong.get(sample["id"], "?")]
        columns = {name: [row[name]] * 2 for name in ("task", "variant", "answer",
                                                      "reward_policy")}
        rewards = trl_reward(prompts=[row["prompt"]] * 2, completions=replies, **columns)
        assert rewards[0] == 1.0 and rewards[1] < 1.0
    trl_paths = pq.read_table(os.path.join(exports["trl"], "train.parquet")).to_pylist()
    assert trl_paths[0]["images"][0]["bytes"] is None        # referenced, not copied
    first = samples[trl_paths[0]["id"]]
    assert [i["path"] for i in trl_paths[0]["images"]] == media_in_order(first, training_set)


def test_reward_policy_travels(training_set, tmp_path):
    export_set(training_set, "easyr1", str(tmp_path / "e"), policy="strict")
    rows = parquet_rows(str(tmp_path / "e"))
    assert {json.loads(row["answer"])["policy"] for row in rows} == {"strict"}


@pytest.mark.parametrize("fmt, expected", [
    ("verl", ["python3 -m verl.trainer.main_ppo", "custom_reward_function.name=compute_score",
              "custom_reward_function.path=REWARDS"]),
    ("easyr1", ["python3 -m verl.trainer.main", "data.format_prompt=null",
                "worker.reward.reward_function=REWARDS:easyr1_compute_score", "2 fps"]),
    ("trl", ["trl grpo", "--reward_funcs viubench.rewards.trl_reward", "--dataset_name OUT"]),
])
def test_cli_prints_training_command(fmt, expected, training_set, tmp_path, capsys):
    import viubench.rewards

    out = str(tmp_path / fmt)
    assert main(["export", training_set, "--format", fmt, "--out", out, "--limit", "3"]) == 0
    printed = capsys.readouterr().out
    assert f"{out}/train.parquet: 3 {fmt} rows" in printed
    assert "note: " in printed and "built as a benchmark set" in printed
    for words in expected:
        words = words.replace("REWARDS", os.path.abspath(viubench.rewards.__file__))
        assert words.replace("OUT", out) in printed
    with open(os.path.join(out, "README.md"), encoding="utf-8") as card:
        assert expected[0] in card.read()


def test_build_warnings():
    assert build_warnings("t", {"status": "complete", "purpose": "training"}) == []
    unfinished = build_warnings("t", {"status": "running", "purpose": "training"})
    assert len(unfinished) == 1 and "unfinished build" in unfinished[0]
    assert "benchmark set" in " ".join(build_warnings("t", {"status": "complete"}))


def tampered(training_set: str, tmp_path, change) -> str:
    """A copy of the set with `change(record)` applied to its first sample record."""
    copy = str(tmp_path / "copy")
    shutil.copytree(training_set, copy)
    path = os.path.join(copy, "samples.jsonl")
    with open(path, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    change(records[0])
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in records)
    return copy


def _first_video(record: dict) -> dict:
    return next(part for part in record["prompt"] if part["type"] == "video")


BAD_SETS = {
    "outside": (lambda r: _first_video(r)["frames"].__setitem__(0, "../../etc/passwd"),
                "not a plain relative path"),
    "answer": (lambda r: r.__setitem__("answer", "banana"), "earns reward 0"),
    "placeholder": (lambda r: r["prompt"].insert(0, {"type": "text", "text": "see <video>"}),
                    "literal <video>"),
    "no fps": (lambda r: _first_video(r).pop("fps"), "without a frame rate"),
    "task": (lambda r: r.__setitem__("task", "no_such_task"), "no task 'no_such_task'"),
    "unscorable": (lambda r: r.update(task="masked_prediction", variant="mvp-easy",
                                      answer="banana"), "cannot reward the answer 'banana'"),
}


@pytest.mark.parametrize("case", sorted(BAD_SETS))
def test_bad_set_is_one_error_line(case, training_set, tmp_path, capsys):
    change, reason = BAD_SETS[case]
    copy = tampered(training_set, tmp_path, change)
    out = str(tmp_path / "out")
    assert main(["export", copy, "--format", "verl", "--out", out]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0] and "samples.jsonl:1" in lines[0], lines
    assert not os.path.exists(os.path.join(out, "train.parquet"))


def test_bad_options_are_one_error_line(training_set, tmp_path, capsys):
    crowded = tmp_path / "crowded"
    crowded.mkdir()
    (crowded / "other.parquet").write_text("x")
    cases = [
        ([str(tmp_path), "--out", str(tmp_path / "a")], "not a viubench test set"),
        ([training_set, "--out", str(tmp_path / "b"), "--reward-policy", "generous"],
         "no reward policy 'generous'"),
        ([training_set, "--out", str(crowded)], "holds other files (other.parquet)"),
    ]
    for args, reason in cases:
        assert main(["export", "--format", "trl", *args]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and reason in lines[0], lines
