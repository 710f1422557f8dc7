"""The repositories of the Supabase backend: SQL over one psycopg connection in a transaction.

Every statement names the tenant (``where tenant_id = %s``) even though the server's role bypasses
row-level security: tenancy is enforced in code and, for Supabase users, by the database.
Rows come back as dicts and are structured into the attrs models by the shared converter.
Enums are passed by value (psycopg would dump a Python enum by name).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from botmox_core.converter import get_converter
from botmox_core.errors import BadRequestError
from botmox_core.models import (
    ApiToken,
    Assignment,
    DownloadAuditEntry,
    Entitlement,
    Lease,
    Licence,
    Release,
    ReleaseScope,
    Vm,
)
from botmox_supabase.error_mapping import map_database_errors

__all__ = [
    "PostgresApiTokenRepository",
    "PostgresAssignmentRepository",
    "PostgresDownloadAuditRepository",
    "PostgresLeaseRepository",
    "PostgresLicenceRepository",
    "PostgresReleaseRepository",
    "PostgresVmRepository",
]

M = TypeVar("M")


class _Repository:
    """Shared plumbing: run SQL on the unit of work's connection, structure rows."""

    _action = "query"

    def __init__(self, connection: Callable[[], psycopg.Connection[Any]]) -> None:
        # A callable, not the connection: once the unit of work has ended (and its connection
        # went back to the pool, maybe to another thread) every call raises instead.
        self._connection = connection

    def _rows(self, query: str, params: Sequence[Any] | dict[str, Any]) -> list[dict[str, Any]]:
        with (
            map_database_errors(self._action),
            self._connection().cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

    def _one(self, model: type[M], query: str, params: Sequence[Any] | dict[str, Any]) -> M | None:
        rows = self._rows(query, params)
        return _structure(rows[0], model) if rows else None

    def _count(self, query: str, params: Sequence[Any] | dict[str, Any]) -> int:
        with map_database_errors(self._action), self._connection().cursor() as cur:
            cur.execute(query, params)
            return cur.rowcount


def _structure(row: dict[str, Any], model: type[M]) -> M:
    return get_converter().structure(row, model)


def _text(value: Any) -> Any:
    """An enum's value, anything else unchanged."""
    return getattr(value, "value", value)


class PostgresApiTokenRepository(_Repository):
    """:class:`~botmox_core.ports.ApiTokenRepository` on ``botmox.api_tokens``."""

    _action = "api token"

    def add(self, token: ApiToken) -> None:
        self._count(
            "insert into botmox.api_tokens (id, tenant_id, role, user_id, token_hash, created_at,"
            " expires_at, revoked_at, label) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                token.id,
                token.tenant_id,
                _text(token.role),
                token.user_id,
                token.token_hash,
                token.created_at,
                token.expires_at,
                token.revoked_at,
                token.label,
            ),
        )

    def get_by_hash(self, token_hash: str) -> ApiToken | None:
        return self._one(
            ApiToken, "select * from botmox.api_tokens where token_hash = %s", (token_hash,)
        )

    def revoke(self, tenant_id: str, token_id: str, at: datetime) -> bool:
        found = self._rows(
            "update botmox.api_tokens set revoked_at = coalesce(revoked_at, %s)"
            " where tenant_id = %s and id = %s returning id",
            (at, tenant_id, token_id),
        )
        return bool(found)


class PostgresVmRepository(_Repository):
    """:class:`~botmox_core.ports.VmRepository` on ``botmox.vms``."""

    _action = "vm"

    def upsert(self, vm: Vm) -> Vm:
        stored = self._one(
            Vm,
            "insert into botmox.vms (tenant_id, vm_uuid, user_id, status, vm_name, project_id,"
            " metadata, created_at, updated_at) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " on conflict (tenant_id, vm_uuid) do update set user_id = excluded.user_id,"
            " status = excluded.status, vm_name = excluded.vm_name,"
            " project_id = excluded.project_id, metadata = excluded.metadata,"
            " updated_at = excluded.updated_at returning *",
            (
                vm.tenant_id,
                vm.vm_uuid,
                vm.user_id,
                _text(vm.status),
                vm.vm_name,
                vm.project_id,
                Jsonb(vm.metadata),
                vm.created_at,
                vm.updated_at,
            ),
        )
        assert stored is not None  # "returning *" of an upsert always yields the row
        return stored

    def get(self, tenant_id: str, vm_uuid: str) -> Vm | None:
        return self._one(
            Vm,
            "select * from botmox.vms where tenant_id = %s and vm_uuid = %s",
            (tenant_id, vm_uuid),
        )


