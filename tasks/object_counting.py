"""Object Counting (VideoSSR, He et al. 2025, arXiv 2511.06281), built by the authors' rules.

Filled circles, squares and triangles are painted onto frames of the 48-frame timeline; the
answer is how many of each kind were painted, `circles,squares,triangles`.

Counts (the paper's Eq. 1 as the authors' script draws it), shape by shape in the order circle,
square, triangle:

* k = randint(1, max_frames) frames are chosen: the frames still free are shuffled and walked in
  that order, a frame is kept when it is more than `min_gap` (8) positions away from every frame
  already kept for this shape, and the walk stops at k. Kept frames are no longer free, so a frame
  holds one kind of shape only.
* each kept frame gets its own instance count randint(1, max_per_frame); the shape's answer is
  the sum over its k frames (easy: k and counts up to 3, hard: up to 4).

Deviation: the authors' walk can run out of frames with fewer than k kept (about 0.16% of a
hard shape's draws, 0.46% of hard samples), which makes that answer smaller than drawn; we shuffle
again until exactly k are kept (TaskSkip after `FRAME_TRIES` shuffles), so k stays uniform and
`count_pmf` is exact.

Geometry, colours and placement: `tasks/counting_geometry.py`. The `easy`/`hard` variants use the
authors' painter, which lets shapes on a frame overlap and sometimes wholly hide earlier ones
(hidden instances still count, as in the paper; the draws record how many per shape under
`hidden`). `easy_clean`/`hard_clean` use our painter that keeps every shape separate and inside
the frame.

Benchmark metric: per-shape exact match, averaged over the three shapes. Training reward: mean
over shapes of max(0, 1 - |p - g| / g) of a parsed answer, 0 if it did not parse.
"""

from __future__ import annotations

import random
from fractions import Fraction
from typing import Any, Mapping

from viubench.answers import LENIENT, STRICT, VIDEOSSR
from viubench.task import Clip, Columns, DonorSource, FrameRef, Parsed, Rendered, TaskSkip
from viubench.task import TextPart, Variant, VideoPart
from viubench.video import FrameProtocol

from . import parsing, prompts
from .counting_geometry import PLACERS, hidden_flags, instance_mask, paint

SHAPES = ("circle", "square", "triangle")
MIN_GAP = 8
FRAME_TRIES = 1000
QUESTION = (
    "How many circles, squares and triangles appear in this video? The shapes can be of any"
    " colour and turned to any angle. A shape can appear on a single frame or on several frames,"
    " and one frame can show more than one shape. Give the three totals separated by commas in"
    " the order circles,squares,triangles: for example, 3 circles, 1 square and 4 triangles is"
    " written 3,1,4."
)


def _variant(top: int, difficulty: str, painter: str) -> Variant:
    overlap = ("the authors' painter: shapes on a frame may overlap or hide one another"
               if painter == "videossr" else
               "our painter: shapes on a frame never overlap and lie wholly inside it")
    return Variant(difficulty, {"max_frames": top, "max_per_frame": top, "min_gap": MIN_GAP,
                                "painter": painter},
                   f"each shape on 1..{top} frames with 1..{top} per frame (count 1..{top * top});"
                   f" {overlap}")


def pick_frames(rng: random.Random, free: list[int], k: int, gap: int) -> list[int]:
    """k frames of `free`, pairwise more than `gap` apart, by the authors' shuffled walk (shuffled
    again until the walk keeps k), in the order they were kept."""
    for _ in range(FRAME_TRIES):
        order = list(free)
        rng.shuffle(order)
        kept: list[int] = []
        for position in order:
            if all(abs(position - other) > gap for other in kept):
                kept.append(position)
                if len(kept) == k:
                    return kept
    raise TaskSkip(f"cannot keep {k} frames more than {gap} apart among {len(free)} free frames")


def draw_counts(rng: random.Random, total_frames: int,
                params: Mapping[str, Any]) -> dict[str, list[tuple[int, int]]]:
    """Eq. 1: for each shape in order, k = randint(1, max_frames) frames (a frame holds one kind
    only) and an instance count randint(1, max_per_frame) for each; (position, count) pairs
    sorted by position."""
    free = list(range(total_frames))
    chosen: dict[str, list[tuple[int, int]]] = {}
    for shape in SHAPES:
        k = rng.randint(1, params["max_frames"])
        kept = pick_frames(rng, free, k, params["min_gap"])
        free = [position for position in free if position not in kept]
        counts = [rng.randint(1, params["max_per_frame"]) for _ in kept]
        chosen[shape] = sorted(zip(kept, counts))
    return chosen


def answer_counts(draws: Mapping[str, Any]) -> list[int]:
    """circles, squares, triangles: each the sum of its frames' instance counts."""
    return [sum(frame["count"] for frame in draws["shapes"][shape]["frames"])
            for shape in SHAPES]


