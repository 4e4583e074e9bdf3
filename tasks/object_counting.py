"""Object Counting (VideoSSR, He et al. 2025, arXiv 2511.06281).

Filled circles, squares and triangles are painted onto some frames of the 48-frame timeline. For
each shape kind k frames are chosen (pairwise more than 8 frames apart, never a frame that holds
another kind) and j instances are drawn on each, so the count is k*j (easy: k, j in 1..3, hard:
k, j in 1..4). A shape's size is the diameter of its circumscribed circle, U(0.2, 0.4)*min(h, w);
centres lie in the central 70% of the frame, keep the shape inside the frame, and are at least
one size apart, so shapes never overlap. Answer `circles,squares,triangles`.
Benchmark metric: per-shape exact match, averaged over the three shapes. Training reward: mean
over shapes of max(0, 1 - |p - g| / g) for a strictly parsed answer.
"""

from __future__ import annotations

import math
import random
import re
from typing import Any, Mapping

import numpy as np
from PIL import Image, ImageDraw

from viubench.task import Clip, DonorSource, FrameRef, Parsed, Rendered, TaskSkip, TextPart
from viubench.task import Columns, Variant, VideoPart
from viubench.video import FrameProtocol

from .parsing import AFTER_INT, BEFORE_INT, pick, region

SHAPES = ("circle", "square", "triangle")
CORNERS = {"square": 4, "triangle": 3}
NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    " fifteen sixteen seventeen eighteen nineteen twenty".split())}
_COUNT = r"(\d+|" + "|".join(NUMBER_WORDS) + r")"
MAX_TRIES = 1000


def _variant(top: int, difficulty: str) -> Variant:
    return Variant(difficulty, {"max_frames": top, "max_per_frame": top, "min_gap": 8,
                                "size": (0.2, 0.4), "centre_area": 0.7},
                   f"k, j in 1..{top}: each count in 1..{top * top}")


def _pick_frames(rng: random.Random, total: int, k: int, gap: int, used: set[int]) -> list[int]:
    free = [i for i in range(total) if i not in used]
    for _ in range(MAX_TRIES):
        chosen = sorted(rng.sample(free, k))
        if all(b - a > gap for a, b in zip(chosen, chosen[1:])):
            return chosen
    raise TaskSkip(f"cannot place {k} frames more than {gap} apart in {total} frames")


