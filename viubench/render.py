"""Turn a task's draws into a sample record: prompt parts with media paths, answer, provenance."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from .media import clean_key
from .records import digest, sample_id
from .task import Clip, DonorSource, FrameRef, ImagePart, Part, Task, TextPart, VideoPart

FrameSink = Callable[[np.ndarray, str, str], str]   # (frame, video hash, file key) -> media path
PathOf = Callable[[FrameRef], str]


class FramePaths:
    """Media paths of the frames a video's samples show.

    A clean frame (a position in the clip) is stored once per video, whichever sample shows it;
    a synthesized frame is stored under `<sample stem>_<n>`, n counting the distinct synthesized
    frames of that sample in prompt order, so re-rendering the sample gives the same names.
    """

    def __init__(self, clip: Clip, sink: FrameSink) -> None:
        self.clip = clip
        self.sink = sink
        self.clean: dict[int, str] = {}

    def clean_path(self, position: int) -> str:
        if position not in self.clean:
            clip = self.clip
            key = clean_key(clip.indices[position], clip.size, clip.backend)
            self.clean[position] = self.sink(clip.frames[position], clip.video_hash, key)
        return self.clean[position]

    def for_sample(self, stem: str) -> PathOf:
        """Path function for one sample's prompt; `stem` identifies the sample."""
        synthesized: dict[int, str] = {}   # id(array) -> path; the arrays live as long as this

        def path_of(frame: FrameRef) -> str:
            if not isinstance(frame, np.ndarray):
                return self.clean_path(int(frame))
            if id(frame) not in synthesized:
                key = f"{stem}_{len(synthesized):02d}"
                synthesized[id(frame)] = self.sink(frame, self.clip.video_hash, key)
            return synthesized[id(frame)]

        return path_of


def part_record(part: Part, path_of: PathOf) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, VideoPart):
        return {"type": "video", "fps": part.fps, "frames": [path_of(f) for f in part.frames]}
    if isinstance(part, ImagePart):
        return {"type": "image", "image": path_of(part.frame)}
    raise TypeError(f"unknown prompt part {part!r}")


def video_record(clip: Clip) -> dict[str, Any]:
    """The source video as the frames show it: width and height are the displayed ones; a
    video players turn (display matrix) records `rotation`, degrees counter-clockwise, which
    is absent for an upright one (so records of unrotated videos are as before)."""
    info = clip.info
    record = {"path": clip.video_path, "hash": clip.video_hash, "codec": info.codec,
              "width": info.width, "height": info.height, "frame_count": info.frame_count,
              "fps": info.fps, "duration": info.duration}
    if info.rotation:
        record["rotation"] = info.rotation
    return record


def frames_record(clip: Clip) -> dict[str, Any]:
    """Which frames a sample shows and how they were decoded; `decode` appears only for frames
    reached by seeking (`viubench.seeking`), so records of clips decoded from the start read as
    before it existed."""
    record = {"indices": clip.indices, "backend": clip.backend, "size": list(clip.size),
              "sample_fps": clip.sample_fps, "pixel_bounds": list(clip.pixel_bounds)}
    if clip.decode != "all":
        record["decode"] = clip.decode
    return record


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
        "frames": frames_record(clip),
        "seed": seed,
        "replica": replica,
        "draws": dict(draws),
    }
    shown = {key: value for key, value in record["frames"].items() if key != "decode"}
    stem = digest(record["task"], variant, task.version, seed, replica, record["draws"],
                  shown, size=8)      # names the same frames alike however they were decoded
    path_of = paths.for_sample(stem)
    record["prompt"] = [part_record(part, path_of) for part in rendered.prompt]
    record["answer"] = rendered.answer
    record["system"] = rendered.system
    record["prompt_set"] = rendered.prompt_set
    record["id"] = sample_id(record)
    return record
