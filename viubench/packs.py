"""ZIP packs: a large build's frames in one file per N videos instead of one file per frame.

`viubench build --pack N` writes, instead of `media/<group>/<key>.jpg` files:

  media/packs/pack-00000.zip  the frames of N consecutive videos of the build (in build order),
                              each stored uncompressed under its media path, then `pack.json`:
                              the videos whose frames it holds, as [round, path] pairs
  videos.jsonl                each such video's record names its pack (`pack`)

Sample records name the same media paths in either layout, so samples.jsonl, and with it the
test-set hash, does not depend on the layout.

Why ZIP: a frame is read by name through the central directory (no scan of the pack), reading
checks each member's CRC, the standard library writes and reads it, any tool lists it
(`unzip -l`), and with fixed timestamps and attributes its bytes depend on its members alone,
so a pack is the same whatever the workers or executor. JPEG is stored, never deflated.

Commit order: a pack is written as `.partial`, closed and renamed; only then are the records of
its videos written. A resumed build cuts back the records of a pack whose videos are not all
recorded and removes every pack no kept record names, so it writes exactly the packs of a
build never stopped.
"""

from __future__ import annotations

import json
import os
import re
import stat
import threading
import zipfile
from collections import OrderedDict
from typing import Any, Iterable, Protocol

PACKS = "media/packs"
MANIFEST = "pack.json"
PACK_NAME = re.compile(r"^pack-(\d{5,9})\.zip$")
FIXED_TIME = (1980, 1, 1, 0, 0, 0)     # every member's timestamp (ZIP's earliest)
OPEN_PACKS = 16                          # packs a reader keeps open
MAX_MANIFEST_BYTES = 64 << 20


class PackError(ValueError):
    """A pack or a record naming one that cannot be used; the message names file and reason."""


def pack_name(number: int) -> str:
    return f"pack-{number:05d}.zip"


class Packable(Protocol):
    """What a build hands a pack: one video's result and the frames it rendered."""

    path: str
    round: int
    pack: str
    media: list[tuple[str, bytes]]


class PackedOutput:
    """The driver's side of a packed build: takes results in build order and gives them back
    once their pack is closed (so their records may be written). A result without frames
    (a skip) passes straight through when no pack is open, else waits with the others."""

    def __init__(self, out: str, videos_per_pack: int, next_number: int) -> None:
        if videos_per_pack < 1:
            raise ValueError(f"--pack {videos_per_pack}: give at least 1 video per pack")
        self.folder = os.path.join(out, PACKS)
        self.videos_per_pack = videos_per_pack
        self.number = next_number
        self.open: zipfile.ZipFile | None = None
        self.names: set[str] = set()
        self.videos: list[list[Any]] = []
        self.waiting: list[Packable] = []

    def add(self, result: Packable) -> list[Packable]:
        """Results whose records may now be written, in build order."""
        if not result.media:
            if self.open is None:
                return [result]
            self.waiting.append(result)
            return []
        self._put(result)
        self.waiting.append(result)
        if len(self.videos) == self.videos_per_pack:
            return self.close()
        return []

    def close(self) -> list[Packable]:
        """Close the open pack (if any); every waiting result."""
        if self.open is not None:
            manifest = json.dumps({"videos": self.videos}, sort_keys=True).encode()
            self.open.writestr(_member(MANIFEST), manifest)
            self.open.close()
            final = os.path.join(self.folder, pack_name(self.number))
            os.replace(final + ".partial", final)
            self.open, self.names, self.videos = None, set(), []
            self.number += 1
        ready, self.waiting = self.waiting, []
        return ready

    def _put(self, result: Packable) -> None:
        if self.open is None:
            os.makedirs(self.folder, exist_ok=True)
            path = os.path.join(self.folder, pack_name(self.number) + ".partial")
            self.open = zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True)
        for name, data in result.media:
            if name not in self.names:       # a top-up round re-renders frames of its video
                self.names.add(name)
                self.open.writestr(_member(name), data)
        result.pack = pack_name(self.number)
        result.media = []
        self.videos.append([result.round, result.path])


def _member(name: str) -> zipfile.ZipInfo:
    """A member header that depends on the name alone (time, system and mode fixed)."""
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    return info


