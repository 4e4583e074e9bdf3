"""Console progress: tqdm bars on stderr for builds (videos) and evals (requests)."""

from __future__ import annotations

import sys
from typing import Any, Mapping, TypeVar

from tqdm import tqdm

from .build import VideoResult


_B = TypeVar("_B", bound="_Bar")


class _Bar:
    """A bar opened by `start` and closed when the `with` block ends."""

    verb, unit, done_words = "", "", ""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: tqdm | None = None

    def __enter__(self: _B) -> _B:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def start(self, total: int, already_done: int) -> None:
        if already_done:
            tqdm.write(f"resuming {self.label}: {already_done} {self.done_words}",
                       file=sys.stderr)
        self.bar = tqdm(total=total, desc=f"{self.verb} {self.label}", unit=self.unit,
                        dynamic_ncols=True, smoothing=0.1)

    def advance(self, **postfix: Any) -> None:
        if self.bar is not None:
            self.bar.set_postfix(**postfix, refresh=False)
            self.bar.update()


class VideoProgress(_Bar):
    """A `BuildObserver`: one step per video, one line per skipped video or sample."""

    verb, unit, done_words = "building", "video", "videos already done"

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.samples = 0
        self.skipped = 0

    def update(self, result: VideoResult) -> None:
        self.samples += len(result.samples)
        if result.status == "skipped":
            self.skipped += 1
            tqdm.write(f"skipped {result.path}: {result.reason}", file=sys.stderr)
        for skip in result.sample_skips:
            tqdm.write(f"no {skip['sample']} sample from {result.path}: {skip['reason']}",
                       file=sys.stderr)
        self.advance(samples=self.samples, skipped=self.skipped)


class RunProgress(_Bar):
    """A `RunObserver`: answers per second, errors by kind, the first few errors in full."""

    verb, unit, done_words = "asking", "req", "samples already answered"

    def __init__(self, label: str, keep_errors: bool = False) -> None:
        super().__init__(label)
        if keep_errors:   # then samples whose last answer is an error count as done too
            self.done_words = "samples already answered or kept as errors (--keep-errors)"
        self.errors = 0
        self.kinds: dict[str, int] = {}

    def update(self, record: Mapping[str, Any]) -> None:
        if record["error"] is not None:
            self.errors += 1
            self.kinds[record["kind"]] = self.kinds.get(record["kind"], 0) + 1
            if self.errors <= 5:
                tqdm.write(f"error on {record['id']} ({record['kind']}): {record['error']}",
                           file=sys.stderr)
        self.advance(errors=self.errors, **self.kinds)


class SampleProgress(_Bar):
    """`verify`: one step per sample re-derived."""

    verb, unit, done_words = "verifying", "sample", ""

    def update(self) -> None:
        self.advance()
