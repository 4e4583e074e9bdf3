"""Training on a CUDA device with the processors' native video path: what CPU-only CI cannot show.

Runs only where torch sees a GPU and torchvision is installed (transformers 5 builds video
processors only with it); elsewhere each test skips and says why. A tiny random Qwen2-VL trains
on the GPU; the callback evaluates it in memory, the clips reaching the model as videos (not as
frame images), and GRPO trains on an exported MVP set loaded with the checkpoint's own
`AutoProcessor`, as `trl grpo` loads it.
"""

from __future__ import annotations

import importlib.util

import pytest

from test_training_callback import callback, text_rows, viubench_rows
from tiny_models import save_qwen2_vl
from viubench.runfolder import read_run

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(importlib.util.find_spec("torchvision") is None,
                       reason="the native video path needs torchvision"),
]


def _auto_processor(path: str):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    assert getattr(processor, "video_processor", None) is not None
    return processor


def test_callback_evaluates_on_the_gpu_through_the_video_path(viubench_testset, tmp_path):
    from transformers import AutoModelForImageTextToText, Trainer, TrainingArguments

    path = save_qwen2_vl(str(tmp_path / "qwen2_vl"))
    # use_kernels=False: transformers would fetch kernels from the Hub (offline here)
    model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True,
                                                        dtype=torch.bfloat16, use_kernels=False)
    processor = _auto_processor(path)
    args = TrainingArguments(output_dir=str(tmp_path / "train"), max_steps=2, bf16=True,
                             per_device_train_batch_size=2, learning_rate=1e-3,
                             logging_steps=1, save_strategy="no", report_to=[],
                             disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=text_rows(processor),
                      processing_class=processor)
    watcher = callback(viubench_testset, every_steps=1).attach(trainer)
    trainer.train()

    assert str(trainer.model.device).startswith("cuda")
    rows = viubench_rows(trainer.state.log_history)
    assert [row["step"] for row in rows] == [1, 2]
    assert sorted(watcher.runs) == [1, 2]
    for rundir in watcher.runs.values():
        header, records = read_run(rundir)
        records = [r for r in records if r["record"] == "prediction"]
        assert header["adapter"]["fingerprint"]["video_input"] == "video"
        assert header["adapter"]["fingerprint"]["device"].startswith("cuda")
        assert records and all(r["error"] is None for r in records)
        assert {r["info"]["video_input"] for r in records if r["info"].get("frames")} == {"video"}


def test_grpo_trains_on_the_gpu_with_the_checkpoints_own_processor(real_videos, tmp_path):
    datasets = pytest.importorskip("datasets", reason="the export is read with datasets")
    pytest.importorskip("trl", reason="GRPO needs TRL (the train extra)")
    from trl import GRPOConfig, GRPOTrainer

    from viubench.build import BuildSpec, build
    from viubench.export import export_set
    from viubench.registry import load_tasks, select
    from viubench.rewards import trl_reward

    testset = str(tmp_path / "mvp")
    selection = tuple(select(load_tasks(), "mvp", ["masked_prediction:mvp-easy"]))
    build(BuildSpec(real_videos, selection, per_video=1, max_pixels=65536), testset, workers=1)
    export_set(testset, "trl", str(tmp_path / "trl"))
    dataset = datasets.load_dataset(str(tmp_path / "trl"))["train"]
    checkpoint = save_qwen2_vl(str(tmp_path / "model"))
    args = GRPOConfig(output_dir=str(tmp_path / "run"), max_steps=2, num_generations=2,
                      per_device_train_batch_size=2, max_completion_length=8, bf16=True,
                      logging_steps=1, report_to="none", save_strategy="no", seed=0,
                      model_init_kwargs={"use_kernels": False})
    trainer = GRPOTrainer(model=checkpoint, reward_funcs=[trl_reward], args=args,
                          train_dataset=dataset, processing_class=_auto_processor(checkpoint))
    trainer.train()

    assert trainer.state.global_step == 2
    assert str(trainer.model.device).startswith("cuda")
    steps = [entry for entry in trainer.state.log_history if "reward" in entry]
    assert [entry["step"] for entry in steps] == [1, 2]
    assert all("rewards/viubench/masked_prediction" in entry for entry in steps)
