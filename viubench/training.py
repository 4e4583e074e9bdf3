"""Evaluate the model being trained on a small viubench test set, in memory: `ViubenchCallback`.

For `transformers.Trainer` and the TRL trainers built on it (`GRPOTrainer`, `SFTTrainer`, ...):

    callback = ViubenchCallback("testsets/small", every_steps=100, limit=90, max_frames=16)
    callback.attach(trainer)
    trainer.train()

Every `every_steps` optimizer steps (`on_step_end`) and/or when the trainer saves a checkpoint
(`on_save`), the model in memory answers the first `limit` samples of the test set through the
`hf` adapter (`TransformersLocal.from_loaded`: greedy decoding, nothing written to disk but the
run folder), in eval mode and without gradients, then goes back to the mode it was in. Each
evaluation is an ordinary run folder (`<output_dir>/viubench/step-<N>` by default) made by
`viubench.runner.run_eval` and scored by `viubench.score.score_run`, so `viubench score`,
`compare` and `leaderboard` read it like any other run.

What is logged, through `trainer.log` (hence into `state.log_history` and every `report_to`
integration), in one row per evaluation at its step: see `metrics_of`.

Why `attach(trainer)`: a callback's hooks receive the model and the processor but never the
trainer, and only `trainer.log` reaches the loggers. `attach` adds the callback to the trainer
and keeps the trainer. A callback given to `Trainer(callbacks=[...])` without `attach` stops
the training at its start (`on_train_begin`) with an error saying so, rather than evaluating
without anywhere to log.

How it logs beside a trainer's own metric window: TRL trainers override `log` to average the
metrics gathered since their last log (`GRPOTrainer._metrics`: reward, completion length, ...)
and clear them. The callback calls the base `transformers.Trainer.log` on the trainer, never the
override, so its row neither flushes nor joins that window: GRPO's next row still averages
every step since its previous one. A `log` call also clears the trainer's `should_log` flag; the
callback puts it back, so a trainer row due at the same step is still written.

Distributed training: only the main process (`state.is_world_process_zero`) evaluates and logs;
the other processes go on and wait for it at their next collective operation, so an evaluation
must finish within the process group's timeout (`TrainingArguments.ddp_timeout`). The model
must be whole on the main process: FSDP and DeepSpeed ZeRO-3 (sharded weights) are refused at
`attach`; evaluate their saved checkpoints with `viubench watch` instead.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Mapping

try:
    from transformers import Trainer, TrainerCallback
except ImportError as missing:   # the callback subclasses TrainerCallback: nothing works without
    raise ImportError("viubench.training needs transformers (and torch): pip install"
                      " 'viubench[hf]'") from missing

from .adapters import AdapterSpec
from .leakage import warn_if_shared
from .runner import GenerationSettings, RunAborted, RunOptions, run_eval
from .score import score_run
from .testset import BadTestSet, iter_samples

PREFIX = "viubench"
NOT_ATTACHED = ("ViubenchCallback was added to the trainer without attach(trainer): its"
                " metrics could not reach the trainer's log; use"
                " ViubenchCallback(...).attach(trainer) instead of callbacks=[...]")


def metrics_of(results: Mapping[str, Any]) -> dict[str, float]:
    """The logged figures of a scored run (`score_run`'s results), all on the score's scale:

    * `viubench/coverage`: answered / n over every sample in scope (1.0 for a complete run);
    * `viubench/unanswered`: samples that ended in an error or were never asked;
    * `viubench/<task>/<variant>`: the variant's score (x100, as results give it), only when
      every sample of the variant was answered;
    * `viubench/mean`: the unweighted mean of the variant scores, only when every variant is
      complete.

    A variant with unanswered samples gets no score (an unanswered sample scores 0 and would
    read as the model's mistake); coverage and `unanswered` say what went wrong.
    """
    totals = results["totals"]
    unanswered = totals["errors"] + totals["missing"]
    metrics = {f"{PREFIX}/coverage": totals["answered"] / totals["n"] if totals["n"] else 0.0,
               f"{PREFIX}/unanswered": float(unanswered)}
    complete = {key: row["score"] for key, row in results["variants"].items()
                if row["answered"] == row["n"]}
    for key, score in complete.items():
        task, _, variant = key.partition(":")
        metrics[f"{PREFIX}/{task}/{variant}"] = score
    if complete and len(complete) == len(results["variants"]):
        metrics[f"{PREFIX}/mean"] = sum(complete.values()) / len(complete)
    return metrics


def evaluate_in_memory(model: Any, processor: Any, testset: str, rundir: str, name: str,
                       generation: GenerationSettings, options: RunOptions,
                       max_frames: int | None = None) -> dict[str, Any]:
    """Run and score `model` (in memory) on `testset` into the new run folder `rundir`; returns
    `score_run`'s results. The model answers in eval mode without gradients and is put back in
    the mode it was in; a run stopped by the runner (`RunAborted`) is scored as far as it got,
    with a warning (its unanswered samples show in the coverage)."""
    import torch

    from .model_adapters.transformers_local import TransformersLocal

    adapter = TransformersLocal.from_loaded(model, processor, name=name, max_frames=max_frames,
                                            batch_size=options.batch_size or 4)
    arguments = {"max_frames": str(max_frames)} if max_frames else {}
    spec = AdapterSpec("hf", f"in-memory:{name}", arguments)
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            run_eval(testset, spec, adapter, rundir, generation, options)
    except RunAborted as aborted:
        warnings.warn(f"viubench: the evaluation in {rundir} stopped: {aborted}", stacklevel=2)
    finally:
        model.train(training)
        adapter.close()
    return score_run(rundir, testset)


def fresh_rundir(parent: str, step: int) -> str:
    """`parent/step-<step>`, or `step-<step>-2`, `-3`, ... when that folder already exists (a
    resumed training evaluating a step again): an evaluation never resumes another one's run."""
    base = os.path.join(parent, f"step-{step}")
    candidate, number = base, 1
    while os.path.exists(candidate):
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def log_beside(trainer: Trainer, control: Any, metrics: Mapping[str, float]) -> None:
    """Log through the base `transformers.Trainer.log`, not the trainer's override (which, in
    TRL, averages and clears its own metric window), and keep `should_log` as it was (a log
    call clears it, which would skip a trainer row due at this step)."""
    wanted = control.should_log
    Trainer.log(trainer, dict(metrics))
    control.should_log = wanted
    trainer.control.should_log = wanted


def _check_scope(testset: str, limit: int | None) -> None:
    """BadTestSet (one line) unless the first `limit` samples of `testset` are sound and there
    is at least one."""
    if not any(True for _ in iter_samples(testset, limit)):
        raise BadTestSet(f"{testset}: no samples to evaluate")


def _positive(name: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 1):
        raise ValueError(f"ViubenchCallback: {name} must be a positive integer, not {value!r}")
    return value


def _refuse_sharded(trainer: Any) -> None:
    """ValueError when the weights are sharded over processes (FSDP, DeepSpeed ZeRO-3): one
    process alone cannot generate with them."""
    zero = getattr(getattr(trainer.accelerator.state, "deepspeed_plugin", None), "zero_stage",
                   None)
    if getattr(trainer, "is_fsdp_enabled", False) or zero == 3:
        raise ValueError("ViubenchCallback evaluates the model on the main process alone, which"
                         " FSDP and DeepSpeed ZeRO-3 (sharded weights) do not allow; evaluate"
                         " the saved checkpoints with `viubench watch` instead")


def _first(*candidates: Any) -> Any:
    """The first candidate that is not None (models and processors are never tested for truth:
    some define __len__)."""
    return next((candidate for candidate in candidates if candidate is not None), None)


def _check_processor(processor: Any) -> None:
    if getattr(processor, "tokenizer", None) is None:
        raise ValueError(f"ViubenchCallback needs the model's multimodal processor"
                         f" (AutoProcessor), not {type(processor).__name__}; pass processor=")


class ViubenchCallback(TrainerCallback):
    """Evaluates the model in memory on a viubench test set during training and logs
    `viubench/<task>/<variant>` scores through the trainer (module docstring: when, what,
    how it logs beside GRPO's metric window, distributed training).

    testset: a built test set folder (checked here: a bad one raises `BadTestSet`);
    every_steps: evaluate when the global step is a multiple of it (None: never by step);
    limit: the first `limit` samples only (keep evaluations short); on_save: evaluate when the
    trainer saves a checkpoint (once per step, whatever triggered it); out: parent of the run
    folders (default `<output_dir>/viubench`); max_new_tokens: per answer (default 256);
    max_frames: frames shown per clip (the `hf` adapter's option; None: all of them);
    batch_size: prompts per generate call; train_set: the training set's folder, to warn once
    when it shares source videos with the test set (`viubench.leakage`); processor: the one to
    prompt with (default: the trainer's `processing_class`).

    `runs` maps each evaluated step to its run folder.
    """

    def __init__(self, testset: str, every_steps: int | None = None, limit: int | None = None,
                 on_save: bool = True, out: str | None = None,
                 max_new_tokens: int | None = None, max_frames: int | None = None,
                 batch_size: int = 4, train_set: str | None = None,
                 processor: Any = None) -> None:
        self.every_steps = _positive("every_steps", every_steps)
        self.limit = _positive("limit", limit)
        self.batch_size = _positive("batch_size", batch_size) or 4
        self.max_frames = _positive("max_frames", max_frames)
        if self.every_steps is None and not on_save:
            raise ValueError("ViubenchCallback: give every_steps, or leave on_save=True,"
                             " or it never evaluates")
        _check_scope(testset, self.limit)
        warn_if_shared(train_set, testset)
        self.testset, self.at_save, self.out, self.processor = testset, on_save, out, processor
        tokens = _positive("max_new_tokens", max_new_tokens)
        self.generation = GenerationSettings(tokens) if tokens else GenerationSettings()
        self.trainer: Trainer | None = None
        self.runs: dict[int, str] = {}

    def attach(self, trainer: Trainer) -> "ViubenchCallback":
        """Add this callback to `trainer` and keep the trainer to log through; returns self."""
        if not isinstance(trainer, Trainer):
            raise TypeError(f"ViubenchCallback.attach needs a transformers.Trainer (or a TRL"
                            f" trainer), not {type(trainer).__name__}")
        _refuse_sharded(trainer)
        _check_processor(_first(self.processor, trainer.processing_class))
        trainer.add_callback(self)
        self.trainer = trainer
        return self

    def on_train_begin(self, args: Any, state: Any, control: Any, **hooks: Any) -> None:
        if self.trainer is None:
            raise RuntimeError(NOT_ATTACHED)

    def on_step_end(self, args: Any, state: Any, control: Any, **hooks: Any) -> Any:
        if self.every_steps and state.global_step % self.every_steps == 0:
            self._evaluate(args, state, control, hooks)
        return control

    def on_save(self, args: Any, state: Any, control: Any, **hooks: Any) -> Any:
        if self.at_save:
            self._evaluate(args, state, control, hooks)
        return control

    def _evaluate(self, args: Any, state: Any, control: Any, hooks: Mapping[str, Any]) -> None:
        if self.trainer is None:
            raise RuntimeError(NOT_ATTACHED)
        step = state.global_step
        if step in self.runs or not state.is_world_process_zero:
            return
        model = self.trainer.accelerator.unwrap_model(
            _first(hooks.get("model"), self.trainer.model))
        processor = _first(self.processor, hooks.get("processing_class"),
                           self.trainer.processing_class)
        rundir = fresh_rundir(self.out or os.path.join(args.output_dir, PREFIX), step)
        self.runs[step] = rundir
        options = RunOptions(batch_size=self.batch_size, limit=self.limit)
        results = evaluate_in_memory(model, processor, self.testset, rundir, f"step-{step}",
                                     self.generation, options, self.max_frames)
        metrics = metrics_of(results)
        if metrics[f"{PREFIX}/unanswered"]:
            warnings.warn(f"viubench: step {step}: {int(metrics[f'{PREFIX}/unanswered'])}"
                          f" samples unanswered in {rundir}; their variants are not scored",
                          stacklevel=2)
        log_beside(self.trainer, control, metrics)
