"""The repositories of the Supabase backend: SQL over one psycopg connection in a transaction.

Every statement names the tenant (``where tenant_id = %s``) even though the server's role bypasses
row-level security: tenancy is enforced in code and, for Supabase users, by the database.
Values go in and rows come back through the backend's record codec (:data:`CODEC`, the shared
:mod:`botmox_core.records` codec with PostgreSQL's hooks: timestamps as ``timestamptz``, JSON
objects as ``jsonb``, string collections as ``text[]``); enums are passed by value (psycopg would
dump a Python enum by name).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from botmox_core.backends.sql_inventory import SqlInventory
from botmox_core.converter import parse_timestamp
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
from botmox_core.ports.modify import modify_record
from botmox_core.records import FieldHooks, RecordCodec, RecordHooks
from botmox_supabase.error_mapping import map_database_errors

__all__ = [
    "PostgresApiTokenRepository",
    "PostgresAssignmentRepository",
    "PostgresDownloadAuditRepository",
    "PostgresLeaseRepository",
    "PostgresLicenceRepository",
    "PostgresReleaseRepository",
    "PostgresVmRepository",
    "CODEC",
    "insert_sql",
    "set_sql",
]

M = TypeVar("M")


def _as_is(value: Any, field: str = "") -> Any:
    return value


CODEC = RecordCodec(
    RecordHooks(
        timestamp=FieldHooks(_as_is, parse_timestamp),
        json_object=FieldHooks(lambda value, field: Jsonb(value), _as_is),
        strings=FieldHooks(_as_is, _as_is),
    )
)
"""The Supabase backend's record codec (records keyed by column name, for ``%(name)s``)."""


def insert_sql(table: str, columns: Sequence[str]) -> str:
    """``insert into table (columns) values (%(columns)s)``, for a codec record."""
    names = ", ".join(columns)
    values = ", ".join(f"%({name})s" for name in columns)
    return f"insert into {table} ({names}) values ({values})"  # noqa: S608 - fixed names


