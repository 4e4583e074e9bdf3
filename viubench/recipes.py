"""Training-set recipes: per-variant sample quotas, and how a build deals them to videos.

A recipe says how many samples of each task variant a training set holds (`RECIPES`).
`scaled` shrinks or grows it to any total, keeping the proportions (largest remainders).
`plan_round` deals the quotas still missing to the videos of the folder; the build runs one
round after another (`viubench.build`), each planned only from the results of the earlier ones,
so the same folder, recipe and seed always give the same samples, whatever the worker count and
however often the build was interrupted.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterable, Mapping, Sequence

from .records import digest

Quota = tuple[str, str, int]       # (task, variant, samples)
Item = tuple[str, str, int]        # (task, variant, replica): one sample to draw from a video


@dataclass(frozen=True)
class Recipe:
    name: str
    quotas: tuple[Quota, ...]
    source: str                    # where the mix comes from, in one sentence

    @property
    def size(self) -> int:
        return sum(count for _, _, count in self.quotas)


VIDEOSSR_30K = Recipe(
    "videossr30k",
    (("anomaly_grounding", "channel_swap", 3000), ("anomaly_grounding", "mirror", 3000),
     ("anomaly_grounding", "zoom_out", 3000), ("anomaly_grounding", "rotate180", 3000),
     ("temporal_jigsaw", "easy", 12000), ("object_counting", "easy", 6000)),
    "VideoSSR-30K as the authors' scripts make it (github.com/lcqysl/VideoSSR: grounding.py"
    " 3,000 videos per perturbation, jigsaw.py 12,000 videos with 6 clips, counting.py 6,000"
    " videos with 1..3 shapes per frame), one sample per video")

MVP_MIX = Recipe(
    "mvp",
    (("masked_prediction", "mvp-easy", 7500), ("masked_prediction", "standard", 15000),
     ("masked_prediction", "mvp-hard", 7500)),
    "ours (the MVP paper's mix is not public): 30,000 samples like VideoSSR-30K, half at the"
    " standard level, a quarter each at the easy and hard levels the benchmark reports")

RECIPES = {recipe.name: recipe for recipe in (VIDEOSSR_30K, MVP_MIX)}

DEFAULT_PER_VIDEO = 4   # recipe builds: most samples of one variant drawn from one video
MAX_ROUNDS = 8          # deals of a build: the first, then top-ups for what failed


def recipe_named(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; recipes: {', '.join(RECIPES)}")
    return RECIPES[name]


def scaled(quotas: Sequence[Quota], total: int) -> tuple[Quota, ...]:
    """The quotas scaled to `total` samples in all, proportions kept: each gets the floor of
    its exact share, and the samples left over go to the largest fractional parts (ties to
    the earlier quota). A variant whose share rounds to 0 keeps quota 0."""
    if total < 1:
        raise ValueError(f"--samples must be at least 1 (got {total})")
    size = sum(count for _, _, count in quotas)
    shares = [Fraction(count * total, size) for _, _, count in quotas]
    counts = [math.floor(share) for share in shares]
    by_remainder = sorted(range(len(quotas)), key=lambda i: (-(shares[i] - counts[i]), i))
    for index in by_remainder[:total - sum(counts)]:
        counts[index] += 1
    return tuple((task, variant, n) for (task, variant, _), n in zip(quotas, counts))


def video_order(paths: Iterable[str], seed: int) -> list[str]:
    """The folder's videos in the order they are dealt samples: a seeded shuffle, so that a
    recipe smaller than the folder draws from all of it rather than from its first folders."""
    return sorted(paths, key=lambda path: (digest(seed, "recipe order", path), path))


def plan_round(quotas: Sequence[Quota], order: Sequence[str], earlier: Sequence[Mapping[str, Any]],
               assigned: Counter[tuple[str, str]], per_video: int,
               first: bool) -> list[tuple[str, list[Item]]]:
    """(video, items) to draw in the next round, in the order of `order`.

    `earlier` are the per-video records of the earlier rounds (videos.jsonl lines); `assigned`
    counts (video, "task:variant") pairs dealt so far, which numbers the replicas (a video
    dealt a variant twice draws replicas 0 and 1) and is updated here. Slots are dealt one
    variant after another, each to the next eligible video, cycling over the pool: a folder
    larger than the recipe gives each video at most one sample; in a smaller one every video
    gets about as many samples as the others, and of each variant about its share (the floor
    or the ceiling of quota / videos). The first round deals over all videos; a later one deals
    only what is still missing, first to videos not yet tried, then to those that loaded;
    never to a video that did not load, nor a variant to a video that skipped it before, nor
    more than `per_video` samples of a variant to one video.
    """
    made: Counter[str] = Counter()
    for record in earlier:
        made.update(record.get("counts", {}))
    missing = [(task, variant, count - made[f"{task}:{variant}"]) for task, variant, count in quotas
               if count > made[f"{task}:{variant}"]]
    if first:
        pool = list(order)
    else:
        tried = {record["path"] for record in earlier}
        loaded = tried - {record["path"] for record in earlier if record["status"] != "ok"}
        pool = [p for p in order if p not in tried] + [p for p in order if p in loaded]
    blocked = {(record["path"], skip["sample"]) for record in earlier
               for skip in record.get("sample_skips", [])}
    slots = [(task, variant) for task, variant, count in missing for _ in range(count)]
    return _deal(slots, pool, blocked, assigned, per_video)


def _deal(slots: list[tuple[str, str]], pool: Sequence[str], blocked: set[tuple[str, str]],
          assigned: Counter[tuple[str, str]], per_video: int) -> list[tuple[str, list[Item]]]:
    """Each slot to the next eligible video after the previous slot's, cycling over `pool`."""
    dealt: dict[str, list[Item]] = {}
    pointer, full = 0, set[str]()
    for task, variant in slots:
        key = f"{task}:{variant}"
        if key in full or not pool:
            continue
        for step in range(len(pool)):
            path = pool[(pointer + step) % len(pool)]
            if (path, key) not in blocked and assigned[(path, key)] < per_video:
                break
        else:
            full.add(key)      # no video can take another sample of this variant
            continue
        pointer = (pointer + step + 1) % len(pool)
        dealt.setdefault(path, []).append((task, variant, assigned[(path, key)]))
        assigned[(path, key)] += 1
    return [(path, dealt[path]) for path in pool if path in dealt]


def quota_summary(quotas: Sequence[Quota], counts: Mapping[str, int]) -> dict[str, Any]:
    """build.json's `quotas`: per variant the samples wanted and made, and the total short."""
    table = {f"{task}:{variant}": {"wanted": count, "made": counts.get(f"{task}:{variant}", 0)}
             for task, variant, count in quotas}
    short = sum(max(0, entry["wanted"] - entry["made"]) for entry in table.values())
    return {"wanted": sum(e["wanted"] for e in table.values()), "short": short,
            "variants": table}