class PostgresLicenceRepository(_Repository):
    """:class:`~botmox_core.ports.LicenceRepository` on ``botmox.licences`` and
    ``botmox.entitlements``."""

    _action = "licence"

    def put_licence(self, licence: Licence) -> None:
        self._count(
            "insert into botmox.licences (tenant_id, status, expires_at, updated_at)"
            " values (%s, %s, %s, %s) on conflict (tenant_id) do update set"
            " status = excluded.status, expires_at = excluded.expires_at,"
            " updated_at = excluded.updated_at",
            (licence.tenant_id, _text(licence.status), licence.expires_at, licence.updated_at),
        )

    def get_licence(self, tenant_id: str) -> Licence | None:
        return self._one(
            Licence, "select * from botmox.licences where tenant_id = %s", (tenant_id,)
        )

    def put_entitlement(self, entitlement: Entitlement) -> None:
        self._count(
            "insert into botmox.entitlements (tenant_id, user_id, modules, updated_at)"
            " values (%s, %s, %s, %s) on conflict (tenant_id, user_id) do update set"
            " modules = excluded.modules, updated_at = excluded.updated_at",
            (
                entitlement.tenant_id,
                entitlement.user_id,
                sorted(entitlement.modules),
                entitlement.updated_at,
            ),
        )

    def get_entitlement(self, tenant_id: str, user_id: str) -> Entitlement | None:
        return self._one(
            Entitlement,
            "select * from botmox.entitlements where tenant_id = %s and user_id = %s",
            (tenant_id, user_id),
        )


_LEASE_COLUMNS = (
    "id",
    "tenant_id",
    "user_id",
    "vm_uuid",
    "module",
    "status",
    "token_hash",
    "previous_token_hash",
    "issued_at",
    "expires_at",
    "last_heartbeat_at",
    "version",
    "agent_id",
    "runner_id",
    "revoked_at",
    "revoke_reason",
)


def _lease_params(lease: Lease) -> dict[str, Any]:
    return {name: _text(getattr(lease, name)) for name in _LEASE_COLUMNS}


class PostgresLeaseRepository(_Repository):
    """:class:`~botmox_core.ports.LeaseRepository` on ``botmox.leases``; ``modify`` locks the row
    with ``SELECT ... FOR UPDATE`` inside the unit of work's transaction."""

    _action = "lease"

    def add(self, lease: Lease) -> None:
        columns = ", ".join(_LEASE_COLUMNS)
        values = ", ".join(f"%({name})s" for name in _LEASE_COLUMNS)
        self._count(
            f"insert into botmox.leases ({columns}) values ({values})",  # noqa: S608 - fixed names
            _lease_params(lease),
        )

    def get(self, tenant_id: str, lease_id: str) -> Lease | None:
        return self._one(
            Lease,
            "select * from botmox.leases where tenant_id = %s and id = %s",
            (tenant_id, lease_id),
        )

    def modify(
        self, tenant_id: str, lease_id: str, change: Callable[[Lease], Lease]
    ) -> Lease | None:
        # The row lock is held until the unit of work ends, so a concurrent modify waits and
        # then sees this one's committed result. A change that raises has written nothing.
        current = self._one(
            Lease,
            "select * from botmox.leases where tenant_id = %s and id = %s for update",
            (tenant_id, lease_id),
        )
        if current is None:
            return None
        updated = change(current)
        if updated.id != current.id or updated.tenant_id != current.tenant_id:
            raise BadRequestError("a lease change may not alter the lease id or tenant")
        assignments = ", ".join(f"{name} = %({name})s" for name in _LEASE_COLUMNS[2:])
        return self._one(
            Lease,
            f"update botmox.leases set {assignments}"  # noqa: S608 - fixed column names
            " where tenant_id = %(tenant_id)s and id = %(id)s returning *",
            _lease_params(updated),
        )


