"""`viubench export SET --format hf --out DIR` and `viubench import hf DIR_OR_REPO --out SET`: a
test set as a Hugging Face `datasets` dataset, and back, without losing a byte.

The export is a folder in the Hub's own layout: `datasets.load_dataset(DIR)` reads it without
network, and `--push-to-hub REPO` uploads it as it is.

  README.md                    dataset card; its YAML header names the two configs
  data/samples-NNNNN.parquet   config `samples` (the default): one row per sample, in
                               samples.jsonl order
  data/media-NNNNN.parquet     config `media`: one row per distinct media file, so a frame that
                               many samples share is stored once
  viubench/build.json          the set's build record, copied byte for byte
  viubench/videos.jsonl        the set's per-video records, copied byte for byte
  viubench/export.json         format marker, counts and the sha256 of samples.jsonl

A sample row holds the whole record as its canonical JSON text (`record`; every float exact,
where datasets' JSON loader would round them) beside typed columns to filter on, and the paths of
the media its prompt names (`media`, in prompt order). A media row holds the path, the file's
original bytes as an `Image` and their sha256.

An export to import is untrusted input. It must carry the marker; every media path must be a
plain relative path under media/ (no `..`, nothing absolute), every file's bytes must match its
sha256, every sample must name only media the export holds (and every media file must be named),
and samples.jsonl must come out with the recorded sha256. The set is written in a folder beside
`--out`, read back through `viubench.testset` and only then moved into place.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import itertools
import json
import os
import re
import shutil
import stat
from collections import Counter
from typing import Any, Iterator

from .records import canonical_json, read_json, read_jsonl, write_json
from .testset import (BUILD, MAX_BUILD_BYTES, MAX_MEDIA_BYTES, MAX_SAMPLE_BYTES, SAMPLES, VIDEOS,
                      SampleRecord, iter_samples, load_build, media_paths)

FORMAT = "viubench-hf"
FORMAT_VERSION = 1
CARD, DATA, EXTRA = "README.md", "data", "viubench"
MARKER = "export.json"
OUR_ENTRIES = {CARD, DATA, EXTRA}
SHARD_BYTES = 256 << 20       # a new parquet file after this many bytes of rows
BATCH_ROWS = 256              # rows buffered before a write
MAX_VIDEOS_BYTES = 64 << 20   # videos.jsonl: one short record per video
SHARD_NAME = re.compile(r"^(samples|media)-(\d{5})\.parquet$")
TYPED_COLUMNS = ("id", "task", "variant", "difficulty", "answer", "prompt_set", "version")


class HfDatasetError(ValueError):
    """An export or import that cannot be made; the message names the file and the reason."""


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise HfDatasetError("the hf format needs the `datasets` and `pyarrow` packages"
                             " (pip install 'viubench[datasets]')") from None
    return datasets


def sample_features() -> Any:
    datasets = _datasets()
    text = datasets.Value("string")
    columns = {name: text for name in TYPED_COLUMNS}
    columns.update(video_path=text, video_hash=text, seed=datasets.Value("int64"),
                   replica=datasets.Value("int64"), media=datasets.List(text), record=text)
    return datasets.Features(columns)


def media_features() -> Any:
    datasets = _datasets()
    return datasets.Features({"path": datasets.Value("string"), "image": datasets.Image(),
                              "sha256": datasets.Value("string")})


# ---- export ---------------------------------------------------------------------------------

def run_export_hf(args: argparse.Namespace) -> int:
    summary = export_hf(args.testset, args.out, args.limit)
    print(f"{args.out}: {summary['samples']} samples, {summary['media']} media files"
          f" ({summary['media_references']} frame references) as a Hugging Face dataset")
    print(f"load with: datasets.load_dataset({os.path.abspath(args.out)!r})"
          " (configs: samples, media)")
    if not summary["source_canonical"]:
        print(f"note: {args.testset}/{SAMPLES} is not written as viubench writes it (edited?):"
              " the dataset holds each record's canonical JSON, which an import writes back")
    if args.push_to_hub:
        push_to_hub(args.out, args.push_to_hub)
        print(f"pushed to https://huggingface.co/datasets/{args.push_to_hub}")
    return 0


def export_hf(testset: str, out: str, limit: int | None = None) -> dict[str, Any]:
    """Write the dataset folder `out` from `testset` (its first `limit` samples); see the module
    text. Returns the counts recorded in viubench/export.json."""
    load_build(testset)
    _check_export_out(out)
    work = _work_folder(out)
    try:
        summary = _write_export(testset, work, limit)
        _move_into_place(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return summary


def _check_export_out(out: str) -> None:
    """`out` is new, empty, or an earlier hf export (replaced whole)."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise HfDatasetError(f"{out}: exists and is not a folder")
    if not os.path.isdir(out) or not os.listdir(out):
        return
    entries = set(os.listdir(out))
    if entries - OUR_ENTRIES or not os.path.isfile(os.path.join(out, EXTRA, MARKER)):
        raise HfDatasetError(f"{out}: holds files that are not an earlier hf export; export into"
                             " a new or empty folder")


