"""`viubench build --pack N`: frames in ZIP packs instead of one file per frame. Packed and plain
builds of real footage hold the same samples (the same test-set hash) and frames; verify, eval
(a frame-reading solver), the exports and the contact sheet read both alike; packs are the same
bytes for any worker count and after a kill at any point; hostile packs are one error line."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

import clipmaker as cm
from helpers import kill_when, recipe_args, viubench
from viubench.build import BuildSpec, build
from viubench.cli import main
from viubench.contact_sheet import contact_sheet
from viubench.packs import FIXED_TIME, MANIFEST, PACKS
from viubench.records import file_hash
from viubench.runfolder import read_run
from viubench.testset import (BUILD, SAMPLES, VIDEOS, BadTestSet, SetMedia, iter_samples,
                              media_paths)
from viubench.verify import verify

TESTS = os.path.dirname(os.path.abspath(__file__))
SELECTION = (("anomaly_grounding", "swap"), ("masked_prediction", "mvp-easy"),
             ("object_counting", "easy"), ("temporal_jigsaw", "easy"))


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


@pytest.fixture(scope="module")
def sets(real_videos, tmp_path_factory) -> dict[str, str]:
    """The same spec built plain, packed 3 videos a pack with 1 and 2 workers, packed 1 a pack."""
    root = tmp_path_factory.mktemp("packs")
    spec = BuildSpec(real_videos, SELECTION, seed=5)
    made = {"plain": (1, 0), "packed": (2, 3), "packed_serial": (1, 3), "single": (2, 1)}
    for name, (workers, pack) in made.items():
        build(spec, str(root / name), workers=workers, pack=pack)
    return {name: str(root / name) for name in made}


def all_media(testset: str) -> dict[str, bytes]:
    """Every media path the samples name -> its bytes, read through the house reader."""
    with SetMedia(testset) as media:
        return {rel: media.read(rel) for sample in iter_samples(testset, media=media)
                for rel in media_paths(sample)}


def stored_files(testset: str) -> dict[str, bytes]:
    found = {}
    for folder, _, names in os.walk(os.path.join(testset, "media")):
        for name in names:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, testset)] = read_bytes(path)
    return found


def test_packed_and_plain_builds_hold_the_same_samples_and_frames(sets):
    plain, packed = sets["plain"], sets["packed"]
    assert read_bytes(os.path.join(plain, SAMPLES)) == read_bytes(os.path.join(packed, SAMPLES))
    assert file_hash(os.path.join(plain, SAMPLES)) == file_hash(os.path.join(packed, SAMPLES))
    frames = all_media(plain)
    assert len(frames) > 100 and all_media(packed) == frames
    # 4 videos, 3 a pack: two files hold every frame
    assert sorted(stored_files(packed)) == [f"{PACKS}/pack-00000.zip", f"{PACKS}/pack-00001.zip"]
    assert len(stored_files(sets["single"])) == 4
    assert stored_files(sets["packed_serial"]) == stored_files(packed)   # any worker count
    records = [json.loads(line) for line in read_bytes(os.path.join(packed, VIDEOS)).splitlines()]
    assert [r["pack"] for r in records] == ["pack-00000.zip"] * 3 + ["pack-00001.zip"]
    with open(os.path.join(packed, BUILD), encoding="utf-8") as handle:
        assert json.load(handle)["media"] == {"layout": "packs", "videos_per_pack": 3}


def test_pack_members_are_stored_with_fixed_headers_and_a_manifest(sets, real_videos):
    with zipfile.ZipFile(os.path.join(sets["packed"], PACKS, "pack-00000.zip")) as pack:
        members = pack.infolist()
        assert pack.testzip() is None                      # every CRC checks
        manifest = json.loads(pack.read(MANIFEST))
    assert members[-1].filename == MANIFEST
    assert {m.compress_type for m in members} == {zipfile.ZIP_STORED}
    assert {m.date_time for m in members} == {FIXED_TIME}
    assert manifest["videos"] == [[0, name] for name in sorted(os.listdir(real_videos))[:3]]


def test_verify_eval_and_contact_sheet_read_packs_as_files(sets, tmp_path):
    plain, packed = sets["plain"], sets["packed"]
    assert verify(packed).ok and verify(packed).checked == verify(plain).checked
    env_tmp = tmp_path / "tmp"
    env_tmp.mkdir()
    runs = {}
    for name in ("plain", "packed"):
        runs[name] = str(tmp_path / f"run_{name}")
        done = viubench("eval", "--testset", sets[name], "--model",
                        "similarity solver=continuity", "--max-error-rate", "1",
                        "--out", runs[name],
                        env={"TMPDIR": str(env_tmp)})
        assert done.returncode == 0, done.stderr
    replies = [sorted((r["id"], r["text"], r["error"]) for r in read_run(runs[n])[1]
                      if r["record"] == "prediction") for n in ("plain", "packed")]
    assert replies[0] == replies[1] and len(replies[0]) == 16
    assert sum(text is not None for _, text, _ in replies[0]) == 4     # the MVP samples
    scores = [read_bytes(os.path.join(runs[n], "scores.jsonl")) for n in ("plain", "packed")]
    assert scores[0] == scores[1]
    assert os.listdir(env_tmp) == []           # the frames extracted for the run are gone
    sample = next(s["id"] for s in iter_samples(plain) if s["task"] == "masked_prediction")
    sheets = [contact_sheet(sets[n], sample, str(tmp_path / f"{n}.png")) for n in sets]
    assert len({read_bytes(path) for path in sheets}) == 1


def test_exports_of_a_packed_set_carry_the_same_frames(sets, tmp_path):
    pytest.importorskip("datasets", reason="the exports write with datasets (train extra)")
    pq = pytest.importorskip("pyarrow.parquet", reason="the exports write parquet")
    from viubench.export import export_set
    from viubench.hf_dataset import export_hf
    from viubench.hf_import import import_hf
    from viubench.lmms_eval_task import export_lmms_eval

    plain, packed = sets["plain"], sets["packed"]
    exported = export_set(packed, "verl", str(tmp_path / "verl"))
    assert any("extracted" in warning for warning in exported.warnings)
    rows = pq.read_table(exported.path).to_pylist()
    frames = [frame for row in rows for video in row["videos"] for frame in video["video"]]
    out_media = os.path.join(str(tmp_path / "verl"), "media") + os.sep
    assert frames and all(frame.startswith(out_media) for frame in frames)
    plain_frames = all_media(plain)
    assert all(read_bytes(f) == plain_frames[os.path.relpath(f, str(tmp_path / "verl"))]
               for f in frames)
    manifest = export_lmms_eval(packed, str(tmp_path / "lmms"))
    assert manifest["frames"] == "media"
    again = export_lmms_eval(packed, str(tmp_path / "lmms"))       # over the earlier export
    assert again == manifest
    export_hf(packed, str(tmp_path / "hf"))
    import_hf(str(tmp_path / "hf"), str(tmp_path / "imported"))
    imported = str(tmp_path / "imported")
    assert read_bytes(os.path.join(imported, SAMPLES)) == read_bytes(os.path.join(plain, SAMPLES))
    assert stored_files(imported) == stored_files(plain)       # back as one file per frame


def test_a_recipe_build_with_top_up_rounds_packs_like_plain(real_videos, tmp_path):
    """Round 2 deals more samples to videos packed in round 1: their new frames go in packs of
    their own, and every frame still reads back as in the plain build."""
    args = recipe_args(real_videos, tmp_path / "videos")
    plain, packed = str(tmp_path / "plain"), str(tmp_path / "packed")
    assert main([*args, "--out", plain, "--workers", "1"]) == 0
    assert main([*args, "--out", packed, "--workers", "2", "--pack", "2"]) == 0
    assert read_bytes(os.path.join(plain, SAMPLES)) == read_bytes(os.path.join(packed, SAMPLES))
    assert all_media(packed) == all_media(plain)
    records = contents(packed)[1]
    assert max(record.get("round", 0) for record in records) >= 2
    assert len({record["pack"] for record in records if record.get("round") == 2}) >= 1
    assert verify(packed).ok


def contents(testset: str) -> tuple[bytes, list[dict], dict[str, str]]:
    """samples.jsonl, videos.jsonl without timings, and the hash of every stored media file."""
    videos = [json.loads(line) for line in read_bytes(os.path.join(testset, VIDEOS)).splitlines()]
    for record in videos:
        del record["timings"]
    files = {rel: hashlib.sha256(data).hexdigest() for rel, data in stored_files(testset).items()}
    return read_bytes(os.path.join(testset, SAMPLES)), videos, files


def test_killed_after_a_pack_closed_but_before_its_records_resumes_identically(
        real_videos, sets, tmp_path):
    """The records of a pack's videos follow its close; a kill between the close and the last
    record leaves a pack not all recorded (and perhaps a .partial): the resume drops both and
    builds them again, byte for byte."""
    spec = BuildSpec(real_videos, SELECTION, seed=5)
    whole, cut = str(tmp_path / "whole"), str(tmp_path / "cut")
    build(spec, whole, workers=1, pack=2)
    shutil.copytree(whole, cut)
    records = read_bytes(os.path.join(cut, VIDEOS)).splitlines(keepends=True)
    kept = records[:3]                         # pack-00001's second video is not recorded
    samples = sum(json.loads(line)["samples"] for line in kept)
    lines = read_bytes(os.path.join(cut, SAMPLES)).splitlines(keepends=True)
    with open(os.path.join(cut, VIDEOS), "wb") as handle:
        handle.write(b"".join(kept))
    with open(os.path.join(cut, SAMPLES), "wb") as handle:
        handle.write(b"".join(lines[:samples]))
    with open(os.path.join(cut, PACKS, "pack-00002.zip.partial"), "wb") as handle:
        handle.write(b"PK\x03\x04 torn")
    os.utime(os.path.join(cut, PACKS, "pack-00001.zip"), (0, 0))
    summary = build(spec, cut, workers=2, pack=2)
    assert summary["status"] == "complete"
    assert contents(cut) == contents(whole)
    assert os.stat(os.path.join(cut, PACKS, "pack-00001.zip")).st_mtime != 0   # written again


def test_sigkill_with_a_pack_open_resumes_identically(tmp_path):
    """A CLI build SIGKILLed while its first pack is still open (a test task hangs on the last
    video, the last decoded; the videos before it are in the pack by then, which holds them
    all): nothing is recorded, the .partial pack is removed, the resume is the build never
    killed."""
    videos = cm.falling_series(str(tmp_path / "videos"), 5)
    args = ["build", "--videos", videos, "--tasks", "temporal_jigsaw:easy",
            "stalling_direction:default", "--task-module", "stall_task:TASK", "--workers", "1",
            "--pack", "8"]
    whole, out, mark = str(tmp_path / "whole"), str(tmp_path / "killed"), tmp_path / "hung"
    env = dict(os.environ, PYTHONPATH=TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-m", "viubench.cli", *args, "--out", whole],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    last = sorted(os.listdir(videos))[-1]
    process = subprocess.Popen(
        [sys.executable, "-m", "viubench.cli", *args, "--out", out], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(env, VIUBENCH_TEST_STALL_VIDEO=last, VIUBENCH_TEST_STALL_MARK=str(mark)))
    kill_when(process, mark.exists, "hang on the last video")
    assert os.listdir(os.path.join(out, PACKS)) == ["pack-00000.zip.partial"]
    assert read_bytes(os.path.join(out, VIDEOS)) == b""
    again = subprocess.run([sys.executable, "-m", "viubench.cli", *args, "--out", out],
                           capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    assert contents(out) == contents(whole)


def test_resume_with_another_layout_is_refused(real_videos, sets, tmp_path):
    spec = BuildSpec(real_videos, SELECTION, seed=5)
    for source, pack, held in (("packed", 2, "packs of 3 videos"),
                               ("packed", 0, "packs of 3 videos"),
                               ("plain", 3, "one file per frame")):
        out = str(tmp_path / f"{source}{pack}")
        shutil.copytree(sets[source], out)
        before = contents(out)
        with pytest.raises(ValueError, match=f"storing frames as {held}"):
            build(spec, out, pack=pack)
        assert contents(out) == before                 # nothing already built is touched
    with pytest.raises(ValueError, match="--pack -1"):
        build(spec, str(tmp_path / "negative"), pack=-1)


def hostile_copy(sets, tmp_path) -> str:
    out = str(tmp_path / "hostile")
    shutil.copytree(sets["packed"], out)
    return out


def first_failure(testset: str) -> str:
    with pytest.raises(BadTestSet) as caught:
        for _ in iter_samples(testset):
            pass
    return str(caught.value)


def test_a_pack_that_is_a_link_or_named_outside_is_refused(sets, tmp_path):
    out = hostile_copy(sets, tmp_path)
    pack = os.path.join(out, PACKS, "pack-00000.zip")
    shutil.move(pack, str(tmp_path / "elsewhere.zip"))
    os.symlink(str(tmp_path / "elsewhere.zip"), pack)
    assert "packs are never links" in first_failure(out)
    os.remove(pack)
    shutil.copy(os.path.join(sets["packed"], PACKS, "pack-00000.zip"), pack)
    lines = read_bytes(os.path.join(out, VIDEOS)).decode().splitlines()
    record = json.loads(lines[1])
    record["pack"] = "../../../etc/passwd"
    lines[1] = json.dumps(record)
    with open(os.path.join(out, VIDEOS), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    message = first_failure(out)
    assert f"{VIDEOS}:2" in message and "not a pack file name" in message


def test_a_compressed_torn_or_missing_member_is_one_line(sets, tmp_path):
    out = hostile_copy(sets, tmp_path)
    pack = os.path.join(out, PACKS, "pack-00001.zip")
    with zipfile.ZipFile(pack) as original:
        members = [(info, original.read(info)) for info in original.infolist()]
    with zipfile.ZipFile(pack, "w") as rewritten:
        for info, data in members:
            rewritten.writestr(info.filename, data, compress_type=zipfile.ZIP_DEFLATED)
    assert "a compressed member of pack-00001.zip" in first_failure(out)
    with zipfile.ZipFile(pack, "w") as rewritten:
        for info, data in members[1:]:
            rewritten.writestr(info, data)
    assert f"{members[0][0].filename}" in first_failure(out)
    assert "in no pack its video's records name" in first_failure(out)
    with zipfile.ZipFile(pack, "w") as rewritten:
        for info, data in members:
            rewritten.writestr(info, data)
    raw = bytearray(read_bytes(pack))
    start = raw.index(b"\xff\xd8\xff")         # the first frame's JPEG bytes
    raw[start + 200] ^= 0xFF
    with open(pack, "wb") as handle:
        handle.write(bytes(raw))
    problems = verify(out).problems
    assert any("cannot be read" in p and "CRC" in p for p in problems)
    done = viubench("eval", "--testset", out, "--model", "similarity solver=continuity",
                    "--out", str(tmp_path / "run"))
    errors = [line for line in done.stderr.splitlines() if line.startswith("viubench eval:")]
    assert done.returncode != 0 and len(errors) == 1 and "Bad CRC-32" in errors[0]
    assert "pack-00001.zip" in errors[0]
