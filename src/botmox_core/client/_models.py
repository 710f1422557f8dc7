"""What the client returns: read-only views of the contract's response payloads."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from botmox_core.client._errors import InvalidResponseError
from botmox_core.client._redact import REDACTED, redact_url
from botmox_core.converter import parse_timestamp

__all__ = ["DownloadResult", "FetchResult", "LeaseGrant", "RegisteredVm", "ResolvedDownload"]


def _require(data: Any, *keys: str) -> dict[str, Any]:
    if not isinstance(data, dict) or any(key not in data for key in keys):
        missing = [key for key in keys if not isinstance(data, dict) or key not in data]
        raise InvalidResponseError(
            f"response data lacks required fields: {', '.join(missing)}", details=missing
        )
    return data


def _timestamp(value: Any, field: str) -> datetime:
    try:
        return parse_timestamp(value)
    except (TypeError, ValueError, AttributeError) as exc:
        raise InvalidResponseError(
            f"response field {field!r} is not an ISO 8601 timestamp"
        ) from exc


def _optional_timestamp(value: Any, field: str) -> datetime | None:
    return None if value is None else _timestamp(value, field)


@attrs.frozen
class RegisteredVm:
    """A VM record as ``POST /api/v1/vm/register`` returns it.

    Attributes:
        tenant_id, vm_uuid, user_id, status, vm_name, project_id, metadata: the record.
        created_at, updated_at: record timestamps (UTC).
    """

    tenant_id: str
    vm_uuid: str
    user_id: str | None
    status: str
    vm_name: str | None = None
    project_id: str | None = None
    metadata: dict[str, Any] = attrs.Factory(dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_data(cls, data: Any) -> RegisteredVm:
        """Build from the envelope's ``data``; InvalidResponseError when fields are missing."""
        record = _require(data, "tenant_id", "vm_uuid", "status")
        return cls(
            tenant_id=str(record["tenant_id"]),
            vm_uuid=str(record["vm_uuid"]),
            user_id=record.get("user_id"),
            status=str(record["status"]),
            vm_name=record.get("vm_name"),
            project_id=record.get("project_id"),
            metadata=dict(record.get("metadata") or {}),
            created_at=_optional_timestamp(record.get("created_at"), "created_at"),
            updated_at=_optional_timestamp(record.get("updated_at"), "updated_at"),
        )


def _redacted(_value: object) -> str:
    return REDACTED


@attrs.frozen
class LeaseGrant:
    """One issued (or heartbeat-rotated) lease token and its lifetime.

    Attributes:
        lease_id: the lease's id; heartbeats keep it, a new lease changes it.
        token: the signed lease token (hidden from ``repr``).
        expires_at: when this token stops being accepted (UTC).
        tenant_id, user_id, vm_uuid, module: what the lease is bound to.
    """

    lease_id: str
    token: str = attrs.field(repr=_redacted)
    expires_at: datetime
    tenant_id: str | None = None
    user_id: str | None = None
    vm_uuid: str | None = None
    module: str | None = None

    @classmethod
    def from_data(cls, data: Any) -> LeaseGrant:
        """Build from a ``license/lease`` response's ``data``."""
        record = _require(data, "lease_id", "token", "expires_at")
        return cls(
            lease_id=str(record["lease_id"]),
            token=str(record["token"]),
            expires_at=_timestamp(record["expires_at"], "expires_at"),
            tenant_id=record.get("tenant_id"),
            user_id=record.get("user_id"),
            vm_uuid=record.get("vm_uuid"),
            module=record.get("module"),
        )

    def rotated(self, data: Any) -> LeaseGrant:
        """This grant with the token and expiry of a ``license/heartbeat`` response."""
        record = _require(data, "token", "expires_at")
        return attrs.evolve(
            self,
            lease_id=str(record.get("lease_id") or self.lease_id),
            token=str(record["token"]),
            expires_at=_timestamp(record["expires_at"], "expires_at"),
        )


@attrs.frozen
class ResolvedDownload:
    """A lease-gated download as ``POST /api/v1/artifacts/resolve-download`` returns it.

    Attributes:
        download_url: short-lived URL of the artifact; its query string (the signature) is hidden
            from ``repr``.
        url_expires_at: when the URL stops working (UTC).
        release_id, version: which release was resolved.
        sha256: lower-case hex digest the downloaded bytes must have.
        size_bytes: exact size the downloaded file must have.
    """

    download_url: str = attrs.field(repr=redact_url)
    url_expires_at: datetime
    release_id: int
    version: str
    sha256: str
    size_bytes: int

    @classmethod
    def from_data(cls, data: Any) -> ResolvedDownload:
        """Build from a ``resolve-download`` response's ``data``."""
        record = _require(
            data, "download_url", "url_expires_at", "release_id", "version", "sha256", "size_bytes"
        )
        try:
            release_id = int(record["release_id"])
            size_bytes = int(record["size_bytes"])
        except (TypeError, ValueError) as exc:
            raise InvalidResponseError("release_id and size_bytes must be integers") from exc
        return cls(
            download_url=str(record["download_url"]),
            url_expires_at=_timestamp(record["url_expires_at"], "url_expires_at"),
            release_id=release_id,
            version=str(record["version"]),
            sha256=str(record["sha256"]).lower(),
            size_bytes=size_bytes,
        )

    def url_expired(self, now: datetime | None = None, margin_seconds: float = 2.0) -> bool:
        """Whether the URL has expired (or will within ``margin_seconds``)."""
        now = now or datetime.now(UTC)
        return (self.url_expires_at - now).total_seconds() <= margin_seconds


@attrs.frozen
class DownloadResult:
    """A verified file at its destination.

    Attributes:
        path: the destination path.
        sha256: the verified hex digest.
        size_bytes: the verified size.
        resumed_from: bytes that were already on disk from an earlier attempt (0 = fresh).
    """

    path: Path
    sha256: str
    size_bytes: int
    resumed_from: int = 0


@attrs.frozen
class FetchResult:
    """What :meth:`RunnerClient.fetch` delivered.

    Attributes:
        path, sha256, size_bytes: the verified file.
        release_id, version: the release it came from.
        lease_id: the lease that gated the download (its token is never part of the result).
        vm_uuid: the VM the lease was taken for.
    """

    path: Path
    sha256: str
    size_bytes: int
    release_id: int
    version: str
    lease_id: str
    vm_uuid: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (no secrets)."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "release_id": self.release_id,
            "version": self.version,
            "lease_id": self.lease_id,
            "vm_uuid": self.vm_uuid,
        }