def _work_folder(out: str) -> str:
    """A new folder beside `out` to write in (a crash never leaves half a folder at `out`)."""
    work = f"{os.path.abspath(out)}.partial-{os.getpid()}"
    os.makedirs(work)
    return work


def _move_into_place(work: str, out: str) -> None:
    if os.path.isdir(out) and os.listdir(out):
        old = out.rstrip(os.sep) + ".replaced"
        os.replace(out, old)
        os.replace(work, out)
        shutil.rmtree(old)
    else:
        os.replace(work, out)   # an empty folder is replaced by the rename


def _write_export(testset: str, work: str, limit: int | None) -> dict[str, Any]:
    os.makedirs(os.path.join(work, DATA))
    os.makedirs(os.path.join(work, EXTRA))
    for name in (BUILD, VIDEOS):
        shutil.copyfile(os.path.join(testset, name), os.path.join(work, EXTRA, name))
    samples_hash = hashlib.sha256()
    paths: dict[str, None] = {}   # distinct media paths in first-use order
    references = 0
    tasks: Counter = Counter()
    with _ShardWriter(os.path.join(work, DATA), "samples", sample_features()) as writer:
        for sample in iter_samples(testset, limit):
            record = canonical_json(sample)
            samples_hash.update((record + "\n").encode())
            row = sample_row(sample, record)
            paths.update(dict.fromkeys(row["media"]))
            references += len(row["media"])
            tasks[sample["task"]] += 1
            writer.add(row, len(record))
    if not tasks:
        raise HfDatasetError(f"{testset}: no samples to export")
    with _ShardWriter(os.path.join(work, DATA), "media", media_features()) as writer:
        for path in paths:
            data = _read_media(testset, path)
            writer.add({"path": path, "image": {"bytes": data, "path": path},
                        "sha256": hashlib.sha256(data).hexdigest()}, len(data))
    count = sum(tasks.values())
    summary = {"format": FORMAT, "version": FORMAT_VERSION, "samples": count,
               "media": len(paths), "media_references": references,
               "samples_sha256": samples_hash.hexdigest(), "tasks": dict(sorted(tasks.items())),
               "source_canonical": _lines_hash(testset, count) == samples_hash.hexdigest()}
    write_json(os.path.join(work, EXTRA, MARKER), summary)
    split = _split_name(load_build(testset))
    _write_text(os.path.join(work, CARD), dataset_card(testset, summary, split))
    return summary


def _lines_hash(testset: str, count: int) -> str:
    """sha256 of the first `count` lines of the set's samples.jsonl as they are on disk."""
    digest = hashlib.sha256()
    with open(os.path.join(testset, SAMPLES), "rb") as handle:
        for line in itertools.islice(handle, count):
            digest.update(line)
    return digest.hexdigest()


def sample_row(sample: SampleRecord, record: str) -> dict[str, Any]:
    """The `samples` row of one sample: typed columns, its media paths, the record's JSON text."""
    row: dict[str, Any] = {name: _text(sample.get(name)) for name in TYPED_COLUMNS}
    row.update(video_path=_text(sample["video"].get("path")),
               video_hash=_text(sample["video"].get("hash")), seed=sample["seed"],
               replica=sample["replica"], media=list(media_paths(sample)), record=record)
    return row


