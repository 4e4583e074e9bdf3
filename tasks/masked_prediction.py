"""Masked Video Prediction, MVP (Sun, Wu, Ding, Xu 2026, arXiv 2601.03781): a visual cloze.

Sampling (tasks/masked_draws.py): the video's central 90% is decoded at 2 fps, faster where
that gives fewer than 96 frames (every frame of a window holding fewer; under 48 the video is
too short), and a long video keeps its central 120 s (240 frames). The sample is drawn on a
grid of those frames, the sparsest that works: the one closest to the paper's 1 fps first, then
denser ones.
From a random start on the grid a frame is kept only if it is not a near-duplicate
(similarity > kappa) of the last kept frame, until N frames are kept (the context). A
continuous run of m of them, never the first or the last, is masked: each masked frame is shown
as a grey, striped gap frame, so the gap's length is visible. The pool holds the m targets and
l distractors, shuffled and labelled Candidate 1..m+l. Answer: the m target labels in temporal
order, e.g. `3,7,1`.

Distractors are hard negatives from the gap's temporal neighbourhood: decoded frames within
`radius_s` seconds of the gap (grid frames and the frames between them, so also frames between
two shown ones), never between the gap's borders, a near-duplicate of no context frame (shown
or masked) and of no other distractor. Each is matched to a target: the frame whose highest
similarity to a shown frame, to the gap's borders and to a target is closest to that target's
(to a shown frame, the borders, another target), so neither "reject what is already visible",
"take what looks like the gap's borders" nor "take the frames most alike" finds the targets.

Similarity (tasks/frame_similarity.py): `block-ssim` by default (the SSIM of the least similar
block of an 8x8 grid on a 64x64 grayscale thumbnail, kappa 0.9), `dhash`, or
`package.module:attr`, a user's embedder (cosine). The measure, kappa, the grid's rate and every
similarity that decided a frame are recorded in the sample's draws, and rendering re-checks them
(so `verify` re-derives every rule from the pixels).

Metrics (lenient parse): exact match (headline), selection F1 = 2|P & T| / (|P| + |T|) over the
named labels P (a repeated label counts once in P & T but twice in |P|) and the targets T, order
= normalised footrule between the correctly selected labels' order in the reply and in time (1
for one such label, 0 for none), and the fine-grained value F1 * (1 + order) / 2. Training reward:
that value on a strict parse (0 if unparseable): 1 only for the exact answer, 0.5 for all targets
in reverse order, and between F1 / 2 and F1 for a partial selection, by its order.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np

from viubench.answers import LENIENT, STRICT, VIDEOSSR, check_policy
from viubench.stats import footrule_score
from viubench.task import (Clip, Columns, DonorSource, ImagePart, Parsed, Part, Rendered,
                           TaskSkip, TextPart, Variant, VideoPart)
from viubench.video import FrameProtocol

from . import prompts
from .frame_similarity import Measure, Similarities
from .masked_solvers import solve
from .masked_draws import (Gap, chains, matched, matching_slots, most_distinct, neighbours,
                           profiles, spread, strides)
from .parsing import integers, label_runs, pick, region

PROTOCOL = FrameProtocol(num_frames=240, rate=2.0, min_frames=48, dense_frames=96)
PROMPT_SET = "viubench-mvp-2"
MAX_OPTIONS = 400     # (start, gap position) pairs tried per grid before trying a denser one


def _variant(difficulty: str, context: int, masked: int, distractors: int, radius_s: float,
             kappa: float = 0.9) -> Variant:
    words = (f"{context} context frames, {masked} masked, {distractors} matched distractors"
             f" within {radius_s:g} s of the gap, kappa {kappa}")
    return Variant(difficulty, {"context": context, "masked": masked, "distractors": distractors,
                                "radius_s": radius_s, "kappa": kappa, "similarity": "block-ssim"},
                   words)


VARIANTS = {
    "mvp-easy": _variant("easy", 8, 2, 3, 30.0),
    "standard": _variant("standard", 12, 3, 5, 30.0),
    "mvp-hard": _variant("hard", 16, 4, 8, 30.0),
}


def gap_frame(size: tuple[int, int]) -> np.ndarray:
    """The frame shown in place of each masked frame: mid-grey with dark diagonal stripes."""
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w]
    frame = np.full((h, w, 3), 128, dtype=np.uint8)
    frame[(xs + ys) % 24 < 6] = 40
    return frame


class MaskedPrediction:
    """The MVP task. `similarity` / `kappa` override every variant's (a user's embedder needs
    its own kappa); give such a copy its own `name`, e.g. in a module loaded by --task-module:
    `TASK = MaskedPrediction("mvp_clip", similarity="my_pkg.clip:embed", kappa=0.95)`."""

    version = "3"
    protocol = PROTOCOL
    suites = {"mvp": ("mvp-easy", "mvp-hard")}
    reward_policies = (STRICT,)
    columns = Columns("MVP", 4, {"mvp-easy": "Easy", "standard": "Standard", "mvp-hard": "Hard"})

    def __init__(self, name: str = "masked_prediction", similarity: str | None = None,
                 kappa: float | None = None) -> None:
        self.name = name
        overrides = {k: v for k, v in (("similarity", similarity), ("kappa", kappa))
                     if v is not None}
        self.variants = {key: replace(v, params={**v.params, **overrides})
                         for key, v in VARIANTS.items()}
        self._similarities = Similarities()

    def draw(self, rng: random.Random, clip: Clip, variant: str,
             donors: DonorSource) -> dict[str, Any]:
        params = self.variants[variant].params
        sim = self._matrix(clip, params["similarity"])
        reason = ""
        for stride in strides(clip.sample_fps):
            found = self._draw_on_grid(rng, clip, params, sim, stride)
            if isinstance(found, str):
                reason = found
                continue
            gap, distractors = found
            pool = [{"kind": "target", "position": p} for p in gap.targets] + distractors
            rng.shuffle(pool)
            draws = {"similarity": self._measure(params["similarity"]).name,
                     "kappa": params["kappa"], "context_frames": len(gap.context),
                     "masked": gap.masked, "distractors": params["distractors"],
                     "radius_s": params["radius_s"], "stride": stride,
                     "sample_rate": round(clip.sample_fps / stride, 4),
                     "context": gap.context, "gap_start": gap.at, "pool": pool,
                     "matching": [e["matches"] for e in distractors],
                     "context_similarity": _chain_similarity(sim, gap.context)}
            return draws
        raise TaskSkip(reason)

    def _draw_on_grid(self, rng: random.Random, clip: Clip, params: Mapping[str, Any],
                      sim: np.ndarray, stride: int) -> tuple[Gap, list[dict[str, Any]]] | str:
        """A gap and its distractors on the grid of every `stride`-th frame, or why not."""
        n, m, kappa = params["context"], params["masked"], params["kappa"]
        grid = list(range(0, len(sim), stride))
        on_grid = sim[np.ix_(grid, grid)]
        found = chains(on_grid, kappa, n)
        rate = f"{clip.sample_fps / stride:.2f} fps"
        if not found:
            return (f"too few distinct frames: at most {most_distinct(on_grid, kappa)} of the"
                    f" {len(grid)} frames sampled at {rate} differ (similarity <= {kappa}),"
                    f" {n} needed")
        options = [(start, at) for start in sorted(found) for at in range(1, n - m)]
        rng.shuffle(options)
        for start, at in options[:MAX_OPTIONS]:
            gap = Gap([grid[p] for p in found[start]], at, m)
            pool = _distractors(rng, clip, params, sim, gap)
            if pool is not None:
                return gap, pool
        return (f"no masked run of {m} frames at {rate} has {params['distractors']}"
                f" distractors within {params['radius_s']:g} s that are near-duplicates of no"
                f" context frame and of each other")

    def render(self, clip: Clip, variant: str, draws: Mapping[str, Any],
               donors: DonorSource) -> Rendered:
        context, at, m = draws["context"], draws["gap_start"], draws["masked"]
        pool, rate = draws["pool"], draws["sample_rate"]
        self._recheck(clip, draws)
        gap = gap_frame(clip.size)
        shown = [*context[:at], *[gap] * m, *context[at + m:]]
        parts: list[Part] = [
            TextPart(f"The video below shows {len(context)} frames of a longer video in their"
                     f" order (sampled every {1 / rate:.2g} s, near-identical frames skipped)."
                     f" A continuous stretch of {m} frames is hidden: each hidden frame is"
                     " replaced by a grey frame with dark diagonal stripes."),
            VideoPart(shown, rate),
            TextPart(f"Here are {len(pool)} candidate frames in random order: the {m} hidden"
                     f" frames and {len(pool) - m} others that were not hidden."),
        ]
        for label, entry in enumerate(pool, start=1):
            parts += [TextPart(f"Candidate {label}:"), ImagePart(entry["position"])]
        example = ",".join(str(len(pool) - i) for i in range(m))
        parts.append(TextPart(
            f"Which candidates are the hidden frames? Reply with their {m} candidate numbers in"
            f" the order the frames occur in the video, separated by commas, for example"
            f" {example}."))
        where = {entry["position"]: label for label, entry in enumerate(pool, start=1)
                 if entry["kind"] == "target"}
        answer = ",".join(str(where[p]) for p in context[at:at + m])
        return Rendered(parts, answer, system=prompts.SYSTEM, prompt_set=PROMPT_SET)

    def parse(self, text: str, variant: str, policy: str = LENIENT) -> Parsed:
        """The m candidate numbers of the reply (the variant tells m). The authors of VideoSSR
        publish no rule for this task, so `videossr` is not a policy of it."""
        if check_policy(policy) == VIDEOSSR:
            raise ValueError(f"{self.name} has no videossr reward rule; its reward policies are"
                             f" {', '.join(self.reward_policies)}")
        count = self.variants[variant].params["masked"]
        found, marked = region(text, policy)
        if policy == STRICT:
            if not re.fullmatch(r"\d+(?:(?:\s*,\s*|\s+)\d+){%d}" % (count - 1), found):
                return Parsed(error=f"not {count} comma-separated candidate numbers")
            labels = integers(re.findall(r"\d+", found))
            return Parsed(labels) if labels else Parsed(error="a candidate number is too long")
        found = re.sub(r"\bcandidates?\s*(?:no\.?|number|#)?\s*", "", found, flags=re.I)
        found = re.sub(r"(?<!\s)\s+(?:and|then)\s+", ", ", found, flags=re.I)
        chosen = pick([labels for _, labels in label_runs(found, count, _SEP, "#", packed=True)],
                      marked)
        return Parsed(chosen) if chosen else Parsed(
            error=f"no list of {count} candidate numbers found")

    def metrics(self, parsed: Parsed, answer: str) -> dict[str, float]:
        truth = [int(x) for x in answer.split(",")]
        if not parsed.ok:
            return dict.fromkeys(("score", "exact", "f1", "order", "fine"), 0.0)
        pred = list(parsed.value)
        exact = float(pred == truth)
        f1 = 2 * len(set(pred) & set(truth)) / (len(pred) + len(truth))
        order = order_score(pred, truth)
        return {"score": exact, "exact": exact, "f1": f1, "order": order,
                "fine": f1 * (1 + order) / 2}

    def reward(self, parsed: Parsed, answer: str) -> float:
        """F1 * (1 + order) / 2 of a (strict) parse, 0 if it failed."""
        return self.metrics(parsed, answer)["fine"]

    def random_answer(self, rng: random.Random, variant: str,
                      timeline: Mapping[str, Any]) -> str:
        """m distinct pool labels drawn uniformly, in random order: exact match with chance
        1 / (P (P-1) ... (P-m+1)), P = m + l the pool size."""
        params = self.variants[variant].params
        pool = params["masked"] + params["distractors"]
        return ",".join(map(str, rng.sample(range(1, pool + 1), params["masked"])))

    def knobs(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Difficulty knobs (`viubench analyze`): N, m, l, kappa, the distractors' radius, and
        where the gap sits in the context."""
        d = sample["draws"]
        return {"context_frames": d["context_frames"], "masked": d["masked"],
                "distractors": d["distractors"], "kappa": d["kappa"], "radius_s": d["radius_s"],
                "gap_start": d["gap_start"]}

    def similarity_answer(self, request: Any, solver: str, measure: str, order: str,
                          rng: random.Random) -> str:
        """The answer of a solver that compares pixels only (tasks/masked_solvers.py); the
        `similarity` baseline adapter asks for it to audit a test set."""
        return solve(request.parts, gap_frame, self._measure(measure), solver, order, rng)

    def _measure(self, name: str) -> Measure:
        return self._similarities.measure(name)

    def _matrix(self, clip: Clip, name: str) -> np.ndarray:
        return self._similarities.matrix(clip, name)

    def _recheck(self, clip: Clip, draws: Mapping[str, Any]) -> None:
        """Re-measure every similarity the draws record and re-apply the rules; TaskSkip if a
        recorded value or rule does not hold for these pixels."""
        sim = self._matrix(clip, draws["similarity"])
        problem = _broken_rule(clip, draws, sim)
        if problem:
            raise TaskSkip(f"the recorded draws do not hold for these frames: {problem}")


