"""Command-line options shared by the commands that ask a model (`eval`, `watch`)."""

from __future__ import annotations

import argparse


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Where the adapter and the tasks come from, besides `--model`."""
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="one more adapter argument (repeatable)")
    parser.add_argument("--adapter-module", action="append", default=[], metavar="MODULE",
                        help="import MODULE and use the adapters it marks with @adapter")
    parser.add_argument("--task-module", action="append", default=[], metavar="MODULE:ATTR",
                        help="a user task the test set uses: the baselines answer from it and"
                             " scoring reads it (never imported from the test set)")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """How a run asks: scope, batching, generation limits, retries."""
    parser.add_argument("--limit", type=int, help="only the first N samples of the test set")
    parser.add_argument("--concurrency", type=int,
                        help="batches in flight (default: adapter's)")
    parser.add_argument("--batch-size", type=int, help="requests per call (default: adapter's)")
    parser.add_argument("--max-new-tokens", action="append", default=[], metavar="N|TASK=N",
                        help="generation limit, for all tasks or one task (repeatable)")
    parser.add_argument("--max-attempts", type=int, default=6)
    parser.add_argument("--retry-base", type=float, default=1.0,
                        help="first backoff, seconds")
    parser.add_argument("--retry-cap", type=float, default=60.0, help="longest backoff, seconds")


def add_shard_option(parser: argparse.ArgumentParser) -> None:
    """`--shard I/N` (`viubench eval` only: `viubench merge` puts the shards together)."""
    parser.add_argument("--shard", metavar="I/N",
                        help="ask only shard I of N (numbered from 0: 0/8 ... 7/8), chosen by"
                             " sample id; run every shard, then `viubench merge` them")
