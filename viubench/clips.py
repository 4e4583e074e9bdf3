"""Read a video once and hand each frame protocol its frames (the `Clip` tasks work on)."""

from __future__ import annotations

import dataclasses
import os
from typing import Iterable

import numpy as np

from .records import file_hash
from .task import Clip
from .video import (DecordFailure, FrameCountMismatch, FrameProtocol, VideoError, VideoInfo,
                    choose_backend, decode_frames, probe)


def read_clips(root: str, rel_path: str, protocols: Iterable[FrameProtocol], decoder: str,
               size: tuple[int, int] | None = None, video_hash: str | None = None,
               strategy: str = "auto") -> dict[FrameProtocol, Clip]:
    """Probe, hash and decode `root/rel_path` in one pass for all `protocols`.

    Frame counts are exact: if decoding finds a different count than the demuxer listed, the
    indices are recomputed from the decoded count and the video is decoded again. Under
    `decoder="auto"`, a video decord fails on in any way is decoded with PyAV, and the Clip
    says so (`backend`); an explicitly requested decoder is never swapped.
    `size` forces the frame size (used for donor footage that must match another video);
    `video_hash`, the file's content hash when the caller has just computed it; `strategy`,
    how PyAV reaches the frames (`video.decode_frames`; the Clip records the one used).
    """
    path = os.path.join(root, rel_path)
    info = probe(path)   # checks first that it is a regular file: a FIFO is never opened
    backend = choose_backend(decoder, info.codec)
    protocols = list(dict.fromkeys(protocols))
    frame_size = size or protocols[0].size(info.width, info.height)
    if any(size is None and p.size(info.width, info.height) != frame_size for p in protocols):
        raise ValueError("all frame protocols of one build must share the frame-size rule")
    try:
        info, frames, wanted, how = _decode_exact(info, protocols, frame_size, backend,
                                                  strategy)
    except DecordFailure as error:
        if decoder != "auto":
            raise VideoError(f"{error} (--decoder auto falls back to PyAV)") from error
        backend = "pyav"
        info, frames, wanted, how = _decode_after_decord(info, protocols, frame_size, error,
                                                         strategy)
    video_hash = video_hash or file_hash(path)
    slot = {index: position for position, index in enumerate(wanted)}
    return {p: Clip(rel_path, video_hash, info, idx, _pick(frames, idx, wanted, slot),
                    p.sample_fps(info), backend, (p.min_area, p.max_area), how)
            for p in protocols for idx in [p.indices(info.frame_count, info.fps)]}


# exact info, frames, their sorted indices, how they were reached ("all" or "seek")
Decoded = tuple[VideoInfo, np.ndarray, list[int], str]


def _decode_after_decord(info: VideoInfo, protocols: list[FrameProtocol],
                         frame_size: tuple[int, int], decord_error: DecordFailure,
                         strategy: str) -> Decoded:
    """PyAV's decode of a video decord failed on; if PyAV fails too, its reason comes first."""
    try:
        return _decode_exact(info, protocols, frame_size, "pyav", strategy)
    except VideoError as error:
        raise VideoError(f"{error} (decord failed too: {decord_error})") from error


def _decode_exact(info: VideoInfo, protocols: list[FrameProtocol], frame_size: tuple[int, int],
                  backend: str, strategy: str) -> Decoded:
    """Decode with `backend`; the info comes back with the exact frame count."""
    try:
        return (info, *_decode_union(info, protocols, frame_size, backend, strategy))
    except FrameCountMismatch as mismatch:
        # The container's header is wrong (e.g. a cut file whose index lists more frames):
        # trust the decoded frames for both the count and the duration.
        duration = mismatch.decoded / info.fps if info.fps > 0 else info.duration
        info = dataclasses.replace(info, frame_count=mismatch.decoded, duration=duration)
        return (info, *_decode_union(info, protocols, frame_size, backend, strategy))


def _pick(frames: np.ndarray, indices: list[int], wanted: list[int],
          slot: dict[int, int]) -> np.ndarray:
    """The rows of `frames` (decoded at `wanted`) for `indices`; no copy when they are all."""
    if list(indices) == wanted:
        return frames
    return frames[[slot[i] for i in indices]]


def _decode_union(info: VideoInfo, protocols: list[FrameProtocol], frame_size: tuple[int, int],
                  backend: str, strategy: str) -> tuple[np.ndarray, list[int], str]:
    """Decode the union of all protocols' indices in one pass; (frames, sorted indices, how)."""
    wanted = sorted({i for p in protocols for i in p.indices(info.frame_count, info.fps)})
    frames, how = decode_frames(info, wanted, frame_size, backend, strategy)
    return frames, wanted, how
