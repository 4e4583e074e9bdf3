"""Content-addressed JPEG frames: each distinct frame is encoded and written once."""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import Executor, Future

import numpy as np
from PIL import Image

JPEG_QUALITY = 90


def frame_key(frame: np.ndarray) -> str:
    """Hash of a frame's pixels and shape; the file name of its JPEG."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(frame.shape).encode())
    h.update(np.ascontiguousarray(frame).data)
    return h.hexdigest()


def encode_jpeg(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def load_frame(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


class MediaStore:
    """Writes frames under `root/media/<group>/` by content; returns paths relative to `root`.

    The group is the source video's content hash, so one video's frames share one folder
    (one directory to create per video, and a listing that tells which video a frame came from).
    With an executor, JPEG encoding and writing run in its threads (both release the GIL);
    `wait()` must be called before any record that names the files is written.
    """

    def __init__(self, root: str, executor: Executor | None = None) -> None:
        self.root = root
        self.executor = executor
        self.folders: set[str] = set()   # folders this store already made (saves a syscall each)
        self.submitted: set[str] = set()
        self.pending: list[Future] = []

    @staticmethod
    def relpath(key: str, group: str) -> str:
        return f"media/{group[:16]}/{key}.jpg"

    def put(self, frame: np.ndarray, group: str) -> str:
        """Write `frame` (once per store) and return its path relative to the test-set root."""
        rel = self.relpath(frame_key(frame), group)
        path = os.path.join(self.root, rel)
        if rel in self.submitted:
            return rel
        self.submitted.add(rel)
        folder = os.path.dirname(path)
        if folder not in self.folders:
            os.makedirs(folder, exist_ok=True)
            self.folders.add(folder)
        if self.executor is None:
            _write_jpeg(frame, path)
        else:
            self.pending.append(self.executor.submit(_write_jpeg, frame, path))
        return rel

    def wait(self) -> None:
        """Block until every submitted frame is on disk; re-raises a failed write."""
        pending, self.pending = self.pending, []
        for future in pending:
            future.result()

    def check(self, frame: np.ndarray, group: str) -> tuple[str, str | None]:
        """Path the frame should have and a problem with the stored file (None if it is right)."""
        rel = self.relpath(frame_key(frame), group)
        path = os.path.join(self.root, rel)
        if not os.path.exists(path):
            return rel, f"missing media file {rel}"
        with open(path, "rb") as handle:
            if handle.read() != encode_jpeg(frame):
                return rel, f"media file {rel} does not hold the re-derived frame"
        return rel, None


def _write_jpeg(frame: np.ndarray, path: str) -> None:
    # Written in place, not via a temporary file: a video's records reach samples.jsonl only
    # after all its frames are written (`wait`), and a video that is not recorded as done is
    # rendered again on resume, rewriting every frame it names. Two writers of one path (two
    # byte-identical source videos) write identical bytes.
    with open(path, "wb") as handle:
        handle.write(encode_jpeg(frame))
