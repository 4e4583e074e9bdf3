"""Temporal Jigsaw (VideoSSR, He et al. 2025, arXiv 2511.06281).

The 48-frame timeline is cut into n contiguous clips (easy n = 6, hard n = 8), shown as separate
videos labelled Clip 1..n in a shuffled (never identity) order. Answer: the shown labels in true
chronological order, e.g. `341562` (the clip shown third is the true beginning). The `_trim`
variants drop 10% of each clip's frames at both ends (at least one) so borders carry no
continuity cue. Benchmark metric: exact match. Training reward: 1 - footrule / floor(n^2 / 2)
for a strictly parsed permutation, else 0.
"""

from __future__ import annotations

import random
import re
from typing import Any, Mapping

from viubench.scoring import footrule_score
from viubench.task import (Clip, Columns, DonorSource, Parsed, Part, Rendered, TextPart,
                           Variant, VideoPart)
from viubench.video import FrameProtocol

from .parsing import label_lists, pick, region


def _variant(clips: int, trim: float, difficulty: str) -> Variant:
    words = f"{clips} clips" + (f", {trim:.0%} trimmed at both ends of every clip" if trim else "")
    return Variant(difficulty, {"clips": clips, "trim": trim}, words)


def clip_bounds(total: int, clips: int, trim: float) -> list[tuple[int, int]]:
    """[start, end) of each clip in chronological order, after trimming."""
    bounds = []
    for i in range(clips):
        start, end = (i * total) // clips, ((i + 1) * total) // clips
        cut = max(1, round(trim * (end - start))) if trim else 0
        bounds.append((start + cut, end - cut))
    return bounds


class TemporalJigsaw:
    name = "temporal_jigsaw"
    version = "1"
    protocol = FrameProtocol()
    variants = {"easy": _variant(6, 0.0, "easy"), "hard": _variant(8, 0.0, "hard"),
                "easy_trim": _variant(6, 0.1, "easy"), "hard_trim": _variant(8, 0.1, "hard")}

    suites = {"viubench": ("easy", "hard")}
    columns = Columns("Jigsaw", 3, {"easy": "Easy", "hard": "Hard", "easy_trim": "Easy trim",
                                    "hard_trim": "Hard trim"})

    def draw(self, rng: random.Random, clip: Clip, variant: str,
             donors: DonorSource) -> dict[str, Any]:
        params = self.variants[variant].params
        clips = params["clips"]
        shown = list(range(clips))
        while shown == sorted(shown):
            rng.shuffle(shown)
        return {"clips": clips, "trim": params["trim"], "shown": shown}

    def render(self, clip: Clip, variant: str, draws: Mapping[str, Any],
               donors: DonorSource) -> Rendered:
        clips, shown = draws["clips"], draws["shown"]
        bounds = clip_bounds(len(clip.frames), clips, draws["trim"])
        parts: list[Part] = [TextPart(
            f"A video was cut into {clips} consecutive clips, which are shown below in a"
            " shuffled order."
        )]
        for label, true_index in enumerate(shown, start=1):
            start, end = bounds[true_index]
            frames = list(range(start, end))
            parts += [TextPart(f"Clip {label}:"), VideoPart(frames, clip.sample_fps)]
        parts.append(TextPart(
            f"Put the clips back in their original chronological order. Reply with the {clips}"
            f" clip numbers from first to last with no separators, for example"
            f" {''.join(str(i) for i in range(clips, 0, -1))}."
        ))
        answer = "".join(str(shown.index(i) + 1) for i in range(clips))
        return Rendered(parts, answer)

    def parse(self, text: str, answer: str, strict: bool = False) -> Parsed:
        """Clip labels in the reply; `answer` only tells how many labels to expect."""
        found, anchored = region(text, strict)
        count = len(answer)
        if strict:
            compact = re.sub(r"[\s,]", "", found)
            if not re.fullmatch(r"\d{%d}" % count, compact):
                return Parsed(error=f"not {count} clip numbers")
            return Parsed([int(c) for c in compact])
        chosen = pick(label_lists(found, count), anchored)
        return Parsed(chosen) if chosen else Parsed(error=f"no list of {count} clip numbers found")

    def metrics(self, parsed: Parsed, answer: str) -> dict[str, float]:
        truth = [int(c) for c in answer]
        exact = float(parsed.ok and parsed.value == truth)
        order = footrule_score(parsed.value, truth) if _is_permutation(parsed, truth) else 0.0
        return {"score": exact, "exact": exact, "order": order}

    def reward(self, text: str, answer: str) -> float:
        truth = [int(c) for c in answer]
        parsed = self.parse(text, answer, strict=True)
        return footrule_score(parsed.value, truth) if _is_permutation(parsed, truth) else 0.0

    def random_answer(self, rng: random.Random, variant: str,
                      timeline: Mapping[str, Any]) -> str:
        """A uniformly random ordering of the n clip labels (the identity included)."""
        labels = list(range(1, self.variants[variant].params["clips"] + 1))
        rng.shuffle(labels)
        return "".join(map(str, labels))

    def knobs(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Difficulty knobs (`viubench analyze`): number of clips, and the fraction trimmed at
        both ends of each clip."""
        return {"clips": sample["draws"]["clips"], "trim": sample["draws"]["trim"]}


def _is_permutation(parsed: Parsed, truth: list[int]) -> bool:
    return parsed.ok and sorted(parsed.value) == sorted(truth)
TASK = TemporalJigsaw()
