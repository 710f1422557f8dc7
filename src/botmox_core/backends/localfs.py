"""``localfs`` object storage: artifacts as files under one directory, downloaded through
HMAC-signed, expiring URLs that the botmox server itself serves (the embedded default).

Layout under the root directory (default ``<data_dir>/objects``)::

    <root>/<hh>/<digest>.meta.json        key, version, size, sha256 and content type
    <root>/<hh>/<digest>.<version>.blob   the object's bytes
    <root>/<hh>/.lock                     serialises commits within the shard
    <root>/<hh>/.tmp-*                    uploads in progress (removed after a day if abandoned)

``digest`` is the sha256 of the key and ``hh`` its first two hex digits, so every valid key maps
to a short fixed-length file name, metadata never shares a name with an object, and keys ``a``
and ``a/b`` can both exist. A put streams into a temporary file, then (under the shard lock)
renames it to a new blob version and atomically replaces the metadata file — the commit point —
and finally removes the previous version. Readers therefore see the old object or the new one,
whole, and a failed upload changes nothing.

Options (``[plugins.localfs]`` or ``BOTMOX_LOCALFS_*``): ``root`` (object directory) and
``url_key`` (hex HMAC key for download URLs; by default a random key kept in the key ring file
``url_key_file``, default ``<data_dir>/localfs-url.key``, which replicas sharing it also share;
``botmox keys rotate --url`` rotates it, see docs/operations.md).

Download URLs are the server's own (:mod:`botmox_core.backends.signed_urls`): ``localfs`` is one
user of the signer that also delivers every storage declaring ``capabilities.presign = False``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from botmox_core.backends.localfs_files import (
    BoundedReader,
    fsync_directory,
    lock_file,
    os_errors_as_storage_errors,
)
from botmox_core.backends.signed_urls import (
    DOWNLOAD_ROUTE_PREFIX,
    MIN_URL_KEY_BYTES,
    URL_KEY_FILE,
    DownloadUrlSigner,
    load_url_key,
    load_url_keys,
)
from botmox_core.errors import (
    ArtifactObjectNotFoundError,
    BadRequestError,
    ConfigurationError,
    StorageError,
)
from botmox_core.models import ObjectInfo
from botmox_core.plugin.spec import hookimpl
from botmox_core.ports.health import HealthReport
from botmox_core.ports.storage import (
    PresignedUrl,
    ProgressCallback,
    StorageCapabilities,
    validate_object_key,
)
from botmox_core.security.key_ring import KeyRing

if TYPE_CHECKING:
    from botmox_core.config import Settings

__all__ = [
    "CHUNK_SIZE",
    "DOWNLOAD_PATH_PREFIX",
    "URL_KEY_FILE",
    "LocalFsStorage",
    "botmox_register_storages",
    "create_localfs_storage",
    "load_url_key",
    "validate_object_key",
]

log = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
"""Bytes read from the source stream per step of an upload."""

DOWNLOAD_PATH_PREFIX = f"{DOWNLOAD_ROUTE_PREFIX}localfs/"
"""Path under the server's base URL where presigned localfs downloads are served."""

ABANDONED_UPLOAD_SECONDS = 24 * 3600
"""Temporary upload files untouched this long are leftovers of crashed processes."""

_OPEN_ATTEMPTS = 5
_META_SUFFIX = ".meta.json"
#: Metadata files :meth:`LocalFsStorage.head` remembers parsed (oldest forgotten first).
HEADS_KEPT = 4096
_BLOB_SUFFIX = ".blob"


