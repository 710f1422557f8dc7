"""Object storage port: where release artifacts live.

Objects are private. The only way a VM reads one is a short-lived presigned URL handed out after
a lease check. A storage that can make such URLs itself (S3 and MinIO sign them, ``localfs``
URLs point at the botmox server) declares ``capabilities.presign``; one that cannot (a plain
file system, most fsspec filesystems) declares ``presign=False`` and the botmox server signs and
serves its objects itself (:mod:`botmox_core.backends.signed_urls`), so it still delivers.

Implementations raise :class:`~botmox_core.errors.StorageError` for backend failures and
:class:`~botmox_core.errors.ArtifactObjectNotFoundError` for missing objects where noted; they
never leak SDK exceptions.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, BinaryIO, Protocol, cast, runtime_checkable

import attrs

from botmox_core.errors import BadRequestError, ConfigurationError
from botmox_core.models import ObjectInfo
from botmox_core.ports.health import HealthReport

ProgressCallback = Callable[[int], None]
"""Called with the number of bytes just transferred."""

MAX_KEY_LENGTH = 1024
_KEY_CHARACTERS = re.compile(r"[A-Za-z0-9._/-]+")


def validate_object_key(key: object) -> str:
    """Return ``key`` if it is a valid object key, else raise ``BadRequestError(INVALID_KEY)``.

    Valid: 1 to 1024 characters of ``A-Z a-z 0-9 . _ / -``, no leading ``/`` and no empty, ``.``
    or ``..`` path segment.
    """
    if (
        isinstance(key, str)
        and 0 < len(key) <= MAX_KEY_LENGTH
        and _KEY_CHARACTERS.fullmatch(key)
        and not any(segment in ("", ".", "..") for segment in key.split("/"))
    ):
        return key
    shown = repr(key)[:80] if isinstance(key, str) else type(key).__name__
    raise BadRequestError(
        f"invalid object key {shown}: use 1-{MAX_KEY_LENGTH} characters of A-Z a-z 0-9 . _ / - "
        "with no leading '/' and no empty, '.' or '..' segment",
        code="INVALID_KEY",
    )


class _Limited(io.RawIOBase):
    """At most ``left`` bytes of an open binary file, then EOF; closing closes the file."""

    def __init__(self, file: Any, left: int) -> None:
        super().__init__()
        self._file, self._left = file, max(0, left)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._file.read(min(len(view), self._left)) if self._left else b""
        view[: len(data)] = data
        self._left -= len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


def limited_stream(file: Any, length: int) -> BinaryIO:
    """The next ``length`` bytes of ``file`` (already positioned at the range's start) as a
    buffered stream that closes ``file`` with it: what :meth:`ObjectStorage.open` returns for a
    byte range, for storages whose files cannot stop at an end offset themselves."""
    return cast(BinaryIO, io.BufferedReader(_Limited(file, length), buffer_size=1024 * 1024))


def copy_hashed(
    source: BinaryIO,
    target: Any,
    *,
    size: int | None = None,
    progress: ProgressCallback | None = None,
    chunk_size: int = 1024 * 1024,
) -> tuple[str, int]:
    """Copy ``source`` to EOF into ``target`` in chunks, computing the sha256 on the way and
    calling ``progress(n)`` after each chunk; return ``(sha256 hex, length)``.

    Raises ``BadRequestError(SIZE_MISMATCH)`` when ``size`` is given and the source held another
    number of bytes (after copying: the caller discards what it wrote). Exceptions of the source
    propagate unchanged.
    """
    digest, length = hashlib.sha256(), 0
    while chunk := source.read(chunk_size):
        target.write(chunk)
        digest.update(chunk)
        length += len(chunk)
        if progress is not None:
            progress(len(chunk))
    if size is not None and size != length:
        raise BadRequestError(
            f"stream held {length} bytes but {size} were declared", code="SIZE_MISMATCH"
        )
    return digest.hexdigest(), length


@attrs.frozen(kw_only=True)
class StorageCapabilities:
    """What an :class:`ObjectStorage` can do beyond the base contract, declared by the storage.

    Attributes:
        presign: :meth:`ObjectStorage.presign_download` makes working download URLs. ``False``:
            the composition root wraps the storage in
            :class:`~botmox_core.backends.signed_urls.ServerSignedStorage`, whose URLs the
            botmox server signs (HMAC, expiring) and serves from :meth:`ObjectStorage.open`, and
            the storage need not have a ``presign_download`` method at all.
        local_reads: :meth:`ObjectStorage.head` and ``presign_download`` touch only this host
            (local files and arithmetic, no network) and take microseconds. With a backend
            declaring the same (:attr:`BackendCapabilities.local_reads
            <botmox_core.ports.repositories.BackendCapabilities.local_reads>`) the server runs
            resolve-download on its event loop. A storage behind a network must not claim it.
    """

    presign: bool = False
    local_reads: bool = False


@attrs.frozen
class PresignedUrl:
    """A time-limited download URL.

    Attributes:
        url: absolute URL; the signature inside it is a secret: never log it.
        expires_at: the instant after which the storage refuses it.
    """

    url: str = attrs.field(repr=False)
    expires_at: datetime


class ObjectStorage(Protocol):
    """A private object store. Download URLs come from :class:`PresigningStorage` (a storage
    declaring ``capabilities.presign``) or from the botmox server.

    Attributes:
        name: the storage's name (as registered); it appears in server-signed download URLs.
        capabilities: what it can do beyond the base contract (usually a class attribute).
    """

    name: str
    capabilities: StorageCapabilities

    def put(
        self,
        key: str,
        stream: BinaryIO,
        *,
        size: int | None = None,
        content_type: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        """Store ``stream`` (read to EOF) under ``key``, replacing any object there.

        Returns what was stored, with ``sha256`` computed while streaming. A failed upload leaves
        no partial object visible under ``key``.
        """

    def open(self, key: str, *, start: int = 0, end: int | None = None) -> BinaryIO:
        """A readable stream of bytes ``start`` .. ``end`` (inclusive; ``None``: to the end).

        :class:`ArtifactObjectNotFoundError` when the object does not exist. Close it after use.
        """

    def head(self, key: str) -> ObjectInfo | None:
        """Size and metadata of the object, or None when it does not exist."""

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing object is not an error."""

    def check_health(self) -> HealthReport:
        """Whether the storage answers (bucket reachable, directory writable ...)."""

    def close(self) -> None:
        """Release clients and files. Idempotent."""


@runtime_checkable
class PresigningStorage(ObjectStorage, Protocol):
    """An :class:`ObjectStorage` that makes its own download URLs (``capabilities.presign``)."""

    def presign_download(self, key: str, *, ttl_seconds: int) -> PresignedUrl:
        """A GET URL for the object valid for ``ttl_seconds``. Does not check existence.

        Only called when ``capabilities.presign`` is True."""


def presigning(storage: ObjectStorage) -> PresigningStorage:
    """``storage`` as a :class:`PresigningStorage`; it must declare ``capabilities.presign``.

    Raises :class:`ConfigurationError` for a storage that declares it cannot presign: the
    composition root serves such a storage through
    :class:`~botmox_core.backends.signed_urls.ServerSignedStorage`, so reaching this is a wiring
    mistake, not bad input.
    """
    if storage.capabilities.presign and isinstance(storage, PresigningStorage):
        return storage
    raise ConfigurationError(
        f"storage {storage.name!r} cannot make download URLs (capabilities.presign is False); "
        "serve it through botmox_core.backends.signed_urls.ServerSignedStorage"
    )
