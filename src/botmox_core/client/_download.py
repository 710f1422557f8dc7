"""The on-disk side of a verified, resumable download (no network code).

A download of ``dest`` writes ``dest.part`` and a JSON sidecar ``dest.part.json`` holding the
identity of the bytes being fetched -- the expected sha256 and size, and the server's validator
(strong ``ETag`` or ``Last-Modified``) -- but never the URL, which expires. A later attempt for the
same identity re-hashes the bytes already in ``dest.part`` and asks only for the rest; anything
else starts from zero. Only a file whose size and sha256 match is fsynced and moved onto ``dest``
with :func:`os.replace`, so ``dest`` is either the old file or the complete verified new one.

While the bytes arrive, the kernel is asked (``sync_file_range``, Linux) to start writing them to
disk every few MiB, so the fsync at the end waits for the last few MiB instead of the whole file;
that fsync is still what makes the file durable before it replaces ``dest``.

Both clients drive :class:`PartialDownload`; the async client runs its blocking calls in a thread.
The sync client hands the chunks to :class:`PipelinedWrites`, so that hashing and writing one
chunk overlaps receiving the next.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import queue
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from botmox_core.client._errors import LocalFileError, ServerError
from botmox_core.client._models import DownloadResult
from botmox_core.errors import ArtifactIntegrityError, BadRequestError

__all__ = ["CHUNK_SIZE", "PartialDownload", "PipelinedWrites", "part_paths"]

CHUNK_SIZE = 1 << 20
#: Written bytes after which the kernel is asked to start writing them back (see the module doc).
WRITEBACK_STEP = 8 << 20
_SIDECAR_FORMAT = 1
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def part_paths(dest: Path) -> tuple[Path, Path]:
    """The temp file and its sidecar for ``dest``: ``dest.part`` and ``dest.part.json``."""
    return dest.with_name(dest.name + ".part"), dest.with_name(dest.name + ".part.json")


@contextlib.contextmanager
def _local_io(action: str, path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise LocalFileError(f"cannot {action} {path}: {exc.strerror or exc}") from exc


@functools.cache
def _writeback_starter() -> Callable[[int, int, int], object] | None:
    """``start(fd, offset, length)``: ``sync_file_range(..., SYNC_FILE_RANGE_WRITE)`` through the C
    library on Linux, or None where it is not available. It only starts the writeback of dirty
    pages (it neither waits for it nor flushes the disk cache): an fsync is still needed."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    sync_file_range_write = 2  # SYNC_FILE_RANGE_WRITE
    return lambda fd, offset, length: function(fd, offset, length, sync_file_range_write)


def _strong_etag(headers: Mapping[str, str]) -> str | None:
    etag = headers.get("etag")
    if etag and not etag.startswith("W/"):
        return etag
    return None


