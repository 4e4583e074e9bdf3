"""Videos x task variants -> a test set folder (streaming, parallel, resumable, deterministic).

The folder's layout and readers are `viubench.testset`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import re
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

from . import __version__
from .clips import read_clips
from .folderlock import exclusive
from .media import MediaStore, jpeg_encoder
from .packs import PACKS, PackedOutput, resume_packs
from .pipeline import MEDIA_THREADS, finished, run_in_pool, run_in_process
from .prehash import EXCLUDED, Screen, Screened
from .processes import die_with_parent
from .registry import load_tasks
from .render import FramePaths, make_record
from .recipes import MAX_ROUNDS, Item, plan_round, quota_summary, video_order
from .records import (append_jsonl, canonical_json, derive_rng, digest, file_hash, read_json,
                      read_jsonl, truncate_lines, write_json, write_line)
from .task import Clip, DonorSource, Task, TaskSkip
from .testset import BUILD, SAMPLES, VIDEOS
from .video import FrameProtocol, VideoError, check_regular_file


@dataclass(frozen=True)
class BuildSpec:
    """Everything that determines a test set's content (a resumed build must match it)."""

    videos: str
    selection: tuple[tuple[str, str], ...]
    seed: int = 0
    per_video: int = 1
    decoder: str = "pyav"
    extra_tasks: tuple[str, ...] = ()
    max_pixels: int = 512 * 512   # frame area bound of every task (the paper's VIUBench: 512²;
                                  # its training sets: 256² = 65536)
    # Training sets (recorded in build.json only when set, so older builds resume as before):
    purpose: str = "benchmark"    # or "training": what the folder is for (build.json says)
    recipe: str = ""              # the recipe the quotas come from
    quotas: tuple[tuple[str, str, int], ...] = ()    # (task, variant, samples in all): a quota
                                  # build (`viubench.recipes`); per_video caps one video's share
    exclude: tuple[tuple[str, str, str], ...] = ()   # (content hash, test set, its video path):
                                  # videos never used (no leakage into a test set)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in OPTIONAL_FIELDS:
            if data[name] == getattr(BuildSpec, name):
                del data[name]
        return json.loads(canonical_json(data))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "BuildSpec":
        """The spec a build.json records (lists back to tuples)."""
        fields = dict(data)
        for name in ("selection", "quotas", "exclude"):
            fields[name] = tuple(tuple(item) for item in fields.get(name, ()))
        fields["extra_tasks"] = tuple(fields.get("extra_tasks", ()))
        return cls(**fields)

    def items(self) -> list[Item]:
        """Every sample a test-set build draws from each video, in record order."""
        return [(task, variant, replica) for task, variant in self.selection
                for replica in range(self.per_video)]

    @functools.cached_property
    def excluded(self) -> dict[str, str]:
        """content hash -> why a video with it is not used (worked out once per spec)."""
        return {entry[0]: f"excluded for leakage: same content as {entry[2]} of the test set"
                          f" {entry[1]}" for entry in self.exclude}

    def protocol(self, task: Task) -> FrameProtocol:
        """The task's frame protocol under this build's pixel bound."""
        if self.max_pixels < task.protocol.min_area:
            raise ValueError(f"max_pixels {self.max_pixels} is below the smallest frame area"
                             f" {task.protocol.min_area} of task {task.name}")
        return dataclasses.replace(task.protocol, max_area=self.max_pixels)


OPTIONAL_FIELDS = ("purpose", "recipe", "quotas", "exclude")


@dataclass(frozen=True)
class Job:
    """One video's work in a build: the samples to draw from it; `round` numbers the deals of
    a quota build (0 in a test-set build, where every video draws every selected sample)."""

    path: str
    items: tuple[Item, ...]
    round: int = 0
    hash: str = ""           # the video's content hash, when the driver has taken it (prehash)


