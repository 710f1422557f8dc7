"""botocore errors mapped into the botmox error tree, in this one place.

* missing object (``NoSuchKey``, a bare ``404`` from HEAD) -> :class:`ArtifactObjectNotFoundError`
* access denied, bad or expired credentials -> :class:`StorageError` saying to check credentials
  and bucket policy
* missing bucket -> :class:`StorageError` naming the bucket
* unsatisfiable range -> :class:`BadRequestError`
* connection failures, timeouts, throttling, 5xx -> :class:`StorageError` (retryable, 502)

Messages name the operation and the object key (or, for bucket-level failures, the bucket);
they never contain credentials or URLs with signatures.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from botmox_core.errors import (
    ArtifactObjectNotFoundError,
    BadRequestError,
    BotmoxError,
    StorageError,
)

__all__ = ["client_error_code", "map_storage_errors", "storage_error_for"]

NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "403",
        "Forbidden",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "AllAccessDisabled",
        "AccountProblem",
    }
)
NO_BUCKET_CODES = frozenset({"NoSuchBucket"})
BAD_RANGE_CODES = frozenset({"InvalidRange", "416"})


def client_error_code(exc: ClientError) -> str:
    """The S3 error code of a ``ClientError`` (HEAD responses carry only the status)."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "")
    if not code:
        code = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return code


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def storage_error_for(
    exc: Exception, *, operation: str, bucket: str, key: str | None = None
) -> BotmoxError:
    """The botmox error for a botocore exception raised by ``operation``."""
    where = f"object {key!r}" if key is not None else f"bucket {bucket!r}"
    if isinstance(exc, ClientError):
        code = client_error_code(exc)
        if code in NOT_FOUND_CODES and key is not None:
            return ArtifactObjectNotFoundError(f"object {key!r} does not exist in the storage")
        if code in NO_BUCKET_CODES or (code in NOT_FOUND_CODES and key is None):
            return StorageError(f"{operation}: bucket {bucket!r} does not exist")
        if code in DENIED_CODES:
            return StorageError(
                f"{operation} on {where} was denied ({code}): check the storage credentials "
                f"and the bucket policy"
            )
        if code in BAD_RANGE_CODES:
            return BadRequestError(f"{operation}: requested range of {key!r} is not satisfiable")
        return StorageError(f"{operation} on {where} failed: {code} (HTTP {_status(exc)})")
    if isinstance(exc, NoCredentialsError):
        return StorageError(f"{operation}: no storage credentials configured")
    if isinstance(exc, BotoCoreError):
        return StorageError(
            f"{operation} on {where} failed: storage unreachable ({type(exc).__name__})"
        )
    return StorageError(f"{operation} on {where} failed ({type(exc).__name__})")


@contextmanager
def map_storage_errors(operation: str, *, bucket: str, key: str | None = None) -> Iterator[None]:
    """Re-raise botocore (and socket) errors inside the block as botmox errors."""
    try:
        yield
    except BotmoxError:
        raise
    except (ClientError, BotoCoreError, OSError) as exc:
        raise storage_error_for(exc, operation=operation, bucket=bucket, key=key) from exc
