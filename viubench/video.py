"""Open a video, count its frames exactly, pick frame indices, decode and resize.

PyAV is the reference backend (it reads every container and codec FFmpeg knows). decord is an
optional faster backend used only for the codecs it decodes correctly; the backend actually used
is returned with every decode and recorded by the caller, never swapped silently.

Frames are given as players show them: the display matrix FFmpeg attaches to decoded frames
(a phone's "rotate 90") is applied, and the sizes are the displayed ones.
"""

from __future__ import annotations

import errno
import gc
import math
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .records import file_kind
from .seeking import STRATEGIES, FrameIndex, SeekMiss, decode_seeking, seek_plan

BACKENDS = ("pyav", "decord", "auto")
DECORD_CODECS = frozenset({"h264", "hevc", "vp9"})


class VideoError(Exception):
    """A video that cannot be used; the message is the human-readable reason."""


class FrameCountMismatch(VideoError):
    """Decoding found a different number of frames than the demuxer counted packets."""

    def __init__(self, decoded: int, listed: int) -> None:
        super().__init__(f"decoding gave {decoded} frames where the container lists {listed}")
        self.decoded = decoded


class DecordFailure(VideoError):
    """decord failed on a video (it raised, miscounted the frames or gave the wrong shape)."""


@dataclass(frozen=True)
class VideoInfo:
    """What a cheap demux pass tells about a video file."""

    path: str
    codec: str
    width: int
    height: int
    frame_count: int
    fps: float
    duration: float
    rotation: int = 0   # degrees counter-clockwise players turn the picture: 0, 90, 180, 270;
                        # width and height above are the displayed (turned) ones
    frames: FrameIndex | None = field(default=None, compare=False, repr=False)
                        # where each frame lies (for seeking); None: decode from the start


@dataclass(frozen=True)
class FrameProtocol:
    """Which frames of a video a task sees (SPEC §1), in one of two modes.

    Uniform (the default, `rate == 0`): `num_frames` frames spread evenly over the central
    `window` of the video. Rate (`rate > 0`, used by MVP): one frame every 1/`rate` seconds of
    the window; a window too short to give `dense_frames` (at least `min_frames`) that way is
    sampled faster (evenly, so exactly that many, or every frame of a window holding fewer; one
    holding fewer than `min_frames` is too short), and a window longer than `num_frames` samples
    keeps its central `num_frames` samples. The sampled timeline's rate is `sample_fps`; every
    index is recorded.
    """

    num_frames: int = 48
    window: tuple[float, float] = (0.05, 0.95)
    max_area: int = 512 * 512  # the paper's VIUBench evaluation bound (App. A.3)
    min_area: int = 128 * 128
    rate: float = 0.0        # rate mode: frames per second of video (0: uniform mode)
    min_frames: int = 0      # rate mode: the fewest frames sampled (short videos go faster)
    dense_frames: int = 0    # rate mode: frames wanted from a short window (every frame if fewer)

    def indices(self, frame_count: int, fps: float = 0.0) -> list[int]:
        """Frame indices for a video of `frame_count` frames (rate mode also needs its `fps`);
        VideoError if it is too short."""
        first = math.floor(self.window[0] * frame_count)
        last = math.floor(self.window[1] * frame_count)
        if self.rate > 0:
            step = self._rate_step(last - first, fps)
            count = min(self.num_frames, math.floor((last - first) / step))
            start = first + math.floor((last - first - count * step) / 2)
            return [start + math.floor(i * step) for i in range(count)]
        step = (last - first) // self.num_frames
        if step < 1:
            raise VideoError(
                f"too short: the central {self.window_percent}% holds {max(last - first, 0)}"
                f" frames, fewer than the {self.num_frames} needed"
            )
        return [first + i * step for i in range(self.num_frames)]

    def _rate_step(self, span: int, fps: float) -> float:
        """Source frames between two samples in rate mode (a float; indices are floored)."""
        if fps <= 0:
            raise VideoError("unknown frame rate: cannot sample at a fixed rate")
        step = fps / self.rate
        needed = max(self.min_frames, 1)
        wanted = max(needed, self.dense_frames)
        if span / step < wanted:
            step = max(span / wanted, 1.0)
        if span < needed:
            raise VideoError(
                f"too short: the central {self.window_percent}% holds {max(span, 0)}"
                f" frames, fewer than the {needed} needed"
            )
        return step

    @property
    def window_percent(self) -> int:
        return round((self.window[1] - self.window[0]) * 100)

    def sample_fps(self, info: VideoInfo) -> float:
        """Frames per second of the sampled timeline: num_frames over the whole duration
        (uniform mode), or the video's fps over the step between samples (rate mode)."""
        if self.rate > 0:
            span = math.floor(self.window[1] * info.frame_count) - math.floor(
                self.window[0] * info.frame_count)
            return info.fps / self._rate_step(span, info.fps)
        return self.num_frames / info.duration

    def size(self, width: int, height: int) -> tuple[int, int]:
        """Frame size with min_area <= w*h <= max_area, aspect kept, even dimensions."""
        return fit_area(width, height, self.min_area, self.max_area)


