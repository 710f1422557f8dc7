"""The SQLite repositories: each maps one aggregate to its table, always filtered by tenant.

Repositories run statements through the :class:`Statements` of their unit of work, which holds
the ``BEGIN IMMEDIATE`` transaction and translates :mod:`sqlite3` errors; they never commit.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from botmox_core.backends.sqlite.columns import (
    decode_json_object,
    decode_modules,
    decode_optional_timestamp,
    decode_timestamp,
    encode_enum,
    encode_json_object,
    encode_modules,
    encode_optional_timestamp,
    encode_timestamp,
)
from botmox_core.errors import BadRequestError, DatabaseError
from botmox_core.models import (
    ApiToken,
    Assignment,
    AuditEvent,
    AuditResult,
    DownloadAuditEntry,
    Entitlement,
    Lease,
    LeaseStatus,
    Licence,
    LicenceStatus,
    Release,
    ReleaseScope,
    ReleaseStatus,
    Role,
    Vm,
    VmStatus,
)

__all__ = [
    "SqliteApiTokenRepository",
    "SqliteAssignmentRepository",
    "SqliteDownloadAuditRepository",
    "SqliteLeaseRepository",
    "SqliteLicenceRepository",
    "SqliteReleaseRepository",
    "SqliteVmRepository",
    "Statements",
]

Params = Sequence[Any]
Model = TypeVar("Model")


def _row_decoder(decode: Callable[[sqlite3.Row], Model]) -> Callable[[sqlite3.Row], Model]:
    """Turn a malformed stored row (edited by hand, written by a newer botmox) into a
    :class:`DatabaseError` naming the table, instead of a bare ``ValueError``."""

    @functools.wraps(decode)
    def decoded(row: sqlite3.Row) -> Model:
        try:
            return decode(row)
        except (ValueError, TypeError, KeyError) as exc:
            what = decode.__name__.removeprefix("_").removesuffix("_from_row")
            raise DatabaseError(f"a stored {what} record is malformed: {exc}") from exc

    return decoded


class Statements(Protocol):
    """How a repository runs SQL inside its unit of work's transaction."""

    def run(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        """Execute one statement (for rowcount); errors arrive translated."""

    def rows(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Execute one statement and fetch every row; errors arrive translated."""


class SqliteApiTokenRepository:
    """API tokens in table ``api_tokens`` (token id and hash unique across the database)."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def add(self, token: ApiToken) -> None:
        """Store a new token; :class:`DuplicateError` when the id or hash exists."""
        self._sql.run(
            "INSERT INTO api_tokens (id, tenant_id, role, token_hash, user_id, created_at,"
            " expires_at, revoked_at, label) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                token.id,
                token.tenant_id,
                encode_enum(Role, token.role, field="role"),
                token.token_hash,
                token.user_id,
                encode_timestamp(token.created_at),
                encode_optional_timestamp(token.expires_at),
                encode_optional_timestamp(token.revoked_at),
                token.label,
            ),
        )

    def get_by_hash(self, token_hash: str) -> ApiToken | None:
        """The token with that hash, of any tenant (the hash is the credential)."""
        found = self._sql.rows("SELECT * FROM api_tokens WHERE token_hash = ?", (token_hash,))
        return _token_from_row(found[0]) if found else None

    def revoke(self, tenant_id: str, token_id: str, at: datetime) -> bool:
        """Mark the tenant's token revoked at ``at`` (an earlier revocation time is kept).
        False when the tenant has no such token."""
        cursor = self._sql.run(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?)"
            " WHERE tenant_id = ? AND id = ?",
            (encode_timestamp(at), tenant_id, token_id),
        )
        return cursor.rowcount > 0


@_row_decoder
def _token_from_row(row: sqlite3.Row) -> ApiToken:
    return ApiToken(
        id=row["id"],
        tenant_id=row["tenant_id"],
        role=Role(row["role"]),
        token_hash=row["token_hash"],
        created_at=decode_timestamp(row["created_at"]),
        user_id=row["user_id"],
        expires_at=decode_optional_timestamp(row["expires_at"]),
        revoked_at=decode_optional_timestamp(row["revoked_at"]),
        label=row["label"],
    )


