"""File-level helpers of the ``localfs`` storage (:mod:`botmox_core.backends.localfs`): the
shard lock, directory fsync, ``OSError`` mapping and a length-bounded reader."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from botmox_core.errors import StorageError

__all__ = ["BoundedReader", "fsync_directory", "lock_file", "os_errors_as_storage_errors"]

if sys.platform != "win32":
    import fcntl

    def lock_file(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

else:  # pragma: no cover - botmox servers run on POSIX; a process-local lock still serialises

    def lock_file(fd: int) -> None:
        return None


@contextlib.contextmanager
def os_errors_as_storage_errors(action: str) -> Iterator[None]:
    """Map ``OSError`` to :class:`StorageError` without putting file paths in the message."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise StorageError(f"localfs could not {action}: {reason}") from exc


def fsync_directory(path: Path) -> None:
    if sys.platform == "win32":  # pragma: no cover - directories cannot be fsynced there
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BoundedReader(io.RawIOBase):
    """Reads at most ``length`` bytes from an already positioned raw file, then EOF."""

    def __init__(self, file: io.FileIO, length: int) -> None:
        super().__init__()
        self._file = file
        self._remaining = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._remaining <= 0:
            return 0
        view = memoryview(buffer).cast("B")
        count = self._file.readinto(view[: min(len(view), self._remaining)])
        if not count:
            return 0
        self._remaining -= count
        return count

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()
