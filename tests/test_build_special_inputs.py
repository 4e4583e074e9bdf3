"""Building from a video folder that holds what it should not (issue 13): a valid file decord
refuses, a phone clip stored sideways, a FIFO, a device, sockets, broken and looping symlinks,
a symlinked folder, unreadable files and folders. All end to end through `viubench build`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from typing import Sequence

import numpy as np
import pytest

import clipmaker as cm
from viubench.build import BuildSpec, build
from viubench.media import load_frame
from viubench.registry import load_tasks, select
from viubench.testset import BUILD, iter_samples

FILTERS = ["anomaly_grounding:mirror", "object_counting:easy", "temporal_jigsaw:easy"]
ROTATED_W, ROTATED_H = 112, 176       # cm.rotated_mp4's displayed size
ROTATED_SEED = 17                     # cm.rotated_mp4's pattern seed


def has_decord() -> bool:
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True


def cli(*args: str, prefix: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """`viubench ARGS` (after the command `prefix`); the timeout fails a build that blocks on
    a FIFO instead of hanging."""
    return subprocess.run([*prefix, sys.executable, "-m", "viubench.cli", *args],
                          capture_output=True, text=True, timeout=300)


def build_cli(videos: str, out: str, decoder: str,
              prefix: Sequence[str] = ()) -> subprocess.CompletedProcess:
    return cli("build", "--videos", videos, "--out", out, "--tasks", *FILTERS, "--workers", "1",
               "--decoder", decoder, prefix=prefix)


def skips(out: str) -> dict[str, str]:
    with open(os.path.join(out, BUILD), encoding="utf-8") as handle:
        return {s["path"]: s["reason"] for s in json.load(handle)["skipped"]}


# Entries no build can read, and the reason each must be skipped with.
SPECIAL_REASONS = {
    "pipe.mp4": "not a regular file: FIFO",
    "sock.mp4": "not a regular file: socket",
    "zero.mp4": "not a regular file: character device (symlink to /dev/zero)",
    "loop_a.mp4": "symlink loop (following the links never reaches a file)",
    "loop_b.mp4": "symlink loop (following the links never reaches a file)",
    "dangling.mp4": "broken symlink: its target gone.mp4 does not exist",
    "linked_folder": "symlink to a folder (../elsewhere): symlinked folders are not followed",
}


def add_special_entries(root: str) -> None:
    """SPECIAL_REASONS' entries: `linked_folder` points at a folder holding a good clip."""
    os.mkfifo(os.path.join(root, "pipe.mp4"))
    os.symlink("/dev/zero", os.path.join(root, "zero.mp4"))
    os.symlink("loop_b.mp4", os.path.join(root, "loop_a.mp4"))
    os.symlink("loop_a.mp4", os.path.join(root, "loop_b.mp4"))
    os.symlink("gone.mp4", os.path.join(root, "dangling.mp4"))
    cm.h264_mp4(os.path.join(os.path.dirname(root), "elsewhere", "other.mp4"), seed=31)
    os.symlink("../elsewhere", os.path.join(root, "linked_folder"))
    with socket.socket(socket.AF_UNIX) as server:   # a socket file stays after close
        server.bind(os.path.join(root, "sock.mp4"))


@pytest.fixture(scope="module")
def special(tmp_path_factory):
    """A folder of four readable clips (one a symlink to a video elsewhere, which is read as
    before) among the special entries, built with --decoder auto through the CLI."""
    base = tmp_path_factory.mktemp("special")
    root = str(base / "videos")
    cm.h264_mp4(os.path.join(root, "plain.mp4"))
    cm.vp9_live_webm(os.path.join(root, "live.webm"))
    cm.rotated_mp4(os.path.join(root, "phone_rot90.mp4"), 90)
    add_special_entries(root)
    os.symlink("../elsewhere/other.mp4", os.path.join(root, "linked_video.mp4"))
    out = str(base / "testset")
    done = build_cli(root, out, "auto")
    assert done.returncode == 0, done.stderr
    return root, out, done


def records_of(out: str, path: str) -> list[dict]:
    return [r for r in iter_samples(out) if r["video"]["path"] == path]


def test_every_special_entry_is_skipped_with_its_precise_reason(special):
    root, out, done = special
    assert skips(out) == SPECIAL_REASONS
    for path, reason in SPECIAL_REASONS.items():
        assert f"skipped {path}: {reason}" in done.stdout
    assert "file not found" not in done.stdout + done.stderr


