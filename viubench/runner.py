"""Test set x adapter -> predictions: batches, bounded concurrency, one retry policy, resume.

The records go to the run folder (`viubench.runfolder` owns its format), appended and flushed
as each answer arrives. Running the same command again resumes: a torn last line is cut away
and answered samples are skipped; samples whose last record is an error are asked again (the
new record is appended; the last record of a sample is the one that counts) unless
`keep_errors` is set.

A batch in flight holds one of `concurrency` slots only while it is being asked: between
attempts it waits in a `viubench.retry.Backlog`, so a backoff never idles a slot, and the
server's Retry-After holds back the whole run. A run whose requests all fail without an answer
(the server is down) is stopped by a `viubench.retry.Breaker` with one message, and what was
not answered stays unasked, to be resumed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import random
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Iterator, Mapping, Protocol

from .adapters import (Adapter, AdapterAbort, AdapterSpec, PromptItem, Request, Response,
                       batching, failed)
from .folderlock import exclusive
from .retry import Backlog, Breaker, RetryPolicy
from .runfolder import (PREDICTIONS, differing_settings, latest, make_header, prediction_record,
                        read_run, run_scope, scope_record)
from .records import append_jsonl, truncate_lines
from .shards import Shard
from .testset import BadTestSet, SampleRecord, SetMedia, is_training_set, iter_samples


@dataclass(frozen=True)
class GenerationSettings:
    """What the model is asked to do; a resumed run must use the same settings."""

    max_new_tokens: int = 256
    per_task: Mapping[str, int] = field(default_factory=dict)   # task -> max_new_tokens

    def tokens_for(self, task: str) -> int:
        return self.per_task.get(task, self.max_new_tokens)

    def as_json(self) -> dict[str, Any]:
        # Sampling settings (temperature, ...) are the adapter's and live in its fingerprint.
        return {"max_new_tokens": self.max_new_tokens,
                "per_task": dict(sorted(self.per_task.items()))}


@dataclass(frozen=True)
class RunOptions:
    """How the run is carried out; may change between resumes without changing results."""

    concurrency: int | None = None    # None: the adapter's default
    batch_size: int | None = None
    limit: int | None = None
    keep_errors: bool = False         # True: samples whose last record is an error stay so
    retry: RetryPolicy = RetryPolicy()
    shard: Shard | None = None        # only this shard of the scope; fixed for the run folder


def scope_samples(testset: str, limit: int | None, shard: Shard | None = None,
                  media: SetMedia | None = None) -> Iterator[SampleRecord]:
    """The checked samples a run covers: the first `limit` of the test set, then those of
    `shard` among them (`viubench.shards`)."""
    samples = iter_samples(testset, limit, media)
    return shard.select(samples) if shard else samples


class RunObserver(Protocol):
    def start(self, total: int, already_done: int) -> None: ...

    def update(self, record: Mapping[str, Any]) -> None: ...


WAITING_PER_SLOT = 4   # batches waiting out a backoff, per slot, before no new one is started


class RunAborted(RuntimeError):
    """The adapter reported a condition that spoils the run; nothing was recorded for it."""


def requests_of(testset: str, generation: GenerationSettings, limit: int | None,
                shard: Shard | None = None, media: SetMedia | None = None,
                skip: Collection[str] = ()) -> Iterator[Request]:
    """One request per sample in scope but those in `skip`, in test-set order, media paths as
    absolute file paths (`SetMedia.path`: a packed set's frames are extracted, and those
    of a `media` made here are removed when the generator ends)."""
    with contextlib.ExitStack() as stack:
        media = media or stack.enter_context(SetMedia(testset))
        for record in scope_samples(testset, limit, shard, media):
            if record["id"] in skip:
                continue
            try:
                parts = tuple(prompt_item(part, media.path) for part in record["prompt"])
            except BadTestSet:      # a media file that cannot be read says so itself
                raise
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{testset}: sample {record.get('id')}: a malformed prompt"
                                 f" part ({type(error).__name__}: {error})") from None
            yield Request(record["id"], record["task"], record["variant"], parts,
                          generation.tokens_for(record["task"]), record["frames"],
                          record.get("system"))


def prompt_item(part: Mapping[str, Any], file_of: Callable[[str], str]) -> PromptItem:
    """A stored prompt part as the typed part adapters receive, each media path turned into
    a file path by `file_of`; ValueError for a part of no known type."""
    if part["type"] == "text":
        return {"type": "text", "text": str(part["text"])}
    if part["type"] == "image":
        return {"type": "image", "image": file_of(str(part["image"]))}
    if part["type"] == "video":
        return {"type": "video", "frames": [file_of(str(f)) for f in part["frames"]],
                "fps": float(part["fps"])}
    raise ValueError(f"unknown prompt part type {part['type']!r}")


def run_eval(testset: str, spec: AdapterSpec, adapter: Adapter, rundir: str,
             generation: GenerationSettings, options: RunOptions,
             observer: RunObserver | None = None) -> dict[str, int]:
    """Ask `adapter` every unanswered sample of `testset`; returns counts of this session.

    The run folder is locked for the run (one writer: `viubench.folderlock`), and the whole
    scope of the test set is checked (`viubench.testset.iter_samples`) before a request is sent.
    A folder built for training gets a warning: its scores are no held-out result.
    """
    if is_training_set(testset):
        warnings.warn(f"{testset} was built for training (build.json: purpose training): scores"
                      " on it are not held-out results", stacklevel=2)
    with exclusive(rundir, "eval"), SetMedia(testset) as media:
        return _run_locked(testset, spec, adapter, rundir, generation, options, observer,
                           media)


def _run_locked(testset: str, spec: AdapterSpec, adapter: Adapter, rundir: str,
                generation: GenerationSettings, options: RunOptions,
                observer: RunObserver | None, media: SetMedia) -> dict[str, int]:
    shard = options.shard.as_json() if options.shard else None
    header = make_header(testset, spec.redacted(), adapter.describe(), generation.as_json(),
                         shard)
    path = os.path.join(rundir, PREDICTIONS)
    old_header, predictions = read_run(rundir)
    if old_header is not None:
        differs = differing_settings(old_header, header)
        if differs:
            raise ValueError(f"{rundir} holds a run with a different {', '.join(differs)};"
                             " use a new --out folder or the same settings")
        truncate_lines(path, 1 + len(predictions))
    elif os.path.exists(path):
        truncate_lines(path, 0)
    done = {i for i, r in latest(predictions).items()
            if r["error"] is None or options.keep_errors}
    # Requests are streamed from samples.jsonl, never all held: a 100k-sample set has 100k
    # prompts of 48 frame paths each. The first pass checks the whole scope (an unsafe record
    # stops the run before anything is sent) and counts what is left to ask.
    remaining = sum(record["id"] not in done
                    for record in scope_samples(testset, options.limit, options.shard, media))
    todo = requests_of(testset, generation, options.limit, options.shard, media, skip=done)
    if observer:
        observer.start(remaining, len(done))
    with open(path, "a", encoding="utf-8") as handle:
        if old_header is None:
            append_jsonl(handle, header)
        if old_header is None or run_scope(predictions) != options.limit:
            append_jsonl(handle, scope_record(options.limit))
        writer = _Writer(handle, observer)
        _dispatch(adapter, todo, options, writer)
    return writer.counts


class _Writer:
    """Appends prediction records, one flushed line each (only the dispatcher writes)."""

    def __init__(self, handle, observer: RunObserver | None) -> None:
        self.handle, self.observer = handle, observer
        self.counts = {"answered": 0, "errors": 0}

    def write(self, request: Request, response: Response, attempts: int, seconds: float,
              waited: float) -> None:
        record = prediction_record(request.id, request.task, request.variant, response.text,
                                   response.error, response.kind, attempts, seconds, waited,
                                   response.info)
        append_jsonl(self.handle, record)
        self.counts["answered" if response.ok else "errors"] += 1
        if self.observer:
            self.observer.update(record)


def _batches(requests: Iterator[Request], size: int) -> Iterator[list[Request]]:
    while batch := list(itertools.islice(requests, size)):
        yield batch


def _dispatch(adapter: Adapter, todo: Iterator[Request], options: RunOptions,
              writer: _Writer) -> None:
    _Dispatcher(adapter, todo, options, writer).run()


@dataclass
class _Job:
    """A batch on its way: the requests still unanswered and how they fared so far."""

    requests: list[Request]
    started: float           # when its first attempt was sent (monotonic)
    attempt: int = 0
    waited: float = 0.0      # backoff and Retry-After waits scheduled between attempts
    backoffs: int = 0        # waits the server did not time (no Retry-After) so far


class _Dispatcher:
    """Keeps `concurrency` batches in flight. A batch that must wait before its next attempt
    gives its slot back and waits in the `Backlog`; due retries go before new batches; a
    Retry-After holds back every request; the `Breaker` stops a run that gets no answers."""

    def __init__(self, adapter: Adapter, todo: Iterator[Request], options: RunOptions,
                 writer: _Writer) -> None:
        wanted_concurrency, wanted_size = batching(adapter)
        self.concurrency = max(1, options.concurrency or wanted_concurrency)
        size = max(1, options.batch_size or wanted_size)
        self.adapter, self.writer, self.policy = adapter, writer, options.retry
        self.batches: Iterator[list[Request]] | None = _batches(todo, size)
        self.backlog: Backlog[_Job] = Backlog()
        # waiting batches are bounded too: a dead server must not pull in the whole test set
        self.max_waiting = WAITING_PER_SLOT * self.concurrency
        self.breaker = Breaker(2 * self.concurrency * size)
        self.running: dict[Future, _Job] = {}
        self.finished: queue.SimpleQueue[Future] = queue.SimpleQueue()
        self.rng = random.Random()   # jitter only; it never touches results

    def run(self) -> None:
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="viubench-ask")
        try:
            while True:
                self._fill(pool, time.monotonic())
                if not self.running and not self.backlog and self.batches is None:
                    return
                full = len(self.running) >= self.concurrency
                self._settle_next(None if full else self.backlog.next_change(time.monotonic()))
        except AdapterAbort as abort:
            raise RunAborted(str(abort)) from abort
        finally:
            # On an abort (or Ctrl-C) requests still in flight are left unrecorded, to be asked
            # again by the next run, instead of being waited for.
            pool.shutdown(wait=False, cancel_futures=True)

    def _fill(self, pool: ThreadPoolExecutor, now: float) -> None:
        """Send due retries, then new batches, into the free slots while the gate is open."""
        while len(self.running) < self.concurrency and self.backlog.is_open(now):
            job = self.backlog.take(now) or self._new_job(now)
            if job is None:
                return
            job.attempt += 1
            future = pool.submit(_generate, self.adapter, job.requests)
            self.running[future] = job
            future.add_done_callback(self.finished.put)

    def _new_job(self, now: float) -> _Job | None:
        if self.batches is None or len(self.backlog) >= self.max_waiting:
            return None
        batch = next(self.batches, None)
        if batch is None:
            self.batches = None
            return None
        return _Job(batch, started=now)

    def _settle_next(self, timeout: float | None) -> None:
        """Wait for an answer (at most `timeout` s, until a waiting batch is due) and settle
        every answer that has arrived."""
        try:
            future = self.finished.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            self._settle(self.running.pop(future), future.result(), time.monotonic())
            try:
                future = self.finished.get_nowait()
            except queue.Empty:
                return

    def _settle(self, job: _Job, responses: list[Response], now: float) -> None:
        """Record the final answers of one attempt; schedule the retryable rest."""
        again, delays, backed_off = [], [], False
        for request, response in zip(job.requests, responses):
            self.breaker.record(response)
            told = self.policy.told_wait(response.retry_after)
            if response.kind == "rate_limit" and told is not None:
                self.backlog.rate_limited(told, now)
            if response.retryable and not self.policy.gives_up(job.attempt):
                again.append(request)
                delays.append(self.policy.delay(job.backoffs + 1, response.retry_after,
                                                self.rng))
                backed_off |= told is None
            else:
                self.writer.write(request, response, job.attempt, now - job.started,
                                  job.waited)
        if self.breaker.tripped:
            raise AdapterAbort(self.breaker.reason())
        if again:
            retry = _Job(again, job.started, job.attempt, job.waited,
                         job.backoffs + backed_off)
            retry.waited += self.backlog.put(retry, max(delays), now)


def _generate(adapter: Adapter, requests: list[Request]) -> list[Response]:
    """The adapter's answers; an unexpected exception becomes a recorded fatal error."""
    try:
        responses = adapter.generate(requests)
    except AdapterAbort:
        raise
    except Exception as error:  # noqa: BLE001 - a crashing adapter is recorded, not scored
        message = f"adapter raised {type(error).__name__}: {error}"
        return [failed("fatal", message) for _ in requests]
    if len(responses) != len(requests):
        raise AdapterAbort(f"adapter returned {len(responses)} responses for"
                           f" {len(requests)} requests")
    return list(responses)
