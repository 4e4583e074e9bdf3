"""Temporal Jigsaw (VideoSSR, He et al. 2025, arXiv 2511.06281).

The 48-frame timeline is cut into n contiguous clips (easy n = 6, hard n = 8), shown as separate
videos labelled Clip 1..n in a shuffled (never identity) order, then the question (the paper's
layout: clips first). Answer: the shown labels in true chronological order, e.g. `341562` (the
clip shown third is the true beginning); the question's examples are the paper's, 341562 and
51827463, both possible answers. The `_trim`
variants drop 10% of each clip's frames at both ends (at least one) so borders carry no
continuity cue. Benchmark metric: exact match. Training reward: 1 - footrule / floor(n^2 / 2)
for a permutation parsed under a reward policy (`strict`, or `videossr`: the authors' rule), else 0.
"""

from __future__ import annotations

import random
from typing import Any, Mapping

from viubench.stats import footrule_score
from viubench.task import (Clip, Columns, DonorSource, Parsed, Part, Rendered, TextPart,
                           Variant, VideoPart)
from viubench.video import FrameProtocol

from viubench.answers import LENIENT, STRICT, VIDEOSSR

from . import parsing, prompts

EXAMPLES = {6: "341562", 8: "51827463"}   # the paper's examples


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
    version = "2"
    protocol = FrameProtocol()
    variants = {"easy": _variant(6, 0.0, "easy"), "hard": _variant(8, 0.0, "hard"),
                "easy_trim": _variant(6, 0.1, "easy"), "hard_trim": _variant(8, 0.1, "hard")}

    suites = {"viubench": ("easy", "hard")}
    reward_policies = (STRICT, VIDEOSSR)
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
        parts: list[Part] = []
        for label, true_index in enumerate(shown, start=1):
            start, end = bounds[true_index]
            parts += [TextPart(f"Clip {label}:"), VideoPart(list(range(start, end)),
                                                            clip.sample_fps)]
        parts.append(TextPart(question(clips)))
        answer = "".join(str(shown.index(i) + 1) for i in range(clips))
        return Rendered(parts, answer, system=prompts.SYSTEM, prompt_set=prompts.PROMPT_SET)

    def parse(self, text: str, variant: str, policy: str = LENIENT) -> Parsed:
        """Clip labels in the reply; the variant tells how many labels to expect."""
        return parsing.order(text, self.variants[variant].params["clips"], policy)

    def metrics(self, parsed: Parsed, answer: str) -> dict[str, float]:
        truth = [int(c) for c in answer]
        exact = float(parsed.ok and parsed.value == truth)
        order = footrule_score(parsed.value, truth) if _is_permutation(parsed, truth) else 0.0
        return {"score": exact, "exact": exact, "order": order}

    def reward(self, parsed: Parsed, answer: str) -> float:
        truth = [int(c) for c in answer]
        return footrule_score(parsed.value, truth) if _is_permutation(parsed, truth) else 0.0

    def prior_answer(self, variant: str, timeline: Mapping[str, Any]) -> str:
        """Every non-identity order is equally likely, so every one of them is a best fixed
        answer (exact match 1 / (n! - 1)); we answer the one nearest the identity, the last two
        clips exchanged (e.g. 123465)."""
        labels = [str(i) for i in range(1, self.variants[variant].params["clips"] + 1)]
        return "".join(labels[:-2] + labels[:-3:-1])

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


def question(clips: int) -> str:
    """The question after the clips (our words; the information of the paper's)."""
    example = EXAMPLES.get(clips) or "".join(str(i) for i in range(clips, 0, -1))
    steps = ", ".join(f"Clip {label} comes {_ordinal(place)}"
                      for place, label in enumerate(example[1:-1], start=2))
    return (
        f"The {clips} clips above are consecutive parts of one video, shown in a shuffled order"
        f" and labelled Clip 1 to Clip {clips} by the position they are shown in. Work out the"
        f" order in which they really happened. Answer with {_article(clips)} {clips}-digit"
        f" number that lists the clip labels in playing order. For example, {example} would"
        f" mean that Clip {example[0]} is the true beginning, {steps}, and Clip {example[-1]}"
        f" is the end."
    )


def _article(number: int) -> str:
    return "an" if str(number)[0] == "8" or number in (11, 18) else "a"


def _ordinal(place: int) -> str:
    return {2: "2nd", 3: "3rd"}.get(place, f"{place}th")


def _is_permutation(parsed: Parsed, truth: list[int]) -> bool:
    return parsed.ok and sorted(parsed.value) == sorted(truth)
TASK = TemporalJigsaw()
