"""The one retry policy: exponential backoff with jitter, honouring a server's Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Attempt n (1-based) that failed with a retryable error waits before attempt n + 1.

    The wait is drawn uniformly from [b/2, b] with b = min(cap, base * 2^(n-1)) ("equal
    jitter": clients that failed together do not retry together, and the wait never collapses
    to zero), and is at least the server's Retry-After (itself capped by `max_retry_after`).
    """

    max_attempts: int = 6
    base: float = 1.0
    cap: float = 60.0
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base < 0 or self.cap < 0:
            raise ValueError("retry policy needs max_attempts >= 1 and non-negative delays")

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        bound = min(self.cap, self.base * 2 ** (attempt - 1))
        wait = rng.uniform(bound / 2, bound)
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait

    def gives_up(self, attempt: int) -> bool:
        return attempt >= self.max_attempts
