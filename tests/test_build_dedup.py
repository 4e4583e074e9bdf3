"""The build's cheap checks before decoding (`viubench.prehash`): a byte-identical copy of an
earlier video and a video the build excludes are never opened by a decoder, and the output is
byte for byte what decoding every video first gives (the build before the checks)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading

import pytest

from helpers import StopAfter

from viubench import prehash
from viubench.build import BuildSpec, Job, build
from viubench.records import file_hash
from viubench.recipes import VIDEOSSR_30K, scaled
from viubench.testset import BUILD, SAMPLES, VIDEOS, iter_samples, media_paths

SELECTION = (("temporal_jigsaw", "easy"), ("object_counting", "easy"))   # no donor footage
ORIGINALS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_distorted.mp4", "carphone_pristine.mp4")
COPIES = {"aa_copy.mp4": "carphone_pristine.mp4",   # sorts before its original: the copy is kept
          "zz_copy.mp4": "bikes.mp4"}               # sorts after it: the original is kept
DROPPED = ("carphone_pristine.mp4", "zz_copy.mp4")  # the later path of each content
EXCLUDED = "bigbuckbunny.mp4"


def make_folder(real_videos: str, root: str) -> str:
    """The real clips, two byte-identical copies, a file that is no video and its copy (neither
    loads: the copy is read as any other file), and a FIFO (never opened)."""
    os.makedirs(root)
    for name in ORIGINALS:
        shutil.copy(os.path.join(real_videos, name), os.path.join(root, name))
    for copy, original in COPIES.items():
        shutil.copy(os.path.join(real_videos, original), os.path.join(root, copy))
    for name in ("broken.mp4", "broken_copy.mp4"):
        with open(os.path.join(root, name), "wb") as handle:
            handle.write(b"not a video")
    os.mkfifo(os.path.join(root, "pipe.mp4"))
    return root


def exclusion(folder: str) -> tuple[tuple[str, str, str], ...]:
    return ((file_hash(os.path.join(folder, EXCLUDED)), "/held/out/testset", "held_out.mp4"),)


def suite_spec(folder: str, **overrides) -> BuildSpec:
    return BuildSpec(folder, SELECTION, seed=3, exclude=exclusion(folder), **overrides)


def recipe_spec(folder: str) -> BuildSpec:
    quotas = scaled(VIDEOSSR_30K.quotas, 24)
    return BuildSpec(folder, tuple((t, v) for t, v, _ in quotas), per_video=4,
                     max_pixels=256 * 256, purpose="training", recipe="videossr30k",
                     quotas=quotas, exclude=exclusion(folder))


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """The file names PyAV opens (every probe and every decode opens the file), in this
    process: a build with workers=1 decodes in threads of it."""
    import av

    calls: list[str] = []
    lock = threading.Lock()
    real_open = av.open

    def counting(file, *args, **kwargs):
        with lock:
            calls.append(os.path.basename(str(file)))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(av, "open", counting)
    return calls


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def video_log(folder: str) -> list[dict]:
    """videos.jsonl without the timings (the only part that varies between runs)."""
    with open(os.path.join(folder, VIDEOS), encoding="utf-8") as handle:
        return [{k: v for k, v in json.loads(line).items() if k != "timings"}
                for line in handle]


def build_json(folder: str) -> dict:
    summary = json.loads(read_bytes(os.path.join(folder, BUILD)))
    return {k: v for k, v in summary.items() if k not in ("timings", "seconds")}


def media_files(folder: str) -> dict[str, str]:
    return {os.path.relpath(os.path.join(d, f), folder):
            hashlib.sha256(read_bytes(os.path.join(d, f))).hexdigest()
            for d, _, files in os.walk(os.path.join(folder, "media")) for f in files}


def same_output(new: str, old: str) -> None:
    """The same samples, records and build.json, byte for byte, and the same media: the old
    way also wrote the frames of a copy's samples before dropping them (a copy dealt other
    samples than its original in a recipe build), files no sample names; the new way never
    makes them."""
    assert read_bytes(os.path.join(new, SAMPLES)) == read_bytes(os.path.join(old, SAMPLES))
    assert video_log(new) == video_log(old)
    assert build_json(new) == build_json(old)
    named = {path for sample in iter_samples(old) for path in media_paths(sample)}
    kept = {path: digest for path, digest in media_files(old).items()
            if path in named or path.startswith(os.path.join("media", "packs"))}
    assert media_files(new) == kept


def decode_everything_first(monkeypatch) -> None:
    """The build as before the checks: no hash taken ahead (as for a file the driver cannot
    hash), so every video is decoded and a copy is dropped when its result comes back."""
    monkeypatch.setattr(prehash, "content_hash", lambda root, rel_path: "")


# --- no decode for copies and excluded videos --------------------------------------------

def test_copies_and_excluded_videos_are_never_opened(real_videos, opened, tmp_path):
    folder = make_folder(real_videos, str(tmp_path / "videos"))
    hashes = {name: file_hash(os.path.join(folder, name)) for name in DROPPED}
    with_copies, without = str(tmp_path / "with_copies"), str(tmp_path / "without")
    build(suite_spec(folder), with_copies, workers=1)
    opened_with_copies = list(opened)
    assert not {EXCLUDED, "pipe.mp4", *DROPPED} & set(opened_with_copies)
    assert "broken_copy.mp4" in opened_with_copies   # its original never loaded: read as before
    for name in DROPPED:
        os.remove(os.path.join(folder, name))
    opened.clear()
    build(suite_spec(folder), without, workers=1)
    # the copies cost nothing: every other file is opened exactly as often as without them
    assert sorted(opened_with_copies) == sorted(opened)
    assert read_bytes(os.path.join(with_copies, SAMPLES)) == \
        read_bytes(os.path.join(without, SAMPLES))
    log = video_log(with_copies)
    assert [r for r in log if r["path"] not in DROPPED] == video_log(without)
    assert {r["path"]: (r["status"], r["hash"], r["reason"]) for r in log
            if r["path"] in DROPPED} == {
        "carphone_pristine.mp4": ("skipped", hashes["carphone_pristine.mp4"],
                                  "duplicate of aa_copy.mp4 (same content)"),
        "zz_copy.mp4": ("skipped", hashes["zz_copy.mp4"], "duplicate of bikes.mp4 (same content)")}


def test_an_excluded_video_is_not_decoded_as_donor_footage(real_videos, opened, tmp_path):
    """bikes.mp4's swap sample needs another video's footage; the only other one is excluded:
    no sample, and the excluded video is never opened (it was decoded, then refused)."""
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("bikes.mp4", EXCLUDED):
        shutil.copy(os.path.join(real_videos, name), folder / name)
    spec = BuildSpec(str(folder), (("anomaly_grounding", "swap"),), exclude=exclusion(str(folder)))
    summary = build(spec, str(tmp_path / "ts"), workers=1)
    assert summary["samples"] == 0 and summary["videos"]["ok"] == 1
    assert "needs a second, different readable video" in summary["sample_skips"][0]["reason"]
    assert EXCLUDED not in opened and "bikes.mp4" in opened


# --- the same output as decoding everything first ------------------------------------------

@pytest.fixture(scope="module")
def folder(real_videos, tmp_path_factory) -> str:
    return make_folder(real_videos, str(tmp_path_factory.mktemp("dedup") / "videos"))


@pytest.fixture(scope="module")
def decoded_first(folder, tmp_path_factory):
    """(kind, pack) -> the output of the build as before the checks."""
    made: dict[tuple[str, int], str] = {}
    root = tmp_path_factory.mktemp("decoded_first")

    def output(kind: str, pack: int) -> str:
        if (kind, pack) not in made:
            out = str(root / f"{kind}_{pack}")
            with pytest.MonkeyPatch.context() as patch:
                decode_everything_first(patch)
                spec = suite_spec(folder) if kind == "suite" else recipe_spec(folder)
                build(spec, out, workers=1, pack=pack)
            made[kind, pack] = out
        return made[kind, pack]

    return output


@pytest.mark.parametrize("kind, workers, pack", [("suite", 1, 0), ("suite", 2, 0),
                                                 ("suite", 1, 2), ("recipe", 2, 0),
                                                 ("recipe", 1, 3)])
def test_the_output_is_that_of_decoding_every_video_first(folder, decoded_first, kind, workers,
                                                         pack, tmp_path):
    spec = suite_spec(folder) if kind == "suite" else recipe_spec(folder)
    out = str(tmp_path / "ts")
    build(spec, out, workers=workers, pack=pack)
    same_output(out, decoded_first(kind, pack))
    if kind == "recipe":      # top-up rounds dealt what the copies and failures could not give
        assert max(r.get("round", 0) for r in video_log(out)) >= 2


def test_hashing_one_job_ahead_gives_the_same_output(folder, decoded_first, monkeypatch,
                                                     tmp_path):
    monkeypatch.setattr(prehash, "HASH_AHEAD", 1)
    out = str(tmp_path / "ts")
    build(suite_spec(folder), out, workers=2)
    same_output(out, decoded_first("suite", 0))


def test_a_resumed_build_skips_copies_of_videos_already_recorded(folder, decoded_first,
                                                                 tmp_path):
    """Stopped after aa_copy.mp4 and bikes.mp4 are recorded: their copies, still to come, are
    duplicates of records of the earlier run."""
    out = str(tmp_path / "ts")
    with pytest.raises(KeyboardInterrupt):
        build(suite_spec(folder), out, workers=1, observer=StopAfter(3))
    assert [r["path"] for r in video_log(out)] == ["aa_copy.mp4", EXCLUDED, "bikes.mp4"]
    build(suite_spec(folder), out, workers=2)
    same_output(out, decoded_first("suite", 0))


# --- screening ---------------------------------------------------------------------------

def test_copies_are_held_only_when_every_job_reads_its_video_alike(folder):
    jobs = [Job(name, ()) for name in sorted(os.listdir(folder))]
    mixed = BuildSpec(folder, (), quotas=(("temporal_jigsaw", "easy", 2),
                                          ("masked_prediction", "standard", 2)))
    assert prehash.same_protocols(suite_spec(folder)) and prehash.same_protocols(
        recipe_spec(folder)) and not prehash.same_protocols(mixed)
    with prehash.Screen(suite_spec(folder), jobs, {}) as screen:
        held = {entry.job.path: entry.held for entry in screen if entry.held}
        dispatched = list(screen.dispatched())
    assert [job.path for job in dispatched] == [
        "aa_copy.mp4", "bikes.mp4", "broken.mp4", "carphone_distorted.mp4", "pipe.mp4"]
    assert [job.path for job in dispatched if not job.hash] == ["pipe.mp4"]   # never opened
    assert held == {EXCLUDED: prehash.EXCLUDED, "broken_copy.mp4": prehash.DUPLICATE,
                    "carphone_pristine.mp4": prehash.DUPLICATE, "zz_copy.mp4": prehash.DUPLICATE}
    with prehash.Screen(mixed, jobs, {}) as screen:
        assert {entry.job.path: entry.held for entry in screen if entry.held} == {}
    with prehash.Screen(suite_spec(folder), jobs, {file_hash(os.path.join(folder, "bikes.mp4")):
                                                   "bikes.mp4"}) as screen:
        assert screen[jobs.index(Job("bikes.mp4", ()))].held == ""
        assert screen[jobs.index(Job("zz_copy.mp4", ()))].held == prehash.DUPLICATE