def resume_packs(out: str, done: list[dict[str, Any]]) -> tuple[int, int]:
    """(how many of the records `done` a resumed packed build keeps, the next pack number).

    The last pack named is kept only if every video its manifest lists is recorded; else its
    records and all after them go. Packs no kept record names (and `.partial` ones) are removed.
    """
    keep = len(done)
    named = [record["pack"] for record in done if record.get("pack")]
    if named:
        last = named[-1]
        listed = _manifest_videos(out, last)
        recorded = {(r.get("round", 0), r["path"]) for r in done if r.get("pack") == last}
        if listed is None or not listed <= recorded:
            keep = next(i for i, r in enumerate(done) if r.get("pack") == last)
    kept = {record["pack"] for record in done[:keep] if record.get("pack")}
    folder = os.path.join(out, PACKS)
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            ours = PACK_NAME.match(name.removesuffix(".partial"))
            if ours and name not in kept:
                os.remove(os.path.join(folder, name))
    return keep, len(kept)


def _manifest_videos(out: str, name: str) -> set[tuple[int, str]] | None:
    """The (round, path) pairs a pack's manifest lists; None for a pack missing or unreadable."""
    try:
        with zipfile.ZipFile(os.path.join(out, PACKS, name)) as pack:
            videos = json.loads(pack.read(MANIFEST))["videos"]
        return {(int(round_), str(path)) for round_, path in videos}
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, TypeError):
        return None


class PackReader:
    """Reads the media of a packed test set (untrusted): a media path is looked up in the packs
    that the records of its video (`media/<group>/…`, group = the video hash's first 16 hex
    digits) name. Packs must be regular files under media/packs (never links); a member must be
    stored uncompressed and at most `max_bytes` long; reading checks its CRC."""

    def __init__(self, root: str, records: Iterable[tuple[str, dict[str, Any]]],
                 max_bytes: int) -> None:
        self.root, self.max_bytes = root, max_bytes
        self.groups: dict[str, list[str]] = {}
        for where, record in records:
            name = record.get("pack") if isinstance(record, dict) else None
            if name is None:
                continue
            if not isinstance(name, str) or not PACK_NAME.match(name):
                raise PackError(f"{where}: pack {str(name)[:80]!r} is not a pack file name")
            group = str(record.get("hash", ""))[:16]
            packs = self.groups.setdefault(group, [])
            if name not in packs:
                packs.append(name)
        self.opened: OrderedDict[str, zipfile.ZipFile] = OrderedDict()
        self.lock = threading.Lock()

    def problem(self, rel: str) -> str | None:
        """Why `rel` cannot be read from the packs (None if it can)."""
        try:
            self._info(rel)
        except PackError as error:
            return str(error)
        return None

    def read(self, rel: str) -> bytes:
        with self.lock:
            pack, info = self._info(rel)
            try:
                return pack.read(info)
            except (OSError, zipfile.BadZipFile, ValueError) as error:
                raise PackError(f"{pack.filename}: {error}") from None

    def close(self) -> None:
        for pack in self.opened.values():
            pack.close()
        self.opened.clear()

    def _info(self, rel: str) -> tuple[zipfile.ZipFile, zipfile.ZipInfo]:
        parts = rel.split("/")
        group = parts[1] if len(parts) == 3 and parts[0] == "media" else ""
        for name in self.groups.get(group, ()):
            pack = self._pack(name)
            try:
                info = pack.getinfo(rel)
            except KeyError:
                continue
            if info.compress_type != zipfile.ZIP_STORED:
                raise PackError(f"a compressed member of {name} (packs store frames as they are)")
            if info.file_size > self.max_bytes:
                raise PackError(f"larger than {self.max_bytes} bytes (in {name})")
            return pack, info
        raise PackError("in no pack its video's records name")

    def _pack(self, name: str) -> zipfile.ZipFile:
        if name in self.opened:
            self.opened.move_to_end(name)
            return self.opened[name]
        path = os.path.join(self.root, PACKS, name)
        try:
            info = os.lstat(path)
            if not stat.S_ISREG(info.st_mode):
                raise PackError(f"{path}: not a regular file (packs are never links)")
            pack = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise PackError(f"{path}: no such pack") from None
        except (OSError, zipfile.BadZipFile) as error:
            raise PackError(f"{path}: not a readable pack ({error})") from None
        self.opened[name] = pack
        if len(self.opened) > OPEN_PACKS:
            self.opened.popitem(last=False)[1].close()
        return pack
