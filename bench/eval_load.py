"""`viubench eval` under load: thousands of samples at high concurrency, and a faulty server.

    python bench/eval_load.py [--samples 5000] [--concurrency 64] [--delay 1.0]
                              [--faulty-samples 288] [--faulty-concurrency 8]
                              [--faulty-delay 0.5] [--retry-after 0.05 1.0]
                              [--cache-mb 0] [--skip-load] [--skip-faulty]

Both parts run `run_eval` through a real OpenAIAdapter against a loopback chat-completions server
(tests/chat_server.py, in its own process, bodies read but not parsed) that answers each request
after a fixed service time `--delay`. The test set is the bundled clips' `viubench` suite (36
samples, built once) replicated to `--samples` samples; the adapter's encoded-frame cache is off
(`cache_mb=0`), so every request reads, base64-encodes and sends its 48 frames as it would for a
test set whose samples have their own frames.

Load: `--samples` at `--concurrency`. A perfect client finishes concurrency / delay requests per
second; printed: the fraction of that reached (target >= 0.9) and the process's RSS after every
1,000 answers and at its peak (target: flat, not growing with the sample count).

Faulty: `--faulty-samples` at `--faulty-concurrency` (service time `--faulty-delay`), first
against a healthy server, then against one that answers 40% of requests with an immediate 429
(Retry-After: each of `--retry-after` in turn) and 20% with an immediate 500, with the retry
policy `viubench eval` uses by default. Printed beside the wall times: the time the accepted
requests alone need (accepted x service time / concurrency). Target: within 2x of that, judged
on the first `--retry-after`. A Retry-After holds back every request of the run
(`viubench.retry.Backlog`), so a server that asks for 1 s on 40% of its replies is obeyed at that
cost: the later values show what it is, and are not judged.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from typing import Any, Mapping

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, HERE)
from chat_server import Faults  # noqa: E402
from eval_throughput import Server  # noqa: E402

from viubench.adapters import create, parse_spec  # noqa: E402
from viubench.records import canonical_json  # noqa: E402
from viubench.retry import RetryPolicy  # noqa: E402
from viubench.runner import GenerationSettings, RunOptions, run_eval  # noqa: E402

LOAD_TARGET, FAULTY_TARGET = 0.9, 2.0
CHECKPOINT = 1000          # answers between two RSS readings
RATE_LIMITED, SERVER_ERRORS = 0.4, 0.2


def seed_testset(folder: str) -> str:
    """The bundled clips' viubench suite, one sample per variant and clip (built once)."""
    from viubench.build import BuildSpec, build
    from viubench.demo import bundled_videos
    from viubench.registry import load_tasks, select

    seed = os.path.join(folder, "seed")
    spec = BuildSpec(bundled_videos(), tuple(select(load_tasks(), "viubench")), seed=0,
                     per_video=1)
    build(spec, seed, workers=2)
    return seed


def replicated(seed: str, folder: str, count: int) -> str:
    """A test set of `count` samples cycling over the seed's records (fresh ids; the media
    folder is copied, so every path stays inside the test set)."""
    out = os.path.join(folder, f"testset-{count}")
    if os.path.exists(os.path.join(out, "build.json")):
        return out
    staging = out + ".part"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(os.path.join(seed, "media"), os.path.join(staging, "media"))
    with open(os.path.join(seed, "samples.jsonl"), encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle]
    with open(os.path.join(staging, "samples.jsonl"), "w", encoding="utf-8") as handle:
        for number in range(count):
            record = dict(records[number % len(records)], id=f"{number:016x}")
            handle.write(canonical_json(record) + "\n")
    with open(os.path.join(seed, "build.json"), encoding="utf-8") as handle:
        summary = json.load(handle)
    with open(os.path.join(staging, "build.json"), "w", encoding="utf-8") as handle:
        json.dump({**summary, "samples": count}, handle)
    os.replace(staging, out)
    return out


def rss_mib() -> float:
    """Resident set size of this process now, MiB."""
    with open("/proc/self/statm", encoding="ascii") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RssProbe:
    """A run observer that reads the RSS after every CHECKPOINT answers (and counts them)."""

    def __init__(self) -> None:
        self.answers = 0
        self.readings: list[tuple[int, float]] = []

    def start(self, total: int, already_done: int) -> None:
        self.readings.append((0, rss_mib()))

    def update(self, record: Mapping[str, Any]) -> None:
        self.answers += 1
        if self.answers % CHECKPOINT == 0:
            self.readings.append((self.answers, rss_mib()))


def timed_run(testset: str, url: str, concurrency: int, count: int, policy: RetryPolicy,
              cache_mb: int, observer: RssProbe | None = None) -> tuple[float, dict[str, Any]]:
    """(wall seconds, counts and client CPU ms per sample) of run_eval over the first `count`
    samples, through a fresh adapter."""
    spec = parse_spec(f"openai:bench-model base_url={url} api_key=bench-key"
                      f" cache_mb={cache_mb}")
    model = create(spec)
    with tempfile.TemporaryDirectory(prefix="viubench-eval-load-") as rundir:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            counts = run_eval(testset, spec, model, rundir, GenerationSettings(),
                              RunOptions(concurrency=concurrency, limit=count, retry=policy),
                              observer)
        finally:
            model.close()
        cpu_ms = 1000 * (time.process_time() - cpu) / max(1, count)
        return time.perf_counter() - started, {**counts, "cpu_ms": round(cpu_ms, 1)}


