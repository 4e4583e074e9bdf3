"""Shards of a run: which samples `viubench eval --shard I/N` asks, by content, not by position.

A sample belongs to shard `blake2b(id) mod N`. Its shard depends on its id alone, never on the
order of the file, on `--limit` or on which other samples exist, so N processes, GPUs or
machines that each run one shard ask every sample of the scope exactly once, and
`viubench merge` puts their answers back together (`viubench.merge`).

Shards are numbered from 0, like `torch.distributed` ranks and a Slurm array declared
`--array=0-7`: `--shard 0/8` to `--shard 7/8`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, TypeVar

T = TypeVar("T", bound=Mapping[str, Any])


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0 <= index < count)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: expected I/N with N >= 1 and"
                             f" 0 <= I < N (shards are numbered from 0)")

    def holds(self, sample_id: str) -> bool:
        return shard_of(sample_id, self.count) == self.index

    def select(self, samples: Iterable[T]) -> Iterator[T]:
        """The samples (records with an `id`) of this shard, in their order."""
        return (sample for sample in samples if self.holds(str(sample["id"])))

    def as_json(self) -> dict[str, int]:
        return {"index": self.index, "count": self.count}

    def describe(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(sample_id: str, count: int) -> int:
    """The shard (0..count-1) a sample id belongs to: a stable hash of the id, mod `count`."""
    digest = hashlib.blake2b(sample_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def parse_shard(text: str) -> Shard:
    """`--shard I/N`, e.g. `0/8`; ValueError (one line) for anything else."""
    index, sep, count = text.partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise ValueError(f"--shard {text!r}: expected I/N, e.g. 0/8 (shards are numbered from 0)")
    if int(count) < 1 or int(index) >= int(count):
        raise ValueError(f"--shard {text!r}: expected I/N with N >= 1 and 0 <= I < N (shards"
                         f" are numbered from 0)")
    return Shard(int(index), int(count))


def shard_from_json(value: Any, where: str) -> Shard | None:
    """The shard a run header records (untrusted), or None for an unsharded run."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
            type(value.get(key)) is int for key in ("index", "count")):
        raise ValueError(f"{where}: a malformed shard record {str(value)[:80]!r}")
    try:
        return Shard(value["index"], value["count"])
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