def count_pmf(max_frames: int, max_per_frame: int) -> dict[int, Fraction]:
    """Exact distribution of one shape's answer: k uniform in 1..max_frames, then the sum of k
    independent counts, each uniform in 1..max_per_frame."""
    step = Fraction(1, max_per_frame)
    partial = {0: Fraction(1)}
    total: dict[int, Fraction] = {}
    for _ in range(max_frames):
        summed: dict[int, Fraction] = {}
        for value, chance in partial.items():
            for count in range(1, max_per_frame + 1):
                summed[value + count] = summed.get(value + count, Fraction(0)) + chance * step
        partial = summed
        for value, chance in partial.items():
            total[value] = total.get(value, Fraction(0)) + chance / max_frames
    return dict(sorted(total.items()))


def modal_count(max_frames: int, max_per_frame: int) -> int:
    """The most likely answer for one shape (the smallest on a tie)."""
    pmf = count_pmf(max_frames, max_per_frame)
    return max(pmf, key=lambda value: (pmf[value], -value))


class ObjectCounting:
    name = "object_counting"
    version = "2"
    protocol = FrameProtocol()
    variants = {"easy": _variant(3, "easy", "videossr"), "hard": _variant(4, "hard", "videossr"),
                "easy_clean": _variant(3, "easy", "clean"),
                "hard_clean": _variant(4, "hard", "clean")}
    suites = {"viubench": ("easy", "hard")}
    columns = Columns("Counting", 1, {"easy": "Easy", "hard": "Hard",
                                      "easy_clean": "Easy clean", "hard_clean": "Hard clean"})
    reward_policies = (STRICT, VIDEOSSR)

    def draw(self, rng: random.Random, clip: Clip, variant: str,
             donors: DonorSource) -> dict[str, Any]:
        params = self.variants[variant].params
        width, height = clip.size
        place = PLACERS[params["painter"]]
        shapes: dict[str, Any] = {}
        for shape, chosen in draw_counts(rng, len(clip.frames), params).items():
            frames, hidden = [], 0
            for position, count in chosen:
                instances = place(rng, shape, count, width, height)
                masks = [instance_mask(shape, instance, width, height) for instance in instances]
                hidden += sum(hidden_flags(masks))
                frames.append({"position": position, "count": count, "instances": instances})
            shapes[shape] = {"frames": frames, "hidden": hidden}
        return {"shapes": shapes}

    def render(self, clip: Clip, variant: str, draws: Mapping[str, Any],
               donors: DonorSource) -> Rendered:
        frames: list[FrameRef] = list(range(len(clip.frames)))
        for shape in SHAPES:
            for frame in draws["shapes"][shape]["frames"]:
                position = frame["position"]
                frames[position] = paint(clip.frames[position], shape, frame["instances"])
        return Rendered([VideoPart(frames, clip.sample_fps), TextPart(QUESTION)],
                        ",".join(map(str, answer_counts(draws))),
                        system=prompts.SYSTEM, prompt_set=prompts.PROMPT_SET)

    def parse(self, text: str, variant: str, policy: str = LENIENT) -> Parsed:
        return parsing.counts(text, policy)

    def metrics(self, parsed: Parsed, answer: str) -> dict[str, float]:
        """Per-shape exact match (and its mean, the score) and whether all three are exact."""
        truth = [int(x) for x in answer.split(",")]
        hits = [float(p == g) for p, g in zip(parsed.value, truth)] if parsed.ok else [0.0] * 3
        return {"score": sum(hits) / 3, **{f"{s}_exact": h for s, h in zip(SHAPES, hits)},
                "all_exact": float(all(hits))}

    def reward(self, parsed: Parsed, answer: str) -> float:
        """Mean over shapes of max(0, 1 - |p - g| / g); 0 for a failed parse."""
        if not parsed.ok:
            return 0.0
        truth = [int(x) for x in answer.split(",")]
        return sum(_closeness(p, g) for p, g in zip(parsed.value, truth)) / 3

    def random_answer(self, rng: random.Random, variant: str,
                      timeline: Mapping[str, Any]) -> str:
        """Each shape's count uniform over its support 1..max_frames * max_per_frame (1..9 easy,
        1..16 hard)."""
        params = self.variants[variant].params
        top = params["max_frames"] * params["max_per_frame"]
        return ",".join(str(rng.randint(1, top)) for _ in SHAPES)

    def prior_answer(self, variant: str, timeline: Mapping[str, Any]) -> str:
        """Each shape's modal total under `count_pmf`: 3,3,3 easy (P = 16/81 per shape), 4,4,4
        hard (P = 125/1024)."""
        params = self.variants[variant].params
        mode = modal_count(params["max_frames"], params["max_per_frame"])
        return ",".join([str(mode)] * len(SHAPES))

    def knobs(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Difficulty knobs (`viubench analyze`): shapes painted in all, the largest count of one
        kind, and how many painted shapes are wholly covered by later ones."""
        counts = answer_counts(sample["draws"])
        hidden = sum(spec["hidden"] for spec in sample["draws"]["shapes"].values())
        return {"total_shapes": sum(counts), "max_count": max(counts), "hidden_shapes": hidden}


def _closeness(predicted: int, true: int) -> float:
    """max(0, 1 - |p - g| / g), without turning a huge integer into a float (it would overflow;
    the authors' float reading gives such a count 0)."""
    error = abs(predicted - true)
    return 0.0 if error >= true else 1 - error / true


TASK = ObjectCounting()
