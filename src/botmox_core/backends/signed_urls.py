"""Download URLs the botmox server signs and serves itself.

A VM only ever downloads an artifact through a short-lived URL handed out after a lease check.
S3 and MinIO sign such URLs themselves. Every other storage — the embedded ``localfs``, and any
storage plugin declaring ``capabilities.presign = False`` — gets them from here:

    {base_url}/api/v1/storage/{storage_name}/{key}?expires={unix seconds}&signature={hex}

``signature`` is HMAC-SHA256, under the server's URL key, of
``botmox-{storage_name}-download-v1 \\n {key} \\n {expires}``: a URL opens exactly one object of
one storage until it expires, and changing any part of it (the key, the expiry, the storage)
breaks the signature. The server's route ``GET|HEAD /api/v1/storage/{storage}/{key}``
(:mod:`botmox_server.routes.localfs_download`) checks it with :meth:`DownloadUrlSigner.verify`
and streams the object, with ``Range``/``If-Range`` support.

``signature`` is ``<kid>.<hex>`` when the signing key is a key ring's (rotated) key, and plain hex
for the legacy key, so URLs made before key rings look as they always did.

The keys are the ones ``localfs`` has always used: the ``url_key`` option
(``BOTMOX_LOCALFS_URL_KEY``, hex; one fixed key) or the key ring file — ``url_key_file``
(``BOTMOX_LOCALFS_URL_KEY_FILE``), by default ``<data_dir>/localfs-url.key``, created on first
use as a single key — which ``botmox keys rotate --url`` turns into a ring
(:mod:`botmox_core.security.key_ring`). Replicas sharing the ring file share the keys; replicas
that do not must be given the same ``url_key``.

:class:`ServerSignedStorage` wraps a storage that cannot presign so that the rest of botmox sees
one that can; the composition root does that by itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable
from urllib.parse import quote

from botmox_core.errors import (
    BadRequestError,
    ConfigurationError,
    DownloadUrlExpiredError,
    DownloadUrlInvalidError,
    StorageError,
    UnauthorizedError,
)
from botmox_core.models import ObjectInfo
from botmox_core.ports.health import HealthReport
from botmox_core.ports.storage import (
    ObjectStorage,
    PresignedUrl,
    ProgressCallback,
    StorageCapabilities,
    validate_object_key,
)
from botmox_core.security.key_ring import URL_KEYS, KeyRing, KeyRingFile, parse_ring

__all__ = [
    "DOWNLOAD_ROUTE_PREFIX",
    "MIN_URL_KEY_BYTES",
    "URL_KEY_FILE",
    "DownloadUrlSigner",
    "ServerSignedStorage",
    "ServesSignedDownloads",
    "load_url_key",
    "load_url_keys",
    "url_key_ring_path",
]

log = logging.getLogger(__name__)

DOWNLOAD_ROUTE_PREFIX = "/api/v1/storage/"
"""Path under the server's base URL where server-signed downloads are served."""

URL_KEY_FILE = "localfs-url.key"
"""File in the data directory holding the generated HMAC key (hex), mode 0600."""

MIN_URL_KEY_BYTES = 16
_MAX_EXPIRES_DIGITS = 15
#: URLs :meth:`DownloadUrlSigner.sign` remembers (the same object, second and key sign alike).
_SIGNED_KEPT = 1024


def _parse_url_key(text: str, source: str) -> bytes:
    try:
        return URL_KEYS.load(text)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{exc.message} (from {source})") from None


def url_key_ring_path(data_dir: Path, configured_file: str | None = None) -> Path:
    """Where the download URL key ring lives: the ``url_key_file`` option
    (``BOTMOX_LOCALFS_URL_KEY_FILE``) or ``data_dir/localfs-url.key``."""
    if configured_file is not None and configured_file.strip():
        return Path(configured_file.strip())
    return data_dir / URL_KEY_FILE