# Labels joined by commas, semicolons, arrows or whitespace, each optionally written `#3`.
_SEP = r"\s*(?:(?:,|;|->|→|>)\s*)?"


def _distractors(rng: random.Random, clip: Clip, params: Mapping[str, Any], sim: np.ndarray,
                 gap: Gap) -> list[dict[str, Any]] | None:
    """`l` distractor entries for `gap` (tasks/masked_draws.py's rules), or None if too few."""
    slots = matching_slots(rng, gap.masked, params["distractors"])
    picked = _matched(clip, sim, gap, params["kappa"], params["radius_s"], slots)
    return None if picked is None else [_entry(clip, sim, gap, p, k) for p, k in picked]


def _matched(clip: Clip, sim: np.ndarray, gap: Gap, kappa: float, radius_s: float,
             slots: list[int]) -> list[tuple[int, int]] | None:
    near = neighbours(len(sim), gap, radius_s * clip.sample_fps)
    near = [p for p in near if sim[p, gap.context].max() <= kappa]
    return matched(sim, gap, near, kappa, slots)


def _entry(clip: Clip, sim: np.ndarray, gap: Gap, position: int, target: int) -> dict[str, Any]:
    """A distractor's record: its position, the target whose profile it matches, its highest
    similarity to a target, to a shown frame and to the gap's borders, and its distance from
    the gap in seconds."""
    to_visible, to_borders, to_targets = profiles(sim, gap, [position])[0]
    return {"kind": "distractor", "position": int(position), "matches": int(target),
            "similarity": round(float(to_targets), 4),
            "context_similarity": round(float(to_visible), 4),
            "border_similarity": round(float(to_borders), 4),
            "distance_s": round(gap.distance(position) / clip.sample_fps, 2)}


