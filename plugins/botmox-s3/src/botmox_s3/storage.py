"""The S3 object storage: artifacts in one private bucket, read only through presigned GET URLs."""

from __future__ import annotations

import hashlib
import io
import logging
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any, BinaryIO, cast

import boto3
from boto3.s3.transfer import ProgressCallbackInvoker, TransferConfig, create_transfer_manager
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from botmox_core.errors import (
    ArtifactObjectNotFoundError,
    BadRequestError,
    BotmoxError,
    StorageError,
)
from botmox_core.models import ObjectInfo
from botmox_core.ports.health import HealthReport
from botmox_core.ports.storage import (
    PresignedUrl,
    ProgressCallback,
    StorageCapabilities,
    validate_object_key,
)
from botmox_s3.error_mapping import map_storage_errors, storage_error_for
from botmox_s3.options import MIB, S3Options
from botmox_s3.privacy import PrivacyReport, check_bucket_privacy, enforce_privacy

__all__ = ["SHA256_METADATA_KEY", "S3Storage", "make_s3_client"]

log = logging.getLogger(__name__)

SHA256_METADATA_KEY = "sha256"
"""User-metadata key (``x-amz-meta-sha256``) holding the hex sha256 recorded at upload."""

MAX_PRESIGN_TTL = 7 * 24 * 3600  # SigV4's limit
SPOOL_IN_MEMORY_BYTES = 8 * MIB
READ_CHUNK = 1 * MIB
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def make_s3_client(
    options: S3Options, *, endpoint_url: str | None = None, signature_version: Any = "s3v4"
) -> BaseClient:
    """A boto3 S3 client for ``options`` (``endpoint_url`` overrides the configured endpoint)."""
    session = boto3.session.Session(
        aws_access_key_id=options.access_key_id,
        aws_secret_access_key=options.secret_access_key,
        aws_session_token=options.session_token,
        region_name=options.region,
    )
    config = Config(
        signature_version=signature_version,
        s3={"addressing_style": options.addressing_style},
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        retries={"max_attempts": options.max_attempts, "mode": "standard"},
        max_pool_connections=options.max_pool_connections,
    )
    return session.client("s3", endpoint_url=endpoint_url or options.endpoint_url, config=config)


class _ProgressRelay:
    """Forwards s3transfer progress (from worker threads; negative on a retried part) to a
    :data:`ProgressCallback` as a monotonic count of newly transferred bytes."""

    def __init__(self, callback: ProgressCallback) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self._total = 0
        self._reported = 0

    def __call__(self, bytes_amount: int) -> None:
        with self._lock:
            self._total += bytes_amount
            fresh = self._total - self._reported
            if fresh <= 0:
                return
            self._reported = self._total
        self._callback(fresh)


