"""JPEG frames named by provenance, each written once.

A build's media is mostly unmodified source frames, named by source index, size and decoder, so
every sample of a video that shows frame 120 points at one file. A synthesized frame (perturbed,
shapes drawn) is named by the sample that made it and its place in that sample's prompt (see
`render.FramePaths`). Naming by provenance rather than by a hash of the pixels costs nothing per
frame and says what each file is; `verify` re-derives every frame and compares the bytes.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import Executor, Future
from typing import Any

import numpy as np
from PIL import Image

JPEG_QUALITY = 90


def clean_key(source_index: int, size: tuple[int, int], backend: str) -> str:
    """File name of an unmodified source frame: which frame, at which size, from which decoder."""
    return f"{source_index:06d}_{size[0]}x{size[1]}_{backend}"


def jpeg_encoder() -> dict[str, Any]:
    """What encodes the frames (recorded in build.json): the same frame gives the same bytes
    under the same Pillow and libjpeg(-turbo) at the same quality; another version may not,
    which `verify` names when a frame's bytes differ."""
    from PIL import __version__ as pillow, features

    return {"pillow": pillow, "libjpeg_turbo": features.version("libjpeg_turbo"),
            "libjpeg": features.version("jpg"), "quality": JPEG_QUALITY}


def encode_jpeg(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def load_frame(path: str) -> np.ndarray:
    with open(path, "rb") as handle:
        return decode_frame(handle.read())


def decode_frame(data: bytes) -> np.ndarray:
    """A stored frame's pixels from its JPEG bytes."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


class MediaStore:
    """Takes a video's frames by content; returns their paths relative to the test set.

    With a `root`, frames are written under `root/media/<group>/`; without one (a packed build,
    `viubench.packs`) they are kept encoded, in order, for the driver to pack (`collected`).
    The group is the source video's content hash, so one video's frames share one folder
    (one directory to create per video, and a listing that tells which video a frame came from).
    With an executor, JPEG encoding and writing run in its threads (both release the GIL);
    `wait()` must be called before any record that names the frames is written.
    """

    def __init__(self, root: str | None, executor: Executor | None = None) -> None:
        self.root = root
        self.executor = executor
        self.folders: set[str] = set()   # folders this store already made (saves a syscall each)
        self.submitted: set[str] = set()
        self.pending: list[Future] = []
        self.encoded: list[tuple[str, Future | bytes]] = []

    @staticmethod
    def relpath(key: str, group: str) -> str:
        return f"media/{group[:16]}/{key}.jpg"

    def put(self, frame: np.ndarray, group: str, key: str) -> str:
        """Take `frame` as `key` (once per store); return its path relative to the root."""
        rel = self.relpath(key, group)
        if rel in self.submitted:
            return rel
        self.submitted.add(rel)
        if self.root is None:
            self.encoded.append((rel, self._run(encode_jpeg, frame)))
            return rel
        path = os.path.join(self.root, rel)
        folder = os.path.dirname(path)
        if folder not in self.folders:
            os.makedirs(folder, exist_ok=True)
            self.folders.add(folder)
        self.pending.append(self._run(_write_jpeg, frame, path))
        return rel

    def wait(self) -> None:
        """Block until every submitted frame is on disk (or encoded); re-raises a failure."""
        unfinished, self.pending = self._unfinished(), []
        for future in unfinished:
            future.result()

    def settled(self) -> bool:
        """Whether every frame taken so far is written (or encoded), without waiting."""
        return all(future.done() for future in self._unfinished())

    def _unfinished(self) -> list[Future]:
        """The writes (or, without a root, the encodes) run by the executor."""
        return [work for work in self.pending + [data for _, data in self.encoded]
                if isinstance(work, Future)]

    def collected(self) -> list[tuple[str, bytes]]:
        """(path, JPEG bytes) of every frame taken without a root, in the order taken."""
        return [(rel, data.result() if isinstance(data, Future) else data)
                for rel, data in self.encoded]

    def _run(self, function, *args) -> Future | Any:
        if self.executor is None:
            return function(*args)
        return self.executor.submit(function, *args)


def stored_frame_problem(stored: bytes, frame: np.ndarray, rel: str) -> str | None:
    """Why the stored bytes of media file `rel` are not the frame re-derived for it."""
    if stored != encode_jpeg(frame):
        return f"media file {rel} does not hold the re-derived frame"
    return None


def _write_jpeg(frame: np.ndarray, path: str) -> None:
    # Written in place, not via a temporary file: a video's records reach samples.jsonl only
    # after all its frames are written (`wait`), and a video that is not recorded as done is
    # rendered again on resume, rewriting every frame it names. Two writers of one path (two
    # byte-identical source videos) write identical bytes.
    with open(path, "wb") as handle:
        handle.write(encode_jpeg(frame))
