"""viubench.video on generated clips of many codecs, containers and sizes."""

from __future__ import annotations

import gc
import importlib.util
import math
import os
import shutil
import subprocess

import av
import numpy as np
import pytest
from PIL import Image

import clipmaker as cm
from viubench.clips import read_clips
from viubench.video import (DecordFailure, FrameProtocol, VideoError, choose_backend, decode,
                            decode_frames, decoder_threads, fit_area, probe)

LO, HI = 128 * 128, 512 * 512   # the default frame-area bounds
# FFmpeg may name the AV1 stream after the decoder it picked (see test_av1_codec_name).
CODEC_NAMES = {"av1": {"av1", "libdav1d", "libaom-av1", "av1_cuvid", "av1_qsv"}}
H264_CLIPS = [name for name, entry in cm.GOOD.items() if entry[3] == "h264"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, str]:
    """Every good clip of the catalogue, written once for this module."""
    return cm.write_good(str(tmp_path_factory.mktemp("video_clips")))


@pytest.fixture(scope="module")
def bad_clips(tmp_path_factory) -> dict[str, str]:
    return cm.write_bad(str(tmp_path_factory.mktemp("video_bad")))


def spec_indices(total: int, n: int = 48) -> list[int]:
    """SPEC §1 in exact integer arithmetic."""
    first, last = (5 * total) // 100, (95 * total) // 100
    step = (last - first) // n
    assert step >= 1
    return [first + i * step for i in range(n)]


def _decoded(path: str, backend: str = "pyav"):
    info = probe(path)
    protocol = FrameProtocol()
    indices = protocol.indices(info.frame_count)
    size = protocol.size(info.width, info.height)
    return info, indices, size, decode(info, indices, size, backend)


# --- probe ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(cm.GOOD))
def test_probe_counts_every_frame(clips, name):
    _, _, frames, codec, width, height = cm.GOOD[name]
    info = probe(clips[name])
    assert info.frame_count == frames
    assert info.codec in CODEC_NAMES.get(codec, {codec})
    assert (info.width, info.height) == (width, height)
    assert info.fps == pytest.approx(24.0)
    assert info.duration == pytest.approx(frames / 24, abs=0.05)


def test_av1_codec_name(clips):
    assert probe(clips["av1_mkv"]).codec == "av1"


@pytest.mark.parametrize("name, words", [(n, e[2]) for n, e in cm.BAD.items()])
def test_bad_files_raise_video_error(bad_clips, name, words):
    with pytest.raises(VideoError, match=words):
        _decoded(bad_clips[name])


def test_probe_error_messages(bad_clips):
    with pytest.raises(VideoError, match=r"empty file \(0 bytes\)"):
        probe(bad_clips["empty"])
    with pytest.raises(VideoError, match=r"no video stream \(streams found: audio\)"):
        probe(bad_clips["audio"])
    with pytest.raises(VideoError, match="PyAV cannot read it"):
        probe(bad_clips["truncated"])
    assert probe(bad_clips["corrupt"]).frame_count == 96  # the index is intact ...
    with pytest.raises(VideoError, match="decoding failed after frame"):  # ... the data is not
        _decoded(bad_clips["corrupt"])


# --- frame protocol -------------------------------------------------------------------------

@pytest.mark.parametrize("total", [53, 54, 60, 64, 72, 96, 100, 101, 119, 480, 1000, 1799,
                                   12345, 86400])
def test_indices_follow_spec(total):
    indices = FrameProtocol().indices(total)
    assert indices == spec_indices(total)
    assert len(indices) == 48 and indices == sorted(set(indices))
    assert indices[0] == math.floor(0.05 * total)
    assert indices[-1] < math.floor(0.95 * total)


