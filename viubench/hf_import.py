"""`viubench import hf DIR_OR_REPO --out SET`: a test set back from an hf export (the format is
`viubench.hf_dataset`'s), checked as untrusted input: the marker, every media path (a plain
relative path under media/), every file's sha256, which media the samples name, and the sha256
of samples.jsonl; written in a folder beside `--out`, read back through `viubench.testset`, and
only then moved into place.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import stat
from typing import Any, Iterator

from .hf_dataset import (CARD, DATA, EXTRA, FORMAT, FORMAT_VERSION, MARKER, MAX_VIDEOS_BYTES,
                         HfDatasetError, folder_in_place)
from .records import read_json, read_jsonl
from .testset import (BUILD, MAX_BUILD_BYTES, MAX_MEDIA_BYTES, MAX_SAMPLE_BYTES, SAMPLES, VIDEOS,
                      iter_samples, load_build, media_paths)

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
    with folder_in_place(out) as work:
        _write_testset(folder, work, summary)
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
