"""The frames' encoder gives the same bytes on every machine: a fixed frame's JPEG under the
Pillow that `constraints.txt` pins (what CI and the README's test command install)."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from viubench.media import encode_jpeg, jpeg_encoder

PINNED = {"pillow": "13.0.0", "libjpeg_turbo": "3.2.0", "libjpeg": "6.2", "quality": 90}
DIGEST = "e942ec6e3a9b0458bfa8e6c70b79c4eb2f60b080c51d9b85131a687e03ffa31c"


def fixed_frame() -> np.ndarray:
    """Gradients in each channel and a block of seeded noise (every DCT coefficient in use)."""
    y, x = np.mgrid[0:192, 0:256]
    frame = np.stack([x % 256, (y * 4) % 256, ((x + y) * 3) % 256], -1).astype(np.uint8)
    frame[40:120, 60:200] = np.random.default_rng(2024).integers(0, 256, (80, 140, 3),
                                                                 dtype=np.uint8)
    return frame


def test_the_pinned_encoder_gives_the_recorded_bytes():
    if jpeg_encoder() != PINNED:
        pytest.skip(f"the encoder here is {jpeg_encoder()}, not the pinned {PINNED}"
                    " (install with -c constraints.txt)")
    assert hashlib.sha256(encode_jpeg(fixed_frame())).hexdigest() == DIGEST


def test_constraints_pin_the_encoder():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "constraints.txt")
    with open(path, encoding="utf-8") as handle:
        pins = [line.strip() for line in handle if not line.startswith("#")]
    assert f"pillow=={PINNED['pillow']}" in pins
