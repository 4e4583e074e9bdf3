"""The one retry policy and the state a run keeps to apply it to many requests at once.

`RetryPolicy` says how long one failed request waits before it is asked again. `Backlog` holds
the requests that are waiting, by the time they may go again, together with the run's rate-limit
gate: a server's Retry-After holds back every request of the run, not only the one that was told
(the others would only rediscover the limit, one 429 each). `Breaker` stops a run whose requests
keep failing without an answer from the server (it is down, or unreachable): without it every
remaining sample would spend its whole retry budget on a dead server. Times are passed in
(`now`, monotonic seconds), never read here, so the scheduling rules are tested without a clock.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass
from typing import Generic, TypeVar

from .adapters import Response

Job = TypeVar("Job")
MIN_STREAK = 16   # a breaker never trips before this many failed attempts in a row


@dataclass(frozen=True)
class RetryPolicy:
    """How long a request that failed with a retryable error waits before it is asked again,
    and how many attempts it gets in all (`max_attempts`).

    When the server said how long to wait (Retry-After), that is the wait, capped by
    `max_retry_after`: the server knows when it will take requests again, and the run's gate
    (`Backlog`) holds every other request back as long. Otherwise it is the request's n-th
    backoff (rate limits with a Retry-After do not count), drawn uniformly from [b/2, b] with
    b = min(cap, base * 2^(n-1)) ("equal jitter": clients that failed together do not retry
    together, and the wait never collapses to zero).
    """

    max_attempts: int = 6
    base: float = 1.0
    cap: float = 60.0
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base < 0 or self.cap < 0:
            raise ValueError("retry policy needs max_attempts >= 1 and non-negative delays")

    def delay(self, backoff: int, retry_after: float | None, rng: random.Random) -> float:
        """The wait after a failure: the server's Retry-After, else the `backoff`-th (1-based)
        exponential backoff."""
        told = self.told_wait(retry_after)
        if told is not None:
            return told
        bound = min(self.cap, self.base * 2 ** (backoff - 1))
        return rng.uniform(bound / 2, bound)

    def told_wait(self, retry_after: float | None) -> float | None:
        """A server's Retry-After as this policy honours it (capped), or None for none."""
        if retry_after is None or retry_after <= 0:
            return None
        return min(retry_after, self.max_retry_after)

    def gives_up(self, attempt: int) -> bool:
        return attempt >= self.max_attempts


class Backlog(Generic[Job]):
    """Jobs waiting out a backoff, earliest first, and the run's rate-limit gate: no request,
    new or retried, is sent before `not_before`."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Job]] = []
        self._order = itertools.count()   # ties keep their order; jobs are never compared
        self.not_before = float("-inf")

    def __len__(self) -> int:
        return len(self._heap)

    def rate_limited(self, wait: float, now: float) -> None:
        """A server asked to wait `wait` seconds: hold back every request until then."""
        self.not_before = max(self.not_before, now + wait)

    def put(self, job: Job, delay: float, now: float) -> float:
        """Schedule `job` after `delay` (and not before the gate opens); returns its wait."""
        ready = max(now + delay, self.not_before)
        heapq.heappush(self._heap, (ready, next(self._order), job))
        return ready - now

    def is_open(self, now: float) -> bool:
        return now >= self.not_before

    def take(self, now: float) -> Job | None:
        """The earliest job whose wait is over, if the gate is open; else None."""
        if self._heap and self.is_open(now) and self._heap[0][0] <= now:
            return heapq.heappop(self._heap)[2]
        return None

    def next_change(self, now: float) -> float | None:
        """Seconds until a waiting job may go or the gate opens (None: nothing to wait for)."""
        times = [self.not_before] if not self.is_open(now) else []
        if self._heap:
            times.append(max(self._heap[0][0], self.not_before))
        return max(0.0, min(times) - now) if times else None


class Breaker:
    """Trips when `limit` attempts in a row failed with a transient error (no answer, a
    timeout, a 5xx, a broken reply). Any answer, a refusal (fatal) or a rate limit shows the
    server is there and resets it."""

    def __init__(self, limit: int) -> None:
        self.limit = max(MIN_STREAK, limit)
        self.streak = 0
        self.last_error: str | None = None

    def record(self, response: Response) -> None:
        if response.kind == "transient":
            self.streak += 1
            self.last_error = response.error
        else:
            self.streak = 0

    @property
    def tripped(self) -> bool:
        return self.streak >= self.limit

    def reason(self) -> str:
        return (f"the last {self.streak} requests all failed without an answer (the last one:"
                f" {self.last_error}); the server looks down or unreachable, so the rest were"
                " not asked")