class SqliteVmRepository:
    """VMs in table ``vms``, keyed by (tenant, vm_uuid)."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def upsert(self, vm: Vm) -> Vm:
        """Create the VM or replace every field but ``created_at``; returns the stored record."""
        found = self._sql.rows(
            "INSERT INTO vms (tenant_id, vm_uuid, user_id, status, vm_name, project_id,"
            " metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (tenant_id, vm_uuid) DO UPDATE SET user_id = excluded.user_id,"
            " status = excluded.status, vm_name = excluded.vm_name,"
            " project_id = excluded.project_id, metadata = excluded.metadata,"
            " updated_at = excluded.updated_at RETURNING *",
            (
                vm.tenant_id,
                vm.vm_uuid,
                vm.user_id,
                encode_enum(VmStatus, vm.status, field="status"),
                vm.vm_name,
                vm.project_id,
                encode_json_object(vm.metadata),
                encode_timestamp(vm.created_at),
                encode_timestamp(vm.updated_at),
            ),
        )
        return _vm_from_row(found[0])

    def get(self, tenant_id: str, vm_uuid: str) -> Vm | None:
        """The tenant's VM, or None."""
        found = self._sql.rows(
            "SELECT * FROM vms WHERE tenant_id = ? AND vm_uuid = ?", (tenant_id, vm_uuid)
        )
        return _vm_from_row(found[0]) if found else None


@_row_decoder
def _vm_from_row(row: sqlite3.Row) -> Vm:
    return Vm(
        tenant_id=row["tenant_id"],
        vm_uuid=row["vm_uuid"],
        user_id=row["user_id"],
        status=VmStatus(row["status"]),
        created_at=decode_timestamp(row["created_at"]),
        updated_at=decode_timestamp(row["updated_at"]),
        vm_name=row["vm_name"],
        project_id=row["project_id"],
        metadata=decode_json_object(row["metadata"]),
    )


class SqliteLicenceRepository:
    """Licences in table ``licences`` (one per tenant) and entitlements in ``entitlements``."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def put_licence(self, licence: Licence) -> None:
        """Create or replace the tenant's licence."""
        self._sql.run(
            "INSERT INTO licences (tenant_id, status, expires_at, updated_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id) DO UPDATE SET"
            " status = excluded.status, expires_at = excluded.expires_at,"
            " updated_at = excluded.updated_at",
            (
                licence.tenant_id,
                encode_enum(LicenceStatus, licence.status, field="status"),
                encode_optional_timestamp(licence.expires_at),
                encode_timestamp(licence.updated_at),
            ),
        )

    def get_licence(self, tenant_id: str) -> Licence | None:
        """The tenant's licence, or None."""
        found = self._sql.rows("SELECT * FROM licences WHERE tenant_id = ?", (tenant_id,))
        return _licence_from_row(found[0]) if found else None

    def put_entitlement(self, entitlement: Entitlement) -> None:
        """Create or replace the user's entitlement."""
        self._sql.run(
            "INSERT INTO entitlements (tenant_id, user_id, modules, updated_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id, user_id) DO UPDATE SET"
            " modules = excluded.modules, updated_at = excluded.updated_at",
            (
                entitlement.tenant_id,
                entitlement.user_id,
                encode_modules(entitlement.modules),
                encode_timestamp(entitlement.updated_at),
            ),
        )

    def get_entitlement(self, tenant_id: str, user_id: str) -> Entitlement | None:
        """The user's entitlement, or None."""
        found = self._sql.rows(
            "SELECT * FROM entitlements WHERE tenant_id = ? AND user_id = ?", (tenant_id, user_id)
        )
        return _entitlement_from_row(found[0]) if found else None


@_row_decoder
def _licence_from_row(row: sqlite3.Row) -> Licence:
    return Licence(
        tenant_id=row["tenant_id"],
        status=LicenceStatus(row["status"]),
        updated_at=decode_timestamp(row["updated_at"]),
        expires_at=decode_optional_timestamp(row["expires_at"]),
    )


@_row_decoder
def _entitlement_from_row(row: sqlite3.Row) -> Entitlement:
    return Entitlement(
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        modules=decode_modules(row["modules"]),
        updated_at=decode_timestamp(row["updated_at"]),
    )


_LEASE_COLUMNS = (
    "id, tenant_id, user_id, vm_uuid, module, status, token_hash, previous_token_hash,"
    " issued_at, expires_at, last_heartbeat_at, version, agent_id, runner_id, revoked_at,"
    " revoke_reason"
)