def fit_area(width: int, height: int, min_area: int, max_area: int) -> tuple[int, int]:
    """Even (width, height) with area in [min_area, max_area] and the aspect ratio kept as well
    as even sides allow. Even sides keep the frames usable by chroma-subsampled video encoders
    and by model processors that work on 2x2 patches."""
    area = width * height
    scale = 1.0
    if area > max_area:
        scale = math.sqrt(max_area / area)
    elif area < min_area:
        scale = math.sqrt(min_area / area)
    target_w, target_h = width * scale, height * scale
    candidates = [(w, h) for w in _evens_around(target_w) for h in _evens_around(target_h)]
    inside = [c for c in candidates if min_area <= c[0] * c[1] <= max_area]
    aspect = width / height
    return min(inside or candidates,
               key=lambda c: (abs(c[0] / c[1] / aspect - 1), abs(c[0] * c[1] - area * scale**2)))


def _evens_around(value: float) -> list[int]:
    return sorted({max(2, 2 * math.floor(value / 2)), max(2, 2 * math.ceil(value / 2))})


def check_regular_file(path: str) -> None:
    """VideoError with the precise reason if `path` is not a readable regular file (directly or
    through symlinks). Only a regular file is ever opened: a FIFO would block the reader, a
    device such as /dev/zero never ends."""
    try:
        link = stat.S_ISLNK(os.lstat(path).st_mode)
        info = os.stat(path)
    except OSError as error:
        raise VideoError(_lookup_problem(path, error)) from error
    via = f" (symlink to {os.readlink(path)})" if link else ""
    if stat.S_ISDIR(info.st_mode):
        raise VideoError(_folder_problem(path, link))
    if not stat.S_ISREG(info.st_mode):
        raise VideoError(f"not a regular file: {file_kind(info.st_mode)}{via}")
    try:
        os.close(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)))
    except PermissionError as error:
        raise VideoError(f"permission denied: cannot read the file{via}") from error


def _lookup_problem(path: str, error: OSError) -> str:
    """Why os.stat failed on `path`: a missing file, a dangling or looping symlink, a folder
    on the way that may not be searched."""
    if error.errno == errno.ELOOP:
        return "symlink loop (following the links never reaches a file)"
    if isinstance(error, PermissionError):
        return "permission denied: cannot reach the file"
    if os.path.islink(path):
        if error.errno == errno.ENOENT:
            return f"broken symlink: its target {os.readlink(path)} does not exist"
        return f"cannot follow the symlink: {error.strerror}"
    if error.errno == errno.ENOENT:
        return "file not found"
    return f"cannot look at the file: {error.strerror}"


def _folder_problem(path: str, link: bool) -> str:
    try:
        os.scandir(path).close()
    except PermissionError:
        return "permission denied: cannot list this folder (none of its videos are read)"
    except OSError as error:
        return f"cannot list this folder: {error.strerror} (none of its videos are read)"
    if link:
        return f"symlink to a folder ({os.readlink(path)}): symlinked folders are not followed"
    return "a folder, not a video file"


