"""Training checkpoints in a trainer's output folder, and whether each is completely written.

A checkpoint is a folder `checkpoint-<step>` (the transformers Trainer's naming). It is complete
when its files say so (`completeness_problem`: trainer_state.json, a model config, every weight
file whole: a safetensors file as long as its header says, every shard an index names present)
and ready when, complete, its snapshot (file names, sizes, modification times) did not change
between two consecutive looks (`Readiness`). Nothing here reads more than a weight file's
header.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from typing import Any

from .records import read_json

CHECKPOINT_NAME = re.compile(r"checkpoint-([0-9]{1,12})")
TRAINER_STATE = "trainer_state.json"
MODEL_CONFIGS = ("config.json", "adapter_config.json")     # a full model or a PEFT adapter
INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json",
           "adapter_model.safetensors.index.json")
BIN_WEIGHTS = re.compile(r"(pytorch_model|adapter_model|model)(-[0-9]+-of-[0-9]+)?\.bin")
MAX_SAFETENSORS_HEADER = 100 << 20     # the safetensors format's own limit



@dataclass(frozen=True, order=True)
class Checkpoint:
    step: int
    name: str
    path: str


def find_checkpoints(folder: str) -> list[Checkpoint]:
    """The `checkpoint-<step>` sub-folders of `folder` (not links), by step."""
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            match = CHECKPOINT_NAME.fullmatch(entry.name)
            if match and entry.is_dir(follow_symlinks=False):
                found.append(Checkpoint(int(match.group(1)), entry.name,
                                        os.path.abspath(entry.path)))
    return sorted(found)


# ---------------------------------------------------------------- is a checkpoint complete?

def safetensors_problem(path: str) -> str | None:
    """Why a .safetensors file is not whole, or None: its size must be 8 + the header's length
    (a little-endian u64) + the largest end offset the JSON header gives its tensors."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                return f"{os.path.basename(path)} is cut off ({size} bytes)"
            length = struct.unpack("<Q", head)[0]
            if length > MAX_SAFETENSORS_HEADER or 8 + length > size:
                return f"{os.path.basename(path)} is cut off in its header"
            header = json.loads(handle.read(length))
    except FileNotFoundError:
        return f"{os.path.basename(path)} is missing"
    except (ValueError, UnicodeDecodeError):
        return f"{os.path.basename(path)} has no readable header"
    if not isinstance(header, dict):
        return f"{os.path.basename(path)} has no readable header"
    ends = [_end(entry) for name, entry in header.items() if name != "__metadata__"]
    if any(end is None for end in ends):
        return f"{os.path.basename(path)} has a malformed tensor entry"
    expected = 8 + length + max([end for end in ends if end is not None], default=0)
    if size != expected:
        return f"{os.path.basename(path)} holds {size} of {expected} bytes"
    return None


def _end(entry: Any) -> int | None:
    offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
    if (isinstance(offsets, list) and len(offsets) == 2
            and all(isinstance(o, int) and o >= 0 for o in offsets)):
        return int(offsets[1])
    return None


def _index_shards(path: str) -> set[str]:
    """The shard files a *.index.json names; each must be a plain file name in the folder."""
    index = read_json(path)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(f"{os.path.basename(path)} has no weight_map")
    shards = {str(shard) for shard in weight_map.values()}
    for shard in shards:
        if not shard or os.path.basename(shard) != shard or shard in (".", ".."):
            raise ValueError(f"{os.path.basename(path)} names a shard outside the folder:"
                             f" {shard[:80]!r}")
    return shards


def weights_problem(folder: str) -> str | None:
    """Why the weights of a checkpoint are not all there, or None: every shard an index names
    present (and whole for safetensors), every .safetensors file whole, at least one weight
    file. A .bin file's completeness cannot be told from its bytes: present is enough."""
    names = set(os.listdir(folder))
    expected: set[str] = set()
    for index in INDEXES:
        if index in names:
            try:
                expected |= _index_shards(os.path.join(folder, index))
            except ValueError as error:
                return str(error)
    missing = sorted(expected - names)
    if missing:
        return f"shard {missing[0]} is missing" + (f" (and {len(missing) - 1} more)"
                                                   if len(missing) > 1 else "")
    weights = {name for name in names if name.endswith(".safetensors")
               or BIN_WEIGHTS.fullmatch(name)} | expected
    if not weights:
        return "no weight files yet"
    for name in sorted(weights):
        if name.endswith(".safetensors"):
            problem = safetensors_problem(os.path.join(folder, name))
            if problem:
                return problem
    return None


def completeness_problem(folder: str) -> str | None:
    """Why a checkpoint folder is not completely written yet, or None."""
    try:
        if not os.path.isfile(os.path.join(folder, TRAINER_STATE)):
            return f"no {TRAINER_STATE} yet"
        if not any(os.path.isfile(os.path.join(folder, name)) for name in MODEL_CONFIGS):
            return f"no {' or '.join(MODEL_CONFIGS)} yet"
        return weights_problem(folder)
    except FileNotFoundError:
        return "deleted"
    except OSError as error:
        return f"unreadable: {error.strerror or error}"


Snapshot = tuple[tuple[str, int, int], ...]


def snapshot(folder: str) -> Snapshot | None:
    """(relative path, size, mtime_ns) of every file under `folder`; None if it is gone."""
    if not os.path.isdir(folder):
        return None
    found = []
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue   # removed while listed: the next poll's snapshot differs anyway
            found.append((os.path.relpath(path, folder), info.st_size, info.st_mtime_ns))
    return tuple(sorted(found))


class Readiness:
    """Remembers each checkpoint's snapshot of the previous poll: a checkpoint is ready when it
    is complete and unchanged since then."""

    def __init__(self) -> None:
        self.seen: dict[str, Snapshot | None] = {}

    def problem(self, checkpoint: Checkpoint) -> str | None:
        """None when ready; else why not (first seen, changing, incomplete, deleted)."""
        now = snapshot(checkpoint.path)
        previous = self.seen.get(checkpoint.name, ())
        self.seen[checkpoint.name] = now
        if now is None:
            return "deleted"
        problem = completeness_problem(checkpoint.path)
        if problem:
            return problem
        if previous != now:
            return "still being written" if previous else "new: looked at again next poll"
        return None
