"""Shape geometry and placement for Object Counting (the VideoSSR authors' rules, our code).

An instance is `{"centre": [x, y], "size": int, "colour": [r, g, b], "angle": degrees}`:

* size: integer uniform in [int(0.2 * m), int(0.4 * m)], m = min(frame width, height);
  colour: each channel uniform in 50..255; angle: uniform in [0, 360) (drawn for circles too).
* circle: radius size // 2. square: side 2 * (size // 2). triangle: base 2 * (size // 2), height
  int(size * sqrt(3) / 2), apex up before rotation, the midpoint of its height at the centre.
* rotation as OpenCV's getRotationMatrix2D(angle): a corner (x, y) relative to the centre moves to
  (x cos a + y sin a, -x sin a + y cos a), i.e. positive angles turn counter-clockwise on screen
  (y down); corner coordinates are then truncated to integers, as the authors' int32 cast does.

Two painters place the centres of the instances of one frame:

* `videossr` (the authors'): for each instance up to 20 tries of an integer centre uniform in the
  central 70% box (width int(0.7 w), offset (w - int(0.7 w)) // 2; same for h) shrunk on every
  side by int(0.75 * size); a try is accepted when it lies at least `size` away from every centre
  already on the frame; after 20 refused tries the last one is kept, so shapes may overlap and
  may even hide earlier ones. When the shrunk box is empty the centre is uniform in
  [margin, w - margin] x [margin, h - margin] with no spacing check.
* `clean` (ours): the centre is an integer uniform in the central box such that the shape's
  circumscribed circle, widened by `SLACK` pixels for truncation and rasterisation, lies wholly
  inside the frame; a try is accepted when that circle is disjoint from every other instance's.
  After 20 refused tries the frame is placed again from scratch, sizes included (so on square
  frames, where four large squares cannot fit, clean shapes come out somewhat smaller than the
  authors'), and TaskSkip after `CLEAN_TRIES` attempts. Shapes never touch, and never overlap.

Instances are painted in order, later ones over earlier ones.
"""

from __future__ import annotations

import math
import random
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from viubench.task import TaskSkip

SIZE_RANGE = (0.2, 0.4)      # size as a fraction of min(w, h)
CENTRAL = 0.7                # centres lie in the central 70% of each side
MARGIN = 0.75                # the videossr box is shrunk by int(0.75 * size)
CENTRE_TRIES = 20            # videossr tries per instance before keeping the last try
CLEAN_TRIES = 1000           # clean painter: attempts at a whole frame
SLACK = 3                    # clean painter: pixels added to each circumscribed radius
PAINTERS = ("videossr", "clean")
Instance = Mapping[str, Any]


def size_bounds(width: int, height: int) -> tuple[int, int]:
    """Smallest and largest instance size on a width x height frame."""
    smallest = min(width, height)
    return int(smallest * SIZE_RANGE[0]), int(smallest * SIZE_RANGE[1])


def central_box(width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, box width, box height) of the central 70% box."""
    box_w, box_h = int(width * CENTRAL), int(height * CENTRAL)
    return (width - box_w) // 2, (height - box_h) // 2, box_w, box_h


def videossr_centre(rng: random.Random, size: int, others: Sequence[Sequence[int]],
                    width: int, height: int) -> list[int]:
    """The authors' centre for an instance of `size`, given the centres already on the frame."""
    margin = int(size * MARGIN)
    left, top, box_w, box_h = central_box(width, height)
    x_lo, x_hi = left + margin, left + box_w - margin
    y_lo, y_hi = top + margin, top + box_h - margin
    if x_lo >= x_hi or y_lo >= y_hi:
        return [rng.randint(margin, width - margin), rng.randint(margin, height - margin)]
    centre: list[int] = []
    for _ in range(CENTRE_TRIES):
        centre = [rng.randint(x_lo, x_hi), rng.randint(y_lo, y_hi)]
        if all(math.dist(centre, other) >= size for other in others):
            break
    return centre


def reach(shape: str, size: int) -> float:
    """Radius of the circle around the centre that holds every painted pixel of the instance."""
    half = size // 2
    if shape == "circle":
        circumradius = float(half)
    elif shape == "square":
        circumradius = half * math.sqrt(2)
    else:
        tall = triangle_height(size) / 2
        circumradius = max(tall, math.hypot(half, tall))
    return circumradius + SLACK


def clean_centre(rng: random.Random, shape: str, size: int, width: int,
                 height: int) -> list[int] | None:
    """A centre in the central box that keeps the whole shape inside the frame (None: none)."""
    left, top, box_w, box_h = central_box(width, height)
    radius = reach(shape, size)
    x_lo, x_hi = max(left, math.ceil(radius)), min(left + box_w, math.floor(width - 1 - radius))
    y_lo, y_hi = max(top, math.ceil(radius)), min(top + box_h, math.floor(height - 1 - radius))
    if x_lo > x_hi or y_lo > y_hi:
        return None
    return [rng.randint(x_lo, x_hi), rng.randint(y_lo, y_hi)]


