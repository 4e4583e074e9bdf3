"""Anomaly Grounding (VideoSSR, He et al. 2025, arXiv 2511.06281).

A continuous run of t frames of the 48-frame timeline is perturbed with one of 15 families; the
model names the run's interval in seconds. Answer `start-end` (end exclusive, one decimal).
Benchmark metric: temporal IoU (with R@0.3/0.5/0.7). Training reward: IoU of a strictly parsed
answer, 0 otherwise.

Notes on the families: `shuffle` uses a derangement (no frame stays in place, so every frame of
the run changes); `stutter` splits the run into n holds whose first frame is the real frame at
that position (a freeze), so n positions of the run look unchanged; `swap` borrows the same
timeline positions of another video of the build, resized to this video's frame size.
"""

from __future__ import annotations

import random
import re
from typing import Any, Callable, Mapping

import numpy as np

from viubench.scoring import interval_iou
from viubench.task import (Clip, Columns, DonorSource, FrameRef, Parsed, Rendered, TaskSkip,
                           TextPart, Variant, VideoPart)
from viubench.video import FrameProtocol

from . import perturbations as pt
from .parsing import NUMBER, pick, region

FrameMap = Callable[[np.ndarray, Mapping[str, Any]], np.ndarray]

# family -> (what the question says happened, per-frame function or None for whole-run families)
FAMILIES: dict[str, tuple[str, FrameMap | None]] = {
    "grayscale": ("the colour is gone: the frames are shown in grayscale",
                  lambda f, d: pt.grayscale(f)),
    "invert": ("the colours are inverted, like a photographic negative",
               lambda f, d: pt.invert(f)),
    "channel_swap": ("the red and blue colour channels are swapped",
                     lambda f, d: pt.channel_swap(f)),
    "rotate90": ("the picture is turned on its side (rotated by 90 degrees)",
                 lambda f, d: pt.rotate(f, 90)),
    "rotate180": ("the picture is upside down (rotated by 180 degrees)",
                  lambda f, d: pt.rotate(f, 180)),
    "rotate270": ("the picture is turned on its side (rotated by 270 degrees)",
                  lambda f, d: pt.rotate(f, 270)),
    "noise": ("heavy random noise is added to the picture", None),
    "zoom_in": ("the picture is suddenly zoomed in", lambda f, d: pt.zoom_in(f, d["zoom"])),
    "zoom_out": ("the picture is shrunk and surrounded by a black border",
                 lambda f, d: pt.zoom_out(f, d["zoom"])),
    "mirror": ("the picture is mirrored left to right", lambda f, d: pt.mirror(f)),
    "blur": ("the picture is blurred", lambda f, d: pt.blur(f, 2.0)),
    "saturation": ("the colours are strongly over-saturated", lambda f, d: pt.saturate(f, 2.0)),
    "shuffle": ("the frames play in a scrambled order", None),
    "swap": ("the footage is replaced by footage from a different video", None),
    "stutter": ("the video stutters: a few frames freeze and are held in place of the motion",
                None),
}

VIUBENCH_FAMILIES = ("channel_swap", "rotate180", "zoom_out", "mirror", "shuffle")
SEGMENT = {"min_len": 8, "max_len": 16}


def _derangement(rng: random.Random, n: int) -> list[int]:
    while True:
        order = list(range(n))
        rng.shuffle(order)
        if all(order[i] != i for i in range(n)):
            return order


def _donor(rng: random.Random, clip: Clip, donors: DonorSource) -> dict[str, str]:
    path, donor = donors.pick(rng, clip, "swap")
    return {"path": path, "hash": donor.video_hash}


