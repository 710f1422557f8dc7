"""The :class:`~botmox_core.ports.inventory.Inventory` for SQL backends whose tables carry the
models' field names (SQLite's ``api_tokens`` ..., Supabase's ``botmox.api_tokens`` ...).

A backend gives it a function that runs one statement and returns the rows as mappings, the
placeholder its driver uses (``?`` or ``%s``), its table prefix and its record codec.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from botmox_core.models import (
    ApiToken,
    Assignment,
    Entitlement,
    Lease,
    Licence,
    Release,
    ReleaseScope,
    ReleaseStatus,
    Vm,
)
from botmox_core.records import RecordCodec

__all__ = ["SqlInventory"]

M = TypeVar("M")
Query = Callable[[str, Sequence[Any]], Sequence[Mapping[str, Any]]]


class SqlInventory:
    """Operator listings in SQL; every filter is a bound parameter, every name fixed."""

    def __init__(
        self, query: Query, codec: RecordCodec, *, placeholder: str = "?", prefix: str = ""
    ) -> None:
        self._query = query
        self._codec = codec
        self._ph = placeholder
        self._prefix = prefix

    def _select(
        self,
        table: str,
        model: type[M],
        where: Mapping[str, Any],
        *,
        extra: Sequence[str] = (),
        order: str,
        limit: int | None = None,
    ) -> list[M]:
        clauses = [f"{column} = {self._ph}" for column, value in where.items() if value is not None]
        params: list[Any] = [value for value in where.values() if value is not None]
        sql = f"SELECT * FROM {self._prefix}{table}"  # noqa: S608 - fixed names, bound values
        if clauses or extra:
            sql += " WHERE " + " AND ".join([*clauses, *extra])
        sql += f" ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {self._ph}"
            params.append(int(limit))
        return [self._codec.value(dict(row), model) for row in self._query(sql, params)]

    def tokens(
        self,
        tenant_id: str,
        *,
        role: str | None = None,
        user_id: str | None = None,
        include_revoked: bool = False,
        limit: int = 100,
    ) -> list[ApiToken]:
        return self._select(
            "api_tokens",
            ApiToken,
            {"tenant_id": tenant_id, "role": role, "user_id": user_id},
            extra=() if include_revoked else ("revoked_at IS NULL",),
            order="created_at DESC, id DESC",
            limit=limit,
        )

    def token(self, tenant_id: str, token_id: str) -> ApiToken | None:
        found = self._select(
            "api_tokens", ApiToken, {"tenant_id": tenant_id, "id": token_id}, order="id"
        )
        return found[0] if found else None

    def vms(
        self,
        tenant_id: str,
        *,
        status: str | None = None,
        user_id: str | None = None,
        limit: int = 100,
    ) -> list[Vm]:
        return self._select(
            "vms",
            Vm,
            {"tenant_id": tenant_id, "status": status, "user_id": user_id},
            order="created_at DESC, vm_uuid",
            limit=limit,
        )

    def leases(
        self,
        tenant_id: str,
        *,
        status: str | None = None,
        vm_uuid: str | None = None,
        user_id: str | None = None,
        module: str | None = None,
        limit: int = 100,
    ) -> list[Lease]:
        where = {
            "tenant_id": tenant_id,
            "status": status,
            "vm_uuid": vm_uuid,
            "user_id": user_id,
            "module": module,
        }
        return self._select("leases", Lease, where, order="issued_at DESC, id DESC", limit=limit)

    def licences(self, tenant_id: str | None = None) -> list[Licence]:
        return self._select("licences", Licence, {"tenant_id": tenant_id}, order="tenant_id")

    def entitlements(self, tenant_id: str, *, user_id: str | None = None) -> list[Entitlement]:
        return self._select(
            "entitlements",
            Entitlement,
            {"tenant_id": tenant_id, "user_id": user_id},
            order="user_id",
        )

    def assignments(
        self,
        tenant_id: str,
        *,
        module: str | None = None,
        user_id: str | None = None,
        defaults_only: bool = False,
        limit: int = 100,
    ) -> list[Assignment]:
        return self._select(
            "assignments",
            Assignment,
            {"tenant_id": tenant_id, "module": module, "user_id": user_id},
            extra=("user_id IS NULL",) if defaults_only else (),
            order="assigned_at DESC, module, platform, channel",
            limit=limit,
        )

    def delete_assignment(self, tenant_id: str, user_id: str | None, scope: ReleaseScope) -> bool:
        ph = self._ph
        who = "user_id IS NULL" if user_id is None else f"user_id = {ph}"
        params: list[Any] = [tenant_id, scope.module, scope.platform, scope.channel]
        if user_id is not None:
            params.append(user_id)
        deleted = self._query(
            f"DELETE FROM {self._prefix}assignments WHERE tenant_id = {ph} AND module = {ph}"  # noqa: S608
            f" AND platform = {ph} AND channel = {ph} AND {who} RETURNING release_id",
            params,
        )
        return bool(deleted)

    def set_release_status(
        self, tenant_id: str, release_id: int, status: ReleaseStatus
    ) -> Release | None:
        ph = self._ph
        rows = self._query(
            f"UPDATE {self._prefix}releases SET status = {ph}"  # noqa: S608 - fixed names
            f" WHERE tenant_id = {ph} AND id = {ph} RETURNING *",
            [ReleaseStatus(status).value, tenant_id, int(release_id)],
        )
        return self._codec.value(dict(rows[0]), Release) if rows else None