class PostgresReleaseRepository(_Repository):
    """:class:`~botmox_core.ports.ReleaseRepository` on ``botmox.releases`` (identity ids)."""

    _action = "release"

    def add(self, release: Release) -> Release:
        stored = self._one(
            Release,
            "insert into botmox.releases (tenant_id, module, platform, channel, version,"
            " object_key, sha256, size_bytes, status, created_at)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) returning *",
            (
                release.tenant_id,
                release.module,
                release.platform,
                release.channel,
                release.version,
                release.object_key,
                release.sha256,
                release.size_bytes,
                _text(release.status),
                release.created_at,
            ),
        )
        assert stored is not None
        return stored

    def get(self, tenant_id: str, release_id: int) -> Release | None:
        return self._one(
            Release,
            "select * from botmox.releases where tenant_id = %s and id = %s",
            (tenant_id, release_id),
        )

    def find(self, tenant_id: str, scope: ReleaseScope, version: str) -> Release | None:
        return self._one(
            Release,
            "select * from botmox.releases where tenant_id = %s and module = %s"
            " and platform = %s and channel = %s and version = %s",
            (tenant_id, scope.module, scope.platform, scope.channel, version),
        )

    def list(self, tenant_id: str, module: str | None = None) -> Sequence[Release]:
        rows = self._rows(
            "select * from botmox.releases where tenant_id = %s"
            " and (%s::text is null or module = %s) order by id desc",
            (tenant_id, module, module),
        )
        return [_structure(row, Release) for row in rows]


class PostgresAssignmentRepository(_Repository):
    """:class:`~botmox_core.ports.AssignmentRepository` on ``botmox.assignments``; the tenant
    default is the row with a NULL ``user_id`` (unique with NULLS NOT DISTINCT)."""

    _action = "assignment"

    def put(self, assignment: Assignment) -> Assignment:
        stored = self._one(
            Assignment,
            "insert into botmox.assignments (tenant_id, user_id, module, platform, channel,"
            " release_id, assigned_at) values (%s, %s, %s, %s, %s, %s, %s)"
            " on conflict on constraint assignments_scope_key do update set"
            " release_id = excluded.release_id, assigned_at = excluded.assigned_at returning *",
            (
                assignment.tenant_id,
                assignment.user_id,
                assignment.module,
                assignment.platform,
                assignment.channel,
                assignment.release_id,
                assignment.assigned_at,
            ),
        )
        assert stored is not None
        return stored

    def get(self, tenant_id: str, user_id: str | None, scope: ReleaseScope) -> Assignment | None:
        return self._one(
            Assignment,
            "select * from botmox.assignments where tenant_id = %s"
            " and user_id is not distinct from %s and module = %s and platform = %s"
            " and channel = %s",
            (tenant_id, user_id, scope.module, scope.platform, scope.channel),
        )


_AUDIT_COLUMNS = (
    "tenant_id",
    "event",
    "result",
    "reason_code",
    "created_at",
    "lease_id",
    "user_id",
    "vm_uuid",
    "module",
    "platform",
    "channel",
    "release_id",
    "request_ip",
    "url_expires_at",
    "metadata",
)


class PostgresDownloadAuditRepository(_Repository):
    """:class:`~botmox_core.ports.DownloadAuditRepository` on ``botmox.download_audit``."""

    _action = "download audit"

    def append(self, entry: DownloadAuditEntry) -> DownloadAuditEntry:
        params = {name: _text(getattr(entry, name)) for name in _AUDIT_COLUMNS}
        params["metadata"] = Jsonb(entry.metadata)
        columns = ", ".join(_AUDIT_COLUMNS)
        values = ", ".join(f"%({name})s" for name in _AUDIT_COLUMNS)
        stored = self._one(
            DownloadAuditEntry,
            f"insert into botmox.download_audit ({columns}) values ({values})"  # noqa: S608
            " returning *",
            params,
        )
        assert stored is not None
        return stored

    def list(
        self, tenant_id: str, *, lease_id: str | None = None, limit: int = 100
    ) -> builtins.list[DownloadAuditEntry]:
        if limit < 1:
            return []
        rows = self._rows(
            "select * from botmox.download_audit where tenant_id = %s"
            " and (%s::text is null or lease_id = %s) order by id desc limit %s",
            (tenant_id, lease_id, lease_id, limit),
        )
        return [_structure(row, DownloadAuditEntry) for row in rows]
