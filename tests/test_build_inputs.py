"""Building from folders of generated clips: bad inputs, duplicates, donors, resume, determinism."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

import clipmaker as cm
from helpers import TESTS, kill_when
from viubench.build import BuildSpec, build
from viubench.media import load_frame
from viubench.registry import load_tasks, select
from viubench.testset import BUILD, SAMPLES, VIDEOS, iter_samples
from viubench.verify import verify

# Tasks of the build over every codec (the CLI gets the same filters, so the specs are equal).
FILTERS = ["anomaly_grounding:mirror", "anomaly_grounding:shuffle", "anomaly_grounding:swap",
           "object_counting:easy", "temporal_jigsaw:hard"]
# Smaller selection for the resume tests.
RESUME_FILTERS = ["anomaly_grounding:swap", "object_counting:easy", "temporal_jigsaw:easy"]
DUPLICATE = "zz_copy_of_h264.mp4"
SERIES = 10
LO, HI = 128 * 128, 512 * 512   # the default frame-area bounds


def selection(filters) -> tuple[tuple[str, str], ...]:
    return tuple(select(load_tasks(), None, filters))


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "viubench.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def build_args(videos: str, out: str, filters, *extra: str) -> list[str]:
    return ["build", "--videos", videos, "--out", out, "--tasks", *filters, *extra]


def listing(folder: str) -> list[tuple[str, int, int]]:
    """Every entry under `folder` (hidden ones too) with its size and modification time."""
    found = []
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            stat = os.stat(path)
            found.append((os.path.relpath(path, folder), stat.st_size, stat.st_mtime_ns))
    return sorted(found)


def media_hashes(testset: str) -> dict[str, str]:
    media = os.path.join(testset, "media")
    hashes = {}
    for root, _, files in os.walk(media):
        for name in files:
            if name.endswith(".jpg"):
                with open(os.path.join(root, name), "rb") as handle:
                    hashes[os.path.relpath(os.path.join(root, name), media)] = \
                        hashlib.sha256(handle.read()).hexdigest()
    return hashes


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def samples(testset: str) -> list[dict]:
    return list(iter_samples(testset))


def video_log(testset: str) -> list[dict]:
    """videos.jsonl without the timings (which legitimately differ between runs)."""
    with open(os.path.join(testset, VIDEOS), encoding="utf-8") as handle:
        return [{k: v for k, v in json.loads(line).items() if k != "timings"} for line in handle]


# --- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Every good clip, every bad file and a byte copy of h264.mp4; plus its listing."""
    folder = str(tmp_path_factory.mktemp("mixed") / "videos")
    cm.write_good(folder)
    cm.write_bad(folder)
    cm.copy_file(os.path.join(folder, "h264.mp4"), os.path.join(folder, DUPLICATE))
    return folder, listing(folder)


@pytest.fixture(scope="module")
def main_build(source, tmp_path_factory):
    """API build over the mixed folder with 2 worker processes."""
    folder, _ = source
    out = str(tmp_path_factory.mktemp("main") / "testset")
    summary = build(BuildSpec(folder, selection(FILTERS)), out, workers=2)
    return out, summary


@pytest.fixture(scope="module")
def cli_build(source, tmp_path_factory):
    """The same build through the CLI with 1 worker."""
    folder, _ = source
    out = str(tmp_path_factory.mktemp("cli") / "testset")
    done = cli(*build_args(folder, out, FILTERS, "--workers", "1"))
    assert done.returncode == 0, done.stderr
    return out, done


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """Ten distinct small H.264 clips for the resume tests."""
    folder = str(tmp_path_factory.mktemp("series") / "videos")
    os.makedirs(folder)
    for k in range(SERIES):
        cm.write_video(os.path.join(folder, f"clip{k:02d}.mp4"), "libx264", frames=64 + 4 * k,
                       seed=20 + k, options={"preset": "ultrafast", "crf": "23"})
    return folder


@pytest.fixture(scope="module")
def reference(series, tmp_path_factory):
    """An uninterrupted build of the series (1 worker); its samples.jsonl bytes as built."""
    out = str(tmp_path_factory.mktemp("reference") / "testset")
    summary = build(BuildSpec(series, selection(RESUME_FILTERS)), out, workers=1)
    assert summary["status"] == "complete" and summary["videos"]["ok"] == SERIES
    return out, read_bytes(os.path.join(out, SAMPLES)), media_hashes(out)


# --- bad inputs -----------------------------------------------------------------------------

def test_every_bad_file_is_skipped_with_its_reason(main_build):
    _, summary = main_build
    reasons = {s["path"]: s["reason"] for s in summary["skipped"]}
    expected = {cm.BAD[name][1]: cm.BAD[name][2] for name in cm.BAD}
    expected[DUPLICATE] = "duplicate of h264.mp4 (same content)"
    assert set(reasons) == set(expected)
    for path, words in expected.items():
        assert words in reasons[path], (path, reasons[path])
    assert reasons["empty.mp4"] == "empty file (0 bytes)"
    assert reasons["audio.m4a"].startswith("no video stream (streams found: audio)")
    assert reasons["notes.mp4"].startswith("PyAV cannot read it")
    assert reasons["truncated.mp4"].startswith("PyAV cannot read it")
    assert reasons["corrupt.mp4"].startswith("decoding failed after frame")
    assert reasons["short_30f.mp4"].startswith("too short: the central 90% holds 27 frames")