class SqliteLeaseRepository:
    """Leases in table ``leases`` (lease id unique across the database)."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def add(self, lease: Lease) -> None:
        """Store a new lease; :class:`DuplicateError` when the id exists."""
        self._sql.run(
            f"INSERT INTO leases ({_LEASE_COLUMNS}) VALUES"  # noqa: S608 - fixed column list
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _lease_values(lease),
        )

    def get(self, tenant_id: str, lease_id: str) -> Lease | None:
        """The tenant's lease, or None."""
        found = self._sql.rows(
            "SELECT * FROM leases WHERE tenant_id = ? AND id = ?", (tenant_id, lease_id)
        )
        return _lease_from_row(found[0]) if found else None

    def modify(
        self, tenant_id: str, lease_id: str, change: Callable[[Lease], Lease]
    ) -> Lease | None:
        """Replace the lease with ``change(current)``; None when the tenant has no such lease.

        The unit of work already holds SQLite's write lock (``BEGIN IMMEDIATE``), so nothing
        can change the row between the read and the write. If ``change`` raises, nothing is
        written and the error propagates. ``change`` must keep the lease's id and tenant.
        """
        current = self.get(tenant_id, lease_id)
        if current is None:
            return None
        updated = change(current)
        if not isinstance(updated, Lease):
            raise BadRequestError(f"a lease change must return a Lease, got {updated!r}")
        if updated.id != current.id or updated.tenant_id != current.tenant_id:
            raise BadRequestError("a lease change must not alter the lease's id or tenant")
        values = _lease_values(updated)
        found = self._sql.rows(
            "UPDATE leases SET user_id = ?, vm_uuid = ?, module = ?, status = ?,"
            " token_hash = ?, previous_token_hash = ?, issued_at = ?, expires_at = ?,"
            " last_heartbeat_at = ?, version = ?, agent_id = ?, runner_id = ?,"
            " revoked_at = ?, revoke_reason = ? WHERE tenant_id = ? AND id = ? RETURNING *",
            (*values[2:], tenant_id, lease_id),
        )
        return _lease_from_row(found[0])


def _lease_values(lease: Lease) -> tuple[Any, ...]:
    return (
        lease.id,
        lease.tenant_id,
        lease.user_id,
        lease.vm_uuid,
        lease.module,
        encode_enum(LeaseStatus, lease.status, field="status"),
        lease.token_hash,
        lease.previous_token_hash,
        encode_timestamp(lease.issued_at),
        encode_timestamp(lease.expires_at),
        encode_optional_timestamp(lease.last_heartbeat_at),
        lease.version,
        lease.agent_id,
        lease.runner_id,
        encode_optional_timestamp(lease.revoked_at),
        lease.revoke_reason,
    )


@_row_decoder
def _lease_from_row(row: sqlite3.Row) -> Lease:
    return Lease(
        id=row["id"],
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        vm_uuid=row["vm_uuid"],
        module=row["module"],
        status=LeaseStatus(row["status"]),
        token_hash=row["token_hash"],
        issued_at=decode_timestamp(row["issued_at"]),
        expires_at=decode_timestamp(row["expires_at"]),
        previous_token_hash=row["previous_token_hash"],
        last_heartbeat_at=decode_optional_timestamp(row["last_heartbeat_at"]),
        version=row["version"],
        agent_id=row["agent_id"],
        runner_id=row["runner_id"],
        revoked_at=decode_optional_timestamp(row["revoked_at"]),
        revoke_reason=row["revoke_reason"],
    )


class SqliteReleaseRepository:
    """Releases in table ``releases``; ids come from ``AUTOINCREMENT`` (never reused)."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def add(self, release: Release) -> Release:
        """Store the release under a new id and return it; :class:`DuplicateError` when its
        version or object key is taken, :class:`BadRequestError` for a sha256 that is not 64
        lower-case hex digits or a size that is not positive."""
        found = self._sql.rows(
            "INSERT INTO releases (tenant_id, module, platform, channel, version, object_key,"
            " sha256, size_bytes, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " RETURNING *",
            (
                release.tenant_id,
                release.module,
                release.platform,
                release.channel,
                release.version,
                release.object_key,
                release.sha256,
                release.size_bytes,
                encode_enum(ReleaseStatus, release.status, field="status"),
                encode_timestamp(release.created_at),
            ),
        )
        return _release_from_row(found[0])

    def get(self, tenant_id: str, release_id: int) -> Release | None:
        """The tenant's release, or None."""
        found = self._sql.rows(
            "SELECT * FROM releases WHERE tenant_id = ? AND id = ?", (tenant_id, release_id)
        )
        return _release_from_row(found[0]) if found else None

    def find(self, tenant_id: str, scope: ReleaseScope, version: str) -> Release | None:
        """The tenant's release of that scope and version, or None."""
        found = self._sql.rows(
            "SELECT * FROM releases WHERE tenant_id = ? AND module = ? AND platform = ?"
            " AND channel = ? AND version = ?",
            (tenant_id, scope.module, scope.platform, scope.channel, version),
        )
        return _release_from_row(found[0]) if found else None

    def list(self, tenant_id: str, module: str | None = None) -> Sequence[Release]:
        """The tenant's releases (of one module when given), newest id first."""
        if module is None:
            found = self._sql.rows(
                "SELECT * FROM releases WHERE tenant_id = ? ORDER BY id DESC", (tenant_id,)
            )
        else:
            found = self._sql.rows(
                "SELECT * FROM releases WHERE tenant_id = ? AND module = ? ORDER BY id DESC",
                (tenant_id, module),
            )
        return [_release_from_row(row) for row in found]


