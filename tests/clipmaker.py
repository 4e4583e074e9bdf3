"""Small synthetic test videos (and broken files) written with PyAV, numpy and Pillow.

Every frame shows a moving colour gradient with a sliding bar (so consecutive frames differ)
above a marker band: `MARKER_BITS` black/white cells spelling the frame number in binary, left
cell = most significant bit. `read_marker` recovers the number from a decoded (and possibly
resized, lossily compressed) frame, so a test can check that "frame i" really is frame i.

Each writer takes the output path plus parameters and returns the path.
"""

from __future__ import annotations

import os
import shutil
import wave
from fractions import Fraction

import av
import numpy as np

MARKER_BITS = 8            # frame numbers 0..255
MARKER_TOP = 0.62          # the marker band covers the bottom 38% of the frame
WHITE, BLACK = 235, 16


# --- frame content --------------------------------------------------------------------------

def make_frame(index: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """RGB uint8 [height, width, 3]: moving gradient + bar, frame number as a bit pattern."""
    frame = np.empty((height, width, 3), dtype=np.uint8)
    top = int(round(MARKER_TOP * height))
    y, x = np.mgrid[0:top, 0:width]
    shift = 5 * index + 37 * seed
    frame[:top, :, 0] = ((x * 200) // max(width, 1) + shift) % 256
    frame[:top, :, 1] = ((y * 200) // max(top, 1) + 3 * index + 71 * seed) % 256
    frame[:top, :, 2] = (96 + 53 * seed) % 256
    bar_w = max(2, width // 8)
    bar_x = (3 * index + 11 * seed) % max(width - bar_w, 1)
    frame[:top, bar_x:bar_x + bar_w] = (250, 250, 40)
    frame[top:] = BLACK
    for bit in range(MARKER_BITS):
        if (index >> (MARKER_BITS - 1 - bit)) & 1:
            left = int(round(bit * width / MARKER_BITS))
            right = int(round((bit + 1) * width / MARKER_BITS))
            frame[top:, left:right] = WHITE
    return frame


def read_marker(frame: np.ndarray) -> int:
    """The frame number drawn by `make_frame`, read from any resized copy of the frame."""
    height, width = frame.shape[:2]
    luma = frame.astype(np.float32).mean(axis=2)
    y0 = int(height * (MARKER_TOP + 0.1))
    y1 = max(int(height * 0.95), y0 + 1)
    value = 0
    for bit in range(MARKER_BITS):
        x0 = int((bit + 0.3) * width / MARKER_BITS)
        x1 = max(int((bit + 0.7) * width / MARKER_BITS), x0 + 1)
        value = value * 2 + int(luma[y0:y1, x0:x1].mean() > (WHITE + BLACK) / 2)
    return value


# --- generic encoder ------------------------------------------------------------------------

def falling_series(folder: str, count: int, seed: int = 40) -> str:
    """`count` distinct small H.264 clips clip00.mp4, clip01.mp4, ..., each file smaller than
    the one before it: a one-process build decodes the larger files first (`pipeline`), so it
    decodes these in name order, and the last is decoded last."""
    for k in range(count):
        write_video(os.path.join(folder, f"clip{k:02d}.mp4"), "libx264",
                    frames=64 + 8 * (count - 1 - k), seed=seed + k,
                    options={"preset": "ultrafast", "crf": "23"})
    sizes = [os.path.getsize(os.path.join(folder, name)) for name in sorted(os.listdir(folder))]
    assert sizes == sorted(sizes, reverse=True), sizes
    return folder


def write_video(path: str, codec: str, frames: int = 96, width: int = 160, height: int = 120,
                fps: int = 24, pix_fmt: str = "yuv420p", options: dict | None = None,
                bit_rate: int | None = None, seed: int = 0, fmt: str | None = None,
                container_options: dict | None = None) -> str:
    """Encode `frames` synthetic frames with `codec` into `path` (container from the suffix)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with av.open(path, "w", format=fmt, options=dict(container_options or {})) as container:
        stream = container.add_stream(codec, rate=fps, options=dict(options or {}))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = Fraction(1, fps)
        if bit_rate:
            stream.bit_rate = bit_rate
        for index in range(frames):
            image = av.VideoFrame.from_ndarray(make_frame(index, width, height, seed),
                                               format="rgb24")
            image.pts = index
            image.time_base = Fraction(1, fps)
            if pix_fmt != "rgb24":
                image = image.reformat(format=pix_fmt)
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


# --- one writer per codec / container -------------------------------------------------------

def h264_mp4(path: str, frames: int = 96, width: int = 160, height: int = 120,
             seed: int = 0) -> str:
    """H.264 with B-frames (decode order != display order) in MP4, moov at the end."""
    return write_video(path, "libx264", frames, width, height, seed=seed,
                       options={"preset": "veryfast", "crf": "20", "bf": "2", "g": "24"})


def h264_mkv(path: str, frames: int = 90, width: int = 176, height: int = 144,
             seed: int = 1) -> str:
    return write_video(path, "libx264", frames, width, height, seed=seed,
                       options={"preset": "ultrafast", "crf": "18"})


def hevc_mp4(path: str, frames: int = 80, width: int = 160, height: int = 96,
             seed: int = 2) -> str:
    return write_video(path, "libx265", frames, width, height, seed=seed,
                       options={"preset": "ultrafast", "crf": "20",
                                "x265-params": "log-level=error"})


def vp9_webm(path: str, frames: int = 72, width: int = 160, height: int = 120,
             seed: int = 3) -> str:
    return write_video(path, "libvpx-vp9", frames, width, height, seed=seed,
                       options={"deadline": "realtime", "cpu-used": "8", "crf": "24", "b": "0"})


def vp9_live_webm(path: str, frames: int = 72, width: int = 160, height: int = 120,
                  seed: int = 16) -> str:
    """VP9 in a live WebM (no duration, no cue index: how a browser's MediaRecorder or a
    stream recorder writes it). A valid file that PyAV reads and decord 0.6 refuses ("Failed
    to measure duration/frame-count due to broken metadata")."""
    return write_video(path, "libvpx-vp9", frames, width, height, seed=seed, fmt="webm",
                       options={"deadline": "realtime", "cpu-used": "8", "crf": "24", "b": "0"},
                       container_options={"live": "1"})


def rotated_mp4(path: str, rotation: int, frames: int = 64, width: int = 112,
                height: int = 176, seed: int = 17) -> str:
    """H.264 whose display matrix turns the stored pictures by `rotation` degrees
    counter-clockwise (a phone's portrait clip): players show `make_frame`'s upright
    `width` x `height` pattern, while the stored pictures lie turned the other way."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    turns = rotation // 90
    stored_w, stored_h = (height, width) if turns % 2 else (width, height)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=24,
                                      options={"preset": "ultrafast", "crf": "16"})
        stream.width, stream.height, stream.pix_fmt = stored_w, stored_h, "yuv420p"
        stream.time_base = Fraction(1, 24)
        stream.set_display_rotation(rotation)
        for index in range(frames):
            stored = np.ascontiguousarray(np.rot90(make_frame(index, width, height, seed),
                                                   -turns))
            image = av.VideoFrame.from_ndarray(stored, format="rgb24").reformat(format="yuv420p")
            image.pts, image.time_base = index, Fraction(1, 24)
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def av1_mkv(path: str, frames: int = 64, width: int = 160, height: int = 120,
            seed: int = 4) -> str:
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner to stderr otherwise
    return write_video(path, "libsvtav1", frames, width, height, seed=seed,
                       options={"preset": "12", "crf": "30", "svtav1-params": "lp=2"})


def mpeg4_avi(path: str, frames: int = 100, width: int = 160, height: int = 120,
              seed: int = 5) -> str:
    return write_video(path, "mpeg4", frames, width, height, seed=seed, bit_rate=1_500_000)


def mjpeg_avi(path: str, frames: int = 60, width: int = 160, height: int = 120,
              seed: int = 6) -> str:
    return write_video(path, "mjpeg", frames, width, height, seed=seed, pix_fmt="yuvj420p",
                       bit_rate=4_000_000)


def cinepak_avi(path: str, frames: int = 56, width: int = 96, height: int = 72,
                seed: int = 7) -> str:
    """Cinepak encodes rgb24 (or gray) only; its encoder is slow, so the clip is small."""
    return write_video(path, "cinepak", frames, width, height, seed=seed, pix_fmt="rgb24")


def odd_size_mkv(path: str, frames: int = 72, width: int = 97, height: int = 61,
                 seed: int = 8) -> str:
    """Odd width and height: H.264 accepts them in 4:4:4 (no chroma subsampling)."""
    return write_video(path, "libx264", frames, width, height, seed=seed, pix_fmt="yuv444p",
                       options={"preset": "ultrafast", "crf": "18"})


def portrait_mp4(path: str, frames: int = 64, width: int = 144, height: int = 256,
                 seed: int = 9) -> str:
    return h264_mp4(path, frames, width, height, seed)


def tiny_mp4(path: str, frames: int = 60, width: int = 64, height: int = 48,
             seed: int = 10) -> str:
    """Area 3072 < 128*128: the engine must upscale it."""
    return h264_mp4(path, frames, width, height, seed)


def big_mp4(path: str, frames: int = 60, width: int = 1280, height: int = 720,
            seed: int = 11) -> str:
    """A short 720p clip (60 frames: step 1 in the central 90%)."""
    return write_video(path, "libx264", frames, width, height, seed=seed,
                       options={"preset": "ultrafast", "crf": "28"})


def too_short_mp4(path: str, frames: int = 30, seed: int = 12) -> str:
    """30 frames: the central 90% holds fewer than 48 frames."""
    return h264_mp4(path, frames, seed=seed)


# --- bad files ------------------------------------------------------------------------------

def empty_file(path: str) -> str:
    open(path, "wb").close()
    return path


def text_file(path: str, text: str = "this is not a video, just some text\n" * 20) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def truncated_mp4(path: str, keep: float = 0.5, frames: int = 96) -> str:
    """The first `keep` of a valid MP4 whose moov box is at the end (so no index survives)."""
    full = path + ".full.mp4"
    h264_mp4(full, frames, seed=13)
    with open(full, "rb") as handle:
        data = handle.read()
    os.remove(full)
    assert data.rfind(b"moov") > data.find(b"mdat"), "expected the moov box after mdat"
    with open(path, "wb") as handle:
        handle.write(data[:int(len(data) * keep)])
    return path


def truncated_faststart_mp4(path: str, keep: float = 0.5, frames: int = 200) -> str:
    """The first `keep` of a valid MP4 whose moov box is at the front (faststart): the index
    survives and lists every frame, but the media data of the later frames is gone."""
    full = path + ".full.mp4"
    write_video(full, "libx264", frames, seed=15, fmt="mp4",
                options={"preset": "veryfast", "bf": "2"},
                container_options={"movflags": "faststart"})
    with open(full, "rb") as handle:
        data = handle.read()
    os.remove(full)
    assert data.find(b"moov") < data.find(b"mdat"), "expected the moov box before mdat"
    with open(path, "wb") as handle:
        handle.write(data[:int(len(data) * keep)])
    return path


def corrupt_mp4(path: str, frames: int = 96, seed: int = 14, span: float = 0.3) -> str:
    """A valid MP4 (index intact) whose media data is overwritten with random bytes in the
    middle `span` of the mdat box, so demuxing works but decoding raises."""
    h264_mp4(path, frames, seed=seed)
    with open(path, "r+b") as handle:
        data = handle.read()
        start = data.find(b"mdat") + 4
        end = data.rfind(b"moov") - 4
        length = end - start
        middle = start + int(length * (0.5 - span / 2))
        noise = np.random.default_rng(seed).integers(0, 256, int(length * span), dtype=np.uint8)
        handle.seek(middle)
        handle.write(noise.tobytes())
    return path


def audio_m4a(path: str, seconds: float = 1.0, rate: int = 22050) -> str:
    """AAC audio only, in an MP4 (.m4a) container."""
    with av.open(path, "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        t = np.arange(int(seconds * rate)) / rate
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        chunk = 1024
        for offset in range(0, len(samples), chunk):
            part = samples[offset:offset + chunk]
            frame = av.AudioFrame.from_ndarray(part[None, :], format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = offset
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def audio_wav(path: str, seconds: float = 0.5, rate: int = 8000) -> str:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (8000 * np.sin(2 * np.pi * 330 * t)).astype("<i2")
    with wave.open(path, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm.tobytes())
    return path


def copy_file(source: str, path: str) -> str:
    shutil.copyfile(source, path)
    return path


def vfr_mkv(path: str, frames: int = 300, width: int = 160, height: int = 96,
            seed: int = 18) -> str:
    """H.264 (B-frames, a keyframe every 30 frames) at a variable frame rate: stretches of 40
    frames 20 ms apart alternate with stretches 50 ms apart (millisecond timestamps)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=30,
                                      options={"preset": "veryfast", "g": "30", "bf": "2"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stamp = 0
        for index in range(frames):
            image = av.VideoFrame.from_ndarray(make_frame(index, width, height, seed),
                                               format="rgb24").reformat(format="yuv420p")
            image.pts, image.time_base = stamp, Fraction(1, 1000)
            stamp += 20 if (index // 40) % 2 == 0 else 50
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


# --- catalogues used by the tests -----------------------------------------------------------

# name -> (writer, file name, expected frame count, expected probe codec, width, height)
GOOD = {
    "h264_mp4": (h264_mp4, "h264.mp4", 96, "h264", 160, 120),
    "h264_mkv": (h264_mkv, "h264.mkv", 90, "h264", 176, 144),
    "hevc_mp4": (hevc_mp4, "hevc.mp4", 80, "hevc", 160, 96),
    "vp9_webm": (vp9_webm, "vp9.webm", 72, "vp9", 160, 120),
    "av1_mkv": (av1_mkv, "av1.mkv", 64, "av1", 160, 120),
    "mpeg4_avi": (mpeg4_avi, "mpeg4.avi", 100, "mpeg4", 160, 120),
    "mjpeg_avi": (mjpeg_avi, "mjpeg.avi", 60, "mjpeg", 160, 120),
    "cinepak_avi": (cinepak_avi, "cinepak.avi", 56, "cinepak", 96, 72),
    "odd_size": (odd_size_mkv, "odd_97x61.mkv", 72, "h264", 97, 61),
    "portrait": (portrait_mp4, "portrait_144x256.mp4", 64, "h264", 144, 256),
    "tiny": (tiny_mp4, "tiny_64x48.mp4", 60, "h264", 64, 48),
    "big": (big_mp4, "big_1280x720.mp4", 60, "h264", 1280, 720),
}

# name -> (writer, file name, words the skip reason must contain)
BAD = {
    "empty": (empty_file, "empty.mp4", "empty"),
    "text": (text_file, "notes.mp4", "cannot read"),
    "truncated": (truncated_mp4, "truncated.mp4", "cannot read"),
    "corrupt": (corrupt_mp4, "corrupt.mp4", "decoding failed"),
    "audio": (audio_m4a, "audio.m4a", "no video stream"),
    "wav": (audio_wav, "audio.wav", "no video stream"),
    "too_short": (too_short_mp4, "short_30f.mp4", "too short"),
}


def write_good(folder: str, names=None) -> dict[str, str]:
    """Write the GOOD clips (or the named ones) into `folder`; name -> path."""
    os.makedirs(folder, exist_ok=True)
    return {name: GOOD[name][0](os.path.join(folder, GOOD[name][1]))
            for name in (names or GOOD)}


def write_bad(folder: str, names=None) -> dict[str, str]:
    os.makedirs(folder, exist_ok=True)
    return {name: BAD[name][0](os.path.join(folder, BAD[name][1])) for name in (names or BAD)}