def probe(path: str) -> VideoInfo:
    """Open `path`, find its video stream and count its frames by demuxing; decode the first
    frame only for its display rotation (in the same pass)."""
    import av

    check_regular_file(path)
    if os.path.getsize(path) == 0:
        raise VideoError("empty file (0 bytes)")
    try:
        info = _probe_container(av.open(path), path)
    except av.FFmpegError as error:
        raise VideoError(f"PyAV cannot read it: {error}") from error
    finally:
        # Reading the first frame's side data tied it in a reference cycle; it and everything
        # it held are young, so collecting the young generations frees its pictures cheaply.
        gc.collect(1)
    if info.frame_count == 0 or info.width == 0:
        raise VideoError("the video stream holds no frames")
    return info


def _probe_container(container, path: str) -> VideoInfo:
    with container:
        if not container.streams.video:
            kinds = ", ".join(sorted({str(s.type) for s in container.streams})) or "none"
            raise VideoError(f"no video stream (streams found: {kinds})")
        stream = container.streams.video[0]
        first = _FirstFrameRotation(stream.codec_context)
        count, span, index = _demux_count(container, stream, first)
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        duration = _duration(stream, container, count, fps)
        if span and fps > 0 and span < duration - 2 / fps:
            duration = span   # the header promises frames the file no longer holds
        fps = _frame_rate(count, fps, duration)
        # The codec's canonical name ("av1"), not the decoder's ("libdav1d").
        codec = stream.codec_context.codec.canonical_name
        width, height = stream.width, stream.height
        rotation = first.finish() if count else 0
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(path, codec, width, height, count, fps, duration, rotation, index)


class _FirstFrameRotation:
    """The display rotation of the stream's first decodable frame, found by decoding the demux
    pass's packets until one frame comes out (0 if none decodes: the decode proper then reports
    why)."""

    def __init__(self, codec_context) -> None:
        self.codec_context = codec_context
        self.rotation: int | None = None
        self.failed = False

    def feed(self, packet) -> None:
        """Decode `packet` (None: drain the decoder) unless the rotation is known."""
        import av

        if self.rotation is not None or self.failed:
            return
        try:
            frames = self.codec_context.decode(packet)
        except av.FFmpegError:
            self.failed = True
            return
        if frames:
            self.rotation = frame_rotation(frames[0])

    def finish(self) -> int:
        self.feed(None)
        return self.rotation or 0


def frame_rotation(frame) -> int:
    """Degrees (0, 90, 180, 270) a decoded PyAV frame's display matrix turns the picture
    counter-clockwise, as FFmpeg's players apply it; VideoError for a matrix that mirrors the
    picture or turns it by other than quarter turns."""
    from av.sidedata.sidedata import Type

    found = [data for data in frame.side_data if data.type == Type.DISPLAYMATRIX]
    if not found:
        return 0
    matrix = np.frombuffer(bytes(found[0]), dtype=np.int32)
    if matrix.size < 9:
        raise VideoError(f"malformed display matrix ({matrix.size} of 9 values)")
    a, b, c, d = (int(v) for v in matrix[[0, 1, 3, 4]])
    if a * d - b * c < 0:
        raise VideoError("the display matrix mirrors the picture (unsupported)")
    if a == b == 0:
        raise VideoError("malformed display matrix (it scales the picture to nothing)")
    degrees = -math.degrees(math.atan2(b, a))   # FFmpeg's av_display_rotation_get
    quarter = round(degrees / 90) * 90
    if abs(degrees - quarter) > 1:
        raise VideoError(f"the display matrix turns the picture by {degrees:.0f} degrees;"
                         " only quarter turns are supported")
    return quarter % 360