def _broken_rule(clip: Clip, draws: Mapping[str, Any], sim: np.ndarray) -> str:
    """The first rule or recorded value the draws break on these frames' similarities, or ""."""
    kappa = draws["kappa"]
    gap = Gap(list(draws["context"]), draws["gap_start"], draws["masked"])
    if _chain_similarity(sim, gap.context) != draws["context_similarity"] or any(
            s > kappa for s in draws["context_similarity"]):
        return "the context's consecutive similarities"
    chosen = [e for e in draws["pool"] if e["kind"] != "target"]
    allowed = set(neighbours(len(sim), gap, draws["radius_s"] * clip.sample_fps))
    for entry in chosen:
        position = entry["position"]
        if position not in allowed:
            return f"distractor {position} lies outside the gap's neighbourhood"
        if sim[position, gap.context].max() > kappa:
            return f"distractor {position} is a near-duplicate of a context frame"
        if _entry(clip, sim, gap, position, entry["matches"]) != dict(entry):
            return f"distractor {position}'s recorded similarities"
    if not spread([e["position"] for e in chosen], sim, kappa):
        return "distractors that are near-duplicates of each other"
    again = _matched(clip, sim, gap, kappa, draws["radius_s"], draws["matching"])
    if sorted(again or []) != sorted((e["position"], e["matches"]) for e in chosen):
        return "distractors that the matching rule does not pick"
    return ""


def _chain_similarity(sim: np.ndarray, context: Sequence[int]) -> list[float]:
    """Similarity of each context frame to the next one (each <= kappa by the chain rule)."""
    return [round(float(sim[a, b]), 4) for a, b in zip(context, context[1:])]


def order_score(pred: Sequence[int], truth: Sequence[int]) -> float:
    """Normalised footrule between the order of the correctly named labels in `pred` and in
    `truth` (a repeated label counts at its first place); 1 for one such label, 0 for none."""
    truth_set = set(truth)
    named = list(dict.fromkeys(label for label in pred if label in truth_set))
    if not named:
        return 0.0
    in_time = [label for label in truth if label in set(named)]
    return footrule_score(named, in_time)


def chance_exact(pool: int, masked: int) -> float:
    """The random answer's expected exact match: 1 / (P (P-1) ... (P-m+1))."""
    return 1 / math.perm(pool, masked)


TASK = MaskedPrediction()
