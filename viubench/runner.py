"""Test set x adapter -> predictions: batches, bounded concurrency, one retry policy, resume.

The records go to the run folder (`viubench.runfolder` owns its format), appended and flushed
as each answer arrives. Running the same command again resumes: a torn last line is cut away
and finished samples are skipped; with `retry_errors` samples whose last record is an error are
asked again (the new record is appended; the last record of a sample is the one that counts).
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Protocol, Sequence

from .adapters import (Adapter, AdapterAbort, AdapterSpec, PromptItem, Request, Response,
                       batching, failed)
from .retry import RetryPolicy
from .runfolder import (PREDICTIONS, differing_settings, latest, make_header, prediction_record,
                        read_run, run_scope, scope_record)
from .records import append_jsonl, truncate_lines
from .testset import iter_samples


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
    retry_errors: bool = False
    retry: RetryPolicy = RetryPolicy()


class RunObserver(Protocol):
    def start(self, total: int, already_done: int) -> None: ...

    def update(self, record: Mapping[str, Any]) -> None: ...


class RunAborted(RuntimeError):
    """The adapter reported a condition that spoils the run; nothing was recorded for it."""


def requests_of(testset: str, generation: GenerationSettings,
                limit: int | None) -> Iterator[Request]:
    """One request per sample, in test-set order, media paths made absolute."""
    root = os.path.abspath(testset)
    for record in iter_samples(testset, limit):
        try:
            parts = tuple(prompt_item(part, root) for part in record["prompt"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{testset}: sample {record.get('id')}: a malformed prompt part"
                             f" ({type(error).__name__}: {error})") from None
        yield Request(record["id"], record["task"], record["variant"], parts,
                      generation.tokens_for(record["task"]), record["frames"],
                      record.get("system"))


def prompt_item(part: Mapping[str, Any], root: str) -> PromptItem:
    """A stored prompt part as the typed part adapters receive, media paths made absolute;
    ValueError for a part of no known type."""
    if part["type"] == "text":
        return {"type": "text", "text": str(part["text"])}
    if part["type"] == "image":
        return {"type": "image", "image": os.path.join(root, str(part["image"]))}
    if part["type"] == "video":
        return {"type": "video", "frames": [os.path.join(root, str(f)) for f in part["frames"]],
                "fps": float(part["fps"])}
    raise ValueError(f"unknown prompt part type {part['type']!r}")


def run_eval(testset: str, spec: AdapterSpec, adapter: Adapter, rundir: str,
             generation: GenerationSettings, options: RunOptions,
             observer: RunObserver | None = None) -> dict[str, int]:
    """Ask `adapter` every unanswered sample of `testset`; returns counts of this session."""
    os.makedirs(rundir, exist_ok=True)
    header = make_header(testset, spec.redacted(), adapter.describe(), generation.as_json())
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
            if r["error"] is None or not options.retry_errors}
    # Requests are streamed from samples.jsonl, never all held: a 100k-sample set has 100k
    # prompts of 48 frame paths each. The first pass only counts what is left to ask.
    todo = (r for r in requests_of(testset, generation, options.limit) if r.id not in done)
    if observer:
        scope = iter_samples(testset, options.limit)
        remaining = sum(record["id"] not in done for record in scope)
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
    """Appends prediction records from many threads, one flushed line each."""

    def __init__(self, handle, observer: RunObserver | None) -> None:
        self.handle, self.observer = handle, observer
        self.lock = threading.Lock()
        self.counts = {"answered": 0, "errors": 0}

    def write(self, request: Request, response: Response, attempts: int, seconds: float,
              waited: float) -> None:
        record = prediction_record(request.id, request.task, request.variant, response.text,
                                   response.error, response.kind, attempts, seconds, waited,
                                   response.info)
        with self.lock:
            append_jsonl(self.handle, record)
            self.counts["answered" if response.ok else "errors"] += 1
            if self.observer:
                self.observer.update(record)


def _batches(requests: Iterator[Request], size: int) -> Iterator[list[Request]]:
    while batch := list(itertools.islice(requests, size)):
        yield batch


def _dispatch(adapter: Adapter, todo: Iterator[Request], options: RunOptions,
              writer: _Writer) -> None:
    """Batches to `concurrency` threads, at most 2 x concurrency batches queued at a time."""
    wanted_concurrency, wanted_size = batching(adapter)
    concurrency = max(1, options.concurrency or wanted_concurrency)
    size = max(1, options.batch_size or wanted_size)
    batches = _batches(todo, size)
    stop = threading.Event()   # set on abort: batches in flight stop retrying at once
    with ThreadPoolExecutor(concurrency, thread_name_prefix="viubench-ask") as pool:
        running: set[Future] = set()
        exhausted = False
        try:
            while not exhausted or running:
                while not exhausted and len(running) < 2 * concurrency:
                    batch = next(batches, None)
                    if batch is None:
                        exhausted = True
                        break
                    running.add(pool.submit(_answer, adapter, batch, options.retry, writer,
                                            stop))
                if not running:
                    break
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    future.result()   # re-raises AdapterAbort
        except AdapterAbort as abort:
            stop.set()
            for future in running:
                future.cancel()
            raise RunAborted(str(abort)) from abort


def _answer(adapter: Adapter, batch: Sequence[Request], policy: RetryPolicy,
            writer: _Writer, stop: threading.Event) -> None:
    """Ask one batch, re-asking retryable failures until they succeed or the policy gives up
    (or the run is stopping: then the unanswered rest is left for the next run)."""
    rng = random.Random()   # jitter only; it never touches results
    pending = list(batch)
    started = time.perf_counter()
    attempt, waited = 0, 0.0
    while pending and not stop.is_set():
        attempt += 1
        responses = _generate(adapter, pending)
        again, waits = [], []
        for request, response in zip(pending, responses):
            if response.retryable and not policy.gives_up(attempt):
                again.append(request)
                waits.append(policy.delay(attempt, response.retry_after, rng))
            else:
                writer.write(request, response, attempt, time.perf_counter() - started, waited)
        if again:
            waited += max(waits)
            stop.wait(max(waits))
        pending = again


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
