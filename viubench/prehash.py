"""A build's cheap check before the expensive work: each video's content hash, taken before any
worker probes or decodes it, so that a byte-identical copy of an earlier video and a video the
build excludes (leakage) cost no decode.

The driver (`build._Run`) hashes the videos of a round's jobs in a small thread pool (blake2b
releases the GIL while it hashes), at most HASH_AHEAD jobs ahead of the one it dispatches, and
screens each job in job order: dispatched with its hash (the worker does not hash again), or
held, and then the driver writes its record itself in the job's place. A job is held when its
video is one the build excludes, or, when every job of the build reads its video with the same
frame protocols (`same_protocols`), when an earlier path has the same content (an earlier job
of the round, or a video the records already hold as loaded). Whether the earlier path loads is
known only when its result is back, so a held copy is decided in its turn (`build._Run`), by the
rule the records have always followed: a duplicate of the first path with its content that
loaded, else read as any other video.

Hashing in the driver rather than as a worker job of its own: the driver alone decides the skips
and writes the records in job order, so it needs the hashes in hand before it dispatches; a hash
task per video would add a second kind of task and a round trip before every decode, for work
that reads the file at storage speed and costs a small fraction of decoding it (about 2% of a
video's build time on short clips), so a few threads keep up with many decoding workers. The
driver already lists the video folder, which under `--executor ray` is storage every node sees
at the same path. A file the driver cannot hash (not a regular file, unreadable) is dispatched
unhashed, and its worker records why, as before.
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Mapping, Sequence

from .records import file_hash
from .registry import load_tasks
from .video import VideoError, check_regular_file

if TYPE_CHECKING:
    from .build import BuildSpec, Job

HASH_THREADS = 4
HASH_AHEAD = 16          # videos hashed ahead of the job being screened
EXCLUDED, DUPLICATE = "excluded", "duplicate"


def content_hash(root: str, rel_path: str) -> str:
    """The file's content hash, or "" if it cannot be hashed (its worker then says why)."""
    path = os.path.join(root, rel_path)
    try:
        check_regular_file(path)     # a FIFO or a device is never opened
        return file_hash(path)
    except (VideoError, OSError):
        return ""


def same_protocols(spec: BuildSpec) -> bool:
    """Whether every job of the build reads its video with the same frame protocols, so that a
    copy of a video that loaded loads too: always in a test-set build (every video draws every
    selected sample); in a quota build, when all its tasks share one protocol."""
    if not spec.quotas:
        return True
    try:
        tasks = load_tasks(spec.extra_tasks)
        return len({spec.protocol(tasks[name]) for name, _, _ in spec.quotas}) == 1
    except (KeyError, ValueError):
        return False         # the workers report it


@dataclass(frozen=True)
class Screened:
    job: "Job"               # with its content hash ("" if the file cannot be hashed)
    held: str = ""           # "" (dispatched), EXCLUDED or DUPLICATE (the driver records it)


class Screen:
    """The jobs of one round in order, hashed ahead in threads and screened; iterate it for
    every job, and pass `dispatched()` to the executor for the jobs it must run."""

    def __init__(self, spec: BuildSpec, jobs: Sequence[Job], loaded: Mapping[str, str]) -> None:
        self.spec, self.jobs = spec, jobs
        self.dedup = same_protocols(spec)
        self.first = dict(loaded)          # content hash -> first path with it
        self.hashes: dict[int, Future[str]] = {}     # job number -> its hash, being taken
        self.submitted = 0
        self.screened: list[Screened] = []
        self.pool = ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="prehash")

    def __enter__(self) -> "Screen":
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def __iter__(self) -> Iterator[Screened]:
        return (self[k] for k in range(len(self.jobs)))

    def dispatched(self) -> Iterator[Job]:
        """The jobs not held, in order, each carrying its hash."""
        return (self[k].job for k in range(len(self.jobs)) if not self[k].held)

    def __getitem__(self, k: int) -> Screened:
        while len(self.screened) <= k:
            self.screened.append(self._screen(len(self.screened)))
        return self.screened[k]

    def _screen(self, k: int) -> Screened:
        for ahead in range(self.submitted, min(k + HASH_AHEAD, len(self.jobs))):
            path = self.jobs[ahead].path
            self.hashes[ahead] = self.pool.submit(content_hash, self.spec.videos, path)
        self.submitted = max(self.submitted, k + HASH_AHEAD)
        job = dataclasses.replace(self.jobs[k], hash=self.hashes.pop(k).result())
        if not job.hash:
            return Screened(job)
        if job.hash in self.spec.excluded:
            return Screened(job, EXCLUDED)
        if self.dedup and self.first.setdefault(job.hash, job.path) != job.path:
            return Screened(job, DUPLICATE)
        return Screened(job)
