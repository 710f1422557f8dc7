"""The SQLite repositories: each maps one aggregate to its table, always filtered by tenant.

Repositories run statements through the :class:`Statements` of their unit of work, which holds
the ``BEGIN IMMEDIATE`` transaction and translates :mod:`sqlite3` errors; they never commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

import attrs

from botmox_core.backends.sqlite.columns import CODEC, encode_timestamp
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

__all__ = [
    "SqliteApiTokenRepository",
    "SqliteAssignmentRepository",
    "SqliteDownloadAuditRepository",
    "SqliteLeaseRepository",
    "SqliteLicenceRepository",
    "SqliteReleaseRepository",
    "SqliteVmRepository",
    "Statements",
    "first",
    "insert_sql",
    "scan_rows",
    "set_sql",
    "structured",
]

Params = Sequence[Any] | Mapping[str, Any]
"""Positional (``?``) or named (``:name``, from a codec record) statement parameters."""
Model = TypeVar("Model")


def structured(row: sqlite3.Row, model: type[Model]) -> Model:
    """The model value of a stored row (:class:`DatabaseError` naming the model when the row is
    malformed: edited by hand, written by a newer botmox)."""
    return CODEC.value(dict(zip(row.keys(), row, strict=True)), model)


def first(rows: list[sqlite3.Row], model: type[Model]) -> Model | None:
    """The model value of the first row, or None when there is none."""
    return structured(rows[0], model) if rows else None


def insert_sql(table: str, columns: Sequence[str]) -> str:
    """``INSERT INTO table (columns) VALUES (:columns)``, for a codec record."""
    names = ", ".join(columns)
    values = ", ".join(f":{name}" for name in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({values})"  # noqa: S608 - fixed names


def set_sql(columns: Sequence[str]) -> str:
    """``column = :column, ...`` for an ``UPDATE ... SET``."""
    return ", ".join(f"{name} = :{name}" for name in columns)


class Statements(Protocol):
    """How a repository runs SQL inside its unit of work's transaction."""

    def run(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        """Execute one statement (for rowcount); errors arrive translated."""

    def rows(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Execute one statement and fetch every row; errors arrive translated."""

    def run_many(self, sql: str, params: Iterable[Params]) -> sqlite3.Cursor:
        """Execute ``sql`` once per parameter set (``executemany``); errors arrive
        translated."""


class SqliteApiTokenRepository:
    """API tokens in table ``api_tokens`` (token id and hash unique across the database)."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def add(self, token: ApiToken) -> None:
        """Store a new token; :class:`DuplicateError` when the id or hash exists."""
        self._sql.run(_INSERT_TOKEN, CODEC.record(token))

    def get_by_hash(self, token_hash: str) -> ApiToken | None:
        """The token with that hash, of any tenant (the hash is the credential)."""
        found = self._sql.rows("SELECT * FROM api_tokens WHERE token_hash = ?", (token_hash,))
        return first(found, ApiToken)

    def revoke(self, tenant_id: str, token_id: str, at: datetime) -> bool:
        """Mark the tenant's token revoked at ``at`` (an earlier revocation time is kept).
        False when the tenant has no such token."""
        cursor = self._sql.run(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?)"
            " WHERE tenant_id = ? AND id = ?",
            (encode_timestamp(at), tenant_id, token_id),
        )
        return cursor.rowcount > 0

    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[ApiToken]:
        """The tenant's tokens after the id ``after``, by id, at most ``limit``."""
        return scan_rows(self._sql, "api_tokens", "id", ApiToken, tenant_id, after, limit)


def scan_rows(
    sql: Statements,
    table: str,
    key: str,
    model: type[Model],
    tenant_id: str,
    after: str | int | None,
    limit: int,
) -> list[Model]:
    """A page of the tenant's rows of ``table`` after ``after`` by ``key`` (BINARY collation:
    UTF-8 byte order, which is code point order)."""
    _check_limit(limit)
    found = sql.rows(
        f"SELECT * FROM {table} WHERE tenant_id = ? AND (? IS NULL OR {key} > ?)"  # noqa: S608
        f" ORDER BY {key} LIMIT ?",
        (tenant_id, after, after, limit),
    )
    return [structured(row, model) for row in found]


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise BadRequestError(f"limit must be a non-negative integer, got {limit!r}")


_INSERT_TOKEN = insert_sql("api_tokens", CODEC.fields(ApiToken))


class SqliteVmRepository:
    """VMs in table ``vms``, keyed by (tenant, vm_uuid)."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def upsert(self, vm: Vm) -> Vm:
        """Create the VM or replace every field but ``created_at``; returns the stored record."""
        found = self._sql.rows(
            f"{insert_sql('vms', CODEC.fields(Vm))} ON CONFLICT (tenant_id, vm_uuid) DO UPDATE"
            " SET user_id = excluded.user_id, status = excluded.status,"
            " vm_name = excluded.vm_name, project_id = excluded.project_id,"
            " metadata = excluded.metadata, updated_at = excluded.updated_at RETURNING *",
            CODEC.record(vm),
        )
        return structured(found[0], Vm)

    def get(self, tenant_id: str, vm_uuid: str) -> Vm | None:
        """The tenant's VM, or None."""
        found = self._sql.rows(
            "SELECT * FROM vms WHERE tenant_id = ? AND vm_uuid = ?", (tenant_id, vm_uuid)
        )
        return first(found, Vm)

    def scan(self, tenant_id: str, *, after: str | None = None, limit: int = 500) -> Sequence[Vm]:
        """The tenant's VMs after ``after``, by ``vm_uuid``, at most ``limit``."""
        return scan_rows(self._sql, "vms", "vm_uuid", Vm, tenant_id, after, limit)


class SqliteLicenceRepository:
    """Licences in table ``licences`` (one per tenant) and entitlements in ``entitlements``."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def put_licence(self, licence: Licence) -> None:
        """Create or replace the tenant's licence."""
        self._sql.run(
            f"{insert_sql('licences', CODEC.fields(Licence))} ON CONFLICT (tenant_id) DO UPDATE"
            " SET status = excluded.status, expires_at = excluded.expires_at,"
            " updated_at = excluded.updated_at",
            CODEC.record(licence),
        )

    def get_licence(self, tenant_id: str) -> Licence | None:
        """The tenant's licence, or None."""
        found = self._sql.rows("SELECT * FROM licences WHERE tenant_id = ?", (tenant_id,))
        return first(found, Licence)

    def put_entitlement(self, entitlement: Entitlement) -> None:
        """Create or replace the user's entitlement."""
        self._sql.run(
            f"{insert_sql('entitlements', CODEC.fields(Entitlement))}"
            " ON CONFLICT (tenant_id, user_id) DO UPDATE SET"
            " modules = excluded.modules, updated_at = excluded.updated_at",
            CODEC.record(entitlement),
        )

    def get_entitlement(self, tenant_id: str, user_id: str) -> Entitlement | None:
        """The user's entitlement, or None."""
        found = self._sql.rows(
            "SELECT * FROM entitlements WHERE tenant_id = ? AND user_id = ?", (tenant_id, user_id)
        )
        return first(found, Entitlement)

    def scan_entitlements(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[Entitlement]:
        """The tenant's entitlements after the user id ``after``, by user id."""
        return scan_rows(self._sql, "entitlements", "user_id", Entitlement, tenant_id, after, limit)


_LEASE_COLUMNS = CODEC.fields(Lease)


class SqliteLeaseRepository:
    """Leases in table ``leases`` (lease id unique across the database)."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def add(self, lease: Lease) -> None:
        """Store a new lease; :class:`DuplicateError` when the id exists."""
        self._sql.run(insert_sql("leases", _LEASE_COLUMNS), CODEC.record(lease))

    def get(self, tenant_id: str, lease_id: str) -> Lease | None:
        """The tenant's lease, or None."""
        found = self._sql.rows(
            "SELECT * FROM leases WHERE tenant_id = ? AND id = ?", (tenant_id, lease_id)
        )
        return first(found, Lease)

    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[Lease]:
        """The tenant's leases after ``after``, by id, at most ``limit``."""
        return scan_rows(self._sql, "leases", "id", Lease, tenant_id, after, limit)

    def modify(
        self, tenant_id: str, lease_id: str, change: Callable[[Lease], Lease]
    ) -> Lease | None:
        """Replace the lease with ``change(current)``; None when the tenant has no such lease.

        The unit of work already holds SQLite's write lock (``BEGIN IMMEDIATE``), so nothing
        can change the row between the read and the write. If ``change`` raises, nothing is
        written and the error propagates; the rest is :func:`~botmox_core.ports.modify.
        modify_record` (same model, same id and tenant, unchanged means no write).
        """
        return modify_record(self.get(tenant_id, lease_id), change, self._write)

    def _write(self, lease: Lease) -> Lease:
        found = self._sql.rows(
            f"UPDATE leases SET {set_sql(_LEASE_COLUMNS[2:])}"  # noqa: S608 - fixed names
            " WHERE tenant_id = :tenant_id AND id = :id RETURNING *",
            CODEC.record(lease),
        )
        return structured(found[0], Lease)


class SqliteReleaseRepository:
    """Releases in table ``releases``; ids come from ``AUTOINCREMENT`` (never reused)."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def add(self, release: Release) -> Release:
        """Store the release under a new id and return it; :class:`DuplicateError` when its
        version or object key is taken, :class:`BadRequestError` for a sha256 that is not 64
        lower-case hex digits or a size that is not positive."""
        found = self._sql.rows(f"{_INSERT_RELEASE} RETURNING *", CODEC.record(release))
        return structured(found[0], Release)

    def get(self, tenant_id: str, release_id: int) -> Release | None:
        """The tenant's release, or None."""
        found = self._sql.rows(
            "SELECT * FROM releases WHERE tenant_id = ? AND id = ?", (tenant_id, release_id)
        )
        return first(found, Release)

    def find(self, tenant_id: str, scope: ReleaseScope, version: str) -> Release | None:
        """The tenant's release of that scope and version, or None."""
        found = self._sql.rows(
            "SELECT * FROM releases WHERE tenant_id = ? AND module = ? AND platform = ?"
            " AND channel = ? AND version = ?",
            (tenant_id, scope.module, scope.platform, scope.channel, version),
        )
        return first(found, Release)

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
        return [structured(row, Release) for row in found]

    def scan(
        self, tenant_id: str, *, after: int | None = None, limit: int = 500
    ) -> Sequence[Release]:
        """The tenant's releases after the id ``after``, by id, at most ``limit``."""
        return scan_rows(self._sql, "releases", "id", Release, tenant_id, after, limit)

    def put(self, release: Release) -> Release:
        """Create the release under its own id or replace the tenant's release with that id;
        an explicit id above ``sqlite_sequence`` moves it up, so :meth:`add` allocates above."""
        record = CODEC.record(release)
        found = self._sql.rows(
            f"UPDATE releases SET {set_sql(_RELEASE_COLUMNS[2:])}"  # noqa: S608 - fixed names
            " WHERE tenant_id = :tenant_id AND id = :id RETURNING *",
            record,
        )
        if not found:
            found = self._sql.rows(
                f"{insert_sql('releases', _RELEASE_COLUMNS)} RETURNING *", record
            )
        return structured(found[0], Release)


_RELEASE_COLUMNS = CODEC.fields(Release)
_INSERT_RELEASE = insert_sql("releases", _RELEASE_COLUMNS[1:])  # the id is allocated


class SqliteAssignmentRepository:
    """Assignments in table ``assignments``; ``user_id`` NULL is the tenant default."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def put(self, assignment: Assignment) -> Assignment:
        """Replace the assignment of (tenant, user or default, scope) and return it."""
        record = CODEC.record(assignment)
        self._sql.run(
            "DELETE FROM assignments WHERE tenant_id = :tenant_id AND user_id IS :user_id"
            " AND module = :module AND platform = :platform AND channel = :channel",
            record,
        )
        found = self._sql.rows(
            f"{insert_sql('assignments', CODEC.fields(Assignment))} RETURNING *", record
        )
        return structured(found[0], Assignment)

    def get(self, tenant_id: str, user_id: str | None, scope: ReleaseScope) -> Assignment | None:
        """The assignment of ``user_id`` (None: the tenant default) for the scope, or None."""
        found = self._sql.rows(
            "SELECT * FROM assignments WHERE tenant_id = ? AND user_id IS ? AND module = ?"
            " AND platform = ? AND channel = ?",
            (tenant_id, user_id, scope.module, scope.platform, scope.channel),
        )
        return first(found, Assignment)

    def scan(
        self,
        tenant_id: str,
        *,
        after: tuple[str | None, str, str, str] | None = None,
        limit: int = 500,
    ) -> Sequence[Assignment]:
        """The tenant's assignments after ``after`` (user_id, module, platform, channel): the
        defaults (NULL ``user_id``) first, then by user id, module, platform, channel."""
        _check_limit(limit)
        if after is None:
            cursor: tuple[Any, ...] = (-1, "", "", "", "")
        else:
            user_id, module, platform, channel = after
            cursor = (0 if user_id is None else 1, user_id or "", module, platform, channel)
        found = self._sql.rows(
            "SELECT * FROM assignments WHERE tenant_id = ? AND"
            " (user_id IS NOT NULL, coalesce(user_id, ''), module, platform, channel)"
            " > (?, ?, ?, ?, ?) ORDER BY user_id IS NOT NULL, coalesce(user_id, ''),"
            " module, platform, channel LIMIT ?",
            (tenant_id, *cursor, limit),
        )
        return [structured(row, Assignment) for row in found]


class SqliteDownloadAuditRepository:
    """The append-only table ``download_audit`` (triggers refuse UPDATE and DELETE)."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def append(self, entry: DownloadAuditEntry) -> DownloadAuditEntry:
        """Store the entry under a newly allocated id (the given id is ignored)."""
        found = self._sql.rows(f"{_INSERT_AUDIT} RETURNING id", CODEC.record(entry))
        return attrs.evolve(entry, id=found[0][0])

    def append_many(self, entries: Sequence[DownloadAuditEntry]) -> list[DownloadAuditEntry]:
        """Store ``entries`` in order, in one ``executemany`` (the audit group commit's batch).

        The ids: ``AUTOINCREMENT`` gives each new row one more than the largest id the table
        ever held, and the unit holds the write lock (``BEGIN IMMEDIATE``), so nobody else
        inserts meanwhile: the batch's rows get the consecutive ids ending at
        ``last_insert_rowid()``."""
        if not entries:
            return []
        self._sql.run_many(_INSERT_AUDIT, [CODEC.record(entry) for entry in entries])
        last = int(self._sql.rows("SELECT last_insert_rowid()")[0][0])
        first = last - len(entries) + 1
        return [attrs.evolve(entry, id=first + n) for n, entry in enumerate(entries)]

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
        return [structured(row, DownloadAuditEntry) for row in found]

    def scan(
        self, tenant_id: str, *, after: int | None = None, limit: int = 500
    ) -> Sequence[DownloadAuditEntry]:
        """The tenant's entries after the id ``after``, by id, at most ``limit``."""
        return scan_rows(
            self._sql, "download_audit", "id", DownloadAuditEntry, tenant_id, after, limit
        )

    def import_(self, entry: DownloadAuditEntry) -> DownloadAuditEntry:
        """Store the entry under its own id (``sqlite_sequence`` follows an id above it);
        :class:`DuplicateError` when the id is taken, :class:`BadRequestError` when it is not
        positive."""
        if isinstance(entry.id, bool) or not isinstance(entry.id, int) or entry.id < 1:
            raise BadRequestError(f"an imported audit entry needs a positive id, got {entry.id!r}")
        found = self._sql.rows(
            f"{insert_sql('download_audit', CODEC.fields(DownloadAuditEntry))} RETURNING *",
            CODEC.record(entry),
        )
        return structured(found[0], DownloadAuditEntry)


_INSERT_AUDIT = insert_sql(
    "download_audit", [name for name in CODEC.fields(DownloadAuditEntry) if name != "id"]
)
