"""The order of work in a one-process build: which video to decode next, which to render, and
when a video's result may be handed on.

Three stages overlap: decoding (DECODE_AT_ONCE videos at a time, in threads; the decoders
release the GIL), rendering (the calling thread) and JPEG encoding + writing (MEDIA_THREADS
threads). Up to WINDOW videos are admitted at once, in the order given; one decoder takes the
costliest of them (the largest file), so that a long video does not start last and end the
build alone, and the others take them in order beside it. Each video is rendered as soon as it
is decoded; results are handed on strictly in the order given, each once its frames are
written, and before a video is rendered every rendered video ahead of it is handed on (a build
killed in a render has recorded all it could). So the output is the same as decoding,
rendering and writing one video after another, and memory stays bounded: at most
DECODE_AT_ONCE videos decoding, one rendering and UNWRITTEN rendered ones whose frames are
still being encoded.

With worker processes (`run_in_pool`) each worker decodes, renders and writes a whole video;
the same window decides which video a free worker takes next (the costliest admitted when no
running worker holds one taken for its cost, else the next in order), and results are handed
on in the order given.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from itertools import count, islice
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

from .media import MediaStore

WINDOW = 16           # videos admitted at once (decoded in order of cost, handed on in order)
DECODE_AT_ONCE = 2    # videos decoding at once
UNWRITTEN = 1         # rendered videos whose frames may still be encoding
MEDIA_THREADS = 2     # JPEG encode + write threads

Job = TypeVar("Job")
Loaded = TypeVar("Loaded")


@dataclass
class _Slot(Generic[Job]):
    number: int                 # position in the order given
    job: Job
    cost: int
    result: Any = None          # set once rendered
    store: MediaStore | None = None
    future: Future | None = None    # run_in_pool: the worker's result
    by_cost: bool = False       # started as the costliest waiting


def finished(result: Any, store: MediaStore) -> Any:
    """`result` once its frames are written (or encoded, to be packed: `result.media`)."""
    store.wait()
    result.media = store.collected()
    return result


def run_in_process(jobs: Iterable[Job], load: Callable[[Job], Loaded],
                   render: Callable[[Job, Loaded, MediaStore], Any], cost: Callable[[Job], int],
                   out: str | None) -> Iterator[Any]:
    """`render(job, load(job), store)` for every job, results in the order of `jobs` (read
    only as far as the window); frames go to `MediaStore(out, ...)`."""
    with ThreadPoolExecutor(DECODE_AT_ONCE) as loader, \
            ThreadPoolExecutor(MEDIA_THREADS) as writers:
        yield from _Schedule(iter(jobs), load, render, cost, out, loader, writers).run()


class _Window(Generic[Job]):
    """The jobs admitted so far and not handed on (at most WINDOW, in the order given), and
    which of them to start next (`next_to_start`)."""

    def __init__(self, jobs: Iterator[Job], cost: Callable[[Job], int]) -> None:
        self.jobs, self.cost = jobs, cost
        self.numbers = count()
        self.admitted: deque[_Slot[Job]] = deque()
        self.waiting: list[_Slot[Job]] = []

    def admit(self) -> None:
        for job in islice(self.jobs, WINDOW - len(self.admitted)):
            slot = _Slot(next(self.numbers), job, self.cost(job))
            self.admitted.append(slot)
            self.waiting.append(slot)

    def next_to_start(self, running: Iterable[_Slot[Job]]) -> _Slot[Job] | None:
        """The costliest waiting job when none of the `running` ones was started for its cost,
        else the first waiting in the order given: one long video starts early, and the
        others go in order beside it (not the costliest together, which would hold the
        most memory at once)."""
        if not self.waiting:
            return None
        by_cost = not any(slot.by_cost for slot in running)
        if by_cost:
            slot = max(self.waiting, key=lambda slot: (slot.cost, -slot.number))
        else:
            slot = min(self.waiting, key=lambda slot: slot.number)
        slot.by_cost = by_cost
        self.waiting.remove(slot)
        return slot


def run_in_pool(jobs: Iterable[Job], submit: Callable[[Job], Future], cost: Callable[[Job], int],
                running: int) -> Iterator[Any]:
    """`submit(job).result()` for every job, in the order of `jobs`: at most `running` jobs
    submitted and not finished, started as `_Window.next_to_start` says; at most WINDOW jobs
    read ahead of the results handed on."""
    window = _Window(iter(jobs), cost)
    started: dict[Future, _Slot[Job]] = {}
    while True:
        window.admit()
        while len(started) < running and (slot := window.next_to_start(
                started.values())) is not None:
            slot.future = submit(slot.job)
            started[slot.future] = slot
        if not window.admitted:
            return
        head = window.admitted[0]
        if head.future is not None and head.future.done():
            window.admitted.popleft()
            started.pop(head.future, None)
            yield head.future.result()
            continue
        done, _ = wait(started, return_when=FIRST_COMPLETED)
        for future in done:
            del started[future]


class _Schedule(Generic[Job, Loaded]):
    def __init__(self, jobs: Iterator[Job], load: Callable[[Job], Loaded],
                 render: Callable[[Job, Loaded, MediaStore], Any], cost: Callable[[Job], int],
                 out: str | None, loader: ThreadPoolExecutor,
                 writers: ThreadPoolExecutor) -> None:
        self.window = _Window(jobs, cost)
        self.load, self.render = load, render
        self.out, self.loader, self.writers = out, loader, writers
        self.admitted = self.window.admitted         # in the order given, until handed on
        self.decoding: dict[Future, _Slot[Job]] = {}
        self.unwritten: deque[_Slot[Job]] = deque()  # rendered, frames maybe still encoding

    def run(self) -> Iterator[Any]:
        while True:
            self.window.admit()
            self._start_decoding()
            if not self.admitted:
                return
            if self._head_ready():
                yield self._hand_on()
                continue
            done, _ = wait(self.decoding, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda future: self.decoding[future].number):
                slot = self.decoding.pop(future)
                self._start_decoding()
                # Every rendered video before it is handed on first: a video's result is out
                # before any video decoded after it is rendered (so a build killed in a
                # render has recorded all it could).
                while _rendered(self.admitted[0]):
                    yield self._hand_on()
                self._render(slot, future.result())

    def _head_ready(self) -> bool:
        """Whether the first video not handed on is rendered and its frames are written; its
        writes are waited for only when no decode is running (nothing else to do then). A head
        not rendered yet is decoding, as is every video admitted before any decode ends."""
        head = self.admitted[0]
        return _rendered(head) and (_settled(head) or not self.decoding)

    def _hand_on(self) -> Any:
        slot = self.admitted.popleft()
        return finished(slot.result, _store(slot))

    def _start_decoding(self) -> None:
        while len(self.decoding) < DECODE_AT_ONCE and (slot := self.window.next_to_start(
                self.decoding.values())):
            self.decoding[self.loader.submit(self.load, slot.job)] = slot

    def _render(self, slot: _Slot[Job], loaded: Loaded) -> None:
        while self.unwritten and _settled(self.unwritten[0]):
            self.unwritten.popleft()
        while len(self.unwritten) >= UNWRITTEN:
            _store(self.unwritten.popleft()).wait()
        store = MediaStore(self.out, self.writers)
        slot.result = self.render(slot.job, loaded, store)
        slot.store = store
        self.unwritten.append(slot)


def _rendered(slot: _Slot) -> bool:
    return slot.store is not None


def _store(slot: _Slot) -> MediaStore:
    assert slot.store is not None, "only a rendered video has a store"
    return slot.store


def _settled(slot: _Slot) -> bool:
    return _store(slot).settled()
