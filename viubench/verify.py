"""`viubench verify`: re-derive every sample of a test set from its draws and source video."""

from __future__ import annotations

import functools
import itertools
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

from .build import BuildSpec, Donors
from .clips import read_clips
from .media import MediaStore, jpeg_encoder, stored_frame_problem
from .registry import load_tasks, task_of
from .render import FramePaths, make_record
from .task import TaskSkip
from .testset import BadTestSet, SampleRecord, SetMedia, iter_samples, load_build
from .seeking import STRATEGIES
from .video import VideoError


@dataclass
class Verification:
    checked: int = 0
    videos: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(testset: str, videos: str | None = None,
           on_sample: Callable[[], None] | None = None,
           task_modules: Sequence[str] = ()) -> Verification:
    """Re-derive every sample from its recorded draws and the source video; list mismatches.

    The frames are decoded again with the backend the sample records, each sample is rendered
    from its draws, and the whole record (answer, prompt, media paths, id) must be identical;
    every media file must hold exactly the re-derived frame. Tasks come from the built-ins,
    installed plug-ins and `task_modules`, never from modules the test set names.
    """
    build = load_build(testset)
    spec = _recorded_spec(testset, build["spec"], videos)
    tasks = load_tasks(task_modules)
    result = Verification()
    seen_ids: set[str] = set()
    paths: set[str] = set()
    with SetMedia(testset) as media:
        samples = iter_samples(testset, media=media)
        for path, group in itertools.groupby(samples, key=lambda r: r["video"]["path"]):
            # a recipe build deals a video again in a later round: count each video once
            paths.add(path)
            result.videos = len(paths)
            records = list(group)
            result.problems += _verify_video(spec, tasks, media, path, records, seen_ids)
            result.checked += len(records)
            if on_sample:
                for _ in records:
                    on_sample()
    result.problems += _encoder_note(build, result.problems)
    return result


def _encoder_note(build: dict, problems: list[str]) -> list[str]:
    """A closing line when frames' bytes differ and this machine's JPEG encoder is not the
    one build.json records (the frames may be right, encoded by another library version)."""
    recorded, here = build.get("encoder"), jpeg_encoder()
    if not any("does not hold the re-derived frame" in p for p in problems):
        return []
    if recorded is None or recorded == here:
        return []
    return [f"note: the set's frames were encoded by {_describe(recorded)}, this machine"
            f" encodes with {_describe(here)}: JPEG bytes differ between encoder versions;"
            " verify with the recorded versions installed"]


def _describe(encoder: object) -> str:
    if not isinstance(encoder, dict):
        return repr(encoder)[:80]
    return (f"Pillow {str(encoder.get('pillow'))[:20]} with libjpeg-turbo"
            f" {str(encoder.get('libjpeg_turbo'))[:20]} at quality"
            f" {str(encoder.get('quality'))[:5]}")


def _recorded_spec(testset: str, recorded: dict, videos: str | None) -> BuildSpec:
    """The build spec build.json records, with the videos where they are now."""
    try:
        where = os.path.abspath(videos or recorded["videos"])
        return BuildSpec.from_json(dict(recorded, videos=where))
    except (KeyError, TypeError, ValueError) as error:
        raise BadTestSet(f"{testset}/build.json: not a viubench build spec"
                         f" ({type(error).__name__}: {error})") from None


def _verify_video(spec: BuildSpec, tasks, media: SetMedia, path: str,
                  records: list[SampleRecord], seen_ids: set[str]) -> list[str]:
    problems: list[str] = []
    # decoded again as recorded: with the same backend, from the start or by seeking
    ways = {(r["frames"]["backend"], str(r["frames"].get("decode", "all"))) for r in records}
    protocols = [spec.protocol(task_of(tasks, r["task"], path)) for r in records]
    try:
        clips = {(backend, how): read_clips(spec.videos, path, protocols, backend,
                                            strategy=_strategy(how))
                 for backend, how in ways}
    except (VideoError, OSError) as error:
        return [f"{path}: cannot re-read the source video: {error}"]
    for record in records:
        label = f"sample {record['id']} ({record['task']}:{record['variant']}, {path})"
        if record["id"] in seen_ids:
            problems.append(f"{label}: duplicate id")
        seen_ids.add(record["id"])
        task = tasks[record["task"]]
        if record.get("version") != task.version:
            problems.append(f"{label}: built by {record['task']} version"
                            f" {record.get('version')}, this viubench has version {task.version}:"
                            " rebuild the test set to verify it")
            continue
        way = (record["frames"]["backend"], str(record["frames"].get("decode", "all")))
        clip = clips[way][spec.protocol(task)]
        if clip.video_hash != record["video"]["hash"]:
            problems.append(f"{label}: the source video's content changed")
            continue
        media_problems: list[str] = []
        paths = FramePaths(clip, functools.partial(_checked, media, problems=media_problems))
        donors = Donors(spec, spec.protocol(task), [])
        try:
            again = make_record(task, record["variant"], clip, record["draws"], record["seed"],
                                record["replica"], donors.source, paths)
        except (TaskSkip, VideoError) as error:
            problems.append(f"{label}: cannot re-derive: {error}")
            continue
        problems += [f"{label}: {p}" for p in dict.fromkeys(media_problems)]
        problems += [f"{label}: recorded {key} differs from the re-derived one"
                     for key in sorted(set(record) | set(again))
                     if record.get(key) != again.get(key)]
    return problems


def _strategy(recorded: str) -> str:
    """The decode strategy to re-read with: the recorded one, if it is one (an unknown name
    re-reads from the start, and the record then differs, which is reported)."""
    return recorded if recorded in STRATEGIES else "all"


def _checked(media: SetMedia, frame, group: str, key: str, problems: list[str]) -> str:
    """The re-derived frame's media path; a problem if the stored file is not that frame."""
    rel = MediaStore.relpath(key, group)
    try:
        problem = stored_frame_problem(media.read(rel), frame, rel)
    except (BadTestSet, OSError) as error:
        problem = f"media file {rel} cannot be read: {error}"
    if problem:
        problems.append(problem)
    return rel
