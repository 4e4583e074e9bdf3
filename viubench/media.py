"""Content-addressed JPEG frames: each distinct frame is encoded and written once."""

from __future__ import annotations

import hashlib
import io
import os

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
    """Writes frames under `root/media/` by content and returns paths relative to `root`."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.folders: set[str] = set()   # folders this store already made (saves a syscall each)

    @staticmethod
    def relpath(key: str) -> str:
        return f"media/{key[:2]}/{key}.jpg"

    def put(self, frame: np.ndarray) -> str:
        """Store `frame` (once) and return its path relative to the test-set root."""
        rel = self.relpath(frame_key(frame))
        path = os.path.join(self.root, rel)
        if not os.path.exists(path):
            folder = os.path.dirname(path)
            if folder not in self.folders:
                os.makedirs(folder, exist_ok=True)
                self.folders.add(folder)
            tmp = f"{path}.{os.getpid()}.part"
            with open(tmp, "wb") as handle:
                handle.write(encode_jpeg(frame))
            os.replace(tmp, path)  # atomic: concurrent writers of one frame write equal bytes
        return rel

    def check(self, frame: np.ndarray) -> tuple[str, str | None]:
        """Path the frame should have and a problem with the stored file (None if it is right)."""
        rel = self.relpath(frame_key(frame))
        path = os.path.join(self.root, rel)
        if not os.path.exists(path):
            return rel, f"missing media file {rel}"
        with open(path, "rb") as handle:
            if handle.read() != encode_jpeg(frame):
                return rel, f"media file {rel} does not hold the re-derived frame"
        return rel, None