def _demux_count(container, stream, first_frame: _FirstFrameRotation
                 ) -> tuple[int, float, FrameIndex | None]:
    """(packets holding data, seconds from the first packet's start to the last one's end, 0
    where the packets carry no timestamps, the frames' `FrameIndex`); the packets are fed to
    `first_frame` until it has the first frame's rotation."""
    count, first, end = 0, None, None
    packets: list[tuple[int | None, bool]] = []
    for packet in container.demux(stream):
        if not packet.size:
            continue
        count += 1
        packets.append((packet.pts, bool(packet.is_keyframe)))
        first_frame.feed(packet)
        if packet.pts is not None:
            first = packet.pts if first is None else min(first, packet.pts)
            finish = packet.pts + (packet.duration or 0)
            end = finish if end is None else max(end, finish)
    index = FrameIndex.from_packets(packets)
    if first is None or end is None or not stream.time_base:
        return count, 0.0, index
    return count, float((end - first) * stream.time_base), index


def _frame_rate(count: int, listed: float, duration: float) -> float:
    """The listed rate, or the frames' mean rate where the frames that hold data span far
    less time at the listed rate than the video lasts (e.g. an AVI that stores a repeated frame
    as an empty packet: 68 of tree.avi's 444 packets hold a frame)."""
    if count and duration > 0 and listed > 0 and count / listed < 0.8 * duration:
        return count / duration
    return listed


def _duration(stream, container, count: int, fps: float) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    if fps > 0:
        return count / fps
    raise VideoError("cannot tell the video's duration (no duration and no frame rate)")


def choose_backend(requested: str, codec: str) -> str:
    """The backend that will decode `codec`; decord only where it is known to be correct."""
    if requested not in BACKENDS:
        raise ValueError(f"unknown decoder {requested!r}; choose one of {', '.join(BACKENDS)}")
    if requested == "auto":
        return "decord" if codec in DECORD_CODECS and _has_decord() else "pyav"
    if requested == "decord" and codec not in DECORD_CODECS:
        raise VideoError(f"decord does not decode {codec} correctly; use --decoder pyav or auto")
    return requested


def _has_decord() -> bool:
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True


def decode(info: VideoInfo, indices: Sequence[int], size: tuple[int, int],
           backend: str) -> np.ndarray:
    """Decode the frames at `indices` (sorted, unique) as displayed (`info.rotation` applied),
    resized to `size` (displayed width, height); uint8 [n, h, w, 3]."""
    return decode_frames(info, indices, size, backend)[0]


def decode_frames(info: VideoInfo, indices: Sequence[int], size: tuple[int, int],
                  backend: str, strategy: str = "auto") -> tuple[np.ndarray, str]:
    """`decode`, and how PyAV reached the frames (`seeking.STRATEGIES`): "all" decodes every
    frame from the start, "seek" jumps to the keyframe before each far target; "auto" picks
    by `seeking.seek_plan`'s cost rule, "seek" seeks wherever a keyframe allows. The frames
    are the same either way (a seek that misses its frame falls back to "all", and says so);
    decord seeks on its own and reports "all"."""
    if backend == "decord":
        return _decode_decord(info, indices, size), "all"
    if strategy not in STRATEGIES + ("auto",):
        raise ValueError(f"unknown decode strategy {strategy!r}")
    plan = None if strategy == "all" else seek_plan(info.frames, indices, info.frame_count,
                                                     always=strategy == "seek")
    if plan is not None and info.frames is not None:
        try:
            return _decode_pyav(info, indices, size, (info.frames, plan)), "seek"
        except SeekMiss:
            pass
    return _decode_pyav(info, indices, size), "all"


