"""`viubench.training.ViubenchCallback` inside a real `transformers.Trainer` and TRL `GRPOTrainer`.

A tiny random Qwen2-VL trains a few steps on CPU; the callback evaluates the model in memory on
three samples of the shared test set (2 frames a clip, 4 new tokens). Checked: its rows reach
`state.log_history` at the expected steps with the values `viubench score` gives for the run
folders it wrote, the trainer's own rows are untouched (GRPO's metric window still covers every
step since its last row), and misuse fails with a clear error.
"""

from __future__ import annotations

import json
import os

import pytest

from conftest import samples_of
from helpers import viubench
from tiny_models import save_qwen2_vl
from viubench.adapters import create, parse_spec
from viubench.runfolder import RESULTS, read_header
from viubench.runner import GenerationSettings, RunOptions, run_eval
from viubench.score import score_run
from viubench.testset import BadTestSet

pytest.importorskip("transformers")
from viubench.training import ViubenchCallback, evaluate_in_memory, metrics_of  # noqa: E402

LIMIT, FRAMES, TOKENS = 3, 2, 4
PREFIX = "viubench/"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    return save_qwen2_vl(str(tmp_path_factory.mktemp("tiny") / "qwen2_vl"))


def load(path: str):
    """The model and processor as a training script loads them (float32, CPU)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from viubench.model_adapters.transformers_local import load_processor

    model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True,
                                                        dtype=torch.float32)
    return model, load_processor(path, remote=False)


def text_rows(processor, count: int = 8) -> list[dict]:
    """Same-length token rows (no padding needed): a language-modelling batch costs ~nothing."""
    ids = processor.tokenizer("The answer is A. Count the objects.")["input_ids"][:8]
    return [{"input_ids": ids, "labels": ids} for _ in range(count)]


def callback(testset: str, **overrides) -> ViubenchCallback:
    settings = {"limit": LIMIT, "max_frames": FRAMES, "max_new_tokens": TOKENS}
    return ViubenchCallback(testset, **{**settings, **overrides})


def viubench_rows(history: list[dict]) -> list[dict]:
    return [row for row in history if any(key.startswith(PREFIX) for key in row)]


def scored_by_cli(rundir: str) -> dict:
    """results.json as `viubench score RUNDIR` writes it (run in a subprocess)."""
    done = viubench("score", rundir)
    assert done.returncode == 0, done.stderr
    with open(os.path.join(rundir, RESULTS), encoding="utf-8") as handle:
        return json.load(handle)


def assert_row_matches(row: dict, results: dict) -> None:
    """The logged figures are exactly the scored run's: every variant, mean and coverage."""
    variants = results["variants"]
    logged = {key for key in row if key.startswith(PREFIX) and key.count("/") == 2}
    assert logged == {PREFIX + key.replace(":", "/") for key in variants}
    for key, summary in variants.items():
        assert summary["answered"] == summary["n"]
        assert row[PREFIX + key.replace(":", "/")] == summary["score"]
    scores = [summary["score"] for summary in variants.values()]
    assert row[PREFIX + "mean"] == pytest.approx(sum(scores) / len(scores))
    assert row[PREFIX + "coverage"] == 1.0 and row[PREFIX + "unanswered"] == 0
    assert results["totals"]["n"] == LIMIT


def test_trainer_logs_scores_at_the_expected_steps(checkpoint, viubench_testset, tmp_path):
    from transformers import Trainer, TrainingArguments

    model, processor = load(checkpoint)
    out = str(tmp_path / "train")
    args = TrainingArguments(output_dir=out, max_steps=3, per_device_train_batch_size=2,
                             learning_rate=1e-3, logging_steps=2, save_steps=3, report_to=[],
                             use_cpu=True, disable_tqdm=True)
    # The tokenizer is the trainer's (a checkpoint cannot save a processor that lacks its video
    # part, as without torchvision); the callback prompts through the processor given here.
    trainer = Trainer(model=model, args=args, train_dataset=text_rows(processor),
                      processing_class=processor.tokenizer)
    watcher = callback(viubench_testset, every_steps=2, processor=processor).attach(trainer)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer.train()

    # Step 2 by every_steps, step 3 by the save; one run folder each, nothing else written.
    rows = viubench_rows(trainer.state.log_history)
    assert [row["step"] for row in rows] == [2, 3]
    assert watcher.runs == {step: os.path.join(out, "viubench", f"step-{step}")
                            for step in (2, 3)}
    assert sorted(n for n in os.listdir(out) if n.startswith("checkpoint")) == ["checkpoint-3"]
    for row in rows:
        assert_row_matches(row, scored_by_cli(watcher.runs[row["step"]]))
        fingerprint = read_header(watcher.runs[row["step"]])["adapter"]["fingerprint"]
        assert fingerprint["in_memory"] == f"step-{row['step']}"
        assert fingerprint["frame_rule"] and fingerprint["max_frames"] == FRAMES
    # The trainer's own row at step 2 is still written (the callback logged there first), and
    # the viubench rows carry none of the trainer's figures.
    losses = [row["step"] for row in trainer.state.log_history if "loss" in row]
    assert 2 in losses and not any("loss" in row for row in rows)
    # The model trained (the evaluations did not freeze it) and is back in training mode.
    assert any(not p.detach().equal(before[n]) for n, p in model.named_parameters())
    assert model.training


