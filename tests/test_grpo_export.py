"""TRL's GRPOTrainer trains on an exported MVP set: `viubench export --format trl` read the way
`trl grpo --dataset_name DIR` reads it, a tiny random Qwen2-VL, and `viubench.rewards.trl_reward`
as the reward; two optimisation steps run and the reward metrics reach the trainer's log."""

from __future__ import annotations

import pytest

from tiny_models import save_qwen2_vl
from viubench.build import BuildSpec, build
from viubench.export import export_set
from viubench.registry import load_tasks, select
from viubench.rewards import trl_reward

pytest.importorskip("trl", reason="the GRPO run needs TRL (the train extra)")
datasets = pytest.importorskip("datasets", reason="the export is read with datasets")


def test_grpo_trains_two_steps_on_an_exported_mvp_set(real_videos, tmp_path):
    from trl import GRPOConfig, GRPOTrainer

    from viubench.model_adapters.transformers_local import load_processor

    testset = str(tmp_path / "mvp")
    selection = tuple(select(load_tasks(), "mvp", ["masked_prediction:mvp-easy"]))
    build(BuildSpec(real_videos, selection, per_video=1, max_pixels=65536), testset, workers=1)
    export_set(testset, "trl", str(tmp_path / "trl"))
    dataset = datasets.load_dataset(str(tmp_path / "trl"))["train"]

    seen: list[tuple[int, int]] = []

    def images_seen(prompts, completions, images=None, **columns):
        """Weight 0: records how many images each prompt carried and the images column."""
        for prompt, pictures in zip(prompts, images):
            filled = sum("image" in part for message in prompt for part in message["content"])
            seen.append((filled, len(pictures)))
        return [0.0] * len(completions)

    checkpoint = save_qwen2_vl(str(tmp_path / "model"))
    args = GRPOConfig(output_dir=str(tmp_path / "run"), max_steps=2, num_generations=2,
                      per_device_train_batch_size=2, max_completion_length=8,
                      logging_steps=1, report_to="none", save_strategy="no", use_cpu=True,
                      reward_weights=[1.0, 0.0], seed=0)
    trainer = GRPOTrainer(model=checkpoint, reward_funcs=[trl_reward, images_seen], args=args,
                          train_dataset=dataset,
                          processing_class=load_processor(checkpoint, False))
    trainer.train()

    assert trainer.state.global_step == 2
    steps = [entry for entry in trainer.state.log_history if "reward" in entry]
    assert [entry["step"] for entry in steps] == [1, 2]
    for entry in steps:
        assert 0.0 <= entry["rewards/trl_reward/mean"] <= 1.0
        assert "rewards/viubench/masked_prediction" in entry      # trl_reward's log_metric
    # every prompt reached the model with its 8 frames and 5 candidates filled in
    assert seen and all(filled == count == 13 for filled, count in seen)
