"""The vault repositories of the Supabase backend (migration ``20261202000000``): secrets in
``botmox.vault_secrets``, their versions in ``botmox.vault_secret_versions`` and bindings in
``botmox.vault_bindings``.

* Envelopes are stored as their wire document
  (:func:`~botmox_core.vault.envelopes.envelope_document`, a ``jsonb`` object) and read back
  through :func:`~botmox_core.vault.envelopes.parse_envelope`, which checks them again: a row
  altered in the database reads as a :class:`~botmox_core.errors.DatabaseError`, never as a
  malformed envelope. Nothing here opens an envelope.
* No message this module raises carries a stored value: a database error is mapped
  (:func:`~botmox_supabase.error_mapping.map_database_error`: the SQLSTATE and the constraint
  name) and raised *without* its psycopg cause, whose detail text may quote the failing row
  (its ciphertext and nonce) and would otherwise reach a logged traceback.
* ``secrets.modify`` reads the row ``FOR UPDATE`` in the unit's transaction: concurrent
  rotations of one secret queue up and none is lost (the rotation's check-and-set).
* ``bindings.upsert`` is one ``insert ... on conflict (tenant_id, scope_type, scope_id,
  field_name) do update``; the composite foreign key ``(tenant_id, secret_ref)`` makes the
  database refuse a binding to a secret of another tenant, too.

Every statement names the tenant, like the other repositories of this backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from botmox_core.errors import BotmoxError, DatabaseError, DuplicateError
from botmox_core.ports.modify import modify_record
from botmox_core.vault.envelopes import Envelope, envelope_document, parse_envelope
from botmox_core.vault.models import (
    ScopeType,
    Secret,
    SecretBinding,
    SecretRecipient,
    SecretVersion,
)
from botmox_supabase.domain_repositories import dump_json
from botmox_supabase.error_mapping import map_database_error

__all__ = ["VAULT_TABLES", "PostgresSecretBindingRepository", "PostgresSecretRepository"]

#: The tables of the vault (schema ``botmox``).
VAULT_TABLES: tuple[str, ...] = ("vault_secrets", "vault_secret_versions", "vault_bindings")

_META_COLUMNS = (
    "tenant_id, id, label, alg, version, key_id, recipients, aad_meta, created_at, updated_at,"
    " rotated_at, created_by"
)
_VERSION_COLUMNS = (
    "tenant_id, secret_id, version, alg, recipients, key_id, created_at, created_by, envelope"
)
_BINDING_COLUMNS = (
    "tenant_id, scope_type, scope_id, field_name, id, secret_ref, created_at, updated_at"
)

Connection = Callable[[], psycopg.Connection[Any]]


@contextmanager
def _vault_errors(action: str) -> Iterator[None]:
    """Map database errors like :func:`~botmox_supabase.error_mapping.map_database_errors`, but
    drop the psycopg cause: its diagnostics may quote a failing row (an envelope)."""
    try:
        yield
    except (
        psycopg.Error,
        psycopg_pool.PoolTimeout,
        psycopg_pool.PoolClosed,
        UnicodeEncodeError,
    ) as exc:
        mapped = map_database_error(exc, action)
    else:
        return
    raise mapped from None


def _jsonb(value: Any) -> Jsonb:
    text = dump_json(value)
    return Jsonb(value, dumps=lambda _value: text)


def _recipients_json(recipients: Sequence[SecretRecipient]) -> Jsonb:
    return _jsonb([{"agent_id": r.agent_id, "key_id": r.key_id} for r in recipients])


def _recipients(value: Any) -> tuple[SecretRecipient, ...]:
    if not isinstance(value, list):
        raise TypeError("recipients must be a JSON array")
    return tuple(
        SecretRecipient(agent_id=str(item["agent_id"]), key_id=str(item["key_id"]))
        for item in value
    )


def _time(value: Any) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise TypeError("a stored time is not a timestamptz")
    return value


def _envelope(value: Any) -> Envelope | None:
    if value is None:
        return None
    try:
        return parse_envelope(value, default_alg=None)
    except (BotmoxError, TypeError, ValueError, AttributeError, KeyError):
        # never the stored value: it is ciphertext
        raise DatabaseError("a stored secret envelope is malformed") from None


def _secret(row: dict[str, Any]) -> Secret:
    try:
        aad_meta = row["aad_meta"]
        if not isinstance(aad_meta, dict):
            raise TypeError("aad_meta must be a JSON object")
        return Secret(
            id=row["id"],
            tenant_id=row["tenant_id"],
            label=row["label"],
            alg=row["alg"],
            version=row["version"],
            key_id=row["key_id"],
            recipients=_recipients(row["recipients"]),
            aad_meta=aad_meta,
            created_at=_time(row["created_at"]),
            updated_at=_time(row["updated_at"]),
            rotated_at=None if row["rotated_at"] is None else _time(row["rotated_at"]),
            created_by=row["created_by"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DatabaseError(f"a stored secret is malformed: {exc}") from None


def _version(row: dict[str, Any]) -> SecretVersion:
    envelope = _envelope(row["envelope"])
    try:
        return SecretVersion(
            tenant_id=row["tenant_id"],
            secret_id=row["secret_id"],
            version=row["version"],
            alg=row["alg"],
            recipients=_recipients(row["recipients"]),
            key_id=row["key_id"],
            created_at=_time(row["created_at"]),
            created_by=row["created_by"],
            envelope=envelope,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DatabaseError(f"a stored secret version is malformed: {exc}") from None


def _binding(row: dict[str, Any]) -> SecretBinding:
    try:
        return SecretBinding(
            id=row["id"],
            tenant_id=row["tenant_id"],
            scope_type=ScopeType(row["scope_type"]),
            scope_id=row["scope_id"],
            field_name=row["field_name"],
            secret_ref=row["secret_ref"],
            created_at=_time(row["created_at"]),
            updated_at=_time(row["updated_at"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DatabaseError(f"a stored secret binding is malformed: {exc}") from None


def _secret_params(secret: Secret) -> tuple[Any, ...]:
    return (
        secret.tenant_id,
        secret.id,
        secret.label,
        secret.alg,
        secret.version,
        secret.key_id,
        _recipients_json(secret.recipients),
        _jsonb(dict(secret.aad_meta)),
        secret.created_at,
        secret.updated_at,
        secret.rotated_at,
        secret.created_by,
    )


class _Repository:
    _action = "vault"

    def __init__(self, connection: Connection) -> None:
        # A callable, not the connection: used after its unit of work ended, it raises.
        self._connection = connection

    def _rows(self, query: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        with (
            _vault_errors(self._action),
            self._connection().cursor(row_factory=dict_row) as cur,
        ):
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

    def _count(self, query: str, params: Sequence[Any]) -> int:
        with _vault_errors(self._action), self._connection().cursor() as cur:
            cur.execute(query, params)
            return max(0, cur.rowcount)


class PostgresSecretRepository(_Repository):
    """:class:`~botmox_core.ports.vault.SecretRepository` on ``botmox.vault_secrets`` and
    ``botmox.vault_secret_versions``."""

    _action = "secret"

    def add(self, secret: Secret) -> None:
        """Store a new secret; :class:`DuplicateError` when the tenant has that id."""
        added = self._count(
            f"insert into botmox.vault_secrets ({_META_COLUMNS})"  # noqa: S608 - fixed names
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) on conflict do nothing",
            _secret_params(secret),
        )
        if added == 0:
            raise DuplicateError(
                "a secret with this id already exists", details={"constraint": "secret_id"}
            )

    def get(self, tenant_id: str, secret_id: str) -> Secret | None:
        rows = self._rows(
            f"select {_META_COLUMNS} from botmox.vault_secrets"  # noqa: S608 - fixed names
            " where tenant_id = %s and id = %s",
            (tenant_id, secret_id),
        )
        return _secret(rows[0]) if rows else None

    def modify(
        self, tenant_id: str, secret_id: str, change: Callable[[Secret], Secret]
    ) -> Secret | None:
        """Replace the secret with ``change(current)``; the row stays locked until the unit of
        work ends, so a concurrent modify waits and then reads this one's result."""
        rows = self._rows(
            f"select {_META_COLUMNS} from botmox.vault_secrets"  # noqa: S608 - fixed names
            " where tenant_id = %s and id = %s for update",
            (tenant_id, secret_id),
        )

        def write(updated: Secret) -> Secret:
            self._count(
                "update botmox.vault_secrets set tenant_id = %s, id = %s, label = %s, alg = %s,"
                " version = %s, key_id = %s, recipients = %s, aad_meta = %s, created_at = %s,"
                " updated_at = %s, rotated_at = %s, created_by = %s"
                " where tenant_id = %s and id = %s",
                (*_secret_params(updated), tenant_id, secret_id),
            )
            return updated

        return modify_record(_secret(rows[0]) if rows else None, change, write)

    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[Secret]:
        rows = self._rows(
            f"select {_META_COLUMNS} from botmox.vault_secrets"  # noqa: S608 - fixed names
            " where tenant_id = %s and id > %s order by id limit %s",
            (tenant_id, after if after is not None else "", max(0, limit)),
        )
        return [_secret(row) for row in rows]

    def add_version(self, version: SecretVersion) -> None:
        """Store a version; :class:`DuplicateError` when that version exists."""
        envelope = None if version.envelope is None else _jsonb(envelope_document(version.envelope))
        added = self._count(
            f"insert into botmox.vault_secret_versions ({_VERSION_COLUMNS})"  # noqa: S608 - fixed names
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s) on conflict do nothing",
            (
                version.tenant_id,
                version.secret_id,
                version.version,
                version.alg,
                _recipients_json(version.recipients),
                version.key_id,
                version.created_at,
                version.created_by,
                envelope,
            ),
        )
        if added == 0:
            raise DuplicateError(
                "this version of the secret already exists",
                details={"constraint": "secret_version"},
            )

    def get_version(self, tenant_id: str, secret_id: str, version: int) -> SecretVersion | None:
        rows = self._rows(
            f"select {_VERSION_COLUMNS} from botmox.vault_secret_versions"  # noqa: S608 - fixed names
            " where tenant_id = %s and secret_id = %s and version = %s",
            (tenant_id, secret_id, version),
        )
        return _version(rows[0]) if rows else None

    def versions(self, tenant_id: str, secret_id: str) -> Sequence[SecretVersion]:
        rows = self._rows(
            f"select {_VERSION_COLUMNS} from botmox.vault_secret_versions"  # noqa: S608 - fixed names
            " where tenant_id = %s and secret_id = %s order by version desc",
            (tenant_id, secret_id),
        )
        return [_version(row) for row in rows]

    def drop_envelopes(self, tenant_id: str, secret_id: str, *, below: int) -> int:
        return self._count(
            "update botmox.vault_secret_versions set envelope = null"
            " where tenant_id = %s and secret_id = %s and version < %s and envelope is not null",
            (tenant_id, secret_id, below),
        )


