"""The test-set folder: the one owner of its layout and of reading it.

  samples.jsonl  one record per sample, in video order then selection order
  videos.jsonl   one record per processed video (ok or skipped, counts, reasons, timings)
  media/         JPEG frames, one folder per source video, each frame written once; or, for
                 a build with --pack N, media/packs/: ZIP packs of N videos' frames
                 (`viubench.packs` owns that format; `SetMedia` reads either layout)
  build.json     tool version, build spec, counts, per-variant summary (videos that yielded
                 samples, top skip reasons), skipped videos, timings, status

`viubench.build` writes it, `viubench.verify` re-derives it from the source videos; everything
else reads it through the functions here.

A test set is untrusted input (it may come from anywhere). Reading it is contained: every record
is checked for shape and size, a cut-off or garbage line is an error naming file and line, a
duplicate id is refused, and every media path must name a regular file of bounded size inside
the folder (no absolute path, no `..`, no link leading out), before anything is read or sent.
Only regular files are opened. Nothing a test set names is imported (`viubench.registry`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import stat
import tempfile
from typing import Any, Iterator, TypedDict

from .packs import PACKS, PackError, PackReader
from .records import file_kind, read_json, read_jsonl

SAMPLES, VIDEOS, BUILD, MEDIA = "samples.jsonl", "videos.jsonl", "build.json", "media"


class SampleRecord(TypedDict):
    """One line of samples.jsonl (written by `viubench.render.make_record`)."""

    id: str                     # hash of everything below but the prompt text's media paths
    task: str
    variant: str
    difficulty: str
    version: str                # the task's version that built it
    video: dict[str, Any]       # path (relative), hash, duration, fps, frame_count, size, codec
    frames: dict[str, Any]      # indices, backend, size, sample_fps, pixel_bounds (the timeline)
    seed: int
    replica: int
    draws: dict[str, Any]       # the task's random choices: with the video, they fix the sample
    prompt: list[dict[str, Any]]   # parts: text, image (one JPEG), video (JPEGs + fps)
    answer: str
    system: str | None
    prompt_set: str


MAX_SAMPLE_BYTES = 4 << 20    # a 48-frame sample record is ~5 KB; MVP pools stay far below this
MAX_MEDIA_BYTES = 32 << 20    # one JPEG frame
MAX_BUILD_BYTES = 256 << 20   # build.json lists every skipped video


class BadTestSet(ValueError):
    """A test set that cannot be used as it is; the message names the file and the reason."""


def load_build(testset: str) -> dict[str, Any]:
    path = os.path.join(testset, BUILD)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{testset} is not a viubench test set (no {BUILD})")
    build = read_json(path, MAX_BUILD_BYTES)
    if not isinstance(build, dict) or not isinstance(build.get("spec"), dict):
        raise BadTestSet(f"{path}: not a viubench build record")
    return build


def is_training_set(testset: str) -> bool:
    """Whether build.json says the folder was built for training (`build --for-training`)."""
    return load_build(testset).get("purpose") == "training"


def samples_path(testset: str) -> str:
    """samples.jsonl of a test set, checked to be a regular file (hashing a FIFO would hang)."""
    path = os.path.join(testset, SAMPLES)
    next(read_jsonl(path, max_line=MAX_SAMPLE_BYTES), None)
    return path


def iter_samples(testset: str, limit: int | None = None,
                 media: SetMedia | None = None) -> Iterator[SampleRecord]:
    """Checked sample records in file order; with `limit`, the first `limit` (a run's scope);
    media paths are checked by `media` (default: the set's own `SetMedia`).

    Raises BadTestSet (one line: file, line, reason) at the first record that is malformed,
    oversized, a duplicate, cut off, or names media outside the folder or not a regular file.
    """
    path = os.path.join(testset, SAMPLES)
    with contextlib.ExitStack() as stack:
        checker = media or stack.enter_context(SetMedia(testset))
        first_line: dict[str, int] = {}
        records = read_jsonl(path, torn_ok=False, max_line=MAX_SAMPLE_BYTES)
        for number, record in enumerate(itertools.islice(_reported(records), limit), start=1):
            where = f"{path}:{number}"
            sample = _checked_record(record, where)
            if sample["id"] in first_line:
                raise BadTestSet(f"{where}: sample id {sample['id']} repeats line"
                                 f" {first_line[sample['id']]}")
            first_line[sample["id"]] = number
            for rel in media_paths(sample):
                checker.check(rel, where)
            yield sample


def sample_ids(testset: str, limit: int | None = None) -> list[str]:
    """The ids of the first `limit` samples, without the checks (for a scope `iter_samples`
    has already passed, e.g. a run just made)."""
    records = read_jsonl(os.path.join(testset, SAMPLES), max_line=MAX_SAMPLE_BYTES)
    return [str(record.get("id")) for record in itertools.islice(records, limit)]


def _reported(records: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The records, with a reading error re-raised as BadTestSet."""
    try:
        yield from records
    except ValueError as error:
        raise BadTestSet(str(error)) from None


_FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str, "task": str, "variant": str, "answer": str, "prompt": list, "video": dict,
    "frames": dict, "draws": dict, "seed": int, "replica": int}


def _checked_record(record: dict[str, Any], where: str) -> SampleRecord:
    for name, kind in _FIELDS.items():
        if not isinstance(record.get(name), kind):
            raise BadTestSet(f"{where}: field {name!r} missing or not a"
                             f" {getattr(kind, '__name__', kind)}")
    if not isinstance(record["video"].get("path"), str) or not record["id"]:
        raise BadTestSet(f"{where}: no sample id or video path")
    for part in record["prompt"]:
        if not isinstance(part, dict):
            raise BadTestSet(f"{where}: a prompt part that is not an object")
        if part.get("type") not in PART_TYPES:
            raise BadTestSet(f"{where}: a prompt part of no known type"
                             f" ({str(part.get('type'))[:40]!r})")
    return record  # type: ignore[return-value]  # checked above


PART_TYPES = ("text", "image", "video")


def media_paths(sample: SampleRecord) -> Iterator[Any]:
    """Every media path a sample's prompt names, as stored (relative to the test set)."""
    for part in sample["prompt"]:
        if part.get("type") == "image":
            yield part.get("image")
        elif part.get("type") == "video":
            frames = part.get("frames")
            yield from frames if isinstance(frames, list) else [frames]


class SetMedia:
    """The media of one test set in either layout: plain files under media/, or ZIP packs
    (`viubench.packs`, when media/packs is a folder). `check` refuses a path that is not a
    plain relative one, leads outside the folder, or names no readable file of bounded size;
    `read` gives a checked file's bytes; `path` a file path for it (a packed frame is first
    extracted under `extract_to`, or a temporary folder that `close` removes). Checked paths
    are remembered (frames are shared by many samples of a video)."""

    def __init__(self, testset: str, extract_to: str | None = None) -> None:
        self.root = os.path.realpath(testset)
        self.base = os.path.abspath(testset)
        self.folders: dict[str, bool] = {}
        self.files: set[str] = set()
        self.packs = _pack_reader(testset)
        self.extract_to = extract_to
        self.temporary: str | None = None
        self.extracted: set[str] = set()

    def __enter__(self) -> "SetMedia":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def packed(self) -> bool:
        return self.packs is not None

    def check(self, rel: Any, where: str) -> None:
        if rel in self.files:
            return
        problem = self._problem(rel)
        if problem:
            raise BadTestSet(f"{where}: media path {str(rel)[:200]!r}: {problem}")
        if len(self.files) > 100_000:
            self.files.clear()
        self.files.add(rel)

    def read(self, rel: str) -> bytes:
        """The bytes of media file `rel` (checked first; BadTestSet names the reason)."""
        self.check(rel, self.base)
        if self.packs is not None:
            try:
                return self.packs.read(rel)
            except PackError as error:    # names the pack and the member
                raise BadTestSet(str(error)) from None
        with open(os.path.join(self.root, rel), "rb") as handle:
            return handle.read()

    def path(self, rel: str) -> str:
        """A file holding media file `rel`: the test set's own, or a packed frame extracted."""
        if self.packs is None:
            return os.path.join(self.base, rel)
        if self.extract_to is None:
            self.extract_to = self.temporary = tempfile.mkdtemp(prefix="viubench-frames-")
        target = os.path.join(self.extract_to, rel)
        if rel not in self.extracted:
            data = self.read(rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(data)
            self.extracted.add(rel)
        return target

    def close(self) -> None:
        if self.packs is not None:
            self.packs.close()
        if self.temporary:
            shutil.rmtree(self.temporary, ignore_errors=True)
            self.temporary = self.extract_to = None
            self.extracted.clear()

    def _problem(self, rel: Any) -> str | None:
        if not isinstance(rel, str) or not rel or "\0" in rel:
            return "not a file name"
        if os.path.isabs(rel) or rel.startswith(("/", "\\")):
            return "an absolute path (media must lie inside the test-set folder)"
        parts = rel.replace("\\", "/").split("/")
        if any(part in ("", ".", "..") for part in parts):
            return "not a plain relative path (no '..', '.' or empty parts)"
        if self.packs is not None:
            return self.packs.problem(rel)
        path = os.path.join(self.root, rel)
        folder = os.path.dirname(path)
        if folder not in self.folders:
            self.folders[folder] = _inside(os.path.realpath(folder), self.root)
        if not self.folders[folder]:
            return "its folder leads outside the test-set folder"
        return _file_problem(path, self.root)


def _pack_reader(testset: str) -> PackReader | None:
    """The reader of a packed test set's frames (None for plain media files)."""
    folder = os.path.join(testset, PACKS)
    if os.path.islink(folder) or not os.path.isdir(folder):
        return None
    videos = os.path.join(testset, VIDEOS)
    records = read_jsonl(videos, max_line=MAX_SAMPLE_BYTES) if os.path.exists(videos) else []
    try:
        return PackReader(os.path.realpath(testset),
                          ((f"{videos}:{n}", r) for n, r in enumerate(records, start=1)),
                          MAX_MEDIA_BYTES)
    except ValueError as error:
        raise BadTestSet(str(error)) from None


def _file_problem(path: str, root: str) -> str | None:
    try:
        if os.path.islink(path) and not _inside(os.path.realpath(path), root):
            return "a link leading outside the test-set folder"
        info = os.stat(path)
    except FileNotFoundError:
        return "no such file"
    except OSError as error:
        return error.strerror or str(error)
    if not stat.S_ISREG(info.st_mode):
        return f"not a regular file: {file_kind(info.st_mode)}"
    if info.st_size > MAX_MEDIA_BYTES:
        return f"larger than {MAX_MEDIA_BYTES} bytes"
    return None


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
