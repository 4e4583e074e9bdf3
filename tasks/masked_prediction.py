"""Masked Video Prediction, MVP (Sun, Wu, Ding, Xu 2026, arXiv 2601.03781): a visual cloze.

Frames are sampled at 1 fps (a video too short for 48 frames that way is sampled faster, so at
least 48; a long one keeps its central 240 s). From a random start, a frame is kept only if its
similarity to the last kept frame is <= kappa, until N frames are kept (the context). A
continuous run of m of them, never the first or the last, is masked: each masked frame is shown
as a grey, striped gap frame, so the gap's length is visible. The pool holds the m targets and
l distractors, shuffled and labelled Candidate 1..m+l. Answer: the m target labels in temporal
order, e.g. `3,7,1`.

Distractors are never near-duplicates of a target (similarity to every target <= kappa) and
never a frame shown in the context. Kinds: `neighbour` (frames of the same video near the run,
outside the stretch between the context frames that border the gap), `boundary` (the nearest
such frames), `mirror` (targets mirrored left to right, topped up with neighbours when a mirror
is a near-duplicate), `donor` (frames of another video of the build).

Similarity is pluggable: `dhash` (default, no weights: 256-bit difference hash of a 17x16
grayscale thumbnail; similarity = fraction of equal bits) or `package.module:attr`, a function
mapping uint8 frames [n, h, w, 3] to embeddings [n, d] (similarity = cosine). The one used, kappa
and every similarity that decided a frame are recorded in the sample's draws.

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
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from viubench.answers import LENIENT, STRICT, VIDEOSSR, check_policy
from viubench.scoring import footrule_score
from viubench.task import (Clip, Columns, DonorSource, FrameRef, ImagePart, Parsed, Part,
                           Rendered, TaskSkip, TextPart, Variant, VideoPart)
from viubench.video import FrameProtocol

from .parsing import integers, label_runs, pick, region

PROTOCOL = FrameProtocol(num_frames=240, rate=1.0, min_frames=48)
KINDS = ("neighbour", "boundary", "mirror", "donor")


def _variant(difficulty: str, context: int, masked: int, distractors: int, kind: str,
             radius: int | None, kappa: float = 0.9) -> Variant:
    words = (f"{context} context frames, {masked} masked, {distractors} {kind} distractors,"
             f" kappa {kappa}")
    return Variant(difficulty, {"context": context, "masked": masked, "distractors": distractors,
                                "kind": kind, "radius": radius, "kappa": kappa,
                                "similarity": "dhash"}, words)


VARIANTS = {
    "mvp-easy": _variant("easy", 8, 2, 3, "neighbour", None),
    "standard": _variant("standard", 12, 3, 5, "neighbour", 12),
    "mvp-hard": _variant("hard", 16, 4, 8, "boundary", None),
    "boundary": _variant("standard", 12, 3, 5, "boundary", None),
    "mirrored": _variant("standard", 12, 3, 5, "mirror", 12),
    "other_video": _variant("standard", 12, 3, 5, "donor", None),
}


class DHash:
    """Difference hash: 16x17 grayscale thumbnail, 256 bits 'brighter than the left pixel'."""

    name = "dhash"

    def describe(self, frames: np.ndarray) -> np.ndarray:
        bilinear = Image.Resampling.BILINEAR
        rows = [np.asarray(Image.fromarray(f).convert("L").resize((17, 16), bilinear),
                           dtype=np.int16) for f in frames]
        return np.array([(g[:, 1:] > g[:, :-1]).ravel() for g in rows], dtype=np.int32)

    def compare(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Fraction of equal bits, [len(a), len(b)] (exact multiples of 1/256)."""
        return (a @ b.T + (1 - a) @ (1 - b).T) / a.shape[1]


