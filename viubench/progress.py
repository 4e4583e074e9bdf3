"""Console progress for builds: a tqdm bar plus one line per skipped video or sample."""

from __future__ import annotations

import sys

from tqdm import tqdm

from .build import VideoResult


class VideoProgress:
    """A `BuildObserver` that draws a progress bar on stderr."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: tqdm | None = None
        self.samples = 0
        self.skipped = 0

    def __enter__(self) -> "VideoProgress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def start(self, total: int, already_done: int) -> None:
        if already_done:
            tqdm.write(f"resuming {self.label}: {already_done} videos already done",
                       file=sys.stderr)
        self.bar = tqdm(total=total, desc=f"building {self.label}", unit="video",
                        dynamic_ncols=True)

    def update(self, result: VideoResult) -> None:
        self.samples += len(result.samples)
        if result.status == "skipped":
            self.skipped += 1
            tqdm.write(f"skipped {result.path}: {result.reason}", file=sys.stderr)
        for skip in result.sample_skips:
            tqdm.write(f"no {skip['sample']} sample from {result.path}: {skip['reason']}",
                       file=sys.stderr)
        if self.bar is not None:
            self.bar.set_postfix(samples=self.samples, skipped=self.skipped, refresh=False)
            self.bar.update()


class RunProgress:
    """A `RunObserver` bar: answers per second, and errors / parse-free counts as they come."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: tqdm | None = None
        self.errors = 0
        self.kinds: dict[str, int] = {}

    def __enter__(self) -> "RunProgress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def start(self, total: int, already_done: int) -> None:
        if already_done:
            tqdm.write(f"resuming {self.label}: {already_done} samples already answered",
                       file=sys.stderr)
        self.bar = tqdm(total=total, desc=f"asking {self.label}", unit="req",
                        dynamic_ncols=True, smoothing=0.1)

    def update(self, record) -> None:
        if record["error"] is not None:
            self.errors += 1
            self.kinds[record["kind"]] = self.kinds.get(record["kind"], 0) + 1
            if self.errors <= 5:
                tqdm.write(f"error on {record['id']} ({record['kind']}): {record['error']}",
                           file=sys.stderr)
        if self.bar is not None:
            self.bar.set_postfix(errors=self.errors, **self.kinds, refresh=False)
            self.bar.update()
