"""A build's per-video jobs as Ray tasks (`viubench build --executor ray`).

Ray tasks rather than Ray Data: a job is one function call on one path (`build.process_video`)
and the driver must take the results back in job order to write the records as the local build
does; tasks submitted in order and collected in that order, a bounded window ahead, do exactly
that, with Ray's per-task retries for a lost worker, and need only plain `ray`.

Each task decodes its video from, and writes its JPEG frames to, the same paths as the local
build, so the video folder and the output folder must be one storage every node sees at the
same path; in a packed build (`--pack N`) the frames come back with the result and this process
packs them, so only the video folder must be shared. The driver alone writes samples.jsonl,
videos.jsonl, build.json (and the packs), in job order, so the output is byte-identical to the
local build whatever the number of nodes and workers, and a killed build resumes like a local
one. A task rewrites exactly the frames it names with the bytes they must hold, so a retried task
(a lost worker) is harmless.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterable, Iterator, Sequence

from . import __version__
from .build import BuildSpec, Job, Results, VideoResult, process_video
from .testset import BUILD

MAX_RETRIES = 3          # a task whose worker or node is lost runs again up to this many times
AHEAD_PER_CPU = 2        # tasks in flight per CPU of the cluster (bounds memory, like --workers)


class RayBuildError(ValueError):
    """The Ray build cannot go on (storage not shared, versions differ, a worker lost too often);
    the records written so far stay, and the same command resumes."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ValueError("--executor ray needs Ray: pip install 'viubench[ray]'") from None
    return ray


@contextlib.contextmanager
def ray_executor(address: str | None) -> Iterator[Results]:
    """Connects to the Ray cluster at `address` (None: start a local one, unless this process
    is already connected) for the length of a build; yields the function that runs jobs."""
    ray = _ray()
    connected_here = not ray.is_initialized()
    if connected_here:
        local = {} if address else {"include_dashboard": False}
        ray.init(address=address, logging_level="WARNING", log_to_driver=False, **local)
    try:
        window = AHEAD_PER_CPU * max(int(ray.cluster_resources().get("CPU", 1)), 1)
        remote = ray.remote(run_job).options(num_cpus=1, max_retries=MAX_RETRIES,
                                             retry_exceptions=False)

        def results(spec: BuildSpec, out: str | None, todo: Iterable[Job],
                    candidates: Sequence[str]) -> Iterator[VideoResult]:
            return _in_order(ray, remote, window, spec, out, todo, candidates)

        yield results
    finally:
        if connected_here:
            ray.shutdown()


def _in_order(ray: Any, remote: Any, window: int, spec: BuildSpec, out: str | None,
              todo: Iterable[Job], candidates: Sequence[str]) -> Iterator[VideoResult]:
    """Results in `todo` order, at most `window` tasks in flight; the spec and the list of
    candidate donors go to the object store once, not once per task."""
    spec_ref, candidates_ref = ray.put(spec), ray.put(list(candidates))
    pending: list[tuple[Job, Any]] = []
    try:
        for job in todo:
            pending.append((job, remote.remote(__version__, spec_ref, out, job, candidates_ref)))
            if len(pending) >= window:
                yield _result(ray, *pending.pop(0))
        while pending:
            yield _result(ray, *pending.pop(0))
    finally:
        for _, ref in pending:       # the build stopped early: nothing more is needed
            ray.cancel(ref)


def _result(ray: Any, job: Job, ref: Any) -> VideoResult:
    """The task's result; an error in the task is raised as itself (as a local build would),
    a worker lost more than MAX_RETRIES times as a RayBuildError."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        cause = getattr(error, "cause", None)
        if isinstance(cause, BaseException):
            raise cause from None
        raise
    except ray.exceptions.RayError as error:
        raise RayBuildError(f"{job.path}: its Ray task failed {MAX_RETRIES + 1} times"
                            f" ({type(error).__name__}); the videos recorded so far are kept:"
                            " run the same command to resume") from None


def run_job(version: str, spec: BuildSpec, out: str | None, job: Job,
            candidates: Sequence[str]) -> VideoResult:
    """One job on a Ray worker, after checking that the worker runs the driver's viubench and
    sees the build's storage (a video it cannot see must never turn into a skip). With `out`
    None (a packed build) the frames come back in the result and only the videos are read
    from shared storage."""
    if version != __version__:
        raise RayBuildError(f"a Ray worker runs viubench {__version__}, the driver {version}:"
                            " install the same version on every node")
    if not os.path.isdir(spec.videos):
        raise RayBuildError(f"a Ray worker does not see the video folder {spec.videos}: it must"
                            " be on storage every node mounts at the same path")
    if out is not None and not os.path.isfile(os.path.join(out, BUILD)):
        raise RayBuildError(f"a Ray worker does not see {out}/{BUILD}: the output folder must be"
                            " on storage every node mounts at the same path (or build with"
                            " --pack N: then only this process writes it)")
    return process_video(spec, out, job, candidates)
