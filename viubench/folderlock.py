"""One writer per folder: an exclusive lock on a test-set or run folder while it is written.

The lock is `fcntl.flock` on `.viubench.lock` inside the folder, so the kernel releases it when
the holder exits in any way (even SIGKILL); while held, the file says who holds it (pid,
purpose, start time) for the message a second writer gets, and it is emptied on release.
Platforms without `fcntl` run unlocked.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Iterator

LOCK_NAME = ".viubench.lock"


class FolderBusy(ValueError):
    """Another process is writing the folder; the message names it."""


@contextlib.contextmanager
def exclusive(folder: str, purpose: str) -> Iterator[None]:
    """Hold `folder`'s write lock for the block; FolderBusy at once if another process holds it."""
    try:
        import fcntl
    except ImportError:   # not POSIX: no advisory locks to take
        yield
        return
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusy(f"{folder} is being written by {_holder(fd)}; wait for it to end"
                             " or stop it (one writer per folder)") from None
        _record_holder(fd, purpose)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)   # a free folder's lock file is empty (two builds stay equal)
    finally:
        os.close(fd)


def _record_holder(fd: int, purpose: str) -> None:
    holder = {"pid": os.getpid(), "purpose": purpose, "command": " ".join(sys.argv)[:300],
              "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)


def _holder(fd: int) -> str:
    """Who holds the lock, in words, from what the holder wrote (untrusted: shown, not used)."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return (f"process {int(holder['pid'])} ({str(holder['purpose'])[:40]},"
                f" since {str(holder['since'])[:20]})")
    except (ValueError, KeyError, TypeError):
        return "another process"