def _create_url_key_file(path: Path) -> None:
    data_dir = path.parent
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, temp_name = tempfile.mkstemp(dir=data_dir, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:  # mkstemp made it 0600
                handle.write(secrets.token_bytes(32).hex() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another process won: use its key
                os.link(temp_name, path)
        finally:
            os.unlink(temp_name)
        if sys.platform != "win32":  # make the new name durable (no directory fsync on Windows)
            fd = os.open(data_dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        raise StorageError(f"could not create the download URL key: {exc.strerror}") from exc


def load_url_keys(
    data_dir: Path, configured: str | None = None, configured_file: str | None = None
) -> KeyRing[bytes]:
    """The key ring that signs download URLs.

    ``configured`` (hex, the ``url_key`` option) wins: a ring of that one key, which cannot be
    rotated. Otherwise the ring file (:func:`url_key_ring_path`), created on first use as a
    single random 32-byte key (mode 0600; atomically, so processes starting together all end up
    with the same key), re-read when it changes (see :mod:`botmox_core.security.key_ring`).
    """
    if configured is not None and configured.strip():
        return KeyRing(URL_KEYS, parse_ring(configured, URL_KEYS, "the url_key option"))
    path = url_key_ring_path(data_dir, configured_file)
    if not path.exists():
        _create_url_key_file(path)
    try:
        return KeyRing.from_file(KeyRingFile(path, URL_KEYS))
    except ConfigurationError as exc:
        raise ConfigurationError(f"download URL key: {exc.message}") from None


def load_url_key(data_dir: Path, configured: str | None = None) -> bytes:
    """The active HMAC key of :func:`load_url_keys` (the one new URLs are signed with)."""
    return load_url_keys(data_dir, configured).active()[1]


class DownloadUrlSigner:
    """Signs and checks the server's download URLs (see the module docstring).

    Args:
        base_url: the server's public base URL (``Settings.base_url``).
        key: the HMAC key (at least 16 bytes), or a ring of them: the active key signs, and
            a URL signed by a key that still verifies is accepted.
    """

    def __init__(self, *, base_url: str, key: bytes | KeyRing[bytes]) -> None:
        if isinstance(key, bytes):
            if len(key) < MIN_URL_KEY_BYTES:
                raise ConfigurationError(
                    f"the download URL key must be at least {MIN_URL_KEY_BYTES} bytes"
                )
            key = KeyRing.single(URL_KEYS, key.hex())
        self.base_url = base_url.rstrip("/")
        self.ring = key
        # (storage, key, expires, signing kid, secret) -> the URL made for them: a boot storm
        # resolves one object many times a second, and the same inputs sign to the same URL
        self._signed: dict[tuple[str, str, int, str, bytes], PresignedUrl] = {}

    def __repr__(self) -> str:
        return f"DownloadUrlSigner(base_url={self.base_url!r})"

    @staticmethod
    def _signature(secret: bytes, storage_name: str, key: str, expires: int) -> str:
        message = f"botmox-{storage_name}-download-v1\n{key}\n{expires}".encode()
        return hmac.new(secret, message, hashlib.sha256).hexdigest()

    def sign(
        self, storage_name: str, key: str, *, ttl_seconds: int, now: float | None = None
    ) -> PresignedUrl:
        """A URL for object ``key`` of storage ``storage_name``, valid ``ttl_seconds`` from
        ``now`` (default: the clock). ``BadRequestError`` for an invalid key or TTL."""
        key = validate_object_key(key)
        if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds <= 0:
            raise BadRequestError("ttl_seconds must be a positive whole number of seconds")
        expires = int(time.time() if now is None else now) + ttl_seconds
        signing_key, secret = self.ring.active()
        memo = (storage_name, key, expires, signing_key.kid, secret)
        known = self._signed.get(memo)
        if known is not None:
            return known
        signature = self._signature(secret, storage_name, key, expires)
        if not signing_key.legacy:  # URLs of the legacy key stay as they always were
            signature = f"{signing_key.kid}.{signature}"
        url = (
            f"{self.base_url}{DOWNLOAD_ROUTE_PREFIX}{quote(storage_name, safe='')}/"
            f"{quote(key, safe='/')}?expires={expires}&signature={signature}"
        )
        signed = PresignedUrl(url=url, expires_at=datetime.fromtimestamp(expires, UTC))
        remembered = self._signed
        while len(remembered) >= _SIGNED_KEPT:
            try:  # threads share the dict: another may have evicted the same entry first
                remembered.pop(next(iter(remembered)), None)
            except (RuntimeError, StopIteration):
                break
        remembered[memo] = signed
        return signed

    def verify(
        self,
        storage_name: str,
        key: str,
        expires: str | int | None,
        signature: str | None,
        now: float | None = None,
    ) -> str:
        """Check a URL's ``expires`` and ``signature`` for ``key``; return the key.

        ``signature`` is ``<kid>.<hex>`` for a ring key, plain hex for the legacy key.
        Raises :class:`DownloadUrlInvalidError` (403) when a parameter is missing or malformed,
        the key is not a valid object key, the signing key is unknown, retired or past its
        ``verify_until``, or the signature does not match (compared in
        constant time); :class:`DownloadUrlExpiredError` (403) when it has expired.
        """
        if (
            isinstance(expires, str)
            and expires.isascii()
            and expires.isdigit()
            and len(expires) <= _MAX_EXPIRES_DIGITS
        ):
            expires_at: int | None = int(expires)
        elif isinstance(expires, int) and not isinstance(expires, bool) and expires >= 0:
            expires_at = expires
        else:
            expires_at = None
        try:
            key = validate_object_key(key)
        except BadRequestError:
            expires_at = None
        if expires_at is None or not isinstance(signature, str) or not signature:
            raise DownloadUrlInvalidError("download URL is malformed or incomplete")
        kid, _, digest = signature.rpartition(".")
        try:
            secret = self.ring.verifier(kid or None)
        except UnauthorizedError as exc:
            raise DownloadUrlInvalidError(f"download URL {exc.message}") from None
        expected = self._signature(secret, storage_name, key, expires_at).encode("ascii")
        if not hmac.compare_digest(expected, digest.encode("utf-8", "replace")):
            raise DownloadUrlInvalidError("download URL signature is invalid")
        if (time.time() if now is None else now) > expires_at:
            raise DownloadUrlExpiredError("download URL has expired")
        return key


@runtime_checkable
class ServesSignedDownloads(Protocol):
    """A storage whose download URLs the botmox server signs and serves (``localfs``, or any
    storage wrapped in :class:`ServerSignedStorage`); what the download route needs."""

    name: str
    url_signer: DownloadUrlSigner

    def head(self, key: str) -> ObjectInfo | None: ...

    def open(self, key: str, *, start: int = 0, end: int | None = None) -> BinaryIO: ...


class ServerSignedStorage:
    """A storage that cannot presign, delivered by the botmox server.

    Every :class:`~botmox_core.ports.ObjectStorage` call goes to ``inner``;
    :meth:`presign_download` returns a server-signed URL, which the server's download route
    answers by reading ``inner``. The composition root wraps every storage that declares
    ``capabilities.presign = False``; ``inner`` stays reachable for its own extras.
    """

    capabilities = StorageCapabilities(presign=True)

    def __init__(self, inner: ObjectStorage, signer: DownloadUrlSigner) -> None:
        if inner.capabilities.presign:
            raise ConfigurationError(
                f"storage {inner.name!r} makes its own download URLs: do not wrap it"
            )
        self.inner = inner
        self.url_signer = signer
        self.name = inner.name
        # signing is local arithmetic: reads are as local as the inner storage's head
        self.capabilities = StorageCapabilities(
            presign=True, local_reads=getattr(inner.capabilities, "local_reads", False)
        )

    def __repr__(self) -> str:
        return f"ServerSignedStorage({self.inner!r})"

    def put(
        self,
        key: str,
        stream: BinaryIO,
        *,
        size: int | None = None,
        content_type: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        return self.inner.put(key, stream, size=size, content_type=content_type, progress=progress)

    def open(self, key: str, *, start: int = 0, end: int | None = None) -> BinaryIO:
        return self.inner.open(key, start=start, end=end)

    def head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def presign_download(
        self, key: str, *, ttl_seconds: int, now: float | None = None
    ) -> PresignedUrl:
        """A server-signed URL for ``key`` (see :meth:`DownloadUrlSigner.sign`)."""
        return self.url_signer.sign(self.name, key, ttl_seconds=ttl_seconds, now=now)

    def check_health(self) -> HealthReport:
        return self.inner.check_health()

    def close(self) -> None:
        self.inner.close()
