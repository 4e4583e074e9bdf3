"""The one-process build's order of work (`viubench.pipeline`): costliest decoded first,
rendered as decoded, handed on in the order given."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from viubench import pipeline
from viubench.media import MediaStore

COSTS = [3, 9, 1, 7, 5, 2, 8, 4, 6, 0, 11, 10]


class Recorder:
    """load / render callables that note what happened, in the order it happened."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded: list[int] = []
        self.events: list[tuple[str, int]] = []      # ("render" | "out", job), in order
        self.first_two = threading.Barrier(2)

    def load(self, job: int) -> str:
        with self.lock:
            self.loaded.append(job)
            first = len(self.loaded) <= 2
        if first:   # the first two decodes run together: both are started before either ends
            self.first_two.wait(timeout=60)
        return f"frames of {job}"

    def render(self, job: int, loaded: str, store: MediaStore) -> SimpleNamespace:
        assert loaded == f"frames of {job}"
        self.events.append(("render", job))
        return SimpleNamespace(job=job)

    def run(self, jobs: list[int]) -> list[int]:
        out = []
        for result in pipeline.run_in_process(jobs, self.load, self.render,
                                              lambda job: COSTS[job], None):
            self.events.append(("out", result.job))
            out.append(result.job)
        return out


def test_results_come_in_the_order_given_each_rendered_once():
    recorder = Recorder()
    jobs = list(range(len(COSTS)))
    assert recorder.run(jobs) == jobs
    assert sorted(job for kind, job in recorder.events if kind == "render") == jobs
    assert sorted(recorder.loaded) == jobs


def test_one_decoder_takes_the_costliest_video_the_other_the_next_in_order():
    recorder = Recorder()
    recorder.run(list(range(len(COSTS))))
    costliest = max(range(len(COSTS)), key=lambda job: COSTS[job])
    assert set(recorder.loaded[:2]) == {costliest, 0}


def test_before_a_render_every_result_that_can_be_handed_on_is():
    """Results go out in order, so the rendered videos before the first one not rendered are
    handed on before the next render: a build killed while rendering has recorded all it
    could."""
    recorder = Recorder()
    recorder.run(list(range(len(COSTS))))
    rendered: set[int] = set()
    handed_on: set[int] = set()
    for kind, job in recorder.events:
        if kind == "render":
            first_missing = min(set(range(len(COSTS) + 1)) - rendered)
            assert set(range(first_missing)) <= handed_on, (job, rendered, handed_on)
            rendered.add(job)
        else:
            assert job in rendered
            handed_on.add(job)


def test_the_window_bounds_how_far_the_jobs_are_read():
    """Jobs are read lazily: never more than WINDOW beyond the results handed on."""
    read: list[int] = []
    handed_on: list[int] = []

    def jobs():
        for job in range(40):
            assert len(read) - len(handed_on) < pipeline.WINDOW
            read.append(job)
            yield job

    for result in pipeline.run_in_process(jobs(), lambda job: job, lambda job, loaded, store:
                                          SimpleNamespace(job=loaded), lambda job: job % 7, None):
        handed_on.append(result.job)
    assert handed_on == list(range(40))


def test_a_pool_starts_the_costliest_beside_the_next_in_order():
    """`run_in_pool` (worker processes in a build; threads here): the first job submitted is
    the costliest admitted, the next ones follow the order given, results come in that
    order."""
    submitted: list[int] = []
    jobs = list(range(len(COSTS)))
    with ThreadPoolExecutor(2) as pool:
        def submit(job: int):
            submitted.append(job)
            return pool.submit(lambda: SimpleNamespace(job=job))

        out = [result.job for result in pipeline.run_in_pool(jobs, submit,
                                                             lambda job: COSTS[job], 3)]
    assert out == jobs
    assert sorted(submitted) == jobs
    costliest = max(jobs, key=lambda job: COSTS[job])
    assert submitted[:3] == [costliest, 0, 1]


def test_a_pool_never_has_more_than_running_jobs_unfinished():
    unfinished = 0
    most = 0
    lock = threading.Lock()

    def work(job: int) -> SimpleNamespace:
        nonlocal unfinished
        with lock:
            unfinished -= 1
        return SimpleNamespace(job=job)

    with ThreadPoolExecutor(4) as pool:
        def submit(job: int):
            nonlocal unfinished, most
            with lock:
                unfinished += 1
                most = max(most, unfinished)
            return pool.submit(work, job)

        out = [r.job for r in pipeline.run_in_pool(range(30), submit, lambda job: job % 5, 2)]
    assert out == list(range(30))
    assert most <= 2