class _S3ObjectStream(io.RawIOBase):
    """A readable stream over a GetObject body; network failures surface as StorageError."""

    def __init__(self, body: Any, *, bucket: str, key: str) -> None:
        self._body = body
        self._bucket = bucket
        self._key = key

    def readable(self) -> bool:
        return True

    def _read(self, amount: int | None) -> bytes:
        try:
            return cast(bytes, self._body.read(amount))
        except (BotoCoreError, OSError) as exc:
            raise storage_error_for(
                exc, operation="read object", bucket=self._bucket, key=self._key
            ) from exc
        except Exception as exc:  # urllib3 errors outside OSError (ProtocolError ...)
            raise StorageError(f"read object {self._key!r} failed ({type(exc).__name__})") from exc

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._read(len(view))
        view[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self._read(None)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3Storage:
    """:class:`~botmox_core.ports.ObjectStorage` on an S3 bucket (AWS or S3-compatible).

    One boto3 client per instance serves every call (clients are thread-safe); presigned URLs
    come from a second client when a separate public endpoint is configured, because SigV4
    signs the Host header. The sha256 computed during :meth:`put` is stored as the object's
    ``x-amz-meta-sha256`` metadata so :meth:`head` returns it.

    Build it, then call :meth:`verify_privacy` (the plugin factory does both).
    """

    capabilities = StorageCapabilities(presign=True)
    """S3 signs its own download URLs (SigV4 query signatures)."""

    env_prefix = "BOTMOX_S3_"
    """Prefix of this storage's option variables, for messages that tell operators what to set."""

    def __init__(self, options: S3Options, *, name: str = "s3") -> None:
        self.name = name
        self.options = options
        self.bucket = options.bucket
        self._client = make_s3_client(options)
        public = options.public_endpoint_url
        if public and public != options.endpoint_url:
            self._presign_client = make_s3_client(options, endpoint_url=public)
        else:
            self._presign_client = self._client
        self._transfer_config = TransferConfig(
            multipart_threshold=options.multipart_threshold,
            multipart_chunksize=options.multipart_chunksize,
            max_concurrency=options.max_concurrency,
            use_threads=options.max_concurrency > 1,
        )
        self._transfers = create_transfer_manager(self._client, self._transfer_config)
        self._encryption: dict[str, str] = {}
        if options.sse != "none":
            self._encryption["ServerSideEncryption"] = options.sse
        if options.sse_kms_key_id:
            self._encryption["SSEKMSKeyId"] = options.sse_kms_key_id
        self._closed = False

    def __repr__(self) -> str:
        return f"S3Storage(name={self.name!r}, bucket={self.bucket!r})"

    @property
    def client(self) -> BaseClient:
        """The shared boto3 client (for tests and tools; do not close it)."""
        return self._client

    # -- start-up ------------------------------------------------------------------------------

    def verify_privacy(self) -> PrivacyReport:
        """Check the bucket is private and act per ``options.privacy_check``.

        ``refuse`` raises :class:`~botmox_core.errors.ConfigurationError` when the bucket is or
        may be readable anonymously; ``warn`` logs a warning instead; ``off`` skips the check.
        """
        if self.options.privacy_check == "off":
            return PrivacyReport(bucket=self.bucket, checked=False)
        report = check_bucket_privacy(
            self._client,
            bucket=self.bucket,
            anonymous_client=make_s3_client(self.options, signature_version=_unsigned()),
            put_args=self._encryption,
        )
        enforce_privacy(
            report, self.options.privacy_check, log, setting=f"{self.env_prefix}PRIVACY_CHECK"
        )
        return report

    # -- ObjectStorage -------------------------------------------------------------------------

    def put(
        self,
        key: str,
        stream: BinaryIO,
        *,
        size: int | None = None,
        content_type: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        """Store ``stream`` under ``key``; see :meth:`ObjectStorage.put`.

        S3 needs the metadata before the first byte, so the sha256 is computed first: a
        seekable stream is hashed in place and rewound, any other stream is spooled (in memory
        up to 8 MiB, then to ``spool_dir``) while it is hashed. Objects of at least
        ``multipart_threshold`` bytes go up as a multipart upload, which is aborted on failure,
        so a failed put never leaves a partial object. ``progress`` may be called from worker
        threads.
        """
        self._ensure_open()
        self._check_key(key)
        if size is not None and size < 0:
            raise BadRequestError(f"size must not be negative, got {size}")
        if content_type is not None and not _printable(content_type):
            raise BadRequestError("content_type must be printable ASCII")
        with self._hashed_body(stream) as (body, length, digest):
            if size is not None and size != length:
                raise BadRequestError(
                    f"declared size {size} does not match the {length} bytes streamed"
                )
            extra: dict[str, Any] = {"Metadata": {SHA256_METADATA_KEY: digest}, **self._encryption}
            if content_type:
                extra["ContentType"] = content_type
            subscribers = [ProgressCallbackInvoker(_ProgressRelay(progress))] if progress else None
            with map_storage_errors("upload", bucket=self.bucket, key=key):
                future = self._transfers.upload(
                    body, self.bucket, key, extra_args=extra, subscribers=subscribers
                )
                future.result()
                stored = self._client.head_object(Bucket=self.bucket, Key=key)
        if int(stored["ContentLength"]) != length:
            raise StorageError(
                f"upload of {key!r}: storage holds {stored['ContentLength']} bytes, sent {length}"
            )
        return ObjectInfo(
            key=key,
            size_bytes=length,
            sha256=digest,
            etag=_etag(stored),
            content_type=stored.get("ContentType") or content_type,
        )

    def open(self, key: str, *, start: int = 0, end: int | None = None) -> BinaryIO:
        """Stream bytes ``start`` .. ``end`` (inclusive) with a ranged GetObject."""
        self._ensure_open()
        self._check_key(key)
        if start < 0 or (end is not None and end < start):
            raise BadRequestError(f"invalid byte range {start}-{end}")
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start > 0 or end is not None:
            args["Range"] = f"bytes={start}-{'' if end is None else end}"
        with map_storage_errors("open", bucket=self.bucket, key=key):
            response = self._client.get_object(**args)
        return cast(BinaryIO, _S3ObjectStream(response["Body"], bucket=self.bucket, key=key))

    def head(self, key: str) -> ObjectInfo | None:
        """Size, sha256 (from metadata), ETag and content type; ``None`` if missing."""
        self._ensure_open()
        self._check_key(key)
        try:
            with map_storage_errors("head", bucket=self.bucket, key=key):
                response = self._client.head_object(Bucket=self.bucket, Key=key)
        except ArtifactObjectNotFoundError:
            return None
        digest = str(response.get("Metadata", {}).get(SHA256_METADATA_KEY, "")).lower()
        return ObjectInfo(
            key=key,
            size_bytes=int(response["ContentLength"]),
            sha256=digest if _HEX64.match(digest) else None,
            etag=_etag(response),
            content_type=response.get("ContentType"),
        )

    def delete(self, key: str) -> None:
        """DeleteObject; a missing object is not an error."""
        self._ensure_open()
        self._check_key(key)
        with map_storage_errors("delete", bucket=self.bucket, key=key):
            self._client.delete_object(Bucket=self.bucket, Key=key)

    def presign_download(self, key: str, *, ttl_seconds: int) -> PresignedUrl:
        """A SigV4 presigned GET URL for the public endpoint, valid ``ttl_seconds``.

        Local work only (no request is sent); kept lean because the download route calls it
        once per resolved download.
        """
        self._ensure_open()
        self._check_key(key)
        if not 1 <= ttl_seconds <= MAX_PRESIGN_TTL:
            raise BadRequestError(f"ttl_seconds must be between 1 and {MAX_PRESIGN_TTL}")
        # SigV4 dates have whole seconds; truncating keeps expires_at at or before the real expiry.
        signed_at = int(time.time())
        try:
            url = self._presign_client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=ttl_seconds,
            )
        except (ClientError, BotoCoreError) as exc:
            raise storage_error_for(exc, operation="presign", bucket=self.bucket, key=key) from exc
        return PresignedUrl(
            url=url, expires_at=datetime.fromtimestamp(signed_at + ttl_seconds, UTC)
        )

    def check_health(self) -> HealthReport:
        """HeadBucket: reachable, credentials valid, bucket exists. Never raises."""
        started = time.perf_counter()
        try:
            self._ensure_open()
            with map_storage_errors("health check", bucket=self.bucket):
                self._client.head_bucket(Bucket=self.bucket)
        except BotmoxError as exc:
            return HealthReport(
                name=self.name, ok=False, detail=exc.message, latency_ms=_ms_since(started)
            )
        return HealthReport(
            name=self.name,
            ok=True,
            detail=f"bucket {self.bucket!r} reachable",
            latency_ms=_ms_since(started),
        )

    def close(self) -> None:
        """Shut the transfer pool and the HTTP connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._transfers.shutdown()
        if self._presign_client is not self._client:
            self._presign_client.close()
        self._client.close()

    # -- helpers -------------------------------------------------------------------------------

    def _ensure_open(self) -> None:
        if self._closed:
            raise StorageError(f"storage {self.name!r} is closed")

    @staticmethod
    def _check_key(key: str) -> None:
        # The same key rules as every botmox storage, so artifacts move between backends.
        validate_object_key(key)

    @contextmanager
    def _hashed_body(self, stream: BinaryIO) -> Iterator[tuple[IO[bytes], int, str]]:
        """(seekable body positioned at its first byte, length, hex sha256) of ``stream``."""
        start = _seekable_position(stream)
        digest = hashlib.sha256()
        if start is not None:
            length = 0
            while chunk := stream.read(READ_CHUNK):
                digest.update(chunk)
                length += len(chunk)
            stream.seek(start)
            yield stream, length, digest.hexdigest()
            return
        with tempfile.SpooledTemporaryFile(
            max_size=SPOOL_IN_MEMORY_BYTES,
            dir=str(self.options.spool_dir) if self.options.spool_dir else None,
            prefix="botmox-s3-upload-",
        ) as spool:
            length = 0
            while chunk := stream.read(READ_CHUNK):
                digest.update(chunk)
                spool.write(chunk)
                length += len(chunk)
            spool.seek(0)
            yield cast(IO[bytes], spool), length, digest.hexdigest()


def _seekable_position(stream: BinaryIO) -> int | None:
    try:
        if stream.seekable():
            return stream.tell()
    except (AttributeError, OSError, ValueError):
        pass
    return None


def _unsigned() -> Any:
    from botocore import UNSIGNED

    return UNSIGNED


def _etag(response: dict[str, Any]) -> str | None:
    etag = response.get("ETag")
    return str(etag).strip('"') if etag else None


def _printable(text: str) -> bool:
    return all(0x20 <= ord(ch) < 0x7F for ch in text)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
