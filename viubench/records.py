"""Sample records, content ids, seeded randomness and append-only JSONL files."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import stat
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
    write_line(handle, canonical_json(record))


def write_line(handle, line: str) -> None:
    """Append `line` and a newline straight to the file (no buffer is left behind for a later
    flush to fail on again); an OSError (e.g. a full disk) names the file."""
    handle.flush()
    data = (line + "\n").encode()
    try:
        while data:
            data = data[os.write(handle.fileno(), data):]
    except OSError as error:
        raise OSError(error.errno, error.strerror, getattr(handle, "name", None)) from None


MAX_LINE_BYTES = 16 << 20   # no record viubench writes comes near this; a longer line is hostile


def read_jsonl(path: str, torn_ok: bool = True,
               max_line: int = MAX_LINE_BYTES) -> Iterator[dict[str, Any]]:
    """Records of a JSONL file, each a JSON object on its own line.

    A torn last line (no newline: a crash while writing) is ignored where `torn_ok` (files that
    are resumed), else an error. A line that is not a JSON object, or longer than `max_line`
    bytes (read no further than that), is an error naming the file and line. Only regular files
    are opened (a FIFO would block, a device never ends).
    """
    _require_regular(path)
    with open(path, "rb") as handle:
        for number, line in enumerate(iter(lambda: handle.readline(max_line + 1), b""), 1):
            if len(line) > max_line:
                raise ValueError(f"{path}:{number}: a record longer than {max_line} bytes")
            if not line.endswith(b"\n"):
                if torn_ok:
                    return
                raise ValueError(f"{path}:{number}: the last line is cut off (no newline):"
                                 " the file is incomplete")
            yield _record(path, number, line)


def _record(path: str, number: int, line: bytes) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}:{number}: not a JSON record ({error})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}:{number}: not a JSON record (a {type(record).__name__})")
    return record


def _require_regular(path: str) -> None:
    """FileNotFoundError, or ValueError unless `path` is (a link to) a regular file."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise ValueError(f"{path}: not a regular file: {file_kind(mode)}")


def file_kind(mode: int) -> str:
    """What kind of file a mode is, in words ("FIFO", "character device", ...)."""
    kinds = [(stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
             (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"),
             (stat.S_ISDIR, "folder"), (stat.S_ISREG, "regular file")]
    return next((name for test, name in kinds if test(mode)), "unknown file type")


def read_json(path: str, max_bytes: int = MAX_LINE_BYTES * 4) -> Any:
    """A JSON document from a regular file of at most `max_bytes`."""
    _require_regular(path)
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{path}: larger than {max_bytes} bytes")
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not JSON ({error})") from None


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