def _place(rng: random.Random, j: int, width: int, height: int, shape: str,
           params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """j non-overlapping instances of `shape` on a width x height frame."""
    low, high = params["size"]
    margin = (1 - params["centre_area"]) / 2
    for _ in range(MAX_TRIES):
        placed: list[dict[str, Any]] = []
        for _ in range(j):
            size = round(rng.uniform(low, high) * min(width, height), 2)
            half = size / 2
            x_lo, x_hi = max(margin * width, half), min((1 - margin) * width, width - half)
            y_lo, y_hi = max(margin * height, half), min((1 - margin) * height, height - half)
            centre = [round(rng.uniform(x_lo, x_hi), 2), round(rng.uniform(y_lo, y_hi), 2)]
            if any(math.dist(centre, o["centre"]) < max(size, o["size"]) for o in placed):
                break
            placed.append({"centre": centre, "size": size,
                           "colour": [rng.randint(50, 255) for _ in range(3)],
                           "angle": round(rng.uniform(0, 360), 2) if shape != "circle" else 0.0})
        if len(placed) == j:
            return placed
    raise TaskSkip(f"cannot place {j} separate {shape}s on a {width}x{height} frame")


def draw_shape(canvas: ImageDraw.ImageDraw, shape: str, instance: Mapping[str, Any]) -> None:
    (x, y), radius = instance["centre"], instance["size"] / 2
    colour = tuple(instance["colour"])
    if shape == "circle":
        canvas.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
        return
    corners = CORNERS[shape]
    base = math.radians(instance["angle"]) - math.pi / 2
    canvas.polygon([(x + radius * math.cos(base + 2 * math.pi * i / corners),
                     y + radius * math.sin(base + 2 * math.pi * i / corners))
                    for i in range(corners)], fill=colour)


class ObjectCounting:
    name = "object_counting"
    version = "1"
    protocol = FrameProtocol()
    variants = {"easy": _variant(3, "easy"), "hard": _variant(4, "hard")}

    suites = {"viubench": ("easy", "hard")}
    columns = Columns("Counting", 1, {"easy": "Easy", "hard": "Hard"})

    def draw(self, rng: random.Random, clip: Clip, variant: str,
             donors: DonorSource) -> dict[str, Any]:
        params = self.variants[variant].params
        width, height = clip.size
        used: set[int] = set()
        shapes: dict[str, Any] = {}
        for shape in SHAPES:
            k = rng.randint(1, params["max_frames"])
            j = rng.randint(1, params["max_per_frame"])
            frames = _pick_frames(rng, len(clip.frames), k, params["min_gap"], used)
            used.update(frames)
            shapes[shape] = {"k": k, "j": j, "frames": frames,
                             "instances": [_place(rng, j, width, height, shape, params)
                                           for _ in frames]}
        return {"shapes": shapes}

    def render(self, clip: Clip, variant: str, draws: Mapping[str, Any],
               donors: DonorSource) -> Rendered:
        frames: list[FrameRef] = list(range(len(clip.frames)))
        for shape in SHAPES:
            spec = draws["shapes"][shape]
            for position, instances in zip(spec["frames"], spec["instances"]):
                image = Image.fromarray(clip.frames[position])
                canvas = ImageDraw.Draw(image)
                for instance in instances:
                    draw_shape(canvas, shape, instance)
                frames[position] = np.asarray(image)
        question = (
            "Filled coloured shapes (circles, squares and triangles) have been painted onto some"
            " frames of this video. Count every painted shape across the whole video. How many"
            " circles, how many squares and how many triangles are there in total? Reply with"
            " three numbers as circles,squares,triangles, for example 2,0,5."
        )
        counts = [draws["shapes"][s]["k"] * draws["shapes"][s]["j"] for s in SHAPES]
        return Rendered([VideoPart(frames, clip.sample_fps), TextPart(question)],
                        ",".join(map(str, counts)))

    def parse(self, text: str, answer: str, strict: bool = False) -> Parsed:
        found, anchored = region(text, strict)
        if strict:
            match = re.fullmatch(r"(\d+)\s*,\s*(\d+)\s*,\s*(\d+)", found)
            return Parsed([int(g) for g in match.groups()]) if match else Parsed(
                error="not three comma-separated counts")
        triples = re.findall(BEFORE_INT + r"(\d+)\s*,\s*(\d+)\s*,\s*(\d+)" + AFTER_INT, found)
        chosen = pick(triples, anchored)
        if chosen is not None:
            return Parsed([int(g) for g in chosen])
        named = [_named_count(found, shape, anchored) for shape in SHAPES]
        if None in named:
            return Parsed(error="no count for every shape (circles, squares, triangles)")
        return Parsed(named)

    def metrics(self, parsed: Parsed, answer: str) -> dict[str, float]:
        truth = [int(x) for x in answer.split(",")]
        hits = [float(p == g) for p, g in zip(parsed.value, truth)] if parsed.ok else [0.0] * 3
        return {"score": sum(hits) / 3, **{f"{s}_exact": h for s, h in zip(SHAPES, hits)},
                "all_exact": float(all(hits))}

    def reward(self, text: str, answer: str) -> float:
        parsed = self.parse(text, answer, strict=True)
        if not parsed.ok:
            return 0.0
        truth = [int(x) for x in answer.split(",")]
        return sum(max(0.0, 1 - abs(p - g) / g) for p, g in zip(parsed.value, truth)) / 3

    def random_answer(self, rng: random.Random, variant: str,
                      timeline: Mapping[str, Any]) -> str:
        """Each shape's count uniform over 1..k_max * j_max (1..9 easy, 1..16 hard)."""
        params = self.variants[variant].params
        top = params["max_frames"] * params["max_per_frame"]
        return ",".join(str(rng.randint(1, top)) for _ in SHAPES)

    def knobs(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Difficulty knobs (`viubench analyze`): shapes drawn in all, and the largest count of
        one shape kind."""
        counts = [spec["k"] * spec["j"] for spec in sample["draws"]["shapes"].values()]
        return {"total_shapes": sum(counts), "max_count": max(counts)}


def _named_count(text: str, shape: str, anchored: bool) -> int | None:
    """A count written next to the shape's name: `3 circles`, `circles: 3`, `three circles`."""
    before = re.findall(r"(?<!frame )(?<!frames )\b" + _COUNT + r"\s+(?:\w+\s+)?" + shape + r"s?\b",
                        text, re.IGNORECASE)
    after = re.findall(shape + r"s?\s*[:=]\s*" + _COUNT + r"\b", text, re.IGNORECASE)
    value = pick(before + after, anchored)
    if value is None:
        return None
    return int(value) if value.isdigit() else NUMBER_WORDS[value.lower()]


TASK = ObjectCounting()