def test_grpo_metric_window_keeps_every_step(checkpoint, viubench_testset, tmp_path):
    pytest.importorskip("trl", reason="the GRPO test needs TRL (the train extra)")
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    def step_reward(prompts, completions, trainer_state, **columns):
        # The step being generated for (0 for the first step): GRPO's logged `reward` is the
        # mean over the steps its window covers, so its value tells which steps those are.
        return [float(trainer_state.global_step)] * len(completions)

    model, processor = load(checkpoint)
    config = GRPOConfig(output_dir=str(tmp_path / "grpo"), max_steps=2, logging_steps=2,
                        per_device_train_batch_size=2, num_generations=2,
                        max_completion_length=4, learning_rate=1e-3, report_to=[],
                        use_cpu=True, use_vllm=False, disable_tqdm=True, save_strategy="no")
    prompts = Dataset.from_dict({"prompt": ["Count the objects.", "The answer is"] * 2})
    trainer = GRPOTrainer(model=model, reward_funcs=step_reward, args=config,
                          train_dataset=prompts, processing_class=processor)
    watcher = callback(viubench_testset, every_steps=1, on_save=False).attach(trainer)
    trainer.train()

    history = trainer.state.log_history
    rows = viubench_rows(history)
    assert [row["step"] for row in rows] == [1, 2]
    for row in rows:
        assert_row_matches(row, scored_by_cli(watcher.runs[row["step"]]))
        assert "reward" not in row
    # GRPO's row at step 2 averages steps 1 and 2 (rewards 0 and 1): the callback's log at
    # step 1 neither flushed nor joined its window.
    grpo = [row for row in history if "reward" in row]
    assert [row["step"] for row in grpo] == [2]
    assert grpo[0]["reward"] == pytest.approx(0.5)
    assert not any(key.startswith(PREFIX) for key in grpo[0])


def test_without_attach_training_stops_at_its_start(checkpoint, viubench_testset, tmp_path):
    from transformers import Trainer, TrainingArguments

    model, processor = load(checkpoint)
    args = TrainingArguments(output_dir=str(tmp_path / "t"), max_steps=1, report_to=[],
                             use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=text_rows(processor),
                      processing_class=processor,
                      callbacks=[callback(viubench_testset, every_steps=1)])
    with pytest.raises(RuntimeError, match=r"attach\(trainer\)"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_a_tokenizer_or_sharded_weights_are_refused_at_attach(checkpoint, viubench_testset,
                                                               tmp_path):
    from transformers import Trainer, TrainingArguments

    model, processor = load(checkpoint)
    args = TrainingArguments(output_dir=str(tmp_path / "t"), max_steps=1, report_to=[],
                             use_cpu=True)
    with_tokenizer = Trainer(model=model, args=args, processing_class=processor.tokenizer)
    with pytest.raises(ValueError, match="multimodal processor"):
        callback(viubench_testset, every_steps=1).attach(with_tokenizer)
    # An explicit processor stands in for the trainer's tokenizer.
    callback(viubench_testset, every_steps=1, processor=processor).attach(with_tokenizer)
    sharded = Trainer(model=model, args=args, processing_class=processor)
    sharded.is_fsdp_enabled = True
    with pytest.raises(ValueError, match="FSDP"):
        callback(viubench_testset, every_steps=1).attach(sharded)
    with pytest.raises(TypeError, match="Trainer"):
        callback(viubench_testset, every_steps=1).attach(object())


def test_bad_settings_and_test_sets_fail_at_construction(viubench_testset, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "samples.jsonl").write_text('{"id": "a"}\n')
    with pytest.raises(BadTestSet, match="samples.jsonl"):
        ViubenchCallback(str(broken), every_steps=1)
    with pytest.raises(ValueError, match="never evaluates"):
        ViubenchCallback(viubench_testset, on_save=False)
    with pytest.raises(ValueError, match="every_steps"):
        ViubenchCallback(viubench_testset, every_steps=0)


def test_shared_training_videos_warn_once(viubench_testset):
    with pytest.warns(UserWarning, match="also in the test set") as caught:
        callback(viubench_testset, every_steps=1, train_set=viubench_testset)
    assert len([w for w in caught if "also in the test set" in str(w.message)]) == 1


def test_evaluation_restores_the_mode_and_leaves_no_gradients(checkpoint, viubench_testset,
                                                              tmp_path):
    model, processor = load(checkpoint)
    for training in (True, False):
        model.train(training)
        results = evaluate_in_memory(model, processor, viubench_testset,
                                     str(tmp_path / f"run-{training}"), "probe",
                                     GenerationSettings(TOKENS), RunOptions(limit=1), FRAMES)
        assert model.training is training and results["totals"]["answered"] == 1
    assert all(p.grad is None for p in model.parameters())
    # The caller's processor keeps its padding side (the adapter pads a copy on the left).
    assert processor.tokenizer.padding_side == load(checkpoint)[1].tokenizer.padding_side


def test_an_eval_with_errors_is_not_logged_as_a_score(viubench_testset, tmp_path):

    # First sample: an error; second: its right answer (score 100); third: a wrong one.
    failed, right, wrong = samples_of(viubench_testset)[:LIMIT]
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps({failed["id"]: {"error": "out of memory", "kind": "fatal"},
                                   right["id"]: right["answer"], wrong["id"]: "no idea"}))
    spec = parse_spec(f"scripted:{replies}")
    rundir = str(tmp_path / "run")
    run_eval(viubench_testset, spec, create(spec), rundir, GenerationSettings(TOKENS),
             RunOptions(limit=LIMIT))
    metrics = metrics_of(score_run(rundir))
    assert metrics[PREFIX + "coverage"] == pytest.approx((LIMIT - 1) / LIMIT)
    assert metrics[PREFIX + "unanswered"] == 1
    name = {sample["id"]: f"{PREFIX}{sample['task']}/{sample['variant']}"
            for sample in (failed, right, wrong)}
    assert len(set(name.values())) == LIMIT          # three variants, one sample each
    assert name[failed["id"]] not in metrics and PREFIX + "mean" not in metrics
    assert metrics[name[right["id"]]] == 100.0 and metrics[name[wrong["id"]]] == 0.0