def children_cpu() -> float:
    """CPU seconds of the child processes that ended (the servers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load_part(testset: str, args: argparse.Namespace) -> bool:
    server = Server(args.delay, "process", parse_bodies=False)
    probe = RssProbe()
    before = children_cpu()
    try:
        seconds, counts = timed_run(testset, server.url, args.concurrency, args.samples,
                                    RetryPolicy(max_attempts=1), args.cache_mb, probe)
    finally:
        stats = server.stop()
    server_ms = 1000 * (children_cpu() - before) / max(1, args.samples)
    rate, ideal = counts["answered"] / seconds, args.concurrency / args.delay
    fraction = rate / ideal
    readings = ", ".join(f"{n}: {mib:.0f}" for n, mib in probe.readings)
    print(f"load: {args.samples} samples at concurrency {args.concurrency}, service time"
          f" {args.delay:g} s: {seconds:.1f} s, {rate:.1f} req/s of ideal {ideal:.1f} ="
          f" {fraction:.2f} (target >= {LOAD_TARGET}); {counts['errors']} errors; server saw"
          f" at most {stats.peak} in flight; CPU per request: client {counts['cpu_ms']} ms,"
          f" server {server_ms:.1f} ms")
    print(f"  RSS MiB after N answers: {readings}; peak {peak_rss_mib():.0f}")
    return fraction >= LOAD_TARGET and counts["errors"] == 0


def faulty_part(testset: str, args: argparse.Namespace) -> bool:
    """The fault-free run, then one faulty run per `--retry-after`; True if all meet the
    target."""
    policy = RetryPolicy(max_attempts=args.max_attempts, base=args.retry_base,
                         cap=args.retry_cap)
    print(f"faulty: {args.faulty_samples} samples at concurrency {args.faulty_concurrency},"
          f" service time {args.faulty_delay:g} s; faults: {RATE_LIMITED:.0%} immediate 429"
          f" + {SERVER_ERRORS:.0%} immediate 500; retry base {args.retry_base:g} s, cap"
          f" {args.retry_cap:g} s, max attempts {args.max_attempts}")
    seconds, _, _ = faulty_run(testset, args, policy, None)
    print(f"  fault-free: {seconds:.1f} s")
    ok = True
    for number, retry_after in enumerate(args.retry_after):
        faults = Faults(rate_limit=RATE_LIMITED, server_error=SERVER_ERRORS,
                        retry_after=retry_after, seed=1)
        seconds, counts, statuses = faulty_run(testset, args, policy, faults)
        needed = statuses.get(200, 0) * args.faulty_delay / args.faulty_concurrency
        ratio = seconds / needed
        judged = number == 0
        ok &= ratio <= FAULTY_TARGET or not judged
        verdict = (f"target <= {FAULTY_TARGET}" if judged else
                   f"not judged: {statuses.get(429, 0)} pauses of {retry_after:g} s asked for")
        print(f"  Retry-After {retry_after:g} s: {seconds:.1f} s for"
              f" {sum(statuses.values())} requests {dict(sorted(statuses.items()))};"
              f" the accepted ones need {needed:.1f} s; faulty / needed = {ratio:.2f}"
              f" ({verdict}); {counts['errors']} samples ended in an error")
    return ok


def faulty_run(testset: str, args: argparse.Namespace, policy: RetryPolicy,
               faults: Faults | None) -> tuple[float, dict[str, Any], dict[int, int]]:
    """(wall seconds, counts, the server's replies by status) of one run of the faulty part."""
    options = {"faults": faults} if faults else {}
    server = Server(args.faulty_delay, "process", parse_bodies=False, **options)
    try:
        seconds, counts = timed_run(testset, server.url, args.faulty_concurrency,
                                    args.faulty_samples, policy, args.cache_mb)
    finally:
        stats = server.stop()
    return seconds, counts, stats.statuses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--delay", type=float, default=1.0, help="service time per request, s")
    parser.add_argument("--faulty-samples", type=int, default=288)
    parser.add_argument("--faulty-concurrency", type=int, default=8)
    parser.add_argument("--faulty-delay", type=float, default=0.5,
                        help="service time per accepted request in the faulty part, s")
    parser.add_argument("--retry-after", type=float, nargs="+", default=[0.05, 1.0],
                        help="the 429s' Retry-After, s: one faulty run each")
    default = RetryPolicy()    # what `viubench eval` uses unless told otherwise
    parser.add_argument("--retry-base", type=float, default=default.base)
    parser.add_argument("--retry-cap", type=float, default=default.cap)
    parser.add_argument("--max-attempts", type=int, default=default.max_attempts)
    parser.add_argument("--cache-mb", type=int, default=0,
                        help="the adapter's encoded-frame cache (0: every frame encoded anew)")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-faulty", action="store_true")
    parser.add_argument("--scratch", default=os.path.join(tempfile.gettempdir(),
                                                          "viubench-bench-load"))
    args = parser.parse_args(argv)
    seed = seed_testset(args.scratch)
    size = max(args.samples if not args.skip_load else 0,
               args.faulty_samples if not args.skip_faulty else 0)
    testset = replicated(seed, args.scratch, size)
    print(f"viubench eval load bench (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    ok = True
    if not args.skip_load:
        ok &= load_part(testset, args)
    if not args.skip_faulty:
        ok &= faulty_part(testset, args)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
