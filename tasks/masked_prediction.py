"""Masked Video Prediction, MVP (Sun, Wu, Ding, Xu 2026, arXiv 2601.03781): a visual cloze.

Sampling (tasks/masked_draws.py): the video's central 90% is decoded at 1 fps, faster where
that gives fewer than 96 frames (every frame of a window holding fewer; under 48 the video is
too short), and a long video keeps its central 240 s. The sample is
drawn on a grid of those frames, the sparsest that works: the one closest to 1 fps first, then
denser ones. From a random start on the grid a frame is kept only if it is not a near-duplicate
(similarity > kappa) of the last kept frame, until N frames are kept (the context). A
continuous run of m of them, never the first or the last, is masked: each masked frame is shown
as a grey, striped gap frame, so the gap's length is visible. The pool holds the m targets and
l distractors, shuffled and labelled Candidate 1..m+l. Answer: the m target labels in temporal
order, e.g. `3,7,1`.

A distractor is a near-duplicate of no context frame (shown or masked) and of no other
distractor, so "reject what is already visible" finds nothing. Kinds: `neighbour` (grid frames
outside the context's span within `radius_s` seconds of the gap, drawn at random), `boundary`
(the nearest such frames), `mirror` (targets mirrored left to right, topped up with
neighbours), `donor` (frames of another video of the build).

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
from viubench.scoring import footrule_score
from viubench.task import (Clip, Columns, DonorSource, FrameRef, ImagePart, Parsed, Part,
                           Rendered, TaskSkip, TextPart, Variant, VideoPart)
from viubench.video import FrameProtocol

from . import prompts
from .frame_similarity import Measure, Similarities
from .masked_solvers import solve
from .masked_draws import (Candidate, Gap, chains, most_distinct, neighbours, shuffled, spread,
                           strides)
from .parsing import integers, label_runs, pick, region

PROTOCOL = FrameProtocol(num_frames=240, rate=1.0, min_frames=48, dense_frames=96)
KINDS = ("neighbour", "boundary", "mirror", "donor")
PROMPT_SET = "viubench-mvp-2"
MAX_OPTIONS = 400     # (start, gap position) pairs tried per grid before trying a denser one
RADIUS_S = 30.0


def _variant(difficulty: str, context: int, masked: int, distractors: int, kind: str,
             radius_s: float | None, kappa: float = 0.9) -> Variant:
    near = f" within {radius_s:g} s of the gap" if radius_s is not None else ""
    words = (f"{context} context frames, {masked} masked, {distractors} {kind} distractors"
             f"{near}, kappa {kappa}")
    return Variant(difficulty, {"context": context, "masked": masked, "distractors": distractors,
                                "kind": kind, "radius_s": radius_s, "kappa": kappa,
                                "similarity": "block-ssim"}, words)


VARIANTS = {
    "mvp-easy": _variant("easy", 8, 2, 3, "neighbour", RADIUS_S),
    "standard": _variant("standard", 12, 3, 5, "neighbour", RADIUS_S),
    "mvp-hard": _variant("hard", 16, 4, 8, "boundary", None),
    "boundary": _variant("standard", 12, 3, 5, "boundary", None),
    "mirrored": _variant("standard", 12, 3, 5, "mirror", RADIUS_S),
    "other_video": _variant("standard", 12, 3, 5, "donor", None),
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

    version = "2"
    protocol = PROTOCOL
    suites = {"mvp": ("mvp-easy", "mvp-hard")}
    reward_policies = (STRICT,)
    columns = Columns("MVP", 4, {"mvp-easy": "Easy", "standard": "Standard", "mvp-hard": "Hard",
                                 "boundary": "Boundary", "mirrored": "Mirrored",
                                 "other_video": "Other video"})

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
        donor = _donor(rng, clip, donors) if params["kind"] == "donor" else None
        reason = ""
        for stride in strides(clip.sample_fps):
            found = self._draw_on_grid(rng, clip, params, sim, stride, donor)
            if isinstance(found, str):
                reason = found
                continue
            gap, pool = found
            pool = [{"kind": "target", "position": p} for p in gap.targets] + pool
            rng.shuffle(pool)
            draws = {"similarity": self._measure(params["similarity"]).name,
                     "kappa": params["kappa"], "context_frames": len(gap.context),
                     "masked": gap.masked, "distractors": params["distractors"],
                     "kind": params["kind"], "radius_s": params["radius_s"], "stride": stride,
                     "sample_rate": round(clip.sample_fps / stride, 4),
                     "context": gap.context, "gap_start": gap.at, "pool": pool,
                     "context_similarity": _chain_similarity(sim, gap.context)}
            if donor is not None:
                draws["donor"] = {"path": donor.video_path, "hash": donor.video_hash}
            return draws
        raise TaskSkip(reason)

    def _draw_on_grid(self, rng: random.Random, clip: Clip, params: Mapping[str, Any],
                      sim: np.ndarray, stride: int,
                      donor: Clip | None) -> tuple[Gap, list[dict[str, Any]]] | str:
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
            pool = self._distractors(rng, clip, params, sim, grid, gap, donor)
            if pool is not None:
                return gap, pool
        near = "" if params["radius_s"] is None else f" within {params['radius_s']:g} s"
        return (f"no masked run of {m} frames at {rate} has {params['distractors']}"
                f" {params['kind']} distractors{near} that are near-duplicates of no context"
                f" frame and of each other")

    def render(self, clip: Clip, variant: str, draws: Mapping[str, Any],
               donors: DonorSource) -> Rendered:
        context, at, m = draws["context"], draws["gap_start"], draws["masked"]
        pool, rate = draws["pool"], draws["sample_rate"]
        donor = _reload_donor(clip, draws, donors) if "donor" in draws else None
        self._recheck(clip, draws, donor)
        gap = gap_frame(clip.size)
        shown: list[FrameRef] = [*context[:at], *[gap] * m, *context[at + m:]]
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
            parts += [TextPart(f"Candidate {label}:"), ImagePart(_pool_frame(clip, entry, donor))]
        example = ",".join(str(len(pool) - i) for i in range(m))
        parts.append(TextPart(
            f"Which candidates are the hidden frames? Reply with their {m} candidate numbers in"
            f" the order the frames occur in the video, separated by commas, for example"
            f" {example}."))
        where = {entry["position"]: label for label, entry in enumerate(pool, start=1)
                 if entry["kind"] == "target"}
        answer = ",".join(str(where[p]) for p in context[at:at + m])
        return Rendered(parts, answer, system=prompts.SYSTEM, prompt_set=PROMPT_SET)

    def parse(self, text: str, answer: str, policy: str = LENIENT) -> Parsed:
        """The m candidate numbers of the reply; `answer` only tells how many to expect. The
        authors of VideoSSR publish no rule for this task, so `videossr` is not a policy of it."""
        if check_policy(policy) == VIDEOSSR:
            raise ValueError(f"{self.name} has no videossr reward rule; its reward policies are"
                             f" {', '.join(self.reward_policies)}")
        count = answer.count(",") + 1
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
        """Difficulty knobs (`viubench analyze`): N, m, l, kappa, distractor kind, and where
        the gap sits in the context."""
        d = sample["draws"]
        return {"context_frames": d["context_frames"], "masked": d["masked"],
                "distractors": d["distractors"], "kappa": d["kappa"], "kind": d["kind"],
                "gap_start": d["gap_start"]}

    def similarity_answer(self, request: Any, solver: str, measure: str, order: str,
                          rng: random.Random) -> str:
        """The answer of a solver that compares pixels only (tasks/masked_solvers.py); the
        `similarity` baseline adapter asks for it to audit a test set."""
        return solve(request.parts, gap_frame, self._measure(measure), solver, order, rng)

    # -- distractors ------------------------------------------------------------------------

    def _measure(self, name: str) -> Measure:
        return self._similarities.measure(name)

    def _matrix(self, clip: Clip, name: str) -> np.ndarray:
        return self._similarities.matrix(clip, name)

    def _distractors(self, rng: random.Random, clip: Clip, params: Mapping[str, Any],
                     sim: np.ndarray, grid: list[int], gap: Gap,
                     donor: Clip | None) -> list[dict[str, Any]] | None:
        """`l` distractor entries for `gap`, or None if there are too few."""
        kappa, kind = params["kappa"], params["kind"]
        frames = _Frames(self._similarities, params["similarity"], clip, sim, gap, donor)
        radius = None if params["radius_s"] is None else params["radius_s"] * clip.sample_fps
        near = [("neighbour", p) for p in neighbours(grid, gap, radius)]
        near = frames.admissible(near, kappa)
        if kind == "boundary":
            ordered = near
        elif kind == "mirror":
            ordered = (shuffled(rng, frames.admissible(frames.mirrors(), kappa))
                       + shuffled(rng, near))
        elif kind == "donor":
            ordered = shuffled(rng, frames.admissible(frames.donors(), kappa))
        else:
            ordered = shuffled(rng, near)
        picked = spread(ordered, frames.similar, kappa, params["distractors"])
        return None if picked is None else [frames.entry(c) for c in picked]

    def _recheck(self, clip: Clip, draws: Mapping[str, Any], donor: Clip | None) -> None:
        """Re-measure every similarity the draws record and re-apply the rules; TaskSkip if a
        recorded value or rule does not hold for these pixels."""
        kappa = draws["kappa"]
        sim = self._matrix(clip, draws["similarity"])
        gap = Gap(list(draws["context"]), draws["gap_start"], draws["masked"])
        frames = _Frames(self._similarities, draws["similarity"], clip, sim, gap, donor)
        problems = []
        if _chain_similarity(sim, gap.context) != draws["context_similarity"] or any(
                s > kappa for s in draws["context_similarity"]):
            problems.append("the context's consecutive similarities")
        chosen = [(e["kind"], e["position"]) for e in draws["pool"] if e["kind"] != "target"]
        for entry in draws["pool"]:
            if entry["kind"] != "target" and frames.entry(
                    (entry["kind"], entry["position"])) != dict(entry):
                problems.append(f"distractor {entry['kind']} {entry['position']}")
        if spread(chosen, frames.similar, kappa, len(chosen)) != chosen:
            problems.append("distractors that are near-duplicates of each other")
        if any(max(e.get("similarity", 0), e.get("context_similarity", 0)) > kappa
               for e in draws["pool"]):
            problems.append("a distractor that is a near-duplicate of a context frame")
        if problems:
            raise TaskSkip(f"the recorded draws do not hold for these frames: {problems[0]}")



# Labels joined by commas, semicolons, arrows or whitespace, each optionally written `#3`.
_SEP = r"\s*(?:(?:,|;|->|→|>)\s*)?"


class _Frames:
    """Where distractors may come from (the clip's own frames, its mirrored targets, a donor
    video's frames) and how alike each is to the gap's context frames and to each other."""

    def __init__(self, similarities: Similarities, name: str, clip: Clip, sim: np.ndarray,
                 gap: Gap, donor: Clip | None) -> None:
        self.measure = similarities.measure(name)
        self.described = similarities.describe(clip, name)
        self.clip, self.sim, self.gap = clip, sim, gap
        self.donor = None if donor is None else similarities.describe(donor, name)
        self._mirrored: np.ndarray | None = None

    def mirrors(self) -> list[Candidate]:
        return [("mirror", p) for p in self.gap.targets]

    def donors(self) -> list[Candidate]:
        assert self.donor is not None
        return [("donor", p) for p in range(len(self.donor))]

    def descriptor(self, candidate: Candidate) -> np.ndarray:
        source, position = candidate
        if source == "neighbour":
            return self.described[position]
        if source == "donor":
            assert self.donor is not None
            return self.donor[position]
        if self._mirrored is None:
            flipped = self.clip.frames[self.gap.targets][:, :, ::-1]
            self._mirrored = self.measure.describe(np.ascontiguousarray(flipped))
        return self._mirrored[self.gap.targets.index(position)]

    def to(self, candidates: Sequence[Candidate], positions: Sequence[int]) -> np.ndarray:
        """Similarity of each candidate to each of the clip's frames at `positions`."""
        if all(source == "neighbour" for source, _ in candidates):
            return self.sim[np.ix_([p for _, p in candidates], list(positions))]
        stacked = np.stack([self.descriptor(c) for c in candidates])
        return self.measure.compare(stacked, self.described[list(positions)])

    def admissible(self, candidates: list[Candidate], kappa: float) -> list[Candidate]:
        """The candidates that are near-duplicates of no context frame (shown or masked)."""
        if not candidates:
            return []
        worst = self.to(candidates, self.gap.context).max(axis=1)
        return [c for c, s in zip(candidates, worst) if s <= kappa]

    def similar(self, candidate: Candidate, taken: list[Candidate]) -> np.ndarray:
        """Similarity of `candidate` to each candidate in `taken`."""
        if candidate[0] == "neighbour" and all(source == "neighbour" for source, _ in taken):
            return self.sim[candidate[1], [p for _, p in taken]]
        stacked = np.stack([self.descriptor(c) for c in taken])
        return self.measure.compare(self.descriptor(candidate)[None], stacked)[0]

    def entry(self, candidate: Candidate) -> dict[str, Any]:
        """A distractor's record: its source and position, its highest similarity to a target
        and to a shown context frame, and (same video) its distance from the gap in seconds."""
        row = self.to([candidate], self.gap.targets + self.gap.visible)[0]
        m = self.gap.masked
        entry = {"kind": candidate[0], "position": int(candidate[1]),
                 "similarity": round(float(row[:m].max()), 4),
                 "context_similarity": round(float(row[m:].max()), 4)}
        if candidate[0] == "neighbour":
            entry["distance_s"] = round(self.gap.distance(candidate[1]) / self.clip.sample_fps, 2)
        return entry


def _chain_similarity(sim: np.ndarray, context: Sequence[int]) -> list[float]:
    """Similarity of each context frame to the next one (each <= kappa by the chain rule)."""
    return [round(float(sim[a, b]), 4) for a, b in zip(context, context[1:])]


def _donor(rng: random.Random, clip: Clip, donors: DonorSource) -> Clip:
    """Another readable video of the build, resized to this clip's frame size."""
    return donors.pick(rng, clip, "other-video distractors")[1]


def _reload_donor(clip: Clip, draws: Mapping[str, Any], donors: DonorSource) -> Clip:
    donor = donors.load(draws["donor"]["path"], clip.size)
    if donor.video_hash != draws["donor"]["hash"]:
        raise TaskSkip(f"donor video {draws['donor']['path']} changed since the draw")
    return donor


def _pool_frame(clip: Clip, entry: Mapping[str, Any], donor: Clip | None) -> FrameRef:
    position = entry["position"]
    if entry["kind"] == "mirror":
        return np.ascontiguousarray(clip.frames[position][:, ::-1])
    if entry["kind"] == "donor":
        assert donor is not None
        return donor.frames[position]
    return position


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