def test_symlinked_video_is_still_read(special):
    _, out, _ = special
    assert len(records_of(out, "linked_video.mp4")) == len(FILTERS)


def test_decord_failure_builds_every_sample_with_pyav(special):
    """live.webm (decord 0.6 cannot measure it) gives all its samples under auto, each
    recording the backend that decoded it."""
    _, out, _ = special
    live = records_of(out, "live.webm")
    assert sorted(f"{r['task']}:{r['variant']}" for r in live) == sorted(FILTERS)
    assert {r["frames"]["backend"] for r in live} == {"pyav"}
    plain = records_of(out, "plain.mp4")
    assert {r["frames"]["backend"] for r in plain} == {"decord" if has_decord() else "pyav"}


def test_rotated_clip_reaches_the_model_upright(special):
    """The phone clip's stored pictures lie sideways; the frames shown are the upright
    pattern, checked by pixels and by the frame-number marker."""
    _, out, _ = special
    phone = records_of(out, "phone_rot90.mp4")
    assert len(phone) == len(FILTERS)
    for record in phone:
        video = record["video"]
        assert (video["rotation"], video["width"], video["height"]) == (90, ROTATED_W, ROTATED_H)
        assert record["frames"]["size"] == [ROTATED_W, ROTATED_H]
    jigsaw = next(r for r in phone if r["task"] == "temporal_jigsaw")
    clean = {f for part in jigsaw["prompt"] if part["type"] == "video" for f in part["frames"]}
    for rel in sorted(clean):
        frame = load_frame(os.path.join(out, rel))
        source = cm.read_marker(frame)
        pattern = cm.make_frame(source, ROTATED_W, ROTATED_H, ROTATED_SEED)
        assert frame.shape == pattern.shape
        assert np.abs(frame.astype(np.int16) - pattern).mean() < 6.0, rel
    assert {r.get("video", {}).get("rotation") for r in records_of(out, "plain.mp4")} == {None}


def test_verify_re_derives_the_special_build(special):
    _, out, _ = special
    done = cli("verify", out)
    assert done.returncode == 0, done.stderr
    assert ": OK" in done.stdout


def test_explicit_decord_keeps_the_failure_as_a_skip(tmp_path):
    """No silent swap: with --decoder decord, the file decord refuses is skipped with
    decord's reason, and the rest is decoded by decord."""
    if not has_decord():
        pytest.skip("decord is not installed")
    root = str(tmp_path / "videos")
    cm.vp9_live_webm(os.path.join(root, "live.webm"))
    cm.h264_mp4(os.path.join(root, "plain.mp4"))
    out = str(tmp_path / "testset")
    summary = build(BuildSpec(root, tuple(select(load_tasks(), None, FILTERS)),
                              decoder="decord"), out)
    assert summary["skipped"] == [{
        "path": "live.webm",
        "reason": "decord failed: Failed to measure duration/frame-count due to broken"
                  " metadata. (--decoder auto falls back to PyAV)"}]
    assert {r["frames"]["backend"] for r in iter_samples(out)} == {"decord"}


def unprivileged() -> list[str]:
    """A command prefix under which file permissions hold: none for an ordinary user; for root
    (whom chmod 000 does not stop) `setpriv` dropping the two capabilities that bypass them."""
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    if not shutil.which("setpriv") or subprocess.run([*prefix, "true"]).returncode != 0:
        pytest.skip("running as root, where chmod 000 stops nothing, and setpriv cannot drop"
                    " the capabilities that bypass file permissions")
    return prefix


def test_unreadable_file_and_folder_are_skipped_with_permission_denied(tmp_path):
    prefix = unprivileged()
    root = str(tmp_path / "videos")
    cm.h264_mp4(os.path.join(root, "readable.mp4"))
    cm.h264_mp4(os.path.join(root, "secret.mp4"), seed=32)
    cm.h264_mp4(os.path.join(root, "locked", "inside.mp4"), seed=33)
    os.chmod(os.path.join(root, "secret.mp4"), 0)
    os.chmod(os.path.join(root, "locked"), 0)
    out = str(tmp_path / "testset")
    try:
        done = build_cli(root, out, "pyav", prefix)
    finally:
        os.chmod(os.path.join(root, "locked"), 0o755)   # so pytest can clean it up
    assert done.returncode == 0, done.stderr
    assert skips(out) == {
        "secret.mp4": "permission denied: cannot read the file",
        "locked": "permission denied: cannot list this folder (none of its videos are read)"}
    assert {r["video"]["path"] for r in iter_samples(out)} == {"readable.mp4"}