class PostgresSecretBindingRepository(_Repository):
    """:class:`~botmox_core.ports.vault.SecretBindingRepository` on ``botmox.vault_bindings``."""

    _action = "secret binding"

    def upsert(self, binding: SecretBinding) -> SecretBinding:
        rows = self._rows(
            f"insert into botmox.vault_bindings ({_BINDING_COLUMNS})"  # noqa: S608 - fixed names
            " values (%s, %s, %s, %s, %s, %s, %s, %s)"
            " on conflict (tenant_id, scope_type, scope_id, field_name) do update"
            " set secret_ref = excluded.secret_ref, updated_at = excluded.updated_at"
            f" returning {_BINDING_COLUMNS}",
            (
                binding.tenant_id,
                str(binding.scope_type),
                binding.scope_id,
                binding.field_name,
                binding.id,
                binding.secret_ref,
                binding.created_at,
                binding.updated_at,
            ),
        )
        return _binding(rows[0])

    def get(
        self, tenant_id: str, scope_type: ScopeType, scope_id: str, field_name: str
    ) -> SecretBinding | None:
        rows = self._rows(
            f"select {_BINDING_COLUMNS} from botmox.vault_bindings"  # noqa: S608 - fixed names
            " where tenant_id = %s and scope_type = %s and scope_id = %s and field_name = %s",
            (tenant_id, str(scope_type), scope_id, field_name),
        )
        return _binding(rows[0]) if rows else None

    def list(
        self,
        tenant_id: str,
        *,
        scope_type: ScopeType | None = None,
        scope_id: str | None = None,
        secret_ref: str | None = None,
        limit: int = 1000,
    ) -> Sequence[SecretBinding]:
        where = ["tenant_id = %s"]
        params: list[Any] = [tenant_id]
        for column, value in (
            ("scope_type", None if scope_type is None else str(scope_type)),
            ("scope_id", scope_id),
            ("secret_ref", secret_ref),
        ):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        params.append(max(0, limit))
        rows = self._rows(
            f"select {_BINDING_COLUMNS} from botmox.vault_bindings"  # noqa: S608 - fixed names
            f" where {' and '.join(where)} order by created_at desc, id limit %s",
            params,
        )
        return [_binding(row) for row in rows]

    def delete(self, tenant_id: str, scope_type: ScopeType, scope_id: str, field_name: str) -> bool:
        return (
            self._count(
                "delete from botmox.vault_bindings where tenant_id = %s and scope_type = %s"
                " and scope_id = %s and field_name = %s",
                (tenant_id, str(scope_type), scope_id, field_name),
            )
            > 0
        )