@_row_decoder
def _release_from_row(row: sqlite3.Row) -> Release:
    return Release(
        id=row["id"],
        tenant_id=row["tenant_id"],
        module=row["module"],
        platform=row["platform"],
        channel=row["channel"],
        version=row["version"],
        object_key=row["object_key"],
        sha256=row["sha256"],
        size_bytes=row["size_bytes"],
        status=ReleaseStatus(row["status"]),
        created_at=decode_timestamp(row["created_at"]),
    )


class SqliteAssignmentRepository:
    """Assignments in table ``assignments``; ``user_id`` NULL is the tenant default."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def put(self, assignment: Assignment) -> Assignment:
        """Replace the assignment of (tenant, user or default, scope) and return it."""
        scope = (
            assignment.tenant_id,
            assignment.user_id,
            assignment.module,
            assignment.platform,
            assignment.channel,
        )
        self._sql.run(
            "DELETE FROM assignments WHERE tenant_id = ? AND user_id IS ? AND module = ?"
            " AND platform = ? AND channel = ?",
            scope,
        )
        found = self._sql.rows(
            "INSERT INTO assignments (tenant_id, user_id, module, platform, channel,"
            " release_id, assigned_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (*scope, assignment.release_id, encode_timestamp(assignment.assigned_at)),
        )
        return _assignment_from_row(found[0])

    def get(self, tenant_id: str, user_id: str | None, scope: ReleaseScope) -> Assignment | None:
        """The assignment of ``user_id`` (None: the tenant default) for the scope, or None."""
        found = self._sql.rows(
            "SELECT * FROM assignments WHERE tenant_id = ? AND user_id IS ? AND module = ?"
            " AND platform = ? AND channel = ?",
            (tenant_id, user_id, scope.module, scope.platform, scope.channel),
        )
        return _assignment_from_row(found[0]) if found else None


@_row_decoder
def _assignment_from_row(row: sqlite3.Row) -> Assignment:
    return Assignment(
        tenant_id=row["tenant_id"],
        module=row["module"],
        platform=row["platform"],
        channel=row["channel"],
        release_id=row["release_id"],
        assigned_at=decode_timestamp(row["assigned_at"]),
        user_id=row["user_id"],
    )


class SqliteDownloadAuditRepository:
    """The append-only table ``download_audit`` (triggers refuse UPDATE and DELETE)."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def append(self, entry: DownloadAuditEntry) -> DownloadAuditEntry:
        """Store the entry under a newly allocated id (the given id is ignored)."""
        found = self._sql.rows(
            "INSERT INTO download_audit (tenant_id, event, result, reason_code, created_at,"
            " lease_id, user_id, vm_uuid, module, platform, channel, release_id, request_ip,"
            " url_expires_at, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " RETURNING *",
            (
                entry.tenant_id,
                encode_enum(AuditEvent, entry.event, field="event"),
                encode_enum(AuditResult, entry.result, field="result"),
                entry.reason_code,
                encode_timestamp(entry.created_at),
                entry.lease_id,
                entry.user_id,
                entry.vm_uuid,
                entry.module,
                entry.platform,
                entry.channel,
                entry.release_id,
                entry.request_ip,
                encode_optional_timestamp(entry.url_expires_at),
                encode_json_object(entry.metadata),
            ),
        )
        return _audit_from_row(found[0])

    def list(
        self, tenant_id: str, *, lease_id: str | None = None, limit: int = 100
    ) -> Sequence[DownloadAuditEntry]:
        """The tenant's entries (of one lease when given), newest first, at most ``limit``."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise BadRequestError(f"limit must be a non-negative integer, got {limit!r}")
        if lease_id is None:
            found = self._sql.rows(
                "SELECT * FROM download_audit WHERE tenant_id = ? ORDER BY id DESC LIMIT ?",
                (tenant_id, limit),
            )
        else:
            found = self._sql.rows(
                "SELECT * FROM download_audit WHERE tenant_id = ? AND lease_id = ?"
                " ORDER BY id DESC LIMIT ?",
                (tenant_id, lease_id, limit),
            )
        return [_audit_from_row(row) for row in found]


@_row_decoder
def _audit_from_row(row: sqlite3.Row) -> DownloadAuditEntry:
    return DownloadAuditEntry(
        id=row["id"],
        tenant_id=row["tenant_id"],
        event=AuditEvent(row["event"]),
        result=AuditResult(row["result"]),
        created_at=decode_timestamp(row["created_at"]),
        reason_code=row["reason_code"],
        lease_id=row["lease_id"],
        user_id=row["user_id"],
        vm_uuid=row["vm_uuid"],
        module=row["module"],
        platform=row["platform"],
        channel=row["channel"],
        release_id=row["release_id"],
        request_ip=row["request_ip"],
        url_expires_at=decode_optional_timestamp(row["url_expires_at"]),
        metadata=decode_json_object(row["metadata"]),
    )
