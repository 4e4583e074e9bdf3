"""Anomaly Grounding (VideoSSR, He et al. 2025, arXiv 2511.06281).

One continuous run of the 48-frame timeline is perturbed; the model names the run's interval in
seconds. Answer `start-end` (end exclusive, one decimal). Benchmark metric: temporal IoU (with
R@0.3/0.5/0.7). Training reward: IoU of a parsed answer, 0 if parsing failed.

The run follows the authors' generator (pretext_tasks/grounding.py): t = randint(8, 16) frames
starting at start = randint(0, 48 - t). The frame families and their constants are theirs
(`tasks/perturbations.py`); the zoom scales and noise strengths are drawn afresh for every frame
of the run, as the authors' per-frame functions draw them. The run-level families:

* `stutter`: n holds, n drawn from {2, 3, 4, 5}, taken at run positions
  int(linspace(0, t - 1, n)); hold i is shown base + 1 times for the first t % n holds and base
  times for the rest, base = t // n, so the run keeps its t frames.
* `shuffle`: a uniformly random order of the run other than the original one (the authors
  shuffle freely; an unchanged order would be no anomaly, so it is redrawn). `shuffle_derange`
  (ours) also moves every frame away from its place.
* `swap`: the same timeline positions of another video of the build, at this video's size.

Two playback-speed families of the paper's Table 8, built by us (not in the `viubench` suite):

* `slow_motion`: the run's t source frames are each shown twice: 2t shown frames, a video of
  48 + t frames.
* `fast_forward`: a run of 2t source frames (start drawn so that it fits) is shown as every
  second frame: t shown frames, a video of 48 - t frames.

As the paper notes for them, times refer to the video as shown: the answer is the shown run's
interval on the shown frames at the sample's fps.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Any, Callable, Mapping

import numpy as np

from viubench.answers import LENIENT, STRICT, VIDEOSSR
from viubench.stats import interval_iou
from viubench.task import (Clip, Columns, DonorSource, FrameRef, Parsed, Rendered, TaskSkip,
                           TextPart, Variant, VideoPart)
from viubench.video import FrameProtocol

from . import parsing, prompts
from . import perturbations as pt

SHUFFLED = ("the frames are put in a random order, so events happen out of sequence and the"
            " action looks jumbled and illogical")

# family -> what the question says happens during the run (named as the paper names it)
WORDS = {
    "grayscale": "the video turns black and white",
    "invert": "the colours of the video are inverted",
    "channel_swap": "the red and blue colour channels of the video are swapped",
    "rotate90": "the video is turned 90 degrees clockwise",
    "rotate180": "the video is turned 180 degrees",
    "rotate270": "the video is turned 270 degrees clockwise",
    "noise": "Gaussian noise is added to the video",
    "zoom_in": "the video is zoomed in",
    "zoom_out": "the video is zoomed out",
    "mirror": "the video is mirrored horizontally",
    "blur": "the video goes blurry, out of focus",
    "saturation": "the colours of the video turn oversaturated and unnaturally vivid",
    "shuffle": SHUFFLED,
    "shuffle_derange": SHUFFLED,
    "swap": "the footage is replaced by a clip from a different video",
    "stutter": ("the video stutters: rather than playing smoothly, it keeps freezing on a single"
                " frame and then jumping ahead to a later one"),
    "slow_motion": "the video plays in slow motion",
    "fast_forward": "the video is fast-forwarded, playing faster than normal speed",
}

# Families changing each frame of the run on its own.
FRAME_MAPS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "grayscale": pt.grayscale, "invert": pt.invert, "channel_swap": pt.channel_swap,
    "rotate90": lambda f: pt.rotate(f, 90), "rotate180": lambda f: pt.rotate(f, 180),
    "rotate270": lambda f: pt.rotate(f, 270), "mirror": pt.mirror,
    "blur": lambda f: pt.blur(f, 2.0), "saturation": lambda f: pt.saturate(f, 2.0),
}
# Zoom families: (function of frame and scale, range the scale of each frame is drawn from).
ZOOMS = {"zoom_in": (pt.zoom_in, (1.3, 1.5)), "zoom_out": (pt.zoom_out, (1.2, 1.4))}
NOISE_SIGMA = (35.0, 70.0)
STUTTER_HOLDS = (2, 3, 4, 5)

# Run geometry: the run takes `source_run` * t source frames and shows `shown_run` * t frames.
SEGMENT = {"min_len": 8, "max_len": 16, "source_run": 1, "shown_run": 1}
SPEEDS = {"slow_motion": {"source_run": 1, "shown_run": 2},
          "fast_forward": {"source_run": 2, "shown_run": 1}}

VIUBENCH_FAMILIES = ("channel_swap", "rotate180", "zoom_out", "mirror", "shuffle")


def _params(family: str) -> dict[str, int]:
    return {**SEGMENT, **SPEEDS.get(family, {})}


def _non_identity_order(rng: random.Random, n: int, derange: bool) -> list[int]:
    """A uniformly random order of range(n) other than the identity; with `derange`, one that
    leaves no item in its place."""
    while True:
        order = list(range(n))
        rng.shuffle(order)
        fixed = [order[i] == i for i in range(n)]
        if not all(fixed) and not (derange and any(fixed)):
            return order


def _donor(rng: random.Random, clip: Clip, donors: DonorSource) -> dict[str, str]:
    path, donor = donors.pick(rng, clip, "swap")
    return {"path": path, "hash": donor.video_hash}


def _seconds(start: float, end: float, fps: float) -> str:
    return f"{start / fps:.1f}-{end / fps:.1f}"


def _truth(answer: str) -> tuple[float, float]:
    """The true interval of an answer string `start-end` (what `render` writes)."""
    start, end = answer.split("-")
    return float(start), float(end)


def _iou(parsed: Parsed, answer: str) -> float:
    return interval_iou(parsed.value, _truth(answer)) if parsed.ok else 0.0


def stutter_offsets(length: int, holds: int) -> list[int]:
    """Run offsets shown in place of a run of `length` frames stuttering on `holds` holds."""
    positions = np.linspace(0, length - 1, holds).astype(int)
    base, extra = divmod(length, holds)
    return [int(p) for i, p in enumerate(positions) for _ in range(base + (i < extra))]


class AnomalyGrounding:
    name = "anomaly_grounding"
    version = "2"
    protocol = FrameProtocol()
    variants = {family: Variant("standard", _params(family), words)
                for family, words in WORDS.items()}
    reward_policies = (STRICT, VIDEOSSR)

    suites = {"viubench": VIUBENCH_FAMILIES}
    columns = Columns("Grounding", 2, {"channel_swap": "Channel", "rotate180": "Rotate",
                                       "zoom_out": "ZoomOut", "mirror": "Mirror",
                                       "shuffle": "Shuffle"})

    def draw(self, rng: random.Random, clip: Clip, variant: str,
             donors: DonorSource) -> dict[str, Any]:
        params = self.variants[variant].params
        length = rng.randint(params["min_len"], params["max_len"])
        start = rng.randint(0, len(clip.frames) - params["source_run"] * length)
        draws: dict[str, Any] = {"family": variant, "length": length, "start": start}
        if variant == "noise":
            draws["sigmas"] = [round(rng.uniform(*NOISE_SIGMA), 3) for _ in range(length)]
            draws["noise_seed"] = rng.getrandbits(63)
        elif variant in ZOOMS:
            draws["scales"] = [round(rng.uniform(*ZOOMS[variant][1]), 4) for _ in range(length)]
        elif variant in ("shuffle", "shuffle_derange"):
            draws["order"] = _non_identity_order(rng, length, variant == "shuffle_derange")
        elif variant == "stutter":
            draws["holds"] = rng.choice(STUTTER_HOLDS)
        elif variant == "swap":
            draws["donor"] = _donor(rng, clip, donors)
        return draws

    def render(self, clip: Clip, variant: str, draws: Mapping[str, Any],
               donors: DonorSource) -> Rendered:
        params = self.variants[draws["family"]].params
        start, length = draws["start"], draws["length"]
        end = start + params["source_run"] * length
        frames: list[FrameRef] = [*range(start), *_perturb(clip, draws, donors),
                                  *range(end, len(clip.frames))]
        question = (
            f"In one stretch of this video, {WORDS[draws['family']]}. When does that stretch"
            " start and end? Give only its start and end times in seconds, written as start-end"
            " (for example 14.5-26.2)."
        )
        answer = _seconds(start, start + params["shown_run"] * length, clip.sample_fps)
        return Rendered([VideoPart(frames, clip.sample_fps), TextPart(question)], answer,
                        system=prompts.SYSTEM, prompt_set=prompts.PROMPT_SET)

    def parse(self, text: str, variant: str, policy: str = LENIENT) -> Parsed:
        return parsing.interval(text, policy)

    def metrics(self, parsed: Parsed, answer: str) -> dict[str, float]:
        iou = _iou(parsed, answer)
        return {"score": iou, "iou": iou, "r@0.3": float(iou >= 0.3), "r@0.5": float(iou >= 0.5),
                "r@0.7": float(iou >= 0.7)}

    def reward(self, parsed: Parsed, answer: str) -> float:
        """IoU with the true interval, 0 if the reply did not parse."""
        return _iou(parsed, answer)

    def random_answer(self, rng: random.Random, variant: str,
                      timeline: Mapping[str, Any]) -> str:
        """An interval drawn like the generator draws the true one: a length uniform over the
        variant's run lengths, then a start uniform over the positions where the run fits."""
        params = self.variants[variant].params
        length = rng.randint(params["min_len"], params["max_len"])
        start = rng.randint(0, len(timeline["indices"]) - params["source_run"] * length)
        return _seconds(start, start + params["shown_run"] * length, timeline["sample_fps"])

    def whole_answer(self, variant: str, timeline: Mapping[str, Any]) -> str:
        """From the first to the last sampled frame, `0.0-(n - 1) / fps` (n = 48 sampled
        frames; the speed families' shown video is 48 +- t frames long, unknown before the
        draw). Over the 48-frame families' runs its expected IoU is 25.46%."""
        frames = len(timeline["indices"])
        return _seconds(0, frames - 1, timeline["sample_fps"])

    def prior_answer(self, variant: str, timeline: Mapping[str, Any]) -> str:
        """The fixed interval [a, b) on the shown frame grid of highest exact expected IoU over
        the variant's (t, start) distribution: frames 10-38 for the 48-frame families (30.60%),
        13-47 for slow_motion, 7-27 for fast_forward."""
        params = self.variants[variant].params
        a, b = best_fixed_interval(len(timeline["indices"]), params["min_len"],
                                   params["max_len"], params["source_run"], params["shown_run"])
        return _seconds(a, b, timeline["sample_fps"])

    def knobs(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Difficulty knobs (`viubench analyze`): the anomalous run's length in shown frames
        and its perturbation family."""
        draws = sample["draws"]
        shown = self.variants[draws["family"]].params["shown_run"] * draws["length"]
        return {"segment_length": shown, "family": draws["family"]}


def run_outcomes(frames: int, min_len: int, max_len: int, source_run: int,
                 shown_run: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, ends, probabilities) of every shown run interval [start, end) the generator can
    draw: t uniform over min_len..max_len, then start uniform over 0..frames - source_run * t."""
    starts: list[int] = []
    ends: list[int] = []
    weights: list[float] = []
    lengths = range(min_len, max_len + 1)
    for t in lengths:
        places = frames - source_run * t + 1
        starts += range(places)
        ends += range(shown_run * t, shown_run * t + places)
        weights += [1.0 / (len(lengths) * places)] * places
    return np.array(starts), np.array(ends), np.array(weights)


@lru_cache(maxsize=None)
def best_fixed_interval(frames: int, min_len: int, max_len: int, source_run: int,
                        shown_run: int) -> tuple[int, int]:
    """The frame interval [a, b), 0 <= a < b <= longest shown video, of highest expected IoU
    with the generator's shown run (the first one in (a, b) order on a tie)."""
    starts, ends, weights = run_outcomes(frames, min_len, max_len, source_run, shown_run)
    grid = frames + max(0, shown_run - source_run) * max_len
    a, b = np.triu_indices(grid + 1, k=1)
    inter = np.clip(np.minimum(b[:, None], ends) - np.maximum(a[:, None], starts), 0, None)
    union = np.maximum(b[:, None], ends) - np.minimum(a[:, None], starts)
    expected = (inter / union) @ weights
    best = int(np.argmax(expected))
    return int(a[best]), int(b[best])


def _perturb(clip: Clip, draws: Mapping[str, Any], donors: DonorSource) -> list[FrameRef]:
    """The frames shown in place of the run's source frames."""
    start, length, family = draws["start"], draws["length"], draws["family"]
    run = range(start, start + length)
    if family in ("shuffle", "shuffle_derange"):
        return [start + offset for offset in draws["order"]]
    if family == "stutter":
        return [start + offset for offset in stutter_offsets(length, draws["holds"])]
    if family == "slow_motion":
        return [position for position in run for _ in range(2)]
    if family == "fast_forward":
        return list(range(start, start + 2 * length, 2))
    if family == "swap":
        donor = donors.load(draws["donor"]["path"], clip.size)
        if donor.video_hash != draws["donor"]["hash"]:
            raise TaskSkip(f"donor video {draws['donor']['path']} changed since the draw")
        return list(donor.frames[start:start + length])
    if family == "noise":
        return list(pt.add_noise(clip.frames[start:start + length], draws["sigmas"],
                                 draws["noise_seed"]))
    if family in ZOOMS:
        zoom = ZOOMS[family][0]
        return [zoom(clip.frames[i], scale) for i, scale in zip(run, draws["scales"])]
    return [FRAME_MAPS[family](clip.frames[i]) for i in run]


TASK = AnomalyGrounding()
