"""Frame perturbations for Anomaly Grounding (VideoSSR). None of them changes the frame size.

The rules are the VideoSSR authors' (pretext_tasks/grounding.py): rotations are clockwise, zooms
resample with Lanczos, blur has radius 2, saturation factor 2. Where the authors' rotation by 90
or 270 degrees makes a frame of another shape (PIL `expand`), we fit the turned picture, centred
on black, into the video's own frame size so the video never changes size mid-way.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

BLACK = 0

# Clockwise turns as PIL transposes (PIL's ROTATE_n turns counter-clockwise).
_CLOCKWISE = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180,
              270: Image.Transpose.ROTATE_90}


def grayscale(frame: np.ndarray) -> np.ndarray:
    """PIL's luma (ITU-R 601-2) copied to all three channels."""
    luma = np.asarray(Image.fromarray(frame).convert("L"))
    return np.repeat(luma[:, :, None], 3, axis=2)


def invert(frame: np.ndarray) -> np.ndarray:
    return 255 - frame


def channel_swap(frame: np.ndarray) -> np.ndarray:
    """Red and blue exchanged."""
    return frame[:, :, [2, 1, 0]]   # fancy indexing copies in C order, 6x faster than [..., ::-1]


def mirror(frame: np.ndarray) -> np.ndarray:
    """Flipped left to right."""
    return _transpose(frame, Image.Transpose.FLIP_LEFT_RIGHT)


def _transpose(frame: np.ndarray, method: Image.Transpose) -> np.ndarray:
    """Exact pixel moves done by PIL (2-3x faster than copying a reversed numpy view)."""
    return np.asarray(Image.fromarray(frame).transpose(method))


def blur(frame: np.ndarray, radius: float = 2.0) -> np.ndarray:
    return np.asarray(Image.fromarray(frame).filter(ImageFilter.GaussianBlur(radius)))


def saturate(frame: np.ndarray, factor: float = 2.0) -> np.ndarray:
    return np.asarray(ImageEnhance.Color(Image.fromarray(frame)).enhance(factor))


def rotate(frame: np.ndarray, degrees: int) -> np.ndarray:
    """Turned clockwise by 90, 180 or 270 degrees. A turn by 90 or 270 of a non-square frame is
    scaled to fit the frame size and centred on black (`letterbox`)."""
    turned = _transpose(frame, _CLOCKWISE[degrees])
    if turned.shape == frame.shape:
        return turned  # 180 degrees, or a square frame: nothing to fit
    return letterbox(turned, frame.shape[1], frame.shape[0])


def letterbox(image: np.ndarray, width: int, height: int, size: tuple[int, int] | None = None,
              resample: Image.Resampling = Image.Resampling.BILINEAR) -> np.ndarray:
    """`image` resized with `resample` to `size` (w, h; default: the largest size that fits
    width x height with the image's aspect ratio) and placed on a black width x height canvas at
    ((width - w) // 2, (height - h) // 2)."""
    if size is None:
        scale = min(width / image.shape[1], height / image.shape[0])
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    new_w, new_h = size
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), resample))
    canvas = np.full((height, width, 3), BLACK, dtype=np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top:top + new_h, left:left + new_w] = resized
    return canvas


def zoom_in(frame: np.ndarray, scale: float) -> np.ndarray:
    """The centred box of w/scale x h/scale (float corners, as PIL's crop takes them) resized
    back to the full frame with Lanczos."""
    h, w = frame.shape[:2]
    crop_w, crop_h = w / scale, h / scale
    box = ((w - crop_w) / 2, (h - crop_h) / 2, (w + crop_w) / 2, (h + crop_h) / 2)
    crop = Image.fromarray(frame).crop(box)
    return np.asarray(crop.resize((w, h), Image.Resampling.LANCZOS))


def zoom_out(frame: np.ndarray, scale: float) -> np.ndarray:
    """Shrunk with Lanczos to (int(w / scale), int(h / scale)), centred on black."""
    h, w = frame.shape[:2]
    return letterbox(frame, w, h, size=(int(w / scale), int(h / scale)),
                     resample=Image.Resampling.LANCZOS)


def add_noise(frames: np.ndarray, sigmas: Sequence[float], seed: int) -> np.ndarray:
    """Gaussian noise of standard deviation sigmas[i] on every channel of frames[i], added in
    floating point, clipped to [0, 255] and truncated to uint8."""
    normal = np.random.default_rng(seed).standard_normal(size=frames.shape)
    noise = normal * np.asarray(sigmas, dtype=np.float64)[:, None, None, None]
    return np.clip(frames.astype(np.float64) + noise, 0, 255).astype(np.uint8)