def test_every_good_file_gives_samples(main_build):
    out, summary = main_build
    good = {entry[1] for entry in cm.GOOD.values()}
    assert summary["status"] == "complete"
    assert summary["videos"] == {"processed": len(good) + len(cm.BAD) + 1, "ok": len(good),
                                 "skipped": len(cm.BAD) + 1}
    assert summary["sample_skips"] == []
    assert summary["counts"] == {key: len(good) for key in FILTERS}
    records = samples(out)
    assert len(records) == len(good) * len(FILTERS)
    assert {r["video"]["path"] for r in records} == good
    assert len({r["id"] for r in records}) == len(records)
    frames_by_name = {entry[1]: entry[2] for entry in cm.GOOD.values()}
    for record in records:
        video, frames = record["video"], record["frames"]
        assert video["frame_count"] == frames_by_name[video["path"]]
        w, h = frames["size"]
        assert LO <= w * h <= HI and frames["backend"] == "pyav"
        total = video["frame_count"]
        first, last = (5 * total) // 100, (95 * total) // 100
        step = (last - first) // 48
        assert frames["indices"] == [first + i * step for i in range(48)]


def test_media_frames_are_the_source_frames(main_build):
    """Outside the mirrored run, each shown frame carries the marker of its source index."""
    out, _ = main_build
    for record in samples(out):
        if record["variant"] != "mirror":
            continue
        start, length = record["draws"]["start"], record["draws"]["length"]
        shown = record["prompt"][0]["frames"]
        indices = record["frames"]["indices"]
        for position in list(range(0, start, 5)) + list(range(start + length, 48, 5)):
            frame = load_frame(os.path.join(out, shown[position]))
            assert cm.read_marker(frame) == indices[position], (record["video"]["path"], position)


def test_verify_passes(main_build):
    out, summary = main_build
    result = verify(out)
    assert result.ok, result.problems[:5]
    assert result.checked == summary["samples"]


def test_duplicate_copy_is_skipped(main_build):
    out, summary = main_build
    skipped = {s["path"]: s["reason"] for s in summary["skipped"]}
    assert skipped[DUPLICATE] == "duplicate of h264.mp4 (same content)"
    assert all(r["video"]["path"] != DUPLICATE for r in samples(out))
    log = {r["path"]: r for r in video_log(out)}
    assert log[DUPLICATE]["hash"] == log["h264.mp4"]["hash"]


def test_swap_donor_is_another_readable_video(main_build):
    out, _ = main_build
    good = {entry[1] for entry in cm.GOOD.values()} | {DUPLICATE}
    swaps = [r for r in samples(out) if r["variant"] == "swap"]
    assert len(swaps) == len(cm.GOOD)
    for record in swaps:
        donor = record["draws"]["donor"]
        assert donor["path"] != record["video"]["path"] and donor["path"] in good
        assert donor["hash"] != record["video"]["hash"]


def test_swap_skips_without_a_second_video(tmp_path):
    folder = str(tmp_path / "solo")
    cm.h264_mp4(os.path.join(folder, "only.mp4"))
    cm.copy_file(os.path.join(folder, "only.mp4"), os.path.join(folder, "only_copy.mp4"))
    cm.write_bad(folder, ["empty", "corrupt", "audio", "too_short"])
    out = str(tmp_path / "testset")
    summary = build(BuildSpec(folder, selection(["anomaly_grounding:swap",
                                                 "temporal_jigsaw:easy"])), out)
    assert summary["counts"] == {"temporal_jigsaw:easy": 1}
    assert summary["sample_skips"] == [{
        "sample": "anomaly_grounding:swap", "replica": "0", "video": "only.mp4",
        "reason": "swap needs a second, different readable video in the build"}]
    assert verify(out).ok


# --- CLI ------------------------------------------------------------------------------------

def test_cli_prints_skip_reasons(cli_build, main_build):
    _, done = cli_build
    _, summary = main_build
    for skipped in summary["skipped"]:
        line = f"skipped {skipped['path']}: {skipped['reason']}"
        assert line in done.stdout  # the summary
        # ... and the progress log as it happens (tqdm.write: stdout by default)
        assert (done.stdout + done.stderr).count(line) >= 2
    assert "12 videos (8 skipped)" in done.stdout


def test_cli_verify(cli_build):
    out, _ = cli_build
    done = cli("verify", out)
    assert done.returncode == 0, done.stderr
    assert ": OK" in done.stdout


def test_workers_1_and_2_are_byte_identical(cli_build, main_build):
    one, _ = cli_build
    two, _ = main_build
    assert read_bytes(os.path.join(one, SAMPLES)) == read_bytes(os.path.join(two, SAMPLES))
    assert media_hashes(one) == media_hashes(two)
    assert video_log(one) == video_log(two)