def test_indices_exhaustive_small_range():
    protocol = FrameProtocol()
    for total in range(0, 3000):
        first, last = (5 * total) // 100, (95 * total) // 100
        if (last - first) // 48 < 1:
            with pytest.raises(VideoError, match="too short"):
                protocol.indices(total)
        else:
            assert protocol.indices(total) == spec_indices(total)
    assert min(t for t in range(3000) if (95 * t) // 100 - (5 * t) // 100 >= 48) == 53


def test_too_short_message():
    with pytest.raises(VideoError, match=r"too short: the central 90% holds 27 frames"):
        FrameProtocol().indices(30)


# --- decoding -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(cm.GOOD))
def test_decode_size_and_frame_identity(clips, name):
    _, _, frames, _, width, height = cm.GOOD[name]
    info, indices, size, decoded = _decoded(clips[name])
    assert indices == spec_indices(frames)
    w, h = size
    assert decoded.shape == (48, h, w, 3) and decoded.dtype == np.uint8
    assert LO <= w * h <= HI
    assert w % 2 == 0 and h % 2 == 0
    assert abs((w / h) / (width / height) - 1) < 0.03  # aspect kept within even rounding
    if width * height > HI or width * height < LO:
        assert w * h > 0.95 * (HI if width * height > HI else LO)  # scaled to the bound, tightly
    else:
        assert abs(w - width) <= 1 and abs(h - height) <= 1
    # The marker band spells each frame's number: decoded frame k is source frame indices[k].
    assert [cm.read_marker(frame) for frame in decoded] == indices
    # Real content: consecutive sampled frames differ.
    assert all(np.abs(a.astype(int) - b).mean() > 1 for a, b in zip(decoded, decoded[1:]))


def test_decode_arbitrary_indices(clips):
    info = probe(clips["h264_mp4"])  # B-frames: decode order differs from display order
    indices = [0, 1, 2, 17, 50, 94, 95]
    frames = decode(info, indices, (160, 120), "pyav")
    assert [cm.read_marker(f) for f in frames] == indices


def test_upscaled_tiny_and_downscaled_big(clips):
    _, _, tiny_size, _ = _decoded(clips["tiny"])
    assert tiny_size == (148, 112) and 148 * 112 >= LO
    _, _, big_size, _ = _decoded(clips["big"])
    assert big_size == (682, 384) and 682 * 384 <= HI
    _, _, portrait_size, _ = _decoded(clips["portrait"])
    assert portrait_size == (144, 256)


def test_read_clips_matches_decode(clips):
    protocol = FrameProtocol()
    root, rel = os.path.split(clips["vp9_webm"])
    clip = read_clips(root, rel, [protocol], "pyav")[protocol]
    _, indices, size, decoded = _decoded(clips["vp9_webm"])
    assert clip.indices == indices and clip.size == size and clip.backend == "pyav"
    assert np.array_equal(clip.frames, decoded)
    assert clip.sample_fps == pytest.approx(48 / clip.info.duration)


def test_truncated_faststart_duration_follows_frames(tmp_path):
    cm.truncated_faststart_mp4(str(tmp_path / "cut.mp4"))
    protocol = FrameProtocol()
    clip = read_clips(str(tmp_path), "cut.mp4", [protocol], "pyav")[protocol]
    assert [cm.read_marker(f) for f in clip.frames] == clip.indices
    assert clip.info.duration == pytest.approx(clip.info.frame_count / clip.info.fps, abs=0.1)


# --- backends -------------------------------------------------------------------------------

def test_choose_backend_rules(clips):
    pytest.importorskip("decord")
    assert choose_backend("decord", "h264") == "decord"
    assert choose_backend("pyav", "h264") == "pyav"
    assert choose_backend("auto", "h264") == "decord"
    assert choose_backend("auto", "av1") == "pyav"
    assert choose_backend("auto", probe(clips["av1_mkv"]).codec) == "pyav"
    assert choose_backend("auto", "mjpeg") == "pyav"
    with pytest.raises(VideoError, match="decord does not decode av1"):
        choose_backend("decord", "av1")
    with pytest.raises(VideoError, match="decord does not decode"):
        choose_backend("decord", probe(clips["av1_mkv"]).codec)
    with pytest.raises(ValueError, match="unknown decoder"):
        choose_backend("opencv", "h264")


@pytest.mark.parametrize("name", H264_CLIPS + ["hevc_mp4", "vp9_webm"])
def test_decord_agrees_with_pyav(clips, name):
    pytest.importorskip("decord")
    info, indices, size, reference = _decoded(clips[name], "pyav")
    backend = choose_backend("decord", info.codec)
    assert backend == "decord"
    frames = decode(info, indices, size, backend)
    assert frames.shape == reference.shape and frames.dtype == np.uint8
    assert np.abs(frames.astype(np.int16) - reference).mean() < 4.0
    assert [cm.read_marker(f) for f in frames] == indices


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_every_backend_and_strategy_shows_a_rotated_clip_upright(tmp_path, rotation):
    """A phone clip stored sideways (display matrix), large enough to be resized: PyAV from
    the start, PyAV seeking, and decord give the upright pattern, frame for frame."""
    path = cm.rotated_mp4(str(tmp_path / "phone.mp4"), rotation, frames=64, width=544,
                          height=960)
    info = probe(path)
    protocol = FrameProtocol(num_frames=8)
    indices = protocol.indices(info.frame_count)
    size = protocol.size(info.width, info.height)
    assert (info.width, info.height, info.rotation) == (544, 960, rotation)
    shown = {"pyav all": decode_frames(info, indices, size, "pyav", "all")[0],
             "pyav seek": decode_frames(info, indices, size, "pyav", "seek")[0]}
    if importlib.util.find_spec("decord"):
        shown["decord"] = decode(info, indices, size, "decord")
    upright = np.stack([np.asarray(Image.fromarray(cm.make_frame(i, 544, 960, 17)).resize(
        size, Image.Resampling.BOX)) for i in indices])
    for way, frames in shown.items():
        assert frames.shape == (len(indices), size[1], size[0], 3), way
        assert [cm.read_marker(f) for f in frames] == indices, way
        assert np.abs(frames.astype(np.int16) - upright).mean() < 8.0, way
    assert np.array_equal(shown["pyav all"], shown["pyav seek"])


def test_decoding_leaves_no_frame_for_the_garbage_collector(clips):
    """Every decoded picture is freed as soon as it is used: none waits in a reference cycle
    for the collector (reading a frame's side data makes one; an 8K clip's 48 frames held that
    way were 2.9 GB), with the collector off throughout."""
    info = probe(clips["big"])
    protocol = FrameProtocol()
    indices = protocol.indices(info.frame_count)
    size = protocol.size(info.width, info.height)
    gc.collect()
    gc.disable()
    try:
        for strategy in ("all", "seek"):
            decode_frames(info, indices, size, "pyav", strategy)
            probe(clips["big"])
        alive = sum(isinstance(thing, av.VideoFrame) for thing in gc.get_objects())
    finally:
        gc.enable()
    assert alive == 0


def test_decoder_threads_shrink_only_for_huge_pictures():
    """Each frame thread holds about two pictures: 8K gets one thread, 1080p and 4K FFmpeg's
    own choice."""
    assert decoder_threads(7680, 4320) == 1
    assert decoder_threads(1920, 1080) is None
    four_k = 134217728 // (3 * 3840 * 2160)        # the threads 4K's pictures fit: 5
    assert decoder_threads(3840, 2160) == (four_k if four_k < (os.cpu_count() or 1) + 1
                                           else None)


def test_read_clips_auto_records_backend(clips):
    pytest.importorskip("decord")
    protocol = FrameProtocol()
    for name, expected in [("h264_mkv", "decord"), ("av1_mkv", "pyav"), ("cinepak_avi", "pyav")]:
        root, rel = os.path.split(clips[name])
        clip = read_clips(root, rel, [protocol], "auto")[protocol]
        assert clip.backend == expected
        assert [cm.read_marker(f) for f in clip.frames] == clip.indices


def test_decord_failure_falls_back_to_pyav_only_under_auto(tmp_path):
    """A valid VP9 file decord 0.6 refuses: auto decodes it with PyAV and says so; an
    explicit --decoder decord stays an error naming decord's reason."""
    pytest.importorskip("decord")
    cm.vp9_live_webm(str(tmp_path / "live.webm"))
    info, indices, size, reference = _decoded(str(tmp_path / "live.webm"))
    assert [cm.read_marker(f) for f in reference] == indices     # PyAV reads every frame
    with pytest.raises(DecordFailure, match="decord failed: .*broken metadata"):
        decode(info, indices, size, "decord")                    # ... decord really fails
    protocol = FrameProtocol()
    clip = read_clips(str(tmp_path), "live.webm", [protocol], "auto")[protocol]
    assert clip.backend == "pyav" and np.array_equal(clip.frames, reference)
    with pytest.raises(VideoError, match=r"^decord failed: .*\(--decoder auto falls back to"):
        read_clips(str(tmp_path), "live.webm", [protocol], "decord")


def test_decord_reasons_carry_no_log_prefix(tmp_path):
    pytest.importorskip("decord")
    cm.vp9_live_webm(str(tmp_path / "live.webm"))
    info = probe(str(tmp_path / "live.webm"))
    with pytest.raises(DecordFailure) as caught:
        decode(info, [0], (160, 120), "decord")
    # decord's text is "[hh:mm:ss] /.../video_reader.cc:N: [<path>] Failed to measure ...".
    assert str(caught.value) == ("decord failed: Failed to measure duration/frame-count due to"
                                 " broken metadata.")


# --- display rotation -----------------------------------------------------------------------

ROTATED_W, ROTATED_H = 112, 176    # the displayed (upright) size; its area needs no resize


@pytest.fixture(scope="module")
def rotated(tmp_path_factory) -> dict[int, str]:
    folder = tmp_path_factory.mktemp("rotated")
    return {r: cm.rotated_mp4(str(folder / f"rot{r}.mp4"), r) for r in (0, 90, 180, 270)}


def upright(indices, seed: int = 17) -> np.ndarray:
    return np.stack([cm.make_frame(i, ROTATED_W, ROTATED_H, seed) for i in indices])


@pytest.mark.parametrize("rotation", [0, 90])
def test_probe_reads_the_rotation_in_its_one_pass_over_the_file(rotated, rotation, monkeypatch):
    """The first frame's display matrix is read while the frames are counted: one open."""
    opened: list[str] = []
    real_open = av.open

    def counting(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(av, "open", counting)
    info = probe(rotated[rotation])
    assert (info.rotation, opened) == (rotation, [rotated[rotation]])


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_rotated_video_gives_upright_frames(rotated, rotation, backend):
    """The stored pictures lie turned; the frames are the upright pattern, pixel for pixel
    (up to compression), at the displayed size."""
    if backend == "decord":
        pytest.importorskip("decord")
    info = probe(rotated[rotation])
    assert (info.rotation, info.width, info.height) == (rotation, ROTATED_W, ROTATED_H)
    protocol = FrameProtocol()
    root, rel = os.path.split(rotated[rotation])
    clip = read_clips(root, rel, [protocol], backend)[protocol]
    assert clip.size == (ROTATED_W, ROTATED_H) and clip.backend == backend
    assert np.abs(clip.frames.astype(np.int16) - upright(clip.indices)).mean() < 4.0
    assert [cm.read_marker(f) for f in clip.frames] == clip.indices


def test_players_show_the_rotated_clip_upright(rotated):
    """Ground truth from a player: the ffmpeg command line turns the picture by the display
    matrix too, so the clip maker's file really shows the upright pattern."""
    if not shutil.which("ffmpeg"):
        pytest.skip("the ffmpeg command line is not installed")
    for rotation in (90, 270):
        shown = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", rotated[rotation],
                                "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                               capture_output=True, check=True, timeout=60).stdout
        frame = np.frombuffer(shown, np.uint8).reshape(ROTATED_H, ROTATED_W, 3)
        assert np.abs(frame.astype(np.int16) - upright([0])[0]).mean() < 4.0


def test_mirroring_display_matrix_is_refused(tmp_path):
    import av

    path = str(tmp_path / "mirrored.mp4")
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=24, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(0, hflip=True)
        for index in range(4):
            frame = av.VideoFrame.from_ndarray(cm.make_frame(index, 64, 48), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with pytest.raises(VideoError, match="display matrix mirrors the picture"):
        probe(path)


# --- fit_area -------------------------------------------------------------------------------

@pytest.mark.parametrize("width, height, expected", [
    (128, 128, (128, 128)),
    (256, 256, (256, 256)),
    (200, 150, (200, 150)),
    (1920, 1080, (682, 384)),
    (1280, 720, (682, 384)),
    (3840, 2160, (682, 384)),
    (64, 48, (148, 112)),
    (97, 61, (162, 102)),
    (160, 96, (166, 100)),
    (144, 256, (144, 256)),
    (1080, 1920, (384, 682)),
    (10, 10, (128, 128)),
])
def test_fit_area_examples(width, height, expected):
    assert fit_area(width, height, LO, HI) == expected
    assert FrameProtocol().size(width, height) == expected


def test_fit_area_scaled_sizes_respect_bounds_and_aspect():
    for width in range(8, 4000, 37):
        for height in range(8, 4000, 41):
            area = width * height
            if LO <= area <= HI:
                continue
            w, h = fit_area(width, height, LO, HI)
            assert w % 2 == 0 and h % 2 == 0
            extreme = max(width, height) / min(width, height) > 50
            assert LO <= w * h <= HI or extreme, (width, height)
            if area > HI:
                assert w * h <= HI
            else:
                assert w * h >= LO
            if min(w, h) >= 64:
                assert abs((w / h) / (width / height) - 1) < 0.035, (width, height, w, h)


def test_fit_area_other_bounds():
    assert fit_area(640, 480, 100, 400) == (22, 16)
    assert fit_area(4, 3, 10_000, 20_000) == (116, 88)
    w, h = fit_area(1000, 10, 1000, 2000)
    assert (w, h) == (446, 4) and 1000 <= w * h <= 2000


@pytest.mark.parametrize("width, height", [(133, 125), (66, 249), (131, 500)])
def test_fit_area_in_range_odd_sizes_stay_in_bounds(width, height):
    w, h = fit_area(width, height, LO, HI)
    assert LO <= w * h <= HI


def test_frames_stored_as_empty_packets_give_the_mean_rate_of_the_frames_that_hold_data():
    from viubench.video import _frame_rate

    assert _frame_rate(68, 15.0, 29.6) == pytest.approx(68 / 29.6)   # tree.avi's case
    assert _frame_rate(250, 25.0, 10.0) == 25.0                       # an ordinary file
    assert _frame_rate(240, 25.0, 10.0) == 25.0                       # a few frames short
    import footage

    tree = [p for p in footage.opencv_clips() if p.endswith("tree.avi")]
    if not tree:
        pytest.skip("opencv-doc's tree.avi is not installed (.ci/run fetches it)")
    info = probe(tree[0])
    assert info.frame_count == 68 and info.fps == pytest.approx(68 / info.duration)
