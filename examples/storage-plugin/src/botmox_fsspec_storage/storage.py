"""An :class:`~botmox_core.ports.ObjectStorage` on any fsspec filesystem.

Layout under the root URL::

    blobs/<uuid>            object bytes, written once, never modified
    index/<key>.json        {"blob", "size_bytes", "sha256", "content_type"}: the commit point
    staging/<uuid>          uploads and index files being written

A put streams into ``staging/``, moves the bytes to a new blob, then replaces the key's index file
by moving a finished one over it. Readers follow the index, so they see the old object or the
new one, never a mix; a failed put removes its temporary file and leaves the key untouched.

Presigned URLs are delegated to the filesystem's ``sign()`` (s3fs, gcsfs and adlfs implement it).
Filesystems without it (local files, memory) cannot hand out download URLs: ``presign_download``
raises :class:`~botmox_core.errors.ConfigurationError`, and the conformance tests declare it with
``supports_presigned_urls = False``.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, cast

import fsspec

from botmox_core.errors import (
    ArtifactObjectNotFoundError,
    BadRequestError,
    BotmoxError,
    ConfigurationError,
    StorageError,
)
from botmox_core.models import ObjectInfo
from botmox_core.ports.health import HealthReport
from botmox_core.ports.storage import PresignedUrl, ProgressCallback, validate_object_key

__all__ = ["FsspecStorage"]

CHUNK = 1024 * 1024


@contextmanager
def _storage_errors(action: str) -> Iterator[None]:
    """Filesystem errors as botmox errors (paths stay out of the message)."""
    try:
        yield
    except BotmoxError:
        raise
    except FileNotFoundError as exc:
        raise ArtifactObjectNotFoundError(f"{action}: object does not exist") from exc
    except (OSError, ValueError) as exc:
        raise StorageError(f"fsspec storage could not {action} ({type(exc).__name__})") from exc


class _RangeReader(io.RawIOBase):
    """At most ``remaining`` bytes of an open file."""

    def __init__(self, file: Any, remaining: int | None) -> None:
        self._file = file
        self._remaining = remaining

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = len(view) if self._remaining is None else min(len(view), self._remaining)
        if want <= 0:
            return 0
        data = self._file.read(want)
        view[: len(data)] = data
        if self._remaining is not None:
            self._remaining -= len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


class FsspecStorage:
    """Artifacts under ``url`` on the fsspec filesystem the URL names.

    ``storage_options`` go to the filesystem constructor (credentials, endpoints ...).
    """

    def __init__(
        self, url: str, *, storage_options: dict[str, Any] | None = None, name: str = "fsspec"
    ) -> None:
        self.name = name
        try:
            self._fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        except (ValueError, ImportError, TypeError) as exc:
            raise ConfigurationError(f"fsspec cannot open {url!r}: {exc}") from None
        self._root = root.rstrip("/")
        with _storage_errors("create its directories"):
            for folder in ("blobs", "index", "staging"):
                self._fs.makedirs(f"{self._root}/{folder}", exist_ok=True)
        self._closed = False

    def __repr__(self) -> str:
        return f"FsspecStorage(name={self.name!r}, protocol={self._fs.protocol!r})"

    def _index_path(self, key: str) -> str:
        return f"{self._root}/index/{key}.json"

    def _read_index(self, key: str) -> dict[str, Any] | None:
        try:
            return cast(dict[str, Any], json.loads(self._fs.cat_file(self._index_path(key))))
        except (FileNotFoundError, IsADirectoryError):
            return None

    def _ensure_open(self) -> None:
        if self._closed:
            raise StorageError(f"storage {self.name!r} is closed")

    def put(
        self,
        key: str,
        stream: BinaryIO,
        *,
        size: int | None = None,
        content_type: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        """Stream to a temporary file while hashing, then commit blob and index."""
        self._ensure_open()
        validate_object_key(key)
        blob = f"{self._root}/blobs/{uuid.uuid4().hex}"
        temp = f"{self._root}/staging/{uuid.uuid4().hex}"
        digest = hashlib.sha256()
        length = 0
        committed = False
        try:
            with _storage_errors("write the object"), self._fs.open(temp, "wb") as out:
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    length += len(chunk)
                    if progress is not None:
                        progress(len(chunk))
            if size is not None and size != length:
                raise BadRequestError(f"declared size {size} does not match {length} bytes")
            info = ObjectInfo(
                key=key, size_bytes=length, sha256=digest.hexdigest(), content_type=content_type
            )
            entry = {
                "blob": blob.rsplit("/", 1)[1],
                "size_bytes": length,
                "sha256": info.sha256,
                "content_type": content_type,
            }
            previous = self._read_index(key)
            with _storage_errors("commit the object"):
                self._fs.mv(temp, blob)
                self._fs.pipe_file(temp, json.dumps(entry).encode())
                index = self._index_path(key)
                self._fs.makedirs(index.rsplit("/", 1)[0], exist_ok=True)
                self._fs.mv(temp, index)  # the commit point
            committed = True
        finally:
            for leftover in (temp,) if committed else (temp, blob):
                if self._fs.exists(leftover):
                    self._fs.rm_file(leftover)
        if previous is not None:
            self._remove_blob(previous)
        return info

    def open(self, key: str, *, start: int = 0, end: int | None = None) -> BinaryIO:
        """The object's bytes ``start`` .. ``end`` (inclusive)."""
        self._ensure_open()
        validate_object_key(key)
        if start < 0 or (end is not None and end < start):
            raise BadRequestError(f"invalid byte range {start}-{end}")
        entry = self._read_index(key)
        if entry is None:
            raise ArtifactObjectNotFoundError(f"object {key!r} does not exist")
        with _storage_errors("open the object"):
            file = self._fs.open(f"{self._root}/blobs/{entry['blob']}", "rb")
            file.seek(start)
        remaining = None if end is None else end - start + 1
        return cast(BinaryIO, _RangeReader(file, remaining))

    def head(self, key: str) -> ObjectInfo | None:
        """What the index records for ``key``, or None."""
        self._ensure_open()
        validate_object_key(key)
        entry = self._read_index(key)
        if entry is None:
            return None
        return ObjectInfo(
            key=key,
            size_bytes=int(entry["size_bytes"]),
            sha256=entry.get("sha256"),
            content_type=entry.get("content_type"),
        )

    def delete(self, key: str) -> None:
        """Remove the index entry, then the blob; a missing object is fine."""
        self._ensure_open()
        validate_object_key(key)
        entry = self._read_index(key)
        if entry is None:
            return
        with _storage_errors("delete the object"):
            self._fs.rm_file(self._index_path(key))
        self._remove_blob(entry)

    def presign_download(self, key: str, *, ttl_seconds: int) -> PresignedUrl:
        """The filesystem's own signed URL for the object's blob (``fs.sign``)."""
        self._ensure_open()
        validate_object_key(key)
        if ttl_seconds < 1:
            raise BadRequestError("ttl_seconds must be positive")
        entry = self._read_index(key)
        path = f"{self._root}/blobs/{entry['blob']}" if entry else f"{self._root}/blobs/missing"
        signed_at = datetime.now(UTC).replace(microsecond=0)
        try:
            url = self._fs.sign(path, expiration=ttl_seconds)
        except NotImplementedError:
            raise ConfigurationError(
                f"the {self._fs.protocol!r} filesystem cannot sign download URLs; "
                "use one that implements fsspec's sign() (s3, gcs, abfs)"
            ) from None
        return PresignedUrl(url=url, expires_at=signed_at + timedelta(seconds=ttl_seconds))

    def check_health(self) -> HealthReport:
        """Write and remove a small file under ``staging/``. Never raises."""
        started = time.perf_counter()
        probe = f"{self._root}/staging/health-{uuid.uuid4().hex}"
        try:
            self._ensure_open()
            with _storage_errors("write a health probe"):
                self._fs.pipe_file(probe, b"ok")
                self._fs.rm_file(probe)
        except BotmoxError as exc:
            ok, detail = False, exc.message
        else:
            ok, detail = True, f"{self._fs.protocol!r} filesystem writable"
        return HealthReport(
            name=self.name,
            ok=ok,
            detail=detail,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
        )

    def close(self) -> None:
        """Nothing to release beyond marking the storage closed. Idempotent."""
        self._closed = True

    def _remove_blob(self, entry: dict[str, Any]) -> None:
        path = f"{self._root}/blobs/{entry['blob']}"
        with suppress(FileNotFoundError):
            self._fs.rm_file(path)