def test_builds_never_write_into_the_source_folder(source, main_build, cli_build):
    folder, before = source
    assert listing(folder) == before


# --- resume ---------------------------------------------------------------------------------

def test_rebuild_adds_nothing(series, reference):
    out, built, media = reference
    before = video_log(out)
    summary = build(BuildSpec(series, selection(RESUME_FILTERS)), out)
    assert summary["status"] == "complete" and summary["videos"]["processed"] == SERIES
    assert read_bytes(os.path.join(out, SAMPLES)) == built
    assert video_log(out) == before
    assert media_hashes(out) == media


STALL_FILTERS = [*RESUME_FILTERS, "stalling_direction:default"]
STALL_MODULE = ["--task-module", "stall_task:TASK", "--workers", "1"]


@pytest.fixture(scope="module")
def falling(tmp_path_factory):
    """Ten clips, each file smaller than the one before: decoded in name order."""
    return cm.falling_series(str(tmp_path_factory.mktemp("falling") / "videos"), SERIES)


def test_resume_after_sigkill(falling, tmp_path):
    """Killed mid-build, then resumed: the same bytes as a build never killed. A test task
    hangs on the last video, the smallest file and so the last decoded; a video's record is
    written before any video decoded after it is rendered, so when the hang begins (the kill
    lands then) most videos are recorded and the last is not."""
    env = dict(os.environ, PYTHONPATH=TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))
    whole = str(tmp_path / "whole")
    done = subprocess.run([sys.executable, "-m", "viubench.cli",
                           *build_args(falling, whole, STALL_FILTERS, *STALL_MODULE)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    built, media = read_bytes(os.path.join(whole, SAMPLES)), media_hashes(whole)
    out, mark = str(tmp_path / "killed"), str(tmp_path / "hung")
    last = sorted(os.listdir(falling))[-1]
    process = subprocess.Popen([sys.executable, "-m", "viubench.cli",
                                *build_args(falling, out, STALL_FILTERS, *STALL_MODULE)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=dict(env, VIUBENCH_TEST_STALL_VIDEO=last,
                                        VIUBENCH_TEST_STALL_MARK=mark))
    kill_when(process, lambda: os.path.exists(mark), "hang")
    with open(os.path.join(out, BUILD), encoding="utf-8") as handle:
        assert json.load(handle)["status"] == "running"
    videos = os.path.join(out, VIDEOS)
    done_lines = read_bytes(videos).count(b"\n")
    assert 1 <= done_lines < SERIES
    assert last not in read_bytes(videos).decode()
    again = subprocess.run([sys.executable, "-m", "viubench.cli",
                            *build_args(falling, out, STALL_FILTERS, *STALL_MODULE)],
                           capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"{done_lines} videos already done" in again.stdout + again.stderr
    assert read_bytes(os.path.join(out, SAMPLES)) == built
    ids = [r["id"] for r in samples(out)]
    assert len(ids) == len(set(ids))
    assert media_hashes(out) == media
    assert verify(out, task_modules=["stall_task:TASK"]).ok


def test_resume_after_torn_writes(series, reference, tmp_path):
    """A crash while appending: half a line at the end of both logs, and samples.jsonl ahead
    of videos.jsonl (a video's samples written, its videos.jsonl line not)."""
    ref, built, _ = reference
    out = str(tmp_path / "torn")
    shutil.copytree(ref, out)
    with open(os.path.join(out, VIDEOS), "rb") as handle:
        video_lines = handle.readlines()
    with open(os.path.join(out, SAMPLES), "rb") as handle:
        sample_lines = handle.readlines()
    keep = 3
    counts = [json.loads(line)["samples"] for line in video_lines]
    with open(os.path.join(out, VIDEOS), "wb") as handle:
        handle.writelines(video_lines[:keep])
        handle.write(video_lines[keep][:len(video_lines[keep]) // 2])
    ahead = sum(counts[:keep + 1])
    with open(os.path.join(out, SAMPLES), "wb") as handle:
        handle.writelines(sample_lines[:ahead])
        handle.write(sample_lines[ahead][:len(sample_lines[ahead]) // 2])
    summary = build(BuildSpec(series, selection(RESUME_FILTERS)), out)
    assert summary["videos"]["processed"] == SERIES
    assert read_bytes(os.path.join(out, SAMPLES)) == built
    assert video_log(out) == video_log(ref)


def test_rerun_with_other_seed_is_refused(series, reference):
    out, built, _ = reference
    before = read_bytes(os.path.join(out, BUILD))
    done = cli(*build_args(series, out, RESUME_FILTERS, "--seed", "1", "--workers", "1"))
    assert done.returncode == 2
    assert "error" in done.stderr and "different settings" in done.stderr
    assert read_bytes(os.path.join(out, SAMPLES)) == built
    assert read_bytes(os.path.join(out, BUILD)) == before