def _decode_pyav(info: VideoInfo, indices: Sequence[int], size: tuple[int, int],
                 seeking: tuple[FrameIndex, list[int]] | None = None) -> np.ndarray:
    """Each frame is resized at its stored orientation, then turned as its display matrix
    says; a frame whose matrix differs from the first frame's is an error (the sizes were
    chosen for that one). Without `seeking` every frame is decoded (and counted); with it,
    only from the planned keyframes to the targets."""
    import av

    out = np.empty((len(indices), size[1], size[0], 3), dtype=np.uint8)
    stored = (size[1], size[0]) if info.rotation in (90, 270) else size
    found = 0

    def take(slot: int, frame) -> None:
        nonlocal found
        turned = frame.rotation % 360     # (not `frame_rotation`: see probe)
        if turned != info.rotation:
            raise VideoError(f"the display rotation changes at frame {indices[slot]}"
                             f" ({turned} degrees where the first frame has {info.rotation})")
        picture = frame.to_ndarray(width=stored[0], height=stored[1], format="rgb24",
                                   interpolation="AREA")
        out[slot] = np.rot90(picture, info.rotation // 90)
        found += 1

    try:
        with av.open(info.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            threads = decoder_threads(stream.width, stream.height)
            if threads:
                stream.thread_count = threads
            if seeking:
                decode_seeking(container, stream, seeking[0], indices, seeking[1], take)
            else:
                exact = info.frames is not None and info.frames.places(info.frame_count)
                _decode_every(container, stream, indices, info.frame_count, take,
                              stop_after_last=exact)
    except av.FFmpegError as error:
        raise VideoError(f"decoding failed: {error}") from error
    if found != len(indices):
        raise VideoError(f"only {found} of {len(indices)} requested frames could be decoded")
    return out


DECODE_MEMORY = 128 << 20   # decoder pictures one worker may hold (bounds RSS for 8K input)


def decoder_threads(width: int, height: int) -> int | None:
    """Decoder threads for pictures of this size: FFmpeg's own choice (None) unless each
    frame thread's pictures (about two YUV 4:2:0 frames) would pass DECODE_MEMORY together,
    then as many as fit, at least one. The frames decoded are the same for any count."""
    per_thread = 2 * width * height * 3 // 2
    fitting = DECODE_MEMORY // max(per_thread, 1)
    return max(1, fitting) if fitting < (os.cpu_count() or 1) + 1 else None


def _decode_every(container, stream, indices: Sequence[int], frame_count: int, take,
                  stop_after_last: bool = False) -> None:
    """Decode from the start, handing `take` the wanted frames; FrameCountMismatch when the
    frames are not as many as the demuxer counted. With `stop_after_last` (the demuxer's
    timestamps placed every frame) decoding ends at the last wanted frame, and the count is
    checked only as far as that: a stream that ends before it is a mismatch."""
    import av

    wanted = {index: slot for slot, index in enumerate(indices)}
    last = max(wanted, default=-1)
    decoded = 0
    try:
        for decoded, frame in enumerate(container.decode(stream), start=1):
            slot = wanted.get(decoded - 1)
            if slot is not None:
                take(slot, frame)
            if stop_after_last and decoded - 1 == last:
                return
    except av.FFmpegError as error:
        raise VideoError(f"decoding failed after frame {decoded}: {error}") from error
    if decoded != frame_count:
        raise FrameCountMismatch(decoded, frame_count)


_DECORD_LOG_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: ")   # "[15:09:54] video_reader.cc:270: "


def _decord_reason(error: Exception, path: str) -> str:
    """The first line of a decord error without its log time, source line and file name (the
    caller names the file), so the same failure always reads the same."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return _DECORD_LOG_PREFIX.sub("", lines[0]).replace(f"[{path}] ", "")


def _decode_decord(info: VideoInfo, indices: Sequence[int], size: tuple[int, int]) -> np.ndarray:
    """decord turns rotated videos itself (from the same display matrix) and takes the
    displayed size; its output shape is checked, and anything it raises is a DecordFailure."""
    try:
        import decord

        reader = decord.VideoReader(info.path, ctx=decord.cpu(0), width=size[0], height=size[1],
                                    num_threads=0)
        if len(reader) != info.frame_count:
            raise DecordFailure(f"decord counts {len(reader)} frames where the container"
                                f" holds {info.frame_count}")
        frames = reader.get_batch(list(indices)).asnumpy()
    except DecordFailure:
        raise
    except Exception as error:   # decord raises DECORDError, RuntimeError, IndexError, ...
        raise DecordFailure(f"decord failed: {_decord_reason(error, info.path)}") from error
    expected = (len(indices), size[1], size[0], 3)
    if frames.shape != expected:
        raise DecordFailure(f"decord gave frames of shape {tuple(frames.shape)}, not the"
                            f" displayed {expected}")
    return np.ascontiguousarray(frames, dtype=np.uint8)