class Embedder:
    """Cosine similarity of the embeddings of a user's function (e.g. a CLIP image tower)."""

    def __init__(self, reference: str) -> None:
        from viubench.registry import load_object

        self.name = reference
        self.embed: Callable[[np.ndarray], Any] = load_object(reference)

    def describe(self, frames: np.ndarray) -> np.ndarray:
        vectors = np.asarray(self.embed(frames), dtype=np.float64).reshape(len(frames), -1)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def compare(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a @ b.T


def similarity(name: str) -> DHash | Embedder:
    """The similarity named by a variant: `dhash` or `package.module:attr` (an embedder)."""
    return DHash() if name == "dhash" else Embedder(name)


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

    version = "1"
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
        self._sims: dict[tuple, Any] = {}   # measures, and descriptors of the last clips

    def draw(self, rng: random.Random, clip: Clip, variant: str,
             donors: DonorSource) -> dict[str, Any]:
        params = self.variants[variant].params
        n, m, kappa = params["context"], params["masked"], params["kappa"]
        sim = self._matrix(clip, params["similarity"])
        chains = _chains(sim, kappa, n)
        if not chains:
            best = max(len(_chain(sim, kappa, s, len(sim))) for s in range(len(sim)))
            raise TaskSkip(f"too few distinct frames: at most {best} of the {len(sim)} sampled"
                           f" frames differ (similarity <= {kappa}), {n} needed")
        donor = _donor(rng, clip, donors) if params["kind"] == "donor" else None
        options = [(start, at) for start in sorted(chains) for at in range(1, n - m)]
        rng.shuffle(options)
        for start, at in options:
            context = chains[start]
            chosen = self._distractors(rng, clip, params, sim, context, at, donor)
            if chosen is not None:
                break
        else:
            raise TaskSkip(f"no masked run of {m} frames has {params['distractors']}"
                           f" {params['kind']} distractors that are not near-duplicates of it")
        targets = [{"kind": "target", "position": p} for p in context[at:at + m]]
        pool = targets + chosen
        rng.shuffle(pool)
        draws = {"similarity": self._sim(params["similarity"]).name, "kappa": kappa,
                 "context_frames": n, "masked": m, "distractors": params["distractors"],
                 "kind": params["kind"], "radius": params["radius"], "context": context,
                 "gap_start": at, "pool": pool,
                 "context_similarity": [round(float(sim[a, b]), 4)
                                        for a, b in zip(context, context[1:])]}
        if donor is not None:
            draws["donor"] = {"path": donor.video_path, "hash": donor.video_hash}
        return draws

    def render(self, clip: Clip, variant: str, draws: Mapping[str, Any],
               donors: DonorSource) -> Rendered:
        context, at, m = draws["context"], draws["gap_start"], draws["masked"]
        pool = draws["pool"]
        gap = gap_frame(clip.size)
        shown: list[FrameRef] = [*context[:at], *[gap] * m, *context[at + m:]]
        donor = _reload_donor(clip, draws, donors) if "donor" in draws else None
        spacing = 1 / clip.sample_fps
        parts: list[Part] = [
            TextPart(f"The video below shows {len(context)} frames of a longer video in their"
                     f" order (sampled every {spacing:.1f} s, near-identical frames skipped)."
                     f" A continuous stretch of {m} frames is hidden: each hidden frame is"
                     " replaced by a grey frame with dark diagonal stripes."),
            VideoPart(shown, clip.sample_fps),
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
        return Rendered(parts, answer)

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

    # -- similarity and distractors ---------------------------------------------------------

    def _sim(self, name: str) -> DHash | Embedder:
        key = ("measure", name)
        if key not in self._sims:
            self._sims[key] = similarity(name)
        return self._sims[key]

    def _describe(self, clip: Clip, name: str) -> np.ndarray:
        """Descriptors of a clip's frames, cached for the last few clips (one per video)."""
        key = ("describe", name, clip.video_hash, clip.backend, clip.size, tuple(clip.indices))
        if key not in self._sims:
            if len(self._sims) > 8:
                self._sims = {k: v for k, v in self._sims.items() if k[0] == "measure"}
            self._sims[key] = self._sim(name).describe(clip.frames)
        return self._sims[key]

    def _matrix(self, clip: Clip, name: str) -> np.ndarray:
        described = self._describe(clip, name)
        return self._sim(name).compare(described, described)

    def _distractors(self, rng: random.Random, clip: Clip, params: Mapping[str, Any],
                     sim: np.ndarray, context: list[int], at: int,
                     donor: Clip | None) -> list[dict[str, Any]] | None:
        """`l` distractor entries for the run context[at:at+m], or None if there are too few."""
        m, count, kappa, kind = (params["masked"], params["distractors"], params["kappa"],
                                 params["kind"])
        targets = context[at:at + m]
        name = params["similarity"]
        if kind == "donor":
            assert donor is not None
            scores = self._sim(name).compare(self._describe(donor, name),
                                             self._describe(clip, name)[targets]).max(axis=1)
            valid = [p for p in range(len(scores)) if scores[p] <= kappa]
            if len(valid) < count:
                return None
            return [_entry("donor", p, scores[p]) for p in sorted(rng.sample(valid, count))]
        chosen: list[dict[str, Any]] = []
        if kind == "mirror":
            mirrors = np.ascontiguousarray(clip.frames[targets][:, :, ::-1])
            scores = self._sim(name).compare(self._sim(name).describe(mirrors),
                                             self._describe(clip, name)[targets]).max(axis=1)
            chosen = [_entry("mirror", p, s) for p, s in zip(targets, scores) if s <= kappa]
            chosen = rng.sample(chosen, min(count, len(chosen)))
        low, high = context[at - 1], context[at + m]
        shown = set(context)
        near = [(p, low - p if p < low else p - high, sim[p, targets].max())
                for p in range(len(sim)) if (p < low or p > high) and p not in shown]
        near = [item for item in near if item[2] <= kappa
                and (params["radius"] is None or item[1] <= params["radius"])]
        wanted = count - len(chosen)
        if len(near) < wanted:
            return None
        if kind == "boundary":
            picked = sorted(near, key=lambda item: (item[1], item[0]))[:wanted]
        else:
            picked = rng.sample(near, wanted)
        return chosen + [_entry("neighbour", p, s) for p, _, s in sorted(picked)]


# Labels joined by commas, semicolons, arrows or whitespace, each optionally written `#3`.
_SEP = r"\s*(?:(?:,|;|->|→|>)\s*)?"


def _entry(kind: str, position: int, score: float) -> dict[str, Any]:
    """A distractor: where it comes from, and its highest similarity to any target."""
    return {"kind": kind, "position": int(position), "similarity": round(float(score), 4)}


def _chain(sim: np.ndarray, kappa: float, start: int, wanted: int) -> list[int]:
    """Greedy near-duplicate removal from `start`: keep a frame if its similarity to the last
    kept frame is <= kappa, until `wanted` frames are kept (or the frames run out)."""
    kept = [start]
    for position in range(start + 1, len(sim)):
        if len(kept) == wanted:
            break
        if sim[kept[-1], position] <= kappa:
            kept.append(position)
    return kept


def _chains(sim: np.ndarray, kappa: float, wanted: int) -> dict[int, list[int]]:
    """Start -> the N kept frames, for every start from which N frames can be kept."""
    found = {s: _chain(sim, kappa, s, wanted) for s in range(len(sim))}
    return {s: kept for s, kept in found.items() if len(kept) == wanted}


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
