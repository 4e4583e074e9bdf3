"""The test-set folder: the one owner of its layout and of reading it.

  samples.jsonl  one record per sample, in video order then selection order
  videos.jsonl   one record per processed video (ok or skipped, counts, reasons, timings)
  media/         JPEG frames, one folder per source video, each frame written once
  build.json     tool version, build spec, counts, per-variant summary (videos that yielded
                 samples, top skip reasons), skipped videos, timings, status

`viubench.build` writes it, `viubench.verify` re-derives it from the source videos; everything
else reads it through the functions here.
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any, Iterator, TypedDict

from .records import read_jsonl

SAMPLES, VIDEOS, BUILD = "samples.jsonl", "videos.jsonl", "build.json"


class SampleRecord(TypedDict):
    """One line of samples.jsonl (written by `viubench.render.make_record`)."""

    id: str                     # hash of everything below but the prompt text's media paths
    task: str
    variant: str
    difficulty: str
    version: str                # the task's version that built it
    video: dict[str, Any]       # path (relative), hash, duration, fps, frame_count, size, codec
    frames: dict[str, Any]      # indices, backend, size, sample_fps, pixel_bounds (the timeline)
    seed: int
    replica: int
    draws: dict[str, Any]       # the task's random choices: with the video, they fix the sample
    prompt: list[dict[str, Any]]   # parts: text, image (one JPEG), video (JPEGs + fps)
    answer: str
    system: str | None
    prompt_set: str


def load_build(testset: str) -> dict[str, Any]:
    path = os.path.join(testset, BUILD)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{testset} is not a viubench test set (no {BUILD})")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def iter_samples(testset: str, limit: int | None = None) -> Iterator[SampleRecord]:
    """Sample records in file order; with `limit`, the first `limit` (a run's scope)."""
    records: Iterator[Any] = read_jsonl(os.path.join(testset, SAMPLES))
    return itertools.islice(records, limit)
