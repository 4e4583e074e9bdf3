"""Scale figures, measured side by side in one run on the same videos:

* build wall time with 1 and 2 local workers (the speed-up);
* with `--ray`: the Ray executor against the local one (its overhead; a local cluster started
  once before, its start time printed apart);
* PyAV decode of the same frames alone against the whole build;
* the packed layout (`--pack N`) against the plain one: build time, files and bytes per video,
  and the time to read every frame the samples name back through `testset.SetMedia`;
* a projection to 30,000 videos from those per-video costs (a projection, not a measurement).

Usage: `.venv/bin/python bench/scale.py [--videos N] [--pack N] [--ray]` (default: 20 of the 50
cached distinct videos of `bench/_videos.py`, the `viubench` suite, 10 videos a pack).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _videos  # noqa: E402
from build_speed import decode_pyav, viubench_spec  # noqa: E402

from viubench.build import build  # noqa: E402
from viubench.testset import SetMedia, iter_samples, media_paths  # noqa: E402

PROJECTED_VIDEOS = 30_000


def subset(folder: str, count: int, into: str) -> str:
    """The first `count` videos of `folder` (sorted), hard-linked into `into`."""
    os.makedirs(into)
    for name in sorted(n for n in os.listdir(folder) if not n.startswith("."))[:count]:
        os.link(os.path.join(folder, name), os.path.join(into, name))
    return into


def timed(videos: str, scratch: str, label: str, **options) -> tuple[float, dict, str]:
    """Seconds of one build into a fresh folder, its summary, and the folder."""
    out = os.path.join(scratch, label)
    started = time.perf_counter()
    summary = build(viubench_spec(videos, "pyav"), out, **options)
    return time.perf_counter() - started, summary, out


def layout(out: str) -> tuple[int, int]:
    """(files, bytes) under a test set's media/."""
    files = size = 0
    for folder, _, names in os.walk(os.path.join(out, "media")):
        files += len(names)
        size += sum(os.path.getsize(os.path.join(folder, name)) for name in names)
    return files, size


def decode_seconds(videos: str) -> float:
    started = time.perf_counter()
    for name in sorted(os.listdir(videos)):
        decode_pyav(os.path.join(videos, name))
    return time.perf_counter() - started


def ray_seconds(videos: str, scratch: str) -> tuple[float, float, str]:
    """(cluster start, build) seconds on a local Ray cluster of this machine's CPUs."""
    import ray

    started = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False)
    start = time.perf_counter() - started
    try:
        seconds, _, out = timed(videos, scratch, "ray", executor="ray")
    finally:
        ray.shutdown()
    return start, seconds, out


def same_samples(a: str, b: str) -> bool:
    with open(os.path.join(a, "samples.jsonl"), "rb") as one, \
            open(os.path.join(b, "samples.jsonl"), "rb") as two:
        return one.read() == two.read()


def same_bytes(a: str, b: str) -> bool:
    return same_samples(a, b) and layout(a) == layout(b)


def read_back(testset: str) -> tuple[float, int, str]:
    """(seconds, frames, digest): every frame the samples name, read as eval's checks do."""
    started = time.perf_counter()
    digest = hashlib.blake2b(digest_size=16)
    frames = 0
    with SetMedia(testset) as media:
        for sample in iter_samples(testset, media=media):
            for rel in media_paths(sample):
                digest.update(media.read(rel))
                frames += 1
    return time.perf_counter() - started, frames, digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=20, help="how many cached videos")
    parser.add_argument("--pack", type=int, default=10, help="videos a pack (packed layout)")
    parser.add_argument("--ray", action="store_true", help="also time the Ray executor")
    args = parser.parse_args(argv)
    scratch = tempfile.mkdtemp(prefix="viubench-scale-")
    try:
        videos = subset(_videos.many_videos(), args.videos, os.path.join(scratch, "videos"))
        report(videos, scratch, args.ray, args.pack)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def report(videos: str, scratch: str, with_ray: bool, pack: int) -> None:
    count = len(os.listdir(videos))
    print(f"viubench scale  ({count} videos, viubench suite, {os.cpu_count()} CPUs)\n")
    timed(videos, scratch, "warm-up", workers=2)   # imports, task tables, file cache: untimed
    one, summary, out1 = timed(videos, scratch, "w1", workers=1)
    two, _, out2 = timed(videos, scratch, "w2", workers=2)
    decode = decode_seconds(videos)
    print(f"build, 1 worker        {one:7.2f} s")
    print(f"build, 2 workers       {two:7.2f} s   speed-up {one / two:.2f}x"
          f"   identical: {same_bytes(out1, out2)}")
    print(f"decode alone (PyAV)    {decode:7.2f} s   build / decode (1 worker) {one / decode:.2f}x")
    if with_ray:
        start, ray_build, out_ray = ray_seconds(videos, scratch)
        print(f"Ray cluster start      {start:7.2f} s   (apart from the build)")
        print(f"build, Ray executor    {ray_build:7.2f} s   Ray / local 2 workers"
              f" {ray_build / two:.2f}x   identical: {same_bytes(out_ray, out2)}")
    packed_seconds, _, packed = timed(videos, scratch, "packed", workers=2, pack=pack)
    print(f"build, 2 workers, packs of {pack:<3} {packed_seconds:5.2f} s   packed / plain"
          f" {packed_seconds / two:.2f}x   same samples: {same_samples(packed, out2)}")
    ok = summary["videos"]["ok"]
    layouts = {"plain": (out2, layout(out2)), f"packed ({pack} a pack)": (packed, layout(packed))}
    reads = {}
    print()
    for name, (out, (files, size)) in layouts.items():
        seconds, frames, digest = reads[name] = read_back(out)
        print(f"{name:<20} {files / ok:8.2f} files and {size / ok / 1e6:.2f} MB per video;"
              f" reading back {frames} frames {seconds:.2f} s")
    same = len({digest for _, _, digest in reads.values()}) == 1
    first, second = reads.values()
    print(f"read back packed / plain {second[0] / first[0]:.2f}x   same bytes: {same}"
          f"   ({summary['samples'] / ok:.0f} samples per video)")
    per_video = two / ok
    print(f"\nprojection to {PROJECTED_VIDEOS:,} videos (from the per-video costs above, not"
          " measured):")
    for name, (_, (files, size)) in layouts.items():
        print(f"  {name}: {PROJECTED_VIDEOS * files / ok:,.0f} files,"
              f" {PROJECTED_VIDEOS * size / ok / 1e9:.0f} GB of frames")
    print(f"  {PROJECTED_VIDEOS * per_video / 3600:.1f} h on this machine with 2 workers;"
          f" {PROJECTED_VIDEOS * per_video * 2 / 64 / 3600:.2f} h on 64 such cores if the"
          " build scales linearly")


if __name__ == "__main__":
    sys.exit(main())