class AnomalyGrounding:
    name = "anomaly_grounding"
    version = "1"
    protocol = FrameProtocol()
    variants = {family: Variant("standard", dict(SEGMENT), words) for family, (words, _) in
                FAMILIES.items()}

    suites = {"viubench": VIUBENCH_FAMILIES}
    columns = Columns("Grounding", 2, {"channel_swap": "Channel", "rotate180": "Rotate",
                                       "zoom_out": "ZoomOut", "mirror": "Mirror",
                                       "shuffle": "Shuffle"})

    def draw(self, rng: random.Random, clip: Clip, variant: str,
             donors: DonorSource) -> dict[str, Any]:
        params = self.variants[variant].params
        length = rng.randint(params["min_len"], params["max_len"])
        draws: dict[str, Any] = {"family": variant, "length": length,
                                 "start": rng.randint(0, len(clip.frames) - length)}
        if variant == "noise":
            draws.update(sigma=round(rng.uniform(35, 70), 3), noise_seed=rng.getrandbits(63))
        elif variant == "zoom_in":
            draws["zoom"] = round(rng.uniform(1.3, 1.5), 4)
        elif variant == "zoom_out":
            draws["zoom"] = round(rng.uniform(1.2, 1.4), 4)
        elif variant == "shuffle":
            draws["order"] = _derangement(rng, length)
        elif variant == "stutter":
            draws["holds"] = rng.randint(2, 5)
        elif variant == "swap":
            draws["donor"] = _donor(rng, clip, donors)
        return draws

    def render(self, clip: Clip, variant: str, draws: Mapping[str, Any],
               donors: DonorSource) -> Rendered:
        start, length = draws["start"], draws["length"]
        frames: list[FrameRef] = list(range(len(clip.frames)))
        frames[start:start + length] = _perturb(clip, draws, donors)
        fps = clip.sample_fps
        words = FAMILIES[draws["family"]][0]
        question = (
            f"This video lasts {len(clip.frames) / fps:.1f} seconds. During one continuous"
            f" stretch of it, {words}. When does that stretch begin and end? Reply with the"
            " interval in seconds as start-end with one decimal, for example 1.5-3.0."
        )
        answer = f"{start / fps:.1f}-{(start + length) / fps:.1f}"
        return Rendered([VideoPart(frames, fps), TextPart(question)], answer)

    def parse(self, text: str, answer: str, strict: bool = False) -> Parsed:
        found, anchored = region(text, strict)
        if strict:
            match = re.fullmatch(rf"({NUMBER})\s*-\s*({NUMBER})", found)
            spans = [match.groups()] if match else []
        else:
            spans = re.findall(rf"({NUMBER})\s*(?:s|sec|seconds)?\s*(?:-|–|—|to|until|and)\s*"
                               rf"({NUMBER})", found, re.IGNORECASE)
        chosen = pick(spans, anchored)
        if chosen is None:
            return Parsed(error="no start-end interval found")
        start, end = float(chosen[0]), float(chosen[1])
        if end < start:
            return Parsed(error=f"interval ends before it starts ({start}-{end})")
        return Parsed((start, end))

    def metrics(self, parsed: Parsed, answer: str) -> dict[str, float]:
        true = self.parse(answer, answer, strict=True).value
        iou = interval_iou(parsed.value, true) if parsed.ok else 0.0
        return {"score": iou, "iou": iou, "r@0.3": float(iou >= 0.3), "r@0.5": float(iou >= 0.5),
                "r@0.7": float(iou >= 0.7)}

    def reward(self, text: str, answer: str) -> float:
        return self.metrics(self.parse(text, answer, strict=True), answer)["iou"]

    def random_answer(self, rng: random.Random, variant: str,
                      timeline: Mapping[str, Any]) -> str:
        """An interval drawn like the generator draws the true one: a length uniform over the
        variant's segment lengths, then a start uniform over the positions where it fits."""
        params = self.variants[variant].params
        frames, fps = len(timeline["indices"]), timeline["sample_fps"]
        length = rng.randint(params["min_len"], params["max_len"])
        start = rng.randint(0, frames - length)
        return f"{start / fps:.1f}-{(start + length) / fps:.1f}"

    def knobs(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Difficulty knobs (`viubench analyze`): the anomalous run's length in frames and its
        perturbation family."""
        draws = sample["draws"]
        return {"segment_length": draws["length"], "family": draws["family"]}


def _perturb(clip: Clip, draws: Mapping[str, Any], donors: DonorSource) -> list[FrameRef]:
    """The frames shown in place of the run [start, start + length)."""
    start, length, family = draws["start"], draws["length"], draws["family"]
    run = range(start, start + length)
    if family == "shuffle":
        return [start + offset for offset in draws["order"]]
    if family == "stutter":
        holds = draws["holds"]
        firsts = [start + (i * length) // holds for i in range(holds)]
        return [max(f for f in firsts if f <= position) for position in run]
    if family == "swap":
        donor = donors.load(draws["donor"]["path"], clip.size)
        if donor.video_hash != draws["donor"]["hash"]:
            raise TaskSkip(f"donor video {draws['donor']['path']} changed since the draw")
        return list(donor.frames[start:start + length])
    if family == "noise":
        return list(pt.add_noise(clip.frames[start:start + length], draws["sigma"],
                                 draws["noise_seed"]))
    frame_map = FAMILIES[family][1]
    assert frame_map is not None
    return [frame_map(clip.frames[i], draws) for i in run]


TASK = AnomalyGrounding()
