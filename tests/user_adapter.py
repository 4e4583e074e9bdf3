"""Adapters a user might write, for the registration, resume and error-accounting tests."""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Sequence

from viubench.adapters import Request, Response, adapter, failed
from viubench.model_adapters.baselines import RandomAdapter


STALL_AFTER = "VIUBENCH_TEST_STALL_AFTER"   # environment: answer this many, then hang


@adapter("slow_random")
class SlowRandom(RandomAdapter):
    """The random baseline, `delay` seconds per batch. With $VIUBENCH_TEST_STALL_AFTER=N it
    answers N requests and then hangs (so a test can kill a run mid-way without racing it);
    the environment is not part of the spec, so the resumed run has the same settings."""

    def __init__(self, target: str = "", delay: str = "0.02", api_key: str = "",
                 **options: str) -> None:
        super().__init__(target, **options)
        self.delay = float(delay)
        self.authorized = bool(api_key)   # a key is accepted, and must never be stored

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        time.sleep(self.delay)
        stall_after = os.environ.get(STALL_AFTER)
        if stall_after is not None:
            self.answered = getattr(self, "answered", 0) + len(requests)
            if self.answered > int(stall_after):
                threading.Event().wait(300)   # hang until killed (5 minutes at most)
        return super().generate(requests)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "delay": self.delay}


class Flaky(RandomAdapter):
    """Random answers, but by sample id: id % 4 == 0 always fails (fatal); id % 4 == 1 fails
    with a transient error on its first `flaky` attempts; id % 4 == 2 is rate limited once."""

    def __init__(self, flaky: str = "2", **options: str) -> None:
        super().__init__("", **options)
        self.flaky = int(flaky)
        self.asked: dict[str, int] = {}
        self.lock = threading.Lock()

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        return [self._maybe(request) for request in requests]

    def _maybe(self, request: Request) -> Response:
        with self.lock:
            self.asked[request.id] = self.asked.get(request.id, 0) + 1
            times = self.asked[request.id]
        bucket = int(request.id, 16) % 4
        if bucket == 0:
            return failed("fatal", "the model refused this request")
        if bucket == 1 and times <= self.flaky:
            return failed("transient", "connection reset")
        if bucket == 2 and times == 1:
            return failed("rate_limit", "slow down", retry_after=0.05)
        return super().generate([request])[0]
