"""How alike two frames are, for MVP's near-duplicate rules: weight-free measures and a hook for
a user's embedder. Every measure maps frames to descriptors (`describe`) and two descriptor sets
to a similarity matrix (`compare`); 1 means identical.

* `block-ssim` (the default): each frame becomes a 64x64 grayscale thumbnail (box filter, so
  each thumbnail pixel averages a patch of the frame and sensor noise averages out), cut into an
  8x8 grid of 8x8-pixel blocks; two frames are compared block by block with SSIM (Wang et al.
  2004, constants (0.01*255)^2 and (0.03*255)^2) and their similarity is the SSIM of their
  *least* similar block. A person crossing a static street, a pointer on a slide or a speaker's
  inset moves at least one block, so the frames count as different; sensor noise and
  compression alone leave every block above 0.99.
* `dhash` (viubench 1's measure): a 256-bit difference hash of a 17x16 grayscale thumbnail;
  similarity is the fraction of equal bits. It is blind to small local change.
* `package.module:attr`: a function mapping uint8 frames [n, h, w, 3] to embeddings [n, d]
  (e.g. a CLIP image tower); similarity is the cosine.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import numpy as np
from PIL import Image

THUMB, GRID = 64, 8
SSIM_C1, SSIM_C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


class Measure(Protocol):
    name: str

    def describe(self, frames: np.ndarray) -> np.ndarray: ...

    def compare(self, a: np.ndarray, b: np.ndarray) -> np.ndarray: ...


class BlockSSIM:
    """SSIM of the least similar block of an 8x8 grid on a 64x64 grayscale thumbnail."""

    name = "block-ssim"

    def describe(self, frames: np.ndarray) -> np.ndarray:
        """[n, 64 blocks, 64 pixels] float64 thumbnails, blocks in row-major order."""
        side = THUMB // GRID
        thumbs = np.array([np.asarray(Image.fromarray(f).convert("L").resize(
            (THUMB, THUMB), Image.Resampling.BOX), dtype=np.float64) for f in frames])
        thumbs = thumbs.reshape(len(frames), GRID, side, GRID, side).transpose(0, 1, 3, 2, 4)
        return thumbs.reshape(len(frames), GRID * GRID, side * side)

    def compare(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return block_ssim(a, b).min(axis=-1)


def block_ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM of every block pair: [len(a), len(b), blocks]."""
    mean_a, mean_b = a.mean(-1), b.mean(-1)
    centred_a, centred_b = a - mean_a[..., None], b - mean_b[..., None]
    var_a, var_b = (centred_a ** 2).mean(-1), (centred_b ** 2).mean(-1)
    cov = np.einsum("ikp,jkp->ijk", centred_a, centred_b) / a.shape[-1]
    luminance = ((2 * mean_a[:, None] * mean_b[None] + SSIM_C1)
                 / (mean_a[:, None] ** 2 + mean_b[None] ** 2 + SSIM_C1))
    structure = (2 * cov + SSIM_C2) / (var_a[:, None] + var_b[None] + SSIM_C2)
    return luminance * structure


class DHash:
    """Difference hash: 16x17 grayscale thumbnail, 256 bits 'brighter than the left pixel'."""

    name = "dhash"

    def describe(self, frames: np.ndarray) -> np.ndarray:
        bilinear = Image.Resampling.BILINEAR
        rows = [np.asarray(Image.fromarray(f).convert("L").resize((17, 16), bilinear),
                           dtype=np.int16) for f in frames]
        return np.array([(g[:, 1:] > g[:, :-1]).ravel() for g in rows], dtype=np.int32)

    def compare(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Fraction of equal bits, [len(a), len(b)] (exact multiples of 1/256)."""
        return (a @ b.T + (1 - a) @ (1 - b).T) / a.shape[1]


class Embedder:
    """Cosine similarity of the embeddings of a user's function (e.g. a CLIP image tower)."""

    def __init__(self, reference: str) -> None:
        from viubench.registry import load_object

        self.name = reference
        self.embed: Callable[[np.ndarray], Any] = load_object(reference)

    def describe(self, frames: np.ndarray) -> np.ndarray:
        vectors = np.asarray(self.embed(frames), dtype=np.float64).reshape(len(frames), -1)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def compare(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a @ b.T


BUILT_IN: dict[str, Callable[[], Measure]] = {"block-ssim": BlockSSIM, "dhash": DHash}


def similarity(name: str) -> Measure:
    """The measure called `name`: a built-in one, or `package.module:attr` (an embedder)."""
    if name in BUILT_IN:
        return BUILT_IN[name]()
    if ":" not in name:
        raise ValueError(f"unknown similarity {name!r}: use one of {', '.join(BUILT_IN)}"
                         " or package.module:attr (an embedding function)")
    return Embedder(name)


class Similarities:
    """Measures by name, and the descriptors of the last few clips (one per video), so the
    variants of a video describe its frames once."""

    KEEP = 8

    def __init__(self) -> None:
        self._measures: dict[str, Measure] = {}
        self._described: dict[tuple, list[Any]] = {}

    def measure(self, name: str) -> Measure:
        if name not in self._measures:
            self._measures[name] = similarity(name)
        return self._measures[name]

    def describe(self, clip: Any, name: str) -> np.ndarray:
        """Descriptors of a clip's frames (a viubench Clip)."""
        return self._clip_entry(clip, name)[0]

    def matrix(self, clip: Any, name: str) -> np.ndarray:
        """Similarity of every pair of the clip's frames."""
        entry = self._clip_entry(clip, name)
        if entry[1] is None:
            entry[1] = self.measure(name).compare(entry[0], entry[0])
        return entry[1]

    def _clip_entry(self, clip: Any, name: str) -> list[Any]:
        """[descriptors, pair matrix or None] of a clip, kept for the last few clips."""
        key = (name, clip.video_hash, clip.backend, clip.size, tuple(clip.indices))
        if key not in self._described:
            if len(self._described) >= self.KEEP:
                self._described.pop(next(iter(self._described)))
            self._described[key] = [self.measure(name).describe(clip.frames), None]
        return self._described[key]
