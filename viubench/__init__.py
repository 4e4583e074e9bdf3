"""viubench: verifiable self-supervised video-understanding benchmarks for VideoLLMs.

Builds VIUBench-style test sets (anomaly grounding, object counting, temporal jigsaw, masked
video prediction) from any folder of videos, evaluates VideoLLMs on them and scores the answers.

The public API is re-exported here (`__all__`), loaded on first use so that `import viubench`
stays light: `from viubench import BaseTask, build_testset, run_eval, score_run`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute); by stage
_EXPORTS: dict[str, tuple[str, str]] = {
    # build
    "BuildSpec": ("build", "BuildSpec"), "build_testset": ("build", "build"),
    "verify": ("verify", "verify"), "iter_samples": ("testset", "iter_samples"),
    "load_tasks": ("registry", "load_tasks"), "SampleRecord": ("testset", "SampleRecord"),
    # the task contract
    "BaseTask": ("task", "BaseTask"), "Task": ("task", "Task"), "Variant": ("task", "Variant"),
    "Rendered": ("task", "Rendered"), "Parsed": ("task", "Parsed"),
    "TextPart": ("task", "TextPart"), "VideoPart": ("task", "VideoPart"),
    "ImagePart": ("task", "ImagePart"), "Columns": ("task", "Columns"),
    "TaskSkip": ("task", "TaskSkip"),
    # eval and the adapter contract
    "Request": ("adapters", "Request"), "Response": ("adapters", "Response"),
    "AdapterAbort": ("adapters", "AdapterAbort"), "adapter": ("adapters", "adapter"),
    "failed": ("adapters", "failed"), "option": ("adapters", "option"),
    "shown_clip": ("adapters", "shown_clip"), "frame_indices": ("adapters", "frame_indices"),
    "parse_spec": ("adapters", "parse_spec"), "create_adapter": ("adapters", "create"),
    "GenerationSettings": ("runner", "GenerationSettings"),
    "RunOptions": ("runner", "RunOptions"), "run_eval": ("runner", "run_eval"),
    "RetryPolicy": ("retry", "RetryPolicy"), "read_run": ("runfolder", "read_run"),
    "PredictionRecord": ("runfolder", "PredictionRecord"),
    "ScoreRecord": ("runfolder", "ScoreRecord"),
    "TextItem": ("adapters", "TextItem"), "ImageItem": ("adapters", "ImageItem"),
    "VideoItem": ("adapters", "VideoItem"),
    # score and report
    "score_run": ("score", "score_run"), "iter_scores": ("runfolder", "iter_scores"),
    "build_leaderboard": ("leaderboard", "build_leaderboard"),
    "compare_runs": ("compare", "compare_runs"), "analyze": ("analysis", "analyze"),
    # pandas tables (the `pandas` extra)
    "load_testset": ("tables", "load_testset"), "load_run": ("tables", "load_run"),
    "leaderboard_table": ("tables", "leaderboard_table"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'viubench' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    return getattr(importlib.import_module(f".{module}", __name__), attribute)