def set_sql(columns: Sequence[str]) -> str:
    """``column = %(column)s, ...`` for an ``update ... set``."""
    return ", ".join(f"{name} = %({name})s" for name in columns)


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
        return CODEC.value(rows[0], model) if rows else None

    def _scan(
        self,
        model: type[M],
        table: str,
        key: str,
        tenant_id: str,
        after: str | int | None,
        limit: int,
    ) -> builtins.list[M]:
        """A page of the tenant's rows of ``table`` after ``after`` by ``key`` (a text key in
        ``COLLATE "C"``: UTF-8 byte order, which is code point order)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise BadRequestError(f"limit must be a non-negative integer, got {limit!r}")
        if isinstance(after, int):
            query = (
                f"select * from {table} where tenant_id = %s and {key} > %s"  # noqa: S608
                f" order by {key} limit %s"
            )
            params: tuple[Any, ...] = (tenant_id, after, limit)
        else:
            query = (
                f"select * from {table} where tenant_id = %s"  # noqa: S608
                f' and (%s::text is null or {key} collate "C" > %s::text)'
                f' order by {key} collate "C" limit %s'
            )
            params = (tenant_id, after, after, limit)
        return [CODEC.value(row, model) for row in self._rows(query, params)]

    def _count(self, query: str, params: Sequence[Any] | dict[str, Any]) -> int:
        with map_database_errors(self._action), self._connection().cursor() as cur:
            cur.execute(query, params)
            return cur.rowcount


class PostgresApiTokenRepository(_Repository):
    """:class:`~botmox_core.ports.ApiTokenRepository` on ``botmox.api_tokens``."""

    _action = "api token"

    def add(self, token: ApiToken) -> None:
        self._count(insert_sql("botmox.api_tokens", CODEC.fields(ApiToken)), CODEC.record(token))

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

    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> builtins.list[ApiToken]:
        return self._scan(ApiToken, "botmox.api_tokens", "id", tenant_id, after, limit)


class PostgresVmRepository(_Repository):
    """:class:`~botmox_core.ports.VmRepository` on ``botmox.vms``."""

    _action = "vm"

    def upsert(self, vm: Vm) -> Vm:
        stored = self._one(
            Vm,
            f"{insert_sql('botmox.vms', CODEC.fields(Vm))}"
            " on conflict (tenant_id, vm_uuid) do update set user_id = excluded.user_id,"
            " status = excluded.status, vm_name = excluded.vm_name,"
            " project_id = excluded.project_id, metadata = excluded.metadata,"
            " updated_at = excluded.updated_at returning *",
            CODEC.record(vm),
        )
        assert stored is not None  # "returning *" of an upsert always yields the row
        return stored

    def get(self, tenant_id: str, vm_uuid: str) -> Vm | None:
        return self._one(
            Vm,
            "select * from botmox.vms where tenant_id = %s and vm_uuid = %s",
            (tenant_id, vm_uuid),
        )

    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> builtins.list[Vm]:
        return self._scan(Vm, "botmox.vms", "vm_uuid", tenant_id, after, limit)


class PostgresLicenceRepository(_Repository):
    """:class:`~botmox_core.ports.LicenceRepository` on ``botmox.licences`` and
    ``botmox.entitlements``."""

    _action = "licence"

    def put_licence(self, licence: Licence) -> None:
        self._count(
            f"{insert_sql('botmox.licences', CODEC.fields(Licence))}"
            " on conflict (tenant_id) do update set status = excluded.status,"
            " expires_at = excluded.expires_at, updated_at = excluded.updated_at",
            CODEC.record(licence),
        )

    def get_licence(self, tenant_id: str) -> Licence | None:
        return self._one(
            Licence, "select * from botmox.licences where tenant_id = %s", (tenant_id,)
        )

    def put_entitlement(self, entitlement: Entitlement) -> None:
        self._count(
            f"{insert_sql('botmox.entitlements', CODEC.fields(Entitlement))}"
            " on conflict (tenant_id, user_id) do update set"
            " modules = excluded.modules, updated_at = excluded.updated_at",
            CODEC.record(entitlement),
        )

    def get_entitlement(self, tenant_id: str, user_id: str) -> Entitlement | None:
        return self._one(
            Entitlement,
            "select * from botmox.entitlements where tenant_id = %s and user_id = %s",
            (tenant_id, user_id),
        )

    def scan_entitlements(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> builtins.list[Entitlement]:
        return self._scan(Entitlement, "botmox.entitlements", "user_id", tenant_id, after, limit)


_LEASE_COLUMNS = CODEC.fields(Lease)


class PostgresLeaseRepository(_Repository):
    """:class:`~botmox_core.ports.LeaseRepository` on ``botmox.leases``; ``modify`` locks the row
    with ``SELECT ... FOR UPDATE`` inside the unit of work's transaction."""

    _action = "lease"

    def add(self, lease: Lease) -> None:
        self._count(insert_sql("botmox.leases", _LEASE_COLUMNS), CODEC.record(lease))

    def get(self, tenant_id: str, lease_id: str) -> Lease | None:
        return self._one(
            Lease,
            "select * from botmox.leases where tenant_id = %s and id = %s",
            (tenant_id, lease_id),
        )

    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> builtins.list[Lease]:
        return self._scan(Lease, "botmox.leases", "id", tenant_id, after, limit)

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
        return modify_record(current, change, self._write)

    def _write(self, lease: Lease) -> Lease:
        stored = self._one(
            Lease,
            f"update botmox.leases set {set_sql(_LEASE_COLUMNS[2:])}"  # noqa: S608 - fixed names
            " where tenant_id = %(tenant_id)s and id = %(id)s returning *",
            CODEC.record(lease),
        )
        assert stored is not None  # the row is locked by this transaction
        return stored


class PostgresReleaseRepository(_Repository):
    """:class:`~botmox_core.ports.ReleaseRepository` on ``botmox.releases`` (identity ids)."""

    _action = "release"

    def add(self, release: Release) -> Release:
        stored = self._one(Release, f"{_INSERT_RELEASE} returning *", CODEC.record(release))
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
        return [CODEC.value(row, Release) for row in rows]

    def scan(
        self, tenant_id: str, *, after: int | None = None, limit: int = 500
    ) -> builtins.list[Release]:
        return self._scan(Release, "botmox.releases", "id", tenant_id, after or 0, limit)

    def put(self, release: Release) -> Release:
        """Create the release under its own id (``overriding system value``) or replace the
        tenant's release with that id, then move the identity sequence to at least that id."""
        record = CODEC.record(release)
        stored = self._one(
            Release,
            f"update botmox.releases set {set_sql(_RELEASE_COLUMNS[2:])}"  # noqa: S608
            " where tenant_id = %(tenant_id)s and id = %(id)s returning *",
            record,
        )
        if stored is None:
            stored = self._one(Release, f"{_INSERT_RELEASE_WITH_ID} returning *", record)
            _follow_identity(self, "botmox.releases", release.id)
        assert stored is not None
        return stored


