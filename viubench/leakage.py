"""Train/test leakage: source videos a training set shares with a test set, by content hash.

A video's content id is the blake2b-128 of its bytes (`records.file_hash`), recorded for every
processed video in a test set's videos.jsonl and in every sample's `video.hash`. Two folders
built from copies or renamed files of the same video therefore share a hash, whatever their paths.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

from .records import read_jsonl
from .testset import MAX_SAMPLE_BYTES, SAMPLES, VIDEOS


@dataclass(frozen=True)
class SharedVideo:
    """One source video present in both folders."""

    hash: str
    train_path: str     # as recorded by the training build
    test_path: str      # as recorded by the test-set build


def video_hashes(folder: str) -> dict[str, str]:
    """content hash -> recorded path of every video a built folder took samples from.

    Reads videos.jsonl (videos that built), and samples.jsonl for any video it lacks (a folder
    exported or trimmed by hand may carry samples only). Raises FileNotFoundError when the
    folder holds neither.
    """
    found: dict[str, str] = {}
    videos, samples = os.path.join(folder, VIDEOS), os.path.join(folder, SAMPLES)
    if not os.path.exists(videos) and not os.path.exists(samples):
        raise FileNotFoundError(f"{folder} is not a viubench test set (no {VIDEOS} or {SAMPLES})")
    if os.path.exists(videos):
        for record in read_jsonl(videos, max_line=MAX_SAMPLE_BYTES):
            if record.get("status") == "ok" and isinstance(record.get("hash"), str):
                found.setdefault(record["hash"], str(record.get("path", "")))
    if os.path.exists(samples):
        for record in read_jsonl(samples, max_line=MAX_SAMPLE_BYTES):
            video = record.get("video")
            if isinstance(video, dict) and isinstance(video.get("hash"), str):
                found.setdefault(video["hash"], str(video.get("path", "")))
    return found


def shared_videos(train: str, test: str) -> list[SharedVideo]:
    """The videos both folders were built from, sorted by the training set's path."""
    train_hashes, test_hashes = video_hashes(train), video_hashes(test)
    shared = [SharedVideo(h, path, test_hashes[h]) for h, path in train_hashes.items()
              if h in test_hashes]
    return sorted(shared, key=lambda item: (item.train_path, item.hash))


def describe(shared: list[SharedVideo], train: str, test: str, shown: int = 3) -> str:
    """One line: how many videos leak and the first few of them."""
    examples = ", ".join(f"{item.train_path} (= {item.test_path})" for item in shared[:shown])
    more = f" and {len(shared) - shown} more" if len(shared) > shown else ""
    return (f"{len(shared)} source videos of the training set {train} are also in the test set"
            f" {test}: {examples}{more}")


def warn_if_shared(train: str | None, test: str) -> list[SharedVideo]:
    """Warn (one line) when a training set and a test set share source videos; returns them."""
    if not train:
        return []
    shared = shared_videos(train, test)
    if shared:
        warnings.warn(describe(shared, train, test), stacklevel=2)
    return shared