class PartialDownload:
    """One attempt-spanning download of a known artifact into ``dest``.

    Call :meth:`prepare` once, then per HTTP attempt :meth:`request_headers`, :meth:`begin` with the
    answer's status and headers, :meth:`write` per chunk, and :meth:`suspend` if the attempt broke
    off; finally :meth:`finish`, which verifies and moves the file into place.
    """

    def __init__(self, dest: Path | str, expected_sha256: str, expected_size: int) -> None:
        sha = str(expected_sha256).strip().lower()
        if not _SHA256_HEX.fullmatch(sha):
            raise BadRequestError("expected_sha256 must be 64 hex characters")
        if isinstance(expected_size, bool) or not isinstance(expected_size, int):
            raise BadRequestError("expected_size must be an integer")
        if expected_size < 0:
            raise BadRequestError("expected_size must not be negative")
        self.dest = Path(dest)
        self.expected_sha256 = sha
        self.expected_size = expected_size
        self.part_path, self.sidecar_path = part_paths(self.dest)
        self.have = 0
        self.resumed_from = 0
        self._hasher = hashlib.sha256()
        self._etag: str | None = None
        self._last_modified: str | None = None
        self._file: BinaryIO | None = None
        #: Offset up to which writeback has been started (see :meth:`_start_writeback`).
        self._writeback_from = 0

    # -- set-up ------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Adopt a matching ``.part`` left by an earlier attempt (re-hashing it) or clear it."""
        with _local_io("create the directory of", self.dest):
            self.dest.parent.mkdir(parents=True, exist_ok=True)
        identity = self._read_sidecar()
        with _local_io("inspect", self.part_path):
            part_size = self.part_path.stat().st_size if self.part_path.exists() else None
        if (
            identity is not None
            and part_size is not None
            and identity.get("sha256") == self.expected_sha256
            and identity.get("size_bytes") == self.expected_size
            and part_size <= self.expected_size
        ):
            self._etag = identity.get("etag")
            self._last_modified = identity.get("last_modified")
            self._hasher = hashlib.sha256()
            with _local_io("read", self.part_path), self.part_path.open("rb") as part:
                while chunk := part.read(CHUNK_SIZE):
                    self._hasher.update(chunk)
            self.have = part_size
        else:
            self.discard()

    @property
    def needs_transfer(self) -> bool:
        """False when the ``.part`` already holds every expected byte."""
        return self.have < self.expected_size

    def request_headers(self) -> dict[str, str]:
        """Headers for the next attempt: ``Range``/``If-Range`` when resuming."""
        headers = {"Accept-Encoding": "identity"}
        if self.have > 0:
            headers["Range"] = f"bytes={self.have}-"
            validator = self._etag or self._last_modified
            if validator:
                headers["If-Range"] = validator
        return headers

    # -- one attempt ---------------------------------------------------------------------------

    def begin(self, status: int, headers: Mapping[str, str]) -> None:
        """Start receiving a 200 (whole file, restart from zero) or 206 (the rest) answer."""
        if status == 206:
            self._begin_partial(headers)
        elif status == 200:
            self._begin_full(headers)
        else:
            raise ValueError(f"begin() takes a 200 or 206 answer, not {status}")

    def _begin_full(self, headers: Mapping[str, str]) -> None:
        length = headers.get("content-length")
        declared = int(length) if length is not None and length.isdigit() else None
        if (
            declared is not None
            and "content-encoding" not in headers
            and declared != self.expected_size
        ):
            self.discard()
            raise self._integrity_error(
                f"server sends {declared} bytes, the release declares {self.expected_size}",
                actual_size=declared,
            )
        self.close()
        self.have = 0
        self.resumed_from = 0
        self._hasher = hashlib.sha256()
        self._etag = _strong_etag(headers)
        self._last_modified = headers.get("last-modified")
        self._write_sidecar()
        with _local_io("create", self.part_path):
            self._file = self.part_path.open("wb")
        self._writeback_from = 0

    def _begin_partial(self, headers: Mapping[str, str]) -> None:
        match = _CONTENT_RANGE.fullmatch(headers.get("content-range", "").strip())
        if match is None or int(match.group(1)) != self.have:
            self.discard()
            raise ServerError(
                f"server answered a request for bytes {self.have}- with Content-Range "
                f"{headers.get('content-range')!r}; restarting from zero"
            )
        total = match.group(3)
        if total != "*" and int(total) != self.expected_size:
            self.discard()
            raise self._integrity_error(
                f"server's object has {total} bytes, the release declares {self.expected_size}",
                actual_size=int(total),
            )
        etag = _strong_etag(headers)
        if self._etag and etag and etag != self._etag:
            self.discard()
            raise ServerError("the object changed since the interrupted attempt; restarting")
        if self.have == 0:
            self._etag = etag
            self._last_modified = headers.get("last-modified")
            self._write_sidecar()
        self.resumed_from = self.have
        with _local_io("open", self.part_path):
            self._file = self.part_path.open("ab")
        self._writeback_from = self.have

    def write(self, chunk: bytes) -> None:
        """Hash and append ``chunk``; more bytes than expected is an integrity failure."""
        if self._file is None:
            raise ValueError("write() before begin()")
        if self.have + len(chunk) > self.expected_size:
            self.discard()
            raise self._integrity_error(
                f"server sent more than the declared {self.expected_size} bytes",
                actual_size=self.have + len(chunk),
            )
        self._hasher.update(chunk)
        with _local_io("write", self.part_path):
            self._file.write(chunk)
        self.have += len(chunk)
        if self.have - self._writeback_from >= WRITEBACK_STEP:
            self._start_writeback()

    def suspend(self) -> None:
        """Close the ``.part`` after a broken-off attempt, keeping it for a resume."""
        self.close()

    # -- completion ------------------------------------------------------------------------

    def finish(self) -> DownloadResult:
        """Verify size and sha256, then fsync and atomically move the file onto ``dest``.

        On mismatch the ``.part`` and its sidecar are deleted, ``dest`` is left untouched and
        :class:`ArtifactIntegrityError` is raised.
        """
        if self._file is None and not self._has_part():
            with _local_io("create", self.part_path):
                self.part_path.touch()
        with _local_io("flush", self.part_path):
            if self._file is not None:
                self._file.flush()
        digest = self._hasher.hexdigest()
        if self.have != self.expected_size or digest != self.expected_sha256:
            self.discard()
            raise self._integrity_error(
                "downloaded bytes do not match the release "
                f"(size {self.have}/{self.expected_size}, sha256 "
                f"{'ok' if digest == self.expected_sha256 else 'mismatch'})",
                actual_size=self.have,
                actual_sha256=digest,
            )
        with _local_io("fsync", self.part_path):
            if self._file is not None:
                os.fsync(self._file.fileno())
            else:  # complete from an earlier run: its bytes may not have reached the disk
                fd = os.open(self.part_path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        self.close()
        with _local_io("replace", self.dest):
            os.replace(self.part_path, self.dest)
            self._fsync_directory()
        with contextlib.suppress(FileNotFoundError):
            self.sidecar_path.unlink()
        return DownloadResult(
            path=self.dest, sha256=digest, size_bytes=self.have, resumed_from=self.resumed_from
        )

    def discard(self) -> None:
        """Delete the ``.part`` and its sidecar; the next attempt starts from zero."""
        self.close()
        for path in (self.part_path, self.sidecar_path):
            with _local_io("delete", path), contextlib.suppress(FileNotFoundError):
                path.unlink()
        self.have = 0
        self.resumed_from = 0
        self._hasher = hashlib.sha256()
        self._etag = None
        self._last_modified = None

    def close(self) -> None:
        """Close the open ``.part`` handle, if any."""
        if self._file is not None:
            file, self._file = self._file, None
            with _local_io("close", self.part_path):
                file.close()

    # -- helpers -------------------------------------------------------------------------------

    def _has_part(self) -> bool:
        return self.part_path.exists()

    def _start_writeback(self) -> None:
        """Have the kernel start writing the bytes since the last call to disk, so the fsync in
        :meth:`finish` has little left to wait for. Best effort: errors are left to that fsync."""
        start = _writeback_starter()
        if start is None or self._file is None:
            return
        with _local_io("write", self.part_path):
            self._file.flush()
        start(self._file.fileno(), self._writeback_from, self.have - self._writeback_from)
        self._writeback_from = self.have

    def _integrity_error(
        self, message: str, *, actual_size: int | None = None, actual_sha256: str | None = None
    ) -> ArtifactIntegrityError:
        details: dict[str, Any] = {
            "expected_sha256": self.expected_sha256,
            "expected_size": self.expected_size,
        }
        if actual_size is not None:
            details["actual_size"] = actual_size
        if actual_sha256 is not None:
            details["actual_sha256"] = actual_sha256
        return ArtifactIntegrityError(message, details=details)

    def _read_sidecar(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.sidecar_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("format") != _SIDECAR_FORMAT:
            return None
        return data

    def _write_sidecar(self) -> None:
        identity = {
            "format": _SIDECAR_FORMAT,
            "sha256": self.expected_sha256,
            "size_bytes": self.expected_size,
            "etag": self._etag,
            "last_modified": self._last_modified,
        }
        tmp = self.sidecar_path.with_name(self.sidecar_path.name + ".tmp")
        with _local_io("write", self.sidecar_path):
            tmp.write_text(json.dumps(identity), encoding="utf-8")
            os.replace(tmp, self.sidecar_path)

    def _fsync_directory(self) -> None:
        if os.name != "posix":
            return
        fd = os.open(self.dest.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class PipelinedWrites:
    """:meth:`PartialDownload.write` in a thread of its own, fed through a bounded queue: the
    caller goes on receiving while the previous chunks are hashed and written (both release the
    GIL), so a download takes about the longer of network and disk instead of their sum. Small
    chunks are handed over in batches of about :data:`CHUNK_SIZE` (a list, not a copy), so the
    queue costs the same whatever size the network delivers.

    Use as a context manager around one attempt's chunks. A write error (a full disk, more bytes
    than declared) is raised by the next :meth:`write` and at the end of the block; on leaving,
    every chunk handed over has been written (or the error raised), so the ``PartialDownload``
    can be resumed, finished or discarded as usual.
    """

    def __init__(self, partial: PartialDownload, depth: int = 32) -> None:
        self.partial = partial
        #: Bytes handed over so far (what has been received), for progress reports.
        self.received = partial.have
        self._queue: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=depth)
        self._batch: list[bytes] = []
        self._batch_size = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._drain, name="botmox-download-writer", daemon=True
        )

    def __enter__(self) -> PipelinedWrites:
        self._thread.start()
        return self

    def write(self, chunk: bytes) -> None:
        """Hand ``chunk`` over; raises the writer's error, if it had one."""
        if self._error is not None:
            raise self._error
        self.received += len(chunk)
        self._batch.append(chunk)
        self._batch_size += len(chunk)
        if self._batch_size >= CHUNK_SIZE:
            self._hand_over()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._hand_over()
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and self._error is not exc:
            raise self._error

    def _hand_over(self) -> None:
        if self._batch:
            batch, self._batch, self._batch_size = self._batch, [], 0
            self._queue.put(batch)

    def _drain(self) -> None:
        while (batch := self._queue.get()) is not None:
            for chunk in batch:
                if self._error is not None:  # after an error, drain without writing
                    break
                try:
                    self.partial.write(chunk)
                except BaseException as error:
                    self._error = error