def place_videossr(rng: random.Random, shape: str, count: int, width: int,
                   height: int) -> list[dict[str, Any]]:
    """`count` instances by the authors' painter (they may overlap)."""
    low, high = size_bounds(width, height)
    placed: list[dict[str, Any]] = []
    for _ in range(count):
        colour, size = _colour_and_size(rng, low, high)
        centre = videossr_centre(rng, size, [p["centre"] for p in placed], width, height)
        placed.append(_instance(rng, centre, size, colour))
    return placed


def _colour_and_size(rng: random.Random, low: int, high: int) -> tuple[list[int], int]:
    """An instance's colour (each channel 50..255), then its size (low..high), drawn in the
    authors' order."""
    colour = [rng.randint(50, 255) for _ in range(3)]
    return colour, rng.randint(low, high)


def _instance(rng: random.Random, centre: list[int], size: int,
              colour: list[int]) -> dict[str, Any]:
    """An instance record; its angle is drawn last, after the centre, as the authors draw it."""
    return {"centre": centre, "size": size, "colour": colour, "angle": rng.uniform(0, 360)}


def place_clean(rng: random.Random, shape: str, count: int, width: int,
                height: int) -> list[dict[str, Any]]:
    """`count` instances whose circumscribed circles are disjoint and inside the frame."""
    low, high = size_bounds(width, height)
    for _ in range(CLEAN_TRIES):
        placed: list[dict[str, Any]] = []
        for _ in range(count):
            colour, size = _colour_and_size(rng, low, high)
            centre = _separate_centre(rng, shape, size, placed, width, height)
            if centre is None:
                break
            placed.append(_instance(rng, centre, size, colour))
        if len(placed) == count:
            return placed
    raise TaskSkip(f"cannot place {count} separate {shape}s on a {width}x{height} frame")


def _separate_centre(rng: random.Random, shape: str, size: int, placed: Sequence[Instance],
                     width: int, height: int) -> list[int] | None:
    """A clean centre whose shape keeps clear of every placed one (None after CENTRE_TRIES)."""
    for _ in range(CENTRE_TRIES):
        centre = clean_centre(rng, shape, size, width, height)
        if centre is None:
            return None
        own = reach(shape, size)
        if all(math.dist(centre, other["centre"]) >= own + reach(shape, other["size"])
               for other in placed):
            return centre
    return None


PLACERS = {"videossr": place_videossr, "clean": place_clean}


def triangle_height(size: int) -> int:
    return int(size * (3 ** 0.5) / 2)


def outline(shape: str, size: int) -> list[tuple[float, float]]:
    """Corners of a square or triangle relative to its centre, before rotation."""
    half = size // 2
    if shape == "square":
        return [(-half, -half), (half, -half), (half, half), (-half, half)]
    tall = triangle_height(size)
    return [(0.0, -tall / 2), (-half, tall / 2), (half, tall / 2)]


def corners(shape: str, instance: Instance) -> list[tuple[int, int]]:
    """Pixel corners of a square or triangle instance: rotated, moved to the centre, truncated."""
    turn = instance["angle"] * math.pi / 180
    cos, sin = math.cos(turn), math.sin(turn)
    cx, cy = instance["centre"]
    return [(int(x * cos + y * sin + cx), int(-x * sin + y * cos + cy))
            for x, y in outline(shape, instance["size"])]


def draw_instance(canvas: ImageDraw.ImageDraw, shape: str, instance: Instance,
                  fill: Any) -> None:
    """Fill one instance on `canvas` with `fill`."""
    if shape == "circle":
        (cx, cy), radius = instance["centre"], instance["size"] // 2
        canvas.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=fill)
    else:
        canvas.polygon(corners(shape, instance), fill=fill)


def paint(frame: np.ndarray, shape: str, instances: Sequence[Instance]) -> np.ndarray:
    """A copy of an RGB frame with the instances painted in order."""
    image = Image.fromarray(frame)
    canvas = ImageDraw.Draw(image)
    for instance in instances:
        draw_instance(canvas, shape, instance, tuple(instance["colour"]))
    return np.asarray(image)


def instance_mask(shape: str, instance: Instance, width: int, height: int) -> np.ndarray:
    """Boolean [height, width] mask of the pixels the instance paints."""
    image = Image.new("L", (width, height), 0)
    draw_instance(ImageDraw.Draw(image), shape, instance, 255)
    return np.asarray(image) > 0


def hidden_flags(masks: Sequence[np.ndarray]) -> list[bool]:
    """For masks in painting order: whether each is wholly covered by the masks painted later."""
    if not masks:
        return []
    flags = []
    covered = np.zeros_like(masks[0])
    for mask in reversed(masks):
        flags.append(bool(mask.any()) and not np.any(mask & ~covered))
        covered |= mask
    return flags[::-1]