class LocalFsStorage:
    """Object storage in a local directory; implements :class:`~botmox_core.ports.ObjectStorage`.

    Download URLs point at ``{base_url}/api/v1/storage/localfs/{key}?expires=..&signature=..``
    (made and checked by :attr:`url_signer`, the server's shared signer) and are served by the
    server's download route. Safe for concurrent use by threads and by processes sharing the
    directory.
    """

    name = "localfs"
    capabilities = StorageCapabilities(presign=True, local_reads=True)

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        base_url: str,
        url_key: bytes | KeyRing[bytes],
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        if isinstance(url_key, bytes) and len(url_key) < MIN_URL_KEY_BYTES:
            raise ConfigurationError(f"localfs URL key must be at least {MIN_URL_KEY_BYTES} bytes")
        if chunk_size < CHUNK_SIZE:
            raise ConfigurationError(f"localfs chunk size must be at least {CHUNK_SIZE} bytes")
        self.root = Path(root)
        self.url_signer = DownloadUrlSigner(base_url=base_url, key=url_key)
        self.base_url = self.url_signer.base_url
        self._chunk_size = chunk_size
        self._thread_lock = threading.Lock()
        # key -> (metadata path, (mtime ns, size, inode) of the file parsed, what it said)
        self._heads: dict[str, tuple[str, tuple[int, int, int], ObjectInfo]] = {}
        with os_errors_as_storage_errors("create the object directory"):
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def __repr__(self) -> str:
        return f"LocalFsStorage(root={str(self.root)!r}, base_url={self.base_url!r})"

    # -- layout -------------------------------------------------------------------------------

    def _shard_and_digest(self, key: str) -> tuple[Path, str]:
        digest = hashlib.sha256(key.encode("ascii")).hexdigest()
        return self.root / digest[:2], digest

    @contextlib.contextmanager
    def _commit_lock(self, shard: Path) -> Iterator[None]:
        """Exclusive right to change the objects of one shard (threads and processes)."""
        with self._thread_lock:
            fd = os.open(shard / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                lock_file(fd)  # released when the descriptor closes
                yield
            finally:
                os.close(fd)

    def _read_meta(self, key: str) -> dict[str, Any] | None:
        shard, digest = self._shard_and_digest(key)
        path = shard / f"{digest}{_META_SUFFIX}"
        with os_errors_as_storage_errors("read object metadata"):
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                return None
        try:
            meta = json.loads(raw)
            valid = (
                isinstance(meta, dict)
                and meta.get("key") == key
                and isinstance(meta.get("version"), str)
                and isinstance(meta.get("size_bytes"), int)
            )
        except ValueError:
            valid = False
        if not valid:
            raise StorageError(f"localfs metadata of object {key!r} is corrupt")
        return cast(dict[str, Any], meta)

    @staticmethod
    def _info(meta: dict[str, Any]) -> ObjectInfo:
        return ObjectInfo(
            key=meta["key"],
            size_bytes=meta["size_bytes"],
            sha256=meta.get("sha256"),
            etag=meta.get("sha256"),
            content_type=meta.get("content_type"),
        )

    def _remove_blobs(self, shard: Path, digest: str, *, keep: str | None) -> None:
        """Remove every blob of ``digest`` except version ``keep``, and temporary files that
        crashed uploads left in the shard long ago (caller holds the lock)."""
        prefix = f"{digest}."
        kept = f"{digest}.{keep}{_BLOB_SUFFIX}" if keep is not None else None
        abandoned_before = time.time() - ABANDONED_UPLOAD_SECONDS
        with os.scandir(shard) as entries:
            for entry in entries:
                name = entry.name
                with contextlib.suppress(FileNotFoundError):
                    old_version = (
                        name.startswith(prefix) and name.endswith(_BLOB_SUFFIX) and name != kept
                    )
                    abandoned = (
                        name.startswith(".tmp-")
                        and entry.stat(follow_symlinks=False).st_mtime < abandoned_before
                    )
                    if old_version or abandoned:
                        os.unlink(entry.path)

    def _commit(self, key: str, temp_path: Path, info: ObjectInfo) -> None:
        shard, digest = self._shard_and_digest(key)
        version = secrets.token_hex(8)
        blob = shard / f"{digest}.{version}{_BLOB_SUFFIX}"
        meta = {
            "key": key,
            "version": version,
            "size_bytes": info.size_bytes,
            "sha256": info.sha256,
            "content_type": info.content_type,
        }
        with self._commit_lock(shard):
            os.replace(temp_path, blob)
            try:
                fd, meta_temp = tempfile.mkstemp(dir=shard, prefix=".tmp-meta-")
                try:
                    with os.fdopen(fd, "w", encoding="utf-8") as handle:
                        json.dump(meta, handle)
                        handle.flush()
                        os.fsync(handle.fileno())
                    os.replace(meta_temp, shard / f"{digest}{_META_SUFFIX}")  # commit point
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(meta_temp)
                    raise
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(blob)
                raise
            fsync_directory(shard)
            self._remove_blobs(shard, digest, keep=version)

    # -- ObjectStorage --------------------------------------------------------------------------

    def put(
        self,
        key: str,
        stream: BinaryIO,
        *,
        size: int | None = None,
        content_type: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        """Stream ``stream`` to EOF into the object ``key``, replacing any previous object.

        Reads in chunks of at least 1 MiB, computing sha256 and size on the way, and calls
        ``progress(n)`` after each chunk. An exception from the source stream propagates
        unchanged; ``size`` (when given) must match the bytes read (``SIZE_MISMATCH``). Either
        way nothing changes under ``key``. File-system failures raise :class:`StorageError`.
        """
        key = validate_object_key(key)
        shard, _ = self._shard_and_digest(key)
        with os_errors_as_storage_errors("store the object"):
            shard.mkdir(exist_ok=True, mode=0o700)
            fd, temp_name = tempfile.mkstemp(dir=shard, prefix=".tmp-")
        temp_path = Path(temp_name)
        committed = False
        source_failed = False
        try:
            hasher = hashlib.sha256()
            total = 0
            with open(fd, "wb", buffering=self._chunk_size) as out:
                while True:
                    try:
                        chunk = stream.read(self._chunk_size)
                    except BaseException:
                        source_failed = True
                        raise
                    if not chunk:
                        break
                    if not isinstance(chunk, bytes | bytearray | memoryview):
                        raise BadRequestError("object stream must be opened in binary mode")
                    out.write(chunk)
                    hasher.update(chunk)
                    total += len(chunk)
                    if progress is not None:
                        progress(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            if size is not None and size != total:
                raise BadRequestError(
                    f"stream held {total} bytes but {size} were declared", code="SIZE_MISMATCH"
                )
            digest = hasher.hexdigest()
            info = ObjectInfo(
                key=key, size_bytes=total, sha256=digest, etag=digest, content_type=content_type
            )
            self._commit(key, temp_path, info)
            committed = True
        except OSError as exc:
            if source_failed:
                raise
            raise StorageError(
                f"localfs could not store the object: {exc.strerror or exc}"
            ) from exc
        finally:
            if not committed:
                with contextlib.suppress(OSError):
                    temp_path.unlink(missing_ok=True)
        log.debug("localfs stored %s (%d bytes)", key, total)
        return info

    def open_with_info(self, key: str) -> tuple[ObjectInfo, io.FileIO]:
        """The object's metadata and an unbuffered file of the same version, positioned at 0.

        Both describe one version even if the object is replaced concurrently. Raises
        :class:`ArtifactObjectNotFoundError` when the object does not exist. Close the file.
        """
        key = validate_object_key(key)
        shard, digest = self._shard_and_digest(key)
        for _ in range(_OPEN_ATTEMPTS):
            meta = self._read_meta(key)
            if meta is None:
                raise ArtifactObjectNotFoundError(f"object {key!r} does not exist")
            blob = shard / f"{digest}.{meta['version']}{_BLOB_SUFFIX}"
            with os_errors_as_storage_errors("open the object"):
                try:
                    return self._info(meta), open(blob, "rb", buffering=0)
                except FileNotFoundError:
                    continue  # replaced between reading metadata and opening: look again
        raise StorageError(f"localfs data of object {key!r} is missing")

    def open(self, key: str, *, start: int = 0, end: int | None = None) -> BinaryIO:
        """A binary stream of bytes ``start``..``end`` (inclusive; ``None`` = to the end).

        ``end`` past the end of the object is clamped; ``start`` equal to the size gives an empty
        stream; a negative ``start``, ``end < start`` or ``start`` beyond the size raises
        ``BadRequestError(INVALID_RANGE)``. Raises :class:`ArtifactObjectNotFoundError` for a
        missing object.
        """
        if start < 0 or (end is not None and end < start):
            raise BadRequestError(f"invalid byte range {start}-{end}", code="INVALID_RANGE")
        info, file = self.open_with_info(key)
        try:
            if start > info.size_bytes:
                raise BadRequestError(
                    f"range start {start} is beyond the object's {info.size_bytes} bytes",
                    code="INVALID_RANGE",
                )
            stop = info.size_bytes if end is None else min(end + 1, info.size_bytes)
            with os_errors_as_storage_errors("read the object"):
                file.seek(start)
        except BaseException:
            file.close()
            raise
        reader = io.BufferedReader(BoundedReader(file, stop - start), buffer_size=self._chunk_size)
        return cast(BinaryIO, reader)

    def head(self, key: str) -> ObjectInfo | None:
        """Size, sha256, ETag (the sha256) and content type of the object, or None.

        The metadata file is parsed once per version: a key asked again costs one ``stat``
        while the file is the one parsed (a put or delete replaces or removes it, so its
        inode, size or mtime changes and the next head reads it afresh)."""
        known = self._heads.get(key)  # only keys that passed validation get in
        if known is not None:
            path, stamp, info = known
            with os_errors_as_storage_errors("read object metadata"):
                try:
                    status = os.stat(path)
                except FileNotFoundError:
                    return None
            if (status.st_mtime_ns, status.st_size, status.st_ino) == stamp:
                return info
        key = validate_object_key(key)
        shard, digest = self._shard_and_digest(key)
        path = os.fspath(shard / f"{digest}{_META_SUFFIX}")
        with os_errors_as_storage_errors("read object metadata"):
            try:
                status = os.stat(path)
            except FileNotFoundError:
                return None
        meta = self._read_meta(key)
        if meta is None:
            return None
        info = self._info(meta)
        heads = self._heads
        while len(heads) >= HEADS_KEPT:
            try:  # threads share the dict: another may have evicted the same entry first
                heads.pop(next(iter(heads)), None)
            except (RuntimeError, StopIteration):
                break
        heads[key] = (path, (status.st_mtime_ns, status.st_size, status.st_ino), info)
        return info

    def delete(self, key: str) -> None:
        """Remove the object; removing a missing object does nothing."""
        key = validate_object_key(key)
        shard, digest = self._shard_and_digest(key)
        if not shard.is_dir():
            return
        with os_errors_as_storage_errors("delete the object"), self._commit_lock(shard):
            (shard / f"{digest}{_META_SUFFIX}").unlink(missing_ok=True)
            fsync_directory(shard)
            self._remove_blobs(shard, digest, keep=None)
        log.debug("localfs deleted %s", key)

    def presign_download(
        self, key: str, *, ttl_seconds: int, now: float | None = None
    ) -> PresignedUrl:
        """A signed GET URL for ``key`` valid ``ttl_seconds`` from ``now`` (default: the clock).

        Does not check that the object exists. ``ttl_seconds`` must be positive.
        """
        return self.url_signer.sign(self.name, key, ttl_seconds=ttl_seconds, now=now)

    def verify_download(
        self, key: str, expires: str | int | None, signature: str | None, now: float | None = None
    ) -> None:
        """Check a download URL's ``expires`` and ``signature`` for ``key``.

        Raises :class:`DownloadUrlInvalidError` (403) when a parameter is missing or malformed,
        the signature does not match (compared in constant time), or — code
        ``DOWNLOAD_URL_EXPIRED`` — the URL has expired.
        """
        self.url_signer.verify(self.name, key, expires, signature, now=now)

    def check_health(self) -> HealthReport:
        """OK when the object directory exists and a probe file can be written and removed."""
        started = time.perf_counter()

        def report(ok: bool, detail: str) -> HealthReport:
            elapsed = (time.perf_counter() - started) * 1000
            return HealthReport(name=self.name, ok=ok, detail=detail, latency_ms=elapsed)

        if not self.root.is_dir():
            return report(False, "object directory is missing")
        try:
            fd, probe = tempfile.mkstemp(dir=self.root, prefix=".health-")
            try:
                os.write(fd, b"ok")
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(probe)
        except OSError as exc:
            return report(False, f"object directory is not writable: {exc.strerror or exc}")
        return report(True, "object directory is writable")

    def close(self) -> None:
        """Nothing to release (files are opened per call); idempotent."""
        return None


def create_localfs_storage(settings: Settings) -> LocalFsStorage:
    """Build the storage from settings: root from option ``root`` (default
    ``data_dir/objects``), URL key ring from :func:`load_url_keys`, base URL
    ``settings.base_url``."""
    options = settings.plugin_options("localfs")
    root_option = options.get("root")
    root = Path(root_option) if root_option else Path(settings.data_dir) / "objects"
    url_keys = load_url_keys(
        Path(settings.data_dir), options.get("url_key"), options.get("url_key_file")
    )
    return LocalFsStorage(root, base_url=settings.base_url, url_key=url_keys)


@hookimpl
def botmox_register_storages(register: Callable[[str, Any], None]) -> None:
    """Register the ``localfs`` storage."""
    register("localfs", create_localfs_storage)
