"""Writers of one SQLite file queue on an operating-system file lock before ``BEGIN IMMEDIATE``.

SQLite lets one connection write at a time. A connection that finds the write lock taken (by
another process: the workers of ``botmox serve --workers N``, a CLI command) polls on SQLite's
busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25 ... ms between tries: a commit that holds the
lock for 2 ms (one fsync) often costs the waiter 3 to 8 ms, and a process whose next writer
asks at the right moment can take the lock again and again while the other sleeps. So before
``BEGIN IMMEDIATE`` each unit that writes takes an exclusive ``flock`` on ``<database>-writer``
(beside the database file), polled every 20 µs rising to at most 0.2 ms, and lets it go when its
transaction ends: a waiter goes on within about 0.2 ms of the other process's commit, and the
two processes take turns. ``bench/bench_sqlite_writers.py`` (two processes of 16 threads
appending audit entries, alternating modes in one run, load average about 3): with the queue
p50 2.5-2.9 ms, p99 11.5-12 ms, worst 26-33 ms; SQLite's busy handler alone p50 1.4 ms (the
process holding the lock keeps it), p99 24-56 ms, worst 0.3-0.9 s (the other one starves); the
same ~10,000 appends/s either way.

The lock is advisory and only botmox takes it; SQLite's own locking stays the guard of the
data (a writer outside botmox is waited for by SQLite's busy handler as before). Where no lock
can be taken (no ``fcntl``, a read-only directory, a filesystem without ``flock``), or the wait
reaches the busy timeout, the unit goes on to ``BEGIN IMMEDIATE`` and SQLite's busy handler
alone, as without the queue.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["WriterQueue"]

log = logging.getLogger(__name__)

_FIRST_PAUSE = 20e-6
_LONGEST_PAUSE = 200e-6


class WriterQueue:
    """The ``<database>-writer`` lock of one backend instance (one open file description, so
    two instances in one process exclude each other as two processes do)."""

    def __init__(self, database_path: str | None) -> None:
        self.path = None if database_path is None else f"{database_path}-writer"
        self._fd: int | None = None
        self._pid = os.getpid()
        self._usable = fcntl is not None and self.path is not None

    def acquire(self, timeout: float) -> bool:
        """Take the lock, waiting at most ``timeout`` seconds; whether it is held (release it
        with :meth:`release` then)."""
        fd = self._file()
        if fd is None:
            return False
        deadline = time.monotonic() + timeout
        pause = _FIRST_PAUSE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, _LONGEST_PAUSE)
            except OSError as exc:  # a filesystem without flock: SQLite's busy handler alone
                log.debug("no writer queue on %s: %s", self.path, exc)
                self._usable = False
                return False

    def release(self) -> None:
        """Let the lock go (after the transaction ended)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock file (the lock goes with it)."""
        fd, self._fd = self._fd, None
        if fd is not None and os.getpid() == self._pid:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _file(self) -> int | None:
        if os.getpid() != self._pid:
            # A forked child shares the parent's open file description, and with it the
            # parent's lock: it opens the file again (and leaves the inherited descriptor to
            # the parent).
            self._pid = os.getpid()
            self._fd = None
        if self._fd is None and self._usable:
            assert self.path is not None
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                log.debug("no writer queue on %s: %s", self.path, exc)
                self._usable = False
        return self._fd
