"""A test set is untrusted input: hostile edits of a real one, each through `eval`, `score` and
`verify`. Nothing outside the folder is read or sent, and each gets one clear error line."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from chat_server import ChatServer
from helpers import viubench
from viubench.testset import MAX_SAMPLE_BYTES, BadTestSet, iter_samples


@pytest.fixture()
def hostile(viubench_testset, tmp_path):
    """A private copy of the real test set, and a run of it made before any edit (for score)."""
    copy = tmp_path / "ts"
    shutil.copytree(viubench_testset, copy, symlinks=True)
    return copy


def _lines(testset) -> list[dict]:
    return [json.loads(line) for line in (testset / "samples.jsonl").read_text().splitlines()]


def _write(testset, records: list[dict], tail: str = "") -> None:
    text = "".join(json.dumps(r) + "\n" for r in records) + tail
    (testset / "samples.jsonl").write_text(text)


def _frame_of(record: dict) -> tuple[dict, int]:
    """The prompt part holding video frames, and its index in the prompt."""
    position = next(i for i, p in enumerate(record["prompt"]) if p["type"] == "video")
    return record["prompt"][position], position


def _own_frame(testset) -> str:
    """A frame the second sample shows and the first does not (frames are shared)."""
    first, second = _lines(testset)[:2]
    return next(f for f in _frame_of(second)[0]["frames"]
                if f not in _frame_of(first)[0]["frames"])


def _point_second_sample_at(testset, target: str) -> None:
    records = _lines(testset)
    part, _ = _frame_of(records[1])
    part["frames"][0] = target
    _write(testset, records)


def _one_error(done, *needles: str) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, done.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def _eval_sends_nothing(testset, tmp_path, *needles: str) -> None:
    """`eval` against a live loopback model server stops before the first request."""
    with ChatServer() as server:
        done = viubench("eval", "--testset", str(testset), "--model",
                        f"openai:m base_url={server.url}", "--out", str(tmp_path / "run"))
        assert server.received == []
    _one_error(done, "samples.jsonl:2", *needles)


def _every_command_refuses(testset, tmp_path, *needles: str) -> None:
    _eval_sends_nothing(testset, tmp_path, *needles)
    _one_error(viubench("verify", str(testset)), "samples.jsonl:2", *needles)
    _one_error(viubench("analyze", "--testset", str(testset), "--out", str(tmp_path / "a")),
               "samples.jsonl:2", *needles)


@pytest.fixture()
def canary(tmp_path):
    path = tmp_path / "CANARY.txt"
    path.write_text("secret outside the test set\n")
    return path


def test_absolute_media_path(hostile, tmp_path, canary):
    _point_second_sample_at(hostile, str(canary))
    _every_command_refuses(hostile, tmp_path, "an absolute path")


def test_dotdot_media_path(hostile, tmp_path, canary):
    _point_second_sample_at(hostile, "media/../../CANARY.txt")
    _every_command_refuses(hostile, tmp_path, "'..'")


def test_link_leading_out(hostile, tmp_path, canary):
    frame = _own_frame(hostile)
    os.remove(hostile / frame)
    os.symlink(canary, hostile / frame)
    _every_command_refuses(hostile, tmp_path, "a link leading outside")


def test_folder_leading_out(hostile, tmp_path, canary):
    os.symlink(tmp_path, hostile / "media" / "out")
    _point_second_sample_at(hostile, "media/out/CANARY.txt")
    _every_command_refuses(hostile, tmp_path, "leads outside")


def test_dev_zero_and_fifo(hostile, tmp_path):
    frame = _own_frame(hostile)
    os.remove(hostile / frame)
    os.symlink("/dev/zero", hostile / frame)
    _every_command_refuses(hostile, tmp_path, "a link leading outside")
    os.remove(hostile / frame)
    os.mkfifo(hostile / frame)     # opening it would block forever
    _every_command_refuses(hostile, tmp_path, "not a regular file: FIFO")


def test_fifo_or_device_instead_of_samples_file(hostile, tmp_path):
    os.remove(hostile / "samples.jsonl")
    os.mkfifo(hostile / "samples.jsonl")
    for done in (viubench("eval", "--testset", str(hostile), "--model", "constant text=1",
                          "--out", str(tmp_path / "run")),
                 viubench("verify", str(hostile))):
        _one_error(done, "samples.jsonl", "not a regular file: FIFO")


def test_a_link_inside_the_folder_is_fine(hostile):
    records = _lines(hostile)
    part, _ = _frame_of(records[1])
    os.makedirs(hostile / "elsewhere")
    shutil.copy(hostile / part["frames"][0], hostile / "elsewhere" / "copy.jpg")
    os.remove(hostile / part["frames"][0])
    os.symlink(hostile / "elsewhere" / "copy.jpg", hostile / part["frames"][0])
    assert len(list(iter_samples(str(hostile)))) == len(records)


def test_oversized_media_file(hostile, tmp_path):
    frame = _own_frame(hostile)
    with open(hostile / frame, "r+b") as handle:
        handle.truncate(33 << 20)       # sparse: no disk used
    _every_command_refuses(hostile, tmp_path, "larger than")


def test_huge_record_is_not_read_whole(hostile, tmp_path):
    records = _lines(hostile)
    records[1]["padding"] = "x" * (MAX_SAMPLE_BYTES + 10)
    _write(hostile, records)
    _every_command_refuses(hostile, tmp_path, f"a record longer than {MAX_SAMPLE_BYTES} bytes")


def test_torn_and_garbage_lines(hostile, tmp_path):
    records = _lines(hostile)
    _write(hostile, records[:1], tail=json.dumps(records[1])[:40])   # cut off, no newline
    _every_command_refuses(hostile, tmp_path, "cut off")
    _write(hostile, records[:1], tail="\x00\xff garbage \x01\n")
    _every_command_refuses(hostile, tmp_path, "not a JSON record")
    _write(hostile, records[:1], tail="[1, 2, 3]\n")
    _every_command_refuses(hostile, tmp_path, "not a JSON record (a list)")


def test_record_missing_fields(hostile, tmp_path):
    records = _lines(hostile)
    del records[1]["prompt"]
    _write(hostile, records)
    _every_command_refuses(hostile, tmp_path, "field 'prompt' missing")
    records[1]["prompt"] = [{"type": "audio", "audio": "/etc/passwd"}]
    _write(hostile, records)
    _every_command_refuses(hostile, tmp_path, "no known type")


def test_duplicate_ids_are_refused(hostile, tmp_path):
    records = _lines(hostile)
    _write(hostile, [records[0], records[0], *records[1:]])
    _every_command_refuses(hostile, tmp_path, "repeats line 1")


def test_score_checks_the_test_set_too(viubench_testset, tmp_path):
    """A run made on a good copy; the copy is then edited so its hash still matches a run's
    header (the header is edited too, as an attacker would): `score` refuses it."""
    good = tmp_path / "ts"
    shutil.copytree(viubench_testset, good)
    run = tmp_path / "run"
    assert viubench("eval", "--testset", str(good), "--model", "constant text=1", "--out",
                    str(run), "--no-score").returncode == 0
    _point_second_sample_at(good, "/etc/passwd")
    predictions = (run / "predictions.jsonl").read_text().splitlines()
    header = json.loads(predictions[0])
    from viubench.records import file_hash
    header["testset"]["hash"] = file_hash(str(good / "samples.jsonl"))
    (run / "predictions.jsonl").write_text("\n".join([json.dumps(header), *predictions[1:]])
                                           + "\n")
    _one_error(viubench("score", str(run)), "samples.jsonl:2", "an absolute path")


def test_iter_samples_raises_one_error_type(hostile):
    _point_second_sample_at(hostile, "../x")
    with pytest.raises(BadTestSet, match=r"samples.jsonl:2: media path '../x'"):
        list(iter_samples(str(hostile)))
