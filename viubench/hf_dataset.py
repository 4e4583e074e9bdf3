"""`viubench export SET --format hf --out DIR`: a test set as a Hugging Face `datasets` dataset,
without losing a byte; the format's owner (its layout, marker and features). The way back,
`viubench import hf`, is `viubench.hf_import`.

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

An export to import is untrusted input: `viubench.hf_import` checks the marker, every media
path, every file's sha256, which media the samples name and the sha256 of samples.jsonl.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import os
import re
import shutil
from collections import Counter
from typing import Any, Iterator

from .records import canonical_json, write_json
from .testset import (BUILD, SAMPLES, VIDEOS, SampleRecord, SetMedia, iter_samples,
                      load_build, media_paths)

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
    with folder_in_place(out) as work:
        return _write_export(testset, work, limit)


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


@contextlib.contextmanager
def folder_in_place(out: str) -> Iterator[str]:
    """A new folder beside `out` to write in, moved to `out` when the block ends without error
    and removed when it fails (a crash never leaves half a folder at `out`)."""
    work = f"{os.path.abspath(out)}.partial-{os.getpid()}"
    os.makedirs(work)
    try:
        yield work
        _move_into_place(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _move_into_place(work: str, out: str) -> None:
    if os.path.isdir(out) and os.listdir(out):
        old = out.rstrip(os.sep) + ".replaced"
        os.replace(out, old)
        os.replace(work, out)
        shutil.rmtree(old)
    else:
        os.replace(work, out)   # an empty folder is replaced by the rename


def _write_export(testset: str, work: str, limit: int | None) -> dict[str, Any]:
    """The export in `work`; media read through `SetMedia` (files or packs alike)."""
    with SetMedia(testset) as media:
        return _write_rows(testset, work, limit, media)


def _write_rows(testset: str, work: str, limit: int | None,
                media: SetMedia) -> dict[str, Any]:
    os.makedirs(os.path.join(work, DATA))
    os.makedirs(os.path.join(work, EXTRA))
    for name in (BUILD, VIDEOS):
        shutil.copyfile(os.path.join(testset, name), os.path.join(work, EXTRA, name))
    samples_hash = hashlib.sha256()
    paths: dict[str, None] = {}   # distinct media paths in first-use order
    references = 0
    tasks: Counter = Counter()
    with _ShardWriter(os.path.join(work, DATA), "samples", sample_features()) as writer:
        for sample in iter_samples(testset, limit, media):
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
            data = media.read(path)
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
