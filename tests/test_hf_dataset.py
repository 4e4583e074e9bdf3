"""`viubench export --format hf` and `viubench import hf` on real footage: samples and media come
back byte for byte, floats exact, `verify` green, `datasets.load_dataset` reads the folder with
no network, shared frames are stored once, and a hostile or altered export is refused in one
line."""

from __future__ import annotations

import argparse
import json
import os
import shutil

import pytest

from helpers import viubench
from viubench.hf_dataset import HfDatasetError, export_hf, run_export_hf
from viubench.hf_import import import_hf
from viubench.testset import iter_samples, media_paths

datasets = pytest.importorskip("datasets", reason="the hf format needs the datasets package")
pq = pytest.importorskip("pyarrow.parquet", reason="the hf format needs pyarrow")


@pytest.fixture(autouse=True)
def offline(monkeypatch) -> None:
    """No test here may touch the network (the CLI subprocesses inherit these too)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def files_of(folder: str) -> dict[str, bytes]:
    """Every file of a test-set folder by relative path (the build's lock file aside)."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = open(path, "rb").read()
    found.pop(".viubench.lock", None)
    return found


def floats_in(value) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [number for item in value for number in floats_in(item)]
    return []


@pytest.fixture(scope="module")
def exported(all_variants_testset: str, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("hf") / "export")
    export_hf(all_variants_testset, out)
    return out


def test_round_trip_is_byte_identical_with_exact_floats(all_variants_testset, exported,
                                                        tmp_path):
    imported = str(tmp_path / "imported")
    import_hf(exported, imported)
    original, back = files_of(all_variants_testset), files_of(imported)
    assert sorted(back) == sorted(original)
    assert len([path for path in original if path.startswith("media/")]) > 1000
    for path, data in original.items():
        assert back[path] == data, path
    lines = open(os.path.join(imported, "samples.jsonl"), encoding="utf-8").read().splitlines()
    records = [json.loads(line) for line in lines]
    assert records == list(iter_samples(all_variants_testset))
    mvp = [record for record in records if record["task"] == "masked_prediction"]
    assert mvp and sum(len(floats_in(record)) for record in mvp) > 100
    # the floats a JSON loader would round to 10 decimals are among them
    assert any(number != round(number, 10) for record in records for number in floats_in(record))


def test_shared_frames_are_stored_once(all_variants_testset, exported, tmp_path):
    references = [path for sample in iter_samples(all_variants_testset)
                  for path in media_paths(sample)]
    media = datasets.load_dataset(exported, "media", split="test",
                                  cache_dir=str(tmp_path))
    assert media.num_rows == len(set(references)) < len(references)
    assert sorted(media["path"]) == sorted(set(references))


def test_load_dataset_reads_typed_columns_and_decodes_frames(all_variants_testset, exported,
                                                             tmp_path):
    samples = datasets.load_dataset(exported, split="test", cache_dir=str(tmp_path))
    for column in ("id", "task", "variant", "difficulty", "answer", "video_hash", "prompt_set",
                   "seed", "media", "record"):
        assert column in samples.features
    originals = {sample["id"]: sample for sample in iter_samples(all_variants_testset)}
    assert samples.num_rows == len(originals)
    counting = samples.filter(lambda row: row["task"] == "object_counting")
    assert 0 < counting.num_rows < samples.num_rows
    for row in counting:
        original = originals[row["id"]]
        assert json.loads(row["record"]) == original
        assert (row["answer"], row["video_hash"]) == (original["answer"],
                                                      original["video"]["hash"])
    media = datasets.load_dataset(exported, "media", split="test", cache_dir=str(tmp_path))
    first = media[0]
    with open(os.path.join(all_variants_testset, first["path"]), "rb") as handle:
        stored = handle.read()
    from PIL import Image

    decoded = Image.open(os.path.join(all_variants_testset, first["path"]))
    assert first["image"].size == decoded.size
    raw = media.cast_column("image", datasets.Image(decode=False))[0]["image"]
    assert raw["bytes"] == stored


def test_cli_round_trip_verifies_against_the_videos(viubench_testset, real_videos, tmp_path):
    export, imported = str(tmp_path / "export"), str(tmp_path / "imported")
    result = viubench("export", viubench_testset, "--format", "hf", "--out", export)
    assert result.returncode == 0, result.stderr
    assert "36 samples" in result.stdout
    result = viubench("import", "hf", export, "--out", imported)
    assert result.returncode == 0, result.stderr
    assert files_of(imported) == files_of(viubench_testset)
    result = viubench("verify", imported, "--videos", real_videos)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_limit_exports_the_first_samples_and_only_their_media(viubench_testset, tmp_path):
    export, imported = str(tmp_path / "export"), str(tmp_path / "imported")
    summary = export_hf(viubench_testset, export, limit=3)
    import_hf(export, imported)
    first = list(iter_samples(viubench_testset, 3))
    lines = open(os.path.join(viubench_testset, "samples.jsonl"), "rb").readlines()[:3]
    assert open(os.path.join(imported, "samples.jsonl"), "rb").read() == b"".join(lines)
    wanted = {path for sample in first for path in media_paths(sample)}
    got = {path for path in files_of(imported) if path.startswith("media/")}
    assert got == wanted and summary["media"] == len(wanted)


def rewrite_rows(export: str, config: str, change) -> None:
    """Apply `change(rows)` to the rows of one config's parquet file, keeping its schema."""
    path = os.path.join(export, "data", f"{config}-00000.parquet")
    table = pq.read_table(path)
    rows = table.to_pylist()
    change(rows)
    pq.write_table(table.from_pylist(rows, schema=table.schema), path)


def set_path(rows, path: str) -> None:
    rows[0]["path"] = path
    rows[0]["image"]["path"] = path


def flip_a_byte(rows) -> None:
    data = bytearray(rows[0]["image"]["bytes"])
    data[len(data) // 2] ^= 0xFF
    rows[0]["image"]["bytes"] = bytes(data)


def change_a_float(rows) -> None:
    record = json.loads(rows[0]["record"])
    record["frames"]["sample_fps"] = float(record["frames"].get("sample_fps") or 1.0) + 1e-12
    rows[0]["record"] = json.dumps(record, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize("config,change,reason", [
    ("media", lambda rows: set_path(rows, "media/../../escaped.jpg"), "no '..'"),
    ("media", lambda rows: set_path(rows, "/tmp/escaped.jpg"), "an absolute path"),
    ("media", lambda rows: set_path(rows, "build.json"), "not under media/"),
    ("media", flip_a_byte, "do not match their sha256"),
    ("media", lambda rows: rows.pop(), "media files"),
    ("samples", change_a_float, "would not match the sha256"),
])
def test_hostile_or_altered_export_is_refused_in_one_line(viubench_testset, tmp_path, config,
                                                          change, reason):
    export, imported = str(tmp_path / "export"), str(tmp_path / "imported")
    export_hf(viubench_testset, export, limit=4)
    rewrite_rows(export, config, change)
    result = viubench("import", "hf", export, "--out", imported)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert reason in result.stderr
    assert not os.path.exists(imported)
    assert not os.path.exists(str(tmp_path / "escaped.jpg"))
    assert os.listdir(tmp_path) == ["export"]   # no half-written folder left behind


def test_refuses_a_folder_that_is_no_export_and_a_used_out(viubench_testset, tmp_path):
    with pytest.raises(HfDatasetError, match="not a viubench hf export"):
        import_hf(viubench_testset, str(tmp_path / "imported"))
    export = str(tmp_path / "export")
    export_hf(viubench_testset, export, limit=2)
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    with pytest.raises(HfDatasetError, match="not an empty folder"):
        import_hf(export, str(used))
    with pytest.raises(HfDatasetError, match="not an earlier hf export"):
        export_hf(viubench_testset, str(used))
    assert (used / "notes.txt").read_text() == "mine"
    export_hf(viubench_testset, export, limit=3)   # an earlier export is replaced whole
    assert json.load(open(os.path.join(export, "viubench", "export.json")))["samples"] == 3


class RecordingApi:
    """Stands in for huggingface_hub.HfApi: records the calls instead of going online."""

    calls: list = []

    def create_repo(self, repo, **options):
        self.calls.append(("create_repo", repo, options))

    def upload_folder(self, **options):
        self.calls.append(("upload_folder", options))


def test_pushes_only_when_asked(viubench_testset, tmp_path, monkeypatch):
    import huggingface_hub

    RecordingApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    args = argparse.Namespace(testset=viubench_testset, out=str(tmp_path / "a"), limit=2,
                              push_to_hub=None)
    assert run_export_hf(args) == 0
    assert RecordingApi.calls == []
    args.out, args.push_to_hub = str(tmp_path / "b"), "someone/viubench-set"
    assert run_export_hf(args) == 0
    assert RecordingApi.calls == [
        ("create_repo", "someone/viubench-set", {"repo_type": "dataset", "exist_ok": True}),
        ("upload_folder", {"repo_id": "someone/viubench-set", "repo_type": "dataset",
                           "folder_path": args.out,
                           "commit_message": "viubench export --format hf"})]


def test_a_hand_written_samples_file_is_exported_in_canonical_form(viubench_testset, tmp_path,
                                                                   capsys):
    edited = str(tmp_path / "edited")
    shutil.copytree(viubench_testset, edited)
    path = os.path.join(edited, "samples.jsonl")
    records = [json.loads(line) for line in open(path, encoding="utf-8")]
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record, indent=None) + "\n" for record in records)
    args = argparse.Namespace(testset=edited, out=str(tmp_path / "export"), limit=None,
                              push_to_hub=None)
    assert run_export_hf(args) == 0
    assert "is not written as viubench writes it" in capsys.readouterr().out
    import_hf(args.out, str(tmp_path / "imported"))
    original = open(os.path.join(viubench_testset, "samples.jsonl"), "rb").read()
    assert open(str(tmp_path / "imported" / "samples.jsonl"), "rb").read() == original
    assert "is not written" not in viubench("export", viubench_testset, "--format", "hf",
                                            "--out", str(tmp_path / "plain")).stdout


def test_a_missing_source_is_one_line_and_never_goes_online(tmp_path):
    out = str(tmp_path / "imported")
    result = viubench("import", "hf", str(tmp_path / "no-such-folder"), "--out", out)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "nor a Hub dataset repository name" in result.stderr
    # a repository name is looked up on the Hub, which HF_HUB_OFFLINE forbids here
    result = viubench("import", "hf", "someone/no-such-dataset", "--out", out)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "not downloadable from the Hub" in result.stderr
    assert os.listdir(tmp_path) == []
