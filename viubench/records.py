"""Sample records, content ids, seeded randomness and append-only JSONL files."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
from typing import Any, Iterator, Mapping


def canonical_json(value: Any) -> str:
    """One deterministic JSON text for a record: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(*parts: Any, size: int = 16) -> str:
    """Hex digest of the canonical JSON of `parts`; stable across runs and machines."""
    return hashlib.blake2b(canonical_json(parts).encode(), digest_size=size).hexdigest()


def derive_rng(seed: int, *names: Any) -> random.Random:
    """A private random generator for one (seed, video, task, variant, replica) tuple."""
    return random.Random(int(digest(seed, *names, size=8), 16))


def file_hash(path: str, chunk: int = 1 << 20) -> str:
    """blake2b-128 of a file's bytes (the video's content id)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            h.update(block)
    return h.hexdigest()


def sample_id(record: dict[str, Any]) -> str:
    """Content-derived id from video hash, task, variant, version, seed, replica, draws, answer.

    Seed and replica are part of it because two replicas may draw the same choices by chance.
    """
    video = record["video"]
    return digest(video["hash"], record["task"], record["variant"], record["version"],
                  record["seed"], record["replica"], record["draws"], record["answer"], size=8)


@contextlib.contextmanager
def replaced(path: str) -> Iterator[Any]:
    """A text handle whose contents replace `path` only once the block ends without error (a
    crash leaves the old file, never half a new one)."""
    with open(path + ".part", "w", encoding="utf-8") as handle:
        yield handle
    os.replace(path + ".part", path)


def write_json(path: str, value: Any) -> None:
    """`value` as indented, key-sorted JSON, replacing `path` at once."""
    with replaced(path) as handle:
        json.dump(value, handle, indent=2, sort_keys=True)


def append_jsonl(handle, record: Mapping[str, Any]) -> None:
    """Append one record as a line and flush, so a crash loses at most the line being written."""
    handle.write(canonical_json(record) + "\n")
    handle.flush()


def read_jsonl(path: str) -> Iterator[dict[str, Any]]:
    """Records of a JSONL file; a torn last line (crash while writing) is ignored."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith("\n"):
                return
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not a JSON record ({error})") from error


def truncate_lines(path: str, keep: int) -> None:
    """Cut a text file after its first `keep` complete lines (drops torn or surplus records)."""
    if not os.path.exists(path):
        return
    offset = 0
    with open(path, "rb") as handle:
        for _ in range(keep):
            line = handle.readline()
            if not line.endswith(b"\n"):
                raise ValueError(f"{path}: holds fewer than {keep} complete records")
            offset += len(line)
    with open(path, "r+b") as handle:
        handle.truncate(offset)