@dataclass
class VideoResult:
    path: str
    status: str                      # "ok" or "skipped"
    reason: str = ""
    hash: str = ""
    backend: str = ""
    samples: list[str] = field(default_factory=list)     # canonical JSON lines
    counts: dict[str, int] = field(default_factory=dict)  # "task:variant" -> samples
    sample_skips: list[dict[str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    round: int = 0
    pack: str = ""                   # the pack holding its frames (a packed build)
    media: list[tuple[str, bytes]] = field(default_factory=list)   # frames to pack (path, JPEG)

    def log_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["samples"] = len(self.samples)
        del record["media"]
        for name in ("round", "pack"):
            if not record[name]:
                del record[name]
        return record


class BuildObserver(Protocol):
    """Told how many videos a build will process, then about each one as it finishes."""

    def start(self, total: int, already_done: int) -> None: ...

    def update(self, result: VideoResult) -> None: ...


def discover(root: str, exclude: str | None = None) -> list[str]:
    """Every non-hidden entry under `root` that is not a folder walked into, as sorted relative
    paths: the regular files, and also whatever cannot be a video (a FIFO, a device, a broken
    or looping symlink, a symlinked folder, a folder that cannot be listed), so that reading it
    records its precise reason (`video.check_regular_file`) instead of it vanishing. Nothing
    is opened here; symlinked folders are not followed."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"video folder {root} does not exist")
    exclude = os.path.abspath(exclude) if exclude else None
    unlisted: list[OSError] = []
    found = []
    for folder, dirs, files in os.walk(root, onerror=unlisted.append):
        dirs[:] = [d for d in dirs if not d.startswith(".")
                   and os.path.abspath(os.path.join(folder, d)) != exclude]
        links = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
        found += [os.path.join(folder, name) for name in links + files
                  if not name.startswith(".")]
    for error in unlisted:
        if os.path.abspath(str(error.filename)) == os.path.abspath(root):
            raise PermissionError(f"video folder {root} cannot be listed: {error.strerror}")
        found.append(str(error.filename))
    return sorted(os.path.relpath(path, root) for path in found)


class Donors:
    """Loads other videos of the build on demand, once per (path, size), for one video's work;
    a video the build excludes (leakage) is never a donor (it is hashed, never decoded)."""

    def __init__(self, spec: BuildSpec, protocol, candidates: Sequence[str]) -> None:
        self.spec, self.protocol = spec, protocol
        self.excluded = spec.excluded
        self.cache: dict[tuple[str, tuple[int, int]], Clip | VideoError] = {}
        self.source = DonorSource(list(candidates), self.load)

    def load(self, rel_path: str, size: tuple[int, int]) -> Clip:
        key = (rel_path, size)
        if key not in self.cache:
            try:
                content = _content_hash(self.spec, rel_path) if self.excluded else None
                if content in self.excluded:
                    raise VideoError(self.excluded[content])
                clips = read_clips(self.spec.videos, rel_path, [self.protocol],
                                   self.spec.decoder, size, video_hash=content)
                self.cache[key] = clips[self.protocol]
            except VideoError as error:
                self.cache[key] = error
        found = self.cache[key]
        if isinstance(found, VideoError):
            raise found
        return found


@dataclass
class LoadedVideo:
    """A video read once for all frame protocols of its job, or the reason it cannot be."""

    path: str
    clips: dict[FrameProtocol, Clip] | None
    reason: str = ""
    seconds: float = 0.0
    hash: str = ""       # known for a video excluded before decoding


Chosen = list[tuple[Task, str, int]]    # (task, variant, replica) of one job


def _chosen(tasks: dict[str, Task], job: Job) -> Chosen:
    return [(tasks[name], variant, replica) for name, variant, replica in job.items]


def _protocols(spec: BuildSpec, chosen: Chosen) -> list[FrameProtocol]:
    return list(dict.fromkeys(spec.protocol(task) for task, _, _ in chosen))


def load_video(spec: BuildSpec, rel_path: str, protocols: Sequence[FrameProtocol],
               known_hash: str = "") -> LoadedVideo:
    """Probe, hash (unless `known_hash` is its hash) and decode one video (the only decode it
    gets in this job); a video the build excludes is hashed, and not decoded."""
    started = time.perf_counter()
    try:
        content = known_hash or (_content_hash(spec, rel_path) if spec.exclude else None)
        if content in spec.excluded:
            return LoadedVideo(rel_path, None, reason=spec.excluded[content], hash=content)
        clips = read_clips(spec.videos, rel_path, protocols, spec.decoder, video_hash=content)
    except (VideoError, OSError) as error:
        return LoadedVideo(rel_path, None, reason=str(error))
    return LoadedVideo(rel_path, clips, seconds=time.perf_counter() - started)


def _content_hash(spec: BuildSpec, rel_path: str) -> str:
    """The video's content hash, before decoding (to skip a video the build excludes)."""
    path = os.path.join(spec.videos, rel_path)
    check_regular_file(path)     # never hash a FIFO or a device
    return file_hash(path)


def render_video(spec: BuildSpec, loaded: LoadedVideo, chosen: Chosen,
                 candidates: Sequence[str], store: MediaStore, job_round: int = 0) -> VideoResult:
    """Draw every sample of a job from its loaded video; its media are handed to `store`.

    The frames are on disk only after `store.wait()`, which must come before the result's
    records are written.
    """
    if loaded.clips is None:
        return VideoResult(loaded.path, "skipped", reason=loaded.reason, hash=loaded.hash,
                           round=job_round)
    first = next(iter(loaded.clips.values()))
    result = VideoResult(loaded.path, "ok", hash=first.video_hash, backend=first.backend,
                         round=job_round)
    result.timings["decode"] = loaded.seconds
    started = time.perf_counter()
    paths = {p: FramePaths(clip, store.put) for p, clip in loaded.clips.items()}
    donors: dict[tuple[str, str], Donors] = {}
    for task, variant, replica in chosen:
        protocol = spec.protocol(task)
        if (task.name, variant) not in donors:
            donors[task.name, variant] = Donors(spec, protocol, candidates)
        _make_sample(task, variant, loaded.clips[protocol], spec, replica,
                     donors[task.name, variant], paths[protocol], result)
    result.timings["render"] = time.perf_counter() - started
    return result


def process_video(spec: BuildSpec, out: str | None, job: Job,
                  candidates: Sequence[str]) -> VideoResult:
    """Decode one video once and draw every sample of its job from it (a worker's unit);
    its frames are written under `out`, or returned in the result when `out` is None."""
    chosen = _chosen(load_tasks(spec.extra_tasks), job)
    loaded = load_video(spec, job.path, _protocols(spec, chosen), job.hash)
    with ThreadPoolExecutor(MEDIA_THREADS) as writers:
        store = MediaStore(out, writers)
        result = render_video(spec, loaded, chosen, candidates, store, job.round)
        return finished(result, store)


def _make_sample(task: Task, variant: str, clip: Clip, spec: BuildSpec, replica: int,
                 donors: Donors, paths: FramePaths, result: VideoResult) -> None:
    key = f"{task.name}:{variant}"
    rng = derive_rng(spec.seed, clip.video_hash, task.name, variant, replica)
    try:
        draws = json.loads(canonical_json(task.draw(rng, clip, variant, donors.source)))
        record = make_record(task, variant, clip, draws, spec.seed, replica, donors.source, paths)
    except TaskSkip as skip:
        result.sample_skips.append({"sample": key, "replica": str(replica), "reason": str(skip)})
        return
    result.samples.append(canonical_json(record))
    result.counts[key] = result.counts.get(key, 0) + 1


def _ordered(spec: BuildSpec, out: str | None, todo: Iterable[Job], candidates: Sequence[str],
             workers: int) -> Iterator[VideoResult]:
    """Results in `todo` order (`pipeline`), at most 2 * workers videos in flight (memory
    stays flat), the costliest of the next few started first."""
    if workers <= 1:
        yield from _in_process(spec, out, todo, candidates)
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=die_with_parent) as pool:
        yield from run_in_pool(
            todo, lambda job: pool.submit(process_video, spec, out, job, candidates),
            functools.partial(_decode_cost, spec), 2 * workers)


def _in_process(spec: BuildSpec, out: str | None, todo: Iterable[Job],
                candidates: Sequence[str]) -> Iterator[VideoResult]:
    """One process: decoding, rendering and writing overlap (`pipeline.run_in_process`);
    results come in `todo` order, each once its frames are on disk."""
    tasks = load_tasks(spec.extra_tasks)

    def load(job: Job) -> LoadedVideo:
        return load_video(spec, job.path, _protocols(spec, _chosen(tasks, job)), job.hash)

    def render(job: Job, loaded: LoadedVideo, store: MediaStore) -> VideoResult:
        return render_video(spec, loaded, _chosen(tasks, job), candidates, store, job.round)

    yield from run_in_process(todo, load, render, functools.partial(_decode_cost, spec), out)


def _decode_cost(spec: BuildSpec, job: Job) -> int:
    """What decoding the job's video costs, roughly: its size in bytes (0 if unreadable)."""
    try:
        return os.path.getsize(os.path.join(spec.videos, job.path))
    except OSError:
        return 0


# (spec, output folder or None to have frames returned, jobs, donor candidates) -> results, in
# job order; the jobs are read lazily (they are screened, `viubench.prehash`, as they are read)
Results = Callable[[BuildSpec, str | None, Iterable[Job], Sequence[str]], Iterator[VideoResult]]
EXECUTORS = ("local", "ray")


def build(spec: BuildSpec, out: str, limit: int | None = None, workers: int = 1,
          observer: BuildObserver | None = None, executor: str = "local",
          address: str | None = None, pack: int = 0) -> dict[str, Any]:
    """Build (or resume building) the test set in `out`; returns the final build.json.

    `out` is locked while it is written (a second build into it stops at once), and worker
    processes die with this one. `executor` "ray" runs the per-video jobs on the Ray cluster
    at `address` (`viubench.build_ray`) instead of `workers` local processes; this process
    writes the records either way, so the output is the same. `pack` > 0 stores the frames in
    ZIP packs of that many videos each (`viubench.packs`), written by this process."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}: one of {', '.join(EXECUTORS)}")
    if address and executor != "ray":
        raise ValueError("--address names a Ray cluster: give --executor ray too")
    if pack < 0:
        raise ValueError(f"--pack {pack}: give a number of videos per pack (0: no packs)")
    with exclusive(out, "build"), _executor(executor, workers, address) as results:
        return _build_locked(spec, Output(out, pack), limit, results, observer)


@dataclass(frozen=True)
class Output:
    """Where a build writes, and how it stores frames: files, or packs of `pack` videos."""

    folder: str
    pack: int = 0

    def as_json(self) -> dict[str, Any]:
        """build.json's `media` entry (absent for plain files, as in builds before packs)."""
        return {"media": {"layout": "packs", "videos_per_pack": self.pack}} if self.pack else {}


@contextlib.contextmanager
def _executor(name: str, workers: int, address: str | None) -> Iterator[Results]:
    """The function that runs a build's jobs and yields their results in job order."""
    if name == "ray":
        from .build_ray import ray_executor

        with ray_executor(address) as results:
            yield results
    else:
        yield functools.partial(_ordered, workers=workers)


def _build_locked(spec: BuildSpec, output: Output, limit: int | None, results: Results,
                  observer: BuildObserver | None) -> dict[str, Any]:
    out = output.folder
    candidates = discover(spec.videos, exclude=out)
    todo = candidates[:limit] if limit else candidates
    os.makedirs(out, exist_ok=True)
    listing = digest("videos", todo) if spec.quotas else ""
    extra = {**({"listing": listing} if listing else {}), **output.as_json()}
    done, next_pack = _resume_state(spec, output, extra)
    _write_build_json(out, spec, done, status="running", started=time.time(), **extra)
    started = time.perf_counter()
    packed = PackedOutput(out, output.pack, next_pack) if output.pack else None
    run = _Run(spec, out, candidates, results, done, observer, packed)
    if spec.quotas:
        _quota_rounds(run, video_order(todo, spec.seed))
    else:
        items = tuple(spec.items())
        run.jobs([Job(rel, items) for rel in todo], first=True)
    return _write_build_json(out, spec, done, status="complete",
                             seconds=time.perf_counter() - started, **extra)


class _Run:
    """Runs jobs of one build: skips those already done (resume), writes their records."""

    def __init__(self, spec: BuildSpec, out: str, candidates: Sequence[str], results: Results,
                 done: list[dict[str, Any]], observer: BuildObserver | None,
                 packed: PackedOutput | None = None) -> None:
        self.spec, self.out, self.candidates, self.results = spec, out, candidates, results
        self.done, self.observer, self.packed = done, observer, packed
        self.finished = {(r.get("round", 0), r["path"]) for r in done}
        self.seen = {r["hash"]: r["path"] for r in done if r["status"] == "ok"}

    def jobs(self, jobs: Sequence[Job], first: bool) -> None:
        """Run the jobs not done yet; a packed build's records follow their pack's close."""
        remaining = [job for job in jobs if (job.round, job.path) not in self.finished]
        if self.observer and first:
            self.observer.start(len(remaining), len(self.finished))
        frames_to = None if self.packed else self.out
        with open(os.path.join(self.out, SAMPLES), "a", encoding="utf-8") as samples, \
                open(os.path.join(self.out, VIDEOS), "a", encoding="utf-8") as videos, \
                Screen(self.spec, remaining, self.seen) as screen:
            results = self.results(self.spec, frames_to, screen.dispatched(), self.candidates)
            for entry in screen:
                result = self._held(entry, frames_to) if entry.held else next(results)
                result = self._deduplicated(result)
                ready = self.packed.add(result) if self.packed else [result]
                self._record(ready, samples, videos)
            next(results, None)     # the executor finishes (its pool shuts down) here
            if self.packed:
                self._record(self.packed.close(), samples, videos)

    def _record(self, results: Sequence[Any], samples: Any, videos: Any) -> None:
        for result in results:
            if result.samples:
                write_line(samples, "\n".join(result.samples))
            append_jsonl(videos, result.log_record())
            self.done.append(result.log_record())
            if self.observer:
                self.observer.update(result)

    def _deduplicated(self, result: VideoResult) -> VideoResult:
        """The result, or a skip if another path of the build has the same content."""
        if result.status == "ok" and self._has_original(result.hash, result.path):
            return self._duplicate(result.path, result.hash, result.round)
        if result.status == "ok":
            self.seen[result.hash] = result.path
        return result

    def _has_original(self, content: str, path: str) -> bool:
        """Whether another path with this content has loaded (`seen`)."""
        return self.seen.get(content, path) != path

    def _duplicate(self, path: str, content: str, job_round: int) -> VideoResult:
        return VideoResult(path, "skipped", hash=content, round=job_round,
                           reason=f"duplicate of {self.seen[content]} (same content)")

    def _held(self, screened: Screened, frames_to: str | None) -> VideoResult:
        """The result of a job the driver did not dispatch (`viubench.prehash`), as its worker
        would have given it: excluded; a duplicate of the earlier path with its content that
        loaded; or, if none did, the job is run here, as any other (the rare case)."""
        job = screened.job
        if screened.held == EXCLUDED:
            return VideoResult(job.path, "skipped", reason=self.spec.excluded[job.hash],
                               hash=job.hash, round=job.round)
        if self._has_original(job.hash, job.path):
            return self._duplicate(job.path, job.hash, job.round)
        return process_video(self.spec, frames_to, job, self.candidates)


def _quota_rounds(run: _Run, order: list[str]) -> None:
    """Deal the spec's quotas to the videos in `order`, round after round, until they are met
    or no video can give more (`recipes.plan_round`); each round is planned from the records
    of the earlier ones only, so a resumed build plans exactly as an uninterrupted one."""
    assigned: Counter[tuple[str, str]] = Counter()
    for number in range(1, MAX_ROUNDS + 1):
        earlier = [r for r in run.done if r.get("round", 0) < number]
        dealt = plan_round(run.spec.quotas, order, earlier, assigned, run.spec.per_video,
                           first=number == 1)
        if not dealt:
            return
        run.jobs([Job(path, tuple(items), number) for path, items in dealt], first=number == 1)


def _resume_state(spec: BuildSpec, output: Output,
                  extra: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """Per-video records already done (samples.jsonl is cut back to exactly their samples)
    and the number of the next pack.

    A quota build deals its samples over the whole folder, so it resumes only over the same
    list of videos (`listing` in `extra`, a digest of it; absent for a test-set build, which
    resumes over any); a build resumes only with the same media layout."""
    out = output.folder
    build_path = os.path.join(out, BUILD)
    if not os.path.exists(build_path):
        for name in (SAMPLES, VIDEOS, PACKS):
            if os.path.exists(os.path.join(out, name)):
                raise ValueError(f"{out} holds {name} but no {BUILD}; use an empty folder")
        return [], 0
    previous = read_json(build_path)
    if previous.get("spec") != spec.as_json():
        raise ValueError(f"{out} holds a build with different settings ({build_path});"
                         " use a new --out folder or the same settings")
    if previous.get("listing") != extra.get("listing"):
        raise ValueError(f"{out} holds a recipe build over other videos ({build_path}): the"
                         " video folder or --limit changed since it started, and the recipe"
                         " is dealt over all of them; use a new --out folder")
    if previous.get("media") != extra.get("media"):
        before, asked = _layout(previous.get("media")), _layout(extra.get("media"))
        raise ValueError(f"{out} holds a build storing frames as {before} ({build_path}), not"
                         f" {asked}; use a new --out folder or the same --pack")
    videos_path = os.path.join(out, VIDEOS)
    done = list(read_jsonl(videos_path)) if os.path.exists(videos_path) else []
    next_pack = 0
    if output.pack:
        keep, next_pack = resume_packs(out, done)
        done = done[:keep]
    truncate_lines(videos_path, len(done))
    truncate_lines(os.path.join(out, SAMPLES), sum(r["samples"] for r in done))
    return done, next_pack


def _layout(media: Any) -> str:
    if isinstance(media, dict) and media.get("layout") == "packs":
        return f"packs of {media.get('videos_per_pack')} videos"
    return "one file per frame"


def _write_build_json(out: str, spec: BuildSpec, done: list[dict[str, Any]], status: str,
                      **extra: Any) -> dict[str, Any]:
    """Write (atomically) and return build.json for the per-video records `done`; a record
    lacking `counts`, `sample_skips` or `timings` (an older log) counts as holding none.
    A video dealt samples in several rounds of a quota build counts once."""
    counts: dict[str, int] = {}
    timings: dict[str, float] = {}
    for record in done:
        for key, n in record.get("counts", {}).items():
            counts[key] = counts.get(key, 0) + n
        for key, seconds in record.get("timings", {}).items():
            timings[key] = round(timings.get(key, 0.0) + seconds, 3)
    videos = per_video(done)
    summary = {
        "tool": "viubench", "tool_version": __version__, "status": status,
        "encoder": jpeg_encoder(),
        "purpose": spec.purpose, "spec": spec.as_json(),
        "videos": {"processed": len(videos), "ok": sum(r["status"] == "ok" for r in videos),
                   "skipped": sum(r["status"] == "skipped" for r in videos)},
        "samples": sum(counts.values()), "counts": dict(sorted(counts.items())),
        "skipped": [{"path": r["path"], "reason": r["reason"]} for r in videos
                    if r["status"] == "skipped"],
        "sample_skips": [dict(s, video=r["path"]) for r in done
                         for s in r.get("sample_skips", [])],
        "variants": variant_summary(videos, spec.selection),
        "timings": timings, **_training_summary(spec, videos, counts), **extra,
    }
    write_json(os.path.join(out, BUILD), summary)
    return summary


def _training_summary(spec: BuildSpec, videos: list[dict[str, Any]],
                      counts: dict[str, int]) -> dict[str, Any]:
    """build.json's `quotas` (a quota build) and `leakage` (a build excluding test sets)."""
    summary: dict[str, Any] = {}
    if spec.quotas:
        summary["quotas"] = dict(quota_summary(spec.quotas, counts), recipe=spec.recipe)
    if spec.exclude:
        excluded = spec.excluded
        summary["leakage"] = {
            "testsets": sorted({entry[1] for entry in spec.exclude}),
            "testset_videos": len(excluded),
            "excluded": sum(r["status"] == "skipped" and r.get("hash") in excluded
                            for r in videos)}
    return summary


def per_video(done: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-video records with those of one video (several rounds of a quota build) merged:
    counts added, sample skips joined, ok if any round loaded it. Order of first appearance."""
    merged: dict[str, dict[str, Any]] = {}
    for record in done:
        if record["path"] not in merged:
            merged[record["path"]] = dict(record)
            continue
        into = merged[record["path"]]
        counts = dict(into.get("counts", {}))
        for key, n in record.get("counts", {}).items():
            counts[key] = counts.get(key, 0) + n
        into["counts"] = counts
        into["sample_skips"] = into.get("sample_skips", []) + record.get("sample_skips", [])
        if record["status"] == "ok":
            into["status"] = "ok"
    return list(merged.values())


TOP_REASONS = 5                        # skip-reason groups kept per variant in build.json
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def reason_group(reason: str) -> str:
    """The group a sample's skip reason is counted in: its text with every number (a run of
    digits, with its decimal part if any) replaced by `#`.

    Reasons that differ only in numbers group together ("at most 4 of the 48 frames" and
    "at most 7 of the 48 frames" -> "at most # of the # frames"); any other difference in
    wording keeps them apart. Digits inside words are replaced too ("mp4" -> "mp#"), which
    only merges texts that differ in such digits.
    """
    return _NUMBER.sub("#", reason)


def top_reasons(skips: Iterable[tuple[str, str]],
                limit: int = TOP_REASONS) -> list[dict[str, Any]]:
    """The `limit` largest groups (`reason_group`) of (video, reason) sample skips, in build
    order: {reason: the group's text, example: its first actual reason, count: samples
    skipped, videos: distinct videos}, sorted by count (largest first), then by reason."""
    groups: dict[str, dict[str, Any]] = {}
    videos: dict[str, set[str]] = {}
    for video, reason in skips:
        key = reason_group(reason)
        group = groups.setdefault(key, {"reason": key, "example": reason, "count": 0})
        group["count"] += 1
        videos.setdefault(key, set()).add(video)
    for key, group in groups.items():
        group["videos"] = len(videos[key])
    return sorted(groups.values(), key=lambda g: (-g["count"], g["reason"]))[:limit]


def variant_summary(done: Sequence[dict[str, Any]],
                    selection: Iterable[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Per "task:variant" of the selection, from the per-video records: samples, videos that
    loaded (`videos`), those that yielded at least one sample, whole-video skips
    (`videos_not_loaded`: they yield for no variant), samples skipped and `top_reasons`.
    Records lacking `counts` or `sample_skips` (older logs) count as holding none."""
    loaded = [r for r in done if r.get("status") == "ok"]
    summary = {}
    for task, variant in selection:
        key = f"{task}:{variant}"
        made = [r.get("counts", {}).get(key, 0) for r in loaded]
        skips = [(r["path"], s["reason"]) for r in loaded for s in r.get("sample_skips", [])
                 if s.get("sample") == key]
        summary[key] = {"samples": sum(made), "videos": len(loaded),
                        "videos_with_samples": sum(n > 0 for n in made),
                        "videos_not_loaded": len(done) - len(loaded),
                        "skipped": len(skips), "skip_reasons": top_reasons(skips)}
    return dict(sorted(summary.items()))