def _text(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else canonical_json(value)


def _read_media(testset: str, path: str) -> bytes:
    """A media file `iter_samples` has checked (regular, inside the set, bounded size)."""
    with open(os.path.join(testset, path), "rb") as handle:
        return handle.read(MAX_MEDIA_BYTES + 1)


def _split_name(build: dict[str, Any]) -> str:
    return "train" if build.get("purpose") == "training" else "test"


class _ShardWriter:
    """Rows into `folder/PREFIX-00000.parquet`, `-00001`, ...: a new file every SHARD_BYTES."""

    def __init__(self, folder: str, prefix: str, features: Any) -> None:
        self.folder, self.prefix = folder, prefix
        self.schema = features.arrow_schema
        self.rows: list[dict[str, Any]] = []
        self.buffered = self.written = 0
        self.shard = -1
        self.writer: Any = None

    def __enter__(self) -> _ShardWriter:
        return self

    def add(self, row: dict[str, Any], size: int) -> None:
        self.rows.append(row)
        self.buffered += size
        if len(self.rows) >= BATCH_ROWS or self.buffered >= SHARD_BYTES // 8:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.rows:
            return
        if self.writer is None or self.written >= SHARD_BYTES:
            self._close_writer()
            self.shard += 1
            path = os.path.join(self.folder, f"{self.prefix}-{self.shard:05d}.parquet")
            self.writer = pq.ParquetWriter(path, self.schema)
        self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
        self.written += self.buffered
        self.rows, self.buffered = [], 0

    def _close_writer(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.writer, self.written = None, 0

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is None:
            self._flush()
        self._close_writer()


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def dataset_card(testset: str, summary: dict[str, Any], split: str) -> str:
    """README.md: the YAML header that names the configs, then what the rows hold."""
    configs = "".join(
        f"- config_name: {name}\n{'  default: true' + chr(10) if name == 'samples' else ''}"
        f"  data_files:\n  - split: {split}\n    path: {DATA}/{name}-*.parquet\n"
        for name in ("samples", "media"))
    tasks = ", ".join(f"{task} ({count})" for task, count in summary["tasks"].items())
    return (f"---\nconfigs:\n{configs}tags:\n- viubench\n- video\n---\n\n"
            f"# {os.path.basename(os.path.abspath(testset))}: a viubench test set\n\n"
            f"{summary['samples']} samples ({tasks}); {summary['media']} distinct media files"
            f" ({summary['media_references']} references).\n\n"
            "- config `samples`: one row per sample. `record` is the sample's viubench record as"
            " canonical JSON (floats exact: parse it with `json.loads`); `id`, `task`,"
            " `variant`, `difficulty`, `answer`, `prompt_set`, `version`, `video_path`,"
            " `video_hash`, `seed`, `replica` are typed copies to filter on; `media` lists the"
            " media paths the prompt names, in order.\n"
            "- config `media`: one row per media file (`path`, `image` with the original JPEG"
            " bytes, `sha256`); frames shared by several samples are stored once.\n"
            f"- `{EXTRA}/`: the set's build.json and videos.jsonl, and the export's counts.\n\n"
            "```python\nimport datasets\n"
            f"samples = datasets.load_dataset(PATH_OR_REPO, 'samples', split='{split}')\n"
            f"media = datasets.load_dataset(PATH_OR_REPO, 'media', split='{split}')\n```\n\n"
            "Back to a viubench test-set folder (samples and media byte for byte):"
            " `viubench import hf PATH_OR_REPO --out TESTSET`.\n")


def push_to_hub(folder: str, repo: str) -> None:
    """Upload the export folder as it is to the dataset repository `repo` (needs network and a
    token, e.g. from `hf auth login`)."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo, repo_type="dataset", exist_ok=True)
    api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=folder,
                      commit_message="viubench export --format hf")


# ---- import ---------------------------------------------------------------------------------

def run_import_hf(args: argparse.Namespace) -> int:
    summary = import_hf(args.source, args.out)
    print(f"{args.out}: {summary['samples']} samples, {summary['media']} media files imported"
          f" from {args.source}; check them with: viubench verify {args.out} --videos VIDEOS")
    return 0


def import_hf(source: str, out: str) -> dict[str, Any]:
    """Write the test-set folder `out` from an hf export (a local folder, or a Hub dataset
    repository, which is downloaded); see the module text. Returns the export's counts."""
    _check_import_out(out)
    if os.path.isdir(source):
        return _import_folder(source, out)
    download = f"{os.path.abspath(out)}.download-{os.getpid()}"
    try:
        return _import_folder(_download(source, download), out)
    finally:
        shutil.rmtree(download, ignore_errors=True)


def _import_folder(folder: str, out: str) -> dict[str, Any]:
    summary = _read_marker(folder)
    work = _work_folder(out)
    try:
        _write_testset(folder, work, summary)
        _move_into_place(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return summary


def _check_import_out(out: str) -> None:
    if os.path.exists(out) and not (os.path.isdir(out) and not os.listdir(out)):
        raise HfDatasetError(f"{out}: exists and is not an empty folder; import into a new one")


def _download(source: str, folder: str) -> str:
    """The export files of the Hub dataset repository `source`, as plain files in `folder` (the
    Hub's cache would hold links, which an import refuses)."""
    if os.path.exists(source):
        raise HfDatasetError(f"{source}: not a folder")
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", source):
        raise HfDatasetError(f"{source}: no such folder, nor a Hub dataset repository name")
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(source, repo_type="dataset", local_dir=folder,
                                 allow_patterns=[CARD, f"{DATA}/*.parquet", f"{EXTRA}/*"])
    except Exception as error:   # the Hub client's many network and HTTP errors: one line
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise HfDatasetError(f"{source}: no such folder, and not downloadable from the Hub"
                             f" ({first[:300]})") from None


def _read_marker(folder: str) -> dict[str, Any]:
    path = os.path.join(folder, EXTRA, MARKER)
    if not os.path.exists(path):
        raise HfDatasetError(f"{folder}: not a viubench hf export (no {EXTRA}/{MARKER})")
    summary = read_json(path, 1 << 20)
    if not isinstance(summary, dict) or summary.get("format") != FORMAT:
        raise HfDatasetError(f"{path}: not a viubench hf export marker")
    if summary.get("version") != FORMAT_VERSION:
        raise HfDatasetError(f"{path}: export format version {summary.get('version')!r}; this"
                             f" viubench reads version {FORMAT_VERSION}")
    for name in ("samples", "media"):
        if not isinstance(summary.get(name), int):
            raise HfDatasetError(f"{path}: no count of {name}")
    if not isinstance(summary.get("samples_sha256"), str):
        raise HfDatasetError(f"{path}: no samples_sha256")
    return summary


def _write_testset(folder: str, work: str, summary: dict[str, Any]) -> None:
    _copy_checked(os.path.join(folder, EXTRA, BUILD), os.path.join(work, BUILD),
                  MAX_BUILD_BYTES)
    _copy_checked(os.path.join(folder, EXTRA, VIDEOS), os.path.join(work, VIDEOS),
                  MAX_VIDEOS_BYTES)
    load_build(work)
    for _ in read_jsonl(os.path.join(work, VIDEOS), torn_ok=False):
        pass
    written = _write_media(folder, work)
    _expect(len(written), summary["media"], folder, "media files")
    named = _write_samples(folder, work, summary)
    for path in sorted(named - written):
        raise HfDatasetError(f"{folder}: a sample names media {path[:200]!r} the export lacks")
    for path in sorted(written - named):
        raise HfDatasetError(f"{folder}: media file {path!r} is named by no sample")
    for _ in iter_samples(work):   # the house reader's checks, on the folder as written
        pass


def _copy_checked(source: str, target: str, max_bytes: int) -> None:
    """Copy a regular file (not a link: the export may come from anyone) of bounded size."""
    if not os.path.exists(source):
        raise HfDatasetError(f"{source}: missing (not a complete viubench hf export)")
    if not stat.S_ISREG(os.lstat(source).st_mode):
        raise HfDatasetError(f"{source}: not a regular file")
    with open(source, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise HfDatasetError(f"{source}: larger than {max_bytes} bytes")
    with open(target, "wb") as handle:
        handle.write(data)


def _expect(count: int, recorded: int, folder: str, what: str) -> None:
    if count != recorded:
        raise HfDatasetError(f"{folder}: holds {count} {what}, its {EXTRA}/{MARKER} records"
                             f" {recorded} (an incomplete or altered export)")


def _write_media(folder: str, work: str) -> set[str]:
    written: set[str] = set()
    for where, row in _rows(folder, "media", ("path", "image", "sha256")):
        path = row["path"]
        problem = media_path_problem(path)
        if problem:
            raise HfDatasetError(f"{where}: media path {str(path)[:200]!r}: {problem}")
        if path in written:
            raise HfDatasetError(f"{where}: media path {path!r} repeats")
        data = (row["image"] or {}).get("bytes")
        if not isinstance(data, bytes) or len(data) > MAX_MEDIA_BYTES:
            raise HfDatasetError(f"{where}: {path}: no image bytes, or more than"
                                 f" {MAX_MEDIA_BYTES}")
        if hashlib.sha256(data).hexdigest() != row["sha256"]:
            raise HfDatasetError(f"{where}: {path}: the bytes do not match their sha256")
        target = os.path.join(work, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "xb") as handle:
            handle.write(data)
        written.add(path)
    return written


def media_path_problem(path: Any) -> str | None:
    """Why `path` cannot be a media file of a test set (None if it can): a plain relative path
    of at least two parts under media/."""
    if not isinstance(path, str) or not path or "\0" in path or "\\" in path:
        return "not a file name"
    if os.path.isabs(path) or path.startswith("/"):
        return "an absolute path"
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "not a plain relative path (no '..', '.' or empty parts)"
    if parts[0] != "media" or len(parts) < 2:
        return "not under media/"
    return None


def _write_samples(folder: str, work: str, summary: dict[str, Any]) -> set[str]:
    """samples.jsonl from the `record` column, checked against the typed columns and the
    recorded sha256; returns the media paths the samples name."""
    digest = hashlib.sha256()
    named: set[str] = set()
    count = 0
    with open(os.path.join(work, SAMPLES), "x", encoding="utf-8") as handle:
        for where, row in _rows(folder, "samples", ("id", "media", "record")):
            line = _checked_line(where, row)
            digest.update((line + "\n").encode())
            named.update(row["media"] or ())
            handle.write(line + "\n")
            count += 1
    _expect(count, summary["samples"], folder, "samples")
    if digest.hexdigest() != summary["samples_sha256"]:
        raise HfDatasetError(f"{folder}: samples.jsonl would not match the sha256 its"
                             f" {EXTRA}/{MARKER} records (an altered export)")
    return named


def _checked_line(where: str, row: dict[str, Any]) -> str:
    line = row["record"]
    if not isinstance(line, str) or "\n" in line or len(line.encode()) > MAX_SAMPLE_BYTES:
        raise HfDatasetError(f"{where}: record is not one line of JSON of at most"
                             f" {MAX_SAMPLE_BYTES} bytes")
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise HfDatasetError(f"{where}: record is not JSON ({error})") from None
    if not isinstance(record, dict) or record.get("id") != row["id"]:
        raise HfDatasetError(f"{where}: record is not a sample record with id {row['id']!r}")
    if list(media_paths(record)) != list(row["media"] or ()):  # type: ignore[arg-type]
        raise HfDatasetError(f"{where}: column media differs from the record's media paths")
    return line


def _rows(folder: str, config: str,
          columns: tuple[str, ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows of one config's parquet shards, in shard order, each with its `file:row` name."""
    for path in _shards(folder, config):
        for number, row in enumerate(_parquet_rows(path, columns), start=1):
            yield f"{path}:{number}", row


def _shards(folder: str, config: str) -> list[str]:
    paths = sorted(glob.glob(os.path.join(glob.escape(folder), DATA, f"{config}-*.parquet")))
    names = [os.path.basename(path) for path in paths]
    expected = [f"{config}-{index:05d}.parquet" for index in range(len(paths))]
    if not paths or names != expected:
        raise HfDatasetError(f"{folder}: not a viubench hf export ({DATA}/ holds"
                             f" {names[:3] or 'no'} {config} files, not {expected[:1] or ''}...)")
    return paths


def _parquet_rows(path: str, columns: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    import pyarrow
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
        missing = [name for name in columns if name not in handle.schema_arrow.names]
        if missing:
            raise HfDatasetError(f"{path}: no column {missing[0]!r}")
        for batch in handle.iter_batches(batch_size=64, columns=list(columns)):
            yield from batch.to_pylist()
    except (pyarrow.ArrowException, OSError) as error:
        raise HfDatasetError(f"{path}: not a readable parquet file"
                             f" ({str(error).splitlines()[0][:200]})") from None
