"""Turn a task's draws into a sample record: prompt parts with media paths, answer, provenance."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from .sample import sample_id
from .task import Clip, DonorSource, FrameRef, ImagePart, Part, Task, TextPart, VideoPart

FrameSink = Callable[[np.ndarray, str], str]   # (frame, video hash) -> media path


class FramePaths:
    """Media path of each shown frame; unmodified frames of the clip are stored only once."""

    def __init__(self, clip: Clip, sink: FrameSink) -> None:
        self.clip = clip
        self.sink = sink
        self.clean: dict[int, str] = {}

    def __call__(self, frame: FrameRef) -> str:
        if isinstance(frame, np.ndarray):
            return self.sink(frame, self.clip.video_hash)
        position = int(frame)
        if position not in self.clean:
            self.clean[position] = self.sink(self.clip.frames[position], self.clip.video_hash)
        return self.clean[position]


def part_record(part: Part, paths: FramePaths) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, VideoPart):
        return {"type": "video", "fps": part.fps, "frames": [paths(f) for f in part.frames]}
    if isinstance(part, ImagePart):
        return {"type": "image", "image": paths(part.frame)}
    raise TypeError(f"unknown prompt part {part!r}")


def video_record(clip: Clip) -> dict[str, Any]:
    info = clip.info
    return {"path": clip.video_path, "hash": clip.video_hash, "codec": info.codec,
            "width": info.width, "height": info.height, "frame_count": info.frame_count,
            "fps": info.fps, "duration": info.duration}


def make_record(task: Task, variant: str, clip: Clip, draws: Mapping[str, Any], seed: int,
                replica: int, donors: DonorSource, paths: FramePaths) -> dict[str, Any]:
    """The full sample record; a pure function of its inputs (what `verify` relies on)."""
    rendered = task.render(clip, variant, draws, donors)
    record: dict[str, Any] = {
        "task": task.name,
        "variant": variant,
        "difficulty": task.variants[variant].difficulty,
        "version": task.version,
        "video": video_record(clip),
        "frames": {"indices": clip.indices, "backend": clip.backend,
                   "size": list(clip.size), "sample_fps": clip.sample_fps},
        "seed": seed,
        "replica": replica,
        "draws": dict(draws),
        "prompt": [part_record(part, paths) for part in rendered.prompt],
        "answer": rendered.answer,
    }
    record["id"] = sample_id(record)
    return record
