"""An ObjectStorage on any fsspec filesystem: ``blobs/<id>`` holds the bytes, written once;
moving ``index/<key>.json`` (the ObjectInfo, etag = blob id) into place commits. It cannot
presign, so it declares so and the botmox server signs and serves its downloads."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, BinaryIO

import attrs
import fsspec

from botmox_core.errors import ArtifactObjectNotFoundError as NotFound
from botmox_core.errors import BadRequestError, ConfigurationError, StorageError
from botmox_core.models import ObjectInfo
from botmox_core.ports import HealthReport, StorageCapabilities
from botmox_core.ports.storage import (
    ProgressCallback,
    copy_hashed,
    limited_stream,
    validate_object_key,
)


@contextmanager
def _storage_errors(action: str) -> Iterator[None]:
    """Filesystem errors as botmox errors (paths stay out of the message)."""
    try:
        yield
    except OSError as exc:
        raise StorageError(f"fsspec storage could not {action} ({type(exc).__name__})") from exc


class FsspecStorage:
    """Artifacts under ``url``; ``storage_options`` go to the fsspec filesystem."""

    name = "fsspec"
    capabilities = StorageCapabilities(presign=False)

    def __init__(self, url: str, *, storage_options: dict[str, Any] | None = None) -> None:
        try:
            self.fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        except (ValueError, ImportError, TypeError) as exc:
            raise ConfigurationError(f"fsspec cannot open {url!r}: {exc}") from None
        self.root = root.rstrip("/")
        with _storage_errors("create its directories"):
            self.fs.makedirs(f"{self.root}/blobs", exist_ok=True)

    def _index(self, key: str) -> str:
        return f"{self.root}/index/{validate_object_key(key)}.json"

    def put(
        self,
        key: str,
        stream: BinaryIO,
        *,
        size: int | None = None,
        content_type: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        """Stream into a new blob while hashing, then commit its index entry."""
        index, blob_id = self._index(key), uuid.uuid4().hex
        blob, temp = f"{self.root}/blobs/{blob_id}", f"{self.root}/blobs/{blob_id}.json"
        try:
            with _storage_errors("write the object"), self.fs.open(blob, "wb") as out:
                sha256, length = copy_hashed(stream, out, size=size, progress=progress)
            old = self.head(key)
            info = ObjectInfo(key, length, sha256, blob_id, content_type)
            with _storage_errors("commit the object"):
                self.fs.pipe_file(temp, json.dumps(attrs.asdict(info)).encode())
                self.fs.makedirs(index.rsplit("/", 1)[0], exist_ok=True)
                self.fs.mv(temp, index)  # the commit point
        except BaseException:
            for leftover in (temp, blob):
                with suppress(OSError):
                    self.fs.rm_file(leftover)
            raise
        if old is not None:
            self._remove_blob(old)
        return info

    def open(self, key: str, *, start: int = 0, end: int | None = None) -> BinaryIO:
        """Bytes ``start`` .. ``end`` (inclusive) of the object."""
        if (info := self.head(key)) is None:
            raise NotFound(f"object {key!r} does not exist")
        if not 0 <= start <= info.size_bytes or (end is not None and end < start):
            raise BadRequestError(f"invalid byte range {start}-{end}", code="INVALID_RANGE")
        with _storage_errors("open the object"):
            file = self.fs.open(f"{self.root}/blobs/{info.etag}", "rb")
            file.seek(start)
        stop = info.size_bytes if end is None else min(end + 1, info.size_bytes)
        return limited_stream(file, stop - start)

    def head(self, key: str) -> ObjectInfo | None:
        """The object's index entry, or None."""
        try:
            return ObjectInfo(**json.loads(self.fs.cat_file(self._index(key))))
        except (FileNotFoundError, IsADirectoryError):
            return None

    def delete(self, key: str) -> None:
        """Remove the index entry, then the blob; a missing object is fine."""
        if (info := self.head(key)) is not None:
            with _storage_errors("delete the object"):
                self.fs.rm_file(self._index(key))
            self._remove_blob(info)

    def _remove_blob(self, info: ObjectInfo) -> None:
        with suppress(OSError):  # committed already: at worst an orphaned blob stays behind
            self.fs.rm_file(f"{self.root}/blobs/{info.etag}")

    def check_health(self) -> HealthReport:
        """Write and remove a probe blob; never raises."""
        probe = f"{self.root}/blobs/health-{uuid.uuid4().hex}"
        try:
            self.fs.pipe_file(probe, b"ok")
            self.fs.rm_file(probe)
        except OSError as exc:
            return HealthReport(self.name, False, f"not writable ({type(exc).__name__})")
        return HealthReport(self.name, True, f"{self.fs.protocol!r} filesystem writable")

    def close(self) -> None:
        """Nothing to release."""