_RELEASE_COLUMNS = CODEC.fields(Release)
_INSERT_RELEASE = insert_sql("botmox.releases", _RELEASE_COLUMNS[1:])  # id: identity
_INSERT_RELEASE_WITH_ID = insert_sql("botmox.releases", _RELEASE_COLUMNS).replace(
    ") values (", ") overriding system value values (", 1
)


def _follow_identity(repository: _Repository, table: str, used: int) -> None:
    """Move ``table``'s identity sequence to at least ``used`` (never down), so the next
    allocated id is above an id stored explicitly."""
    repository._rows(
        "select setval(q.s, greatest(%s, coalesce(pg_sequence_last_value(q.s), 0)))"
        " from (select pg_get_serial_sequence(%s, 'id')::regclass as s) as q",
        (used, table),
    )


class PostgresAssignmentRepository(_Repository):
    """:class:`~botmox_core.ports.AssignmentRepository` on ``botmox.assignments``; the tenant
    default is the row with a NULL ``user_id`` (unique with NULLS NOT DISTINCT)."""

    _action = "assignment"

    def put(self, assignment: Assignment) -> Assignment:
        stored = self._one(
            Assignment,
            f"{insert_sql('botmox.assignments', CODEC.fields(Assignment))}"
            " on conflict on constraint assignments_scope_key do update set"
            " release_id = excluded.release_id, assigned_at = excluded.assigned_at returning *",
            CODEC.record(assignment),
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

    def scan(
        self,
        tenant_id: str,
        *,
        after: tuple[str | None, str, str, str] | None = None,
        limit: int = 500,
    ) -> builtins.list[Assignment]:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise BadRequestError(f"limit must be a non-negative integer, got {limit!r}")
        if after is None:
            cursor: tuple[Any, ...] = (-1, "", "", "", "")
        else:
            user_id, module, platform, channel = after
            cursor = (0 if user_id is None else 1, user_id or "", module, platform, channel)
        rows = self._rows(
            "select * from botmox.assignments where tenant_id = %s and"
            " ((user_id is not null)::int, coalesce(user_id, '') collate \"C\","
            ' module collate "C", platform collate "C", channel collate "C")'
            " > (%s::int, %s::text, %s::text, %s::text, %s::text)"
            " order by (user_id is not null)::int, coalesce(user_id, '') collate \"C\","
            ' module collate "C", platform collate "C", channel collate "C" limit %s',
            (tenant_id, *cursor, limit),
        )
        return [CODEC.value(row, Assignment) for row in rows]


_INSERT_AUDIT = insert_sql(
    "botmox.download_audit",
    [name for name in CODEC.fields(DownloadAuditEntry) if name != "id"],  # id: identity
)


class PostgresDownloadAuditRepository(_Repository):
    """:class:`~botmox_core.ports.DownloadAuditRepository` on ``botmox.download_audit``."""

    _action = "download audit"

    def append(self, entry: DownloadAuditEntry) -> DownloadAuditEntry:
        stored = self._one(DownloadAuditEntry, f"{_INSERT_AUDIT} returning *", CODEC.record(entry))
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
        return [CODEC.value(row, DownloadAuditEntry) for row in rows]

    def scan(
        self, tenant_id: str, *, after: int | None = None, limit: int = 500
    ) -> builtins.list[DownloadAuditEntry]:
        return self._scan(
            DownloadAuditEntry, "botmox.download_audit", "id", tenant_id, after or 0, limit
        )

    def import_(self, entry: DownloadAuditEntry) -> DownloadAuditEntry:
        """Store the entry under its own id (``overriding system value``), then move the
        identity sequence to at least that id."""
        if isinstance(entry.id, bool) or not isinstance(entry.id, int) or entry.id < 1:
            raise BadRequestError(f"an imported audit entry needs a positive id, got {entry.id!r}")
        stored = self._one(
            DownloadAuditEntry, f"{_INSERT_AUDIT_WITH_ID} returning *", CODEC.record(entry)
        )
        _follow_identity(self, "botmox.download_audit", entry.id)
        assert stored is not None
        return stored


_INSERT_AUDIT_WITH_ID = insert_sql(
    "botmox.download_audit", CODEC.fields(DownloadAuditEntry)
).replace(") values (", ") overriding system value values (", 1)


def inventory(connection: Callable[[], psycopg.Connection[Any]]) -> SqlInventory:
    """The operator inventory (:mod:`botmox_core.ports.inventory`) on the ``botmox`` tables."""
    plumbing = _Repository(connection)
    return SqlInventory(plumbing._rows, CODEC, placeholder="%s", prefix="botmox.")
