"""The SQLite vault repositories: tables ``vault_secrets``, ``vault_secret_versions`` and
``vault_bindings`` (schema version 4), always filtered by tenant, in the unit's
``BEGIN IMMEDIATE`` transaction (so ``modify``, the rotation's check-and-set, is atomic).

Envelopes are stored as their wire document (:func:`~botmox_core.vault.envelopes.envelope_document`,
JSON text) and read back through :func:`~botmox_core.vault.envelopes.parse_envelope`, which
checks them again: a row altered in the file reads as a :class:`DatabaseError`, never as a
malformed envelope. Recipients are a JSON array of ``{"agent_id", "key_id"}``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from botmox_core.backends.sqlite.columns import (
    decode_json_array,
    decode_json_object,
    decode_timestamp,
    encode_json_object,
    encode_timestamp,
)
from botmox_core.backends.sqlite.repositories import Statements
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

__all__ = ["SqliteSecretBindingRepository", "SqliteSecretRepository"]

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


def _recipients_text(recipients: Sequence[SecretRecipient]) -> str:
    return json.dumps(
        [{"agent_id": r.agent_id, "key_id": r.key_id} for r in recipients],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _recipients(text: str) -> tuple[SecretRecipient, ...]:
    return tuple(
        SecretRecipient(agent_id=str(item["agent_id"]), key_id=str(item["key_id"]))
        for item in decode_json_array(text)
    )


def _optional_time(text: str | None) -> Any:
    return None if text is None else decode_timestamp(text)


def _secret_row(secret: Secret) -> tuple[Any, ...]:
    return (
        secret.tenant_id,
        secret.id,
        secret.label,
        secret.alg,
        secret.version,
        secret.key_id,
        _recipients_text(secret.recipients),
        encode_json_object(dict(secret.aad_meta), "aad_meta"),
        encode_timestamp(secret.created_at),
        encode_timestamp(secret.updated_at),
        None if secret.rotated_at is None else encode_timestamp(secret.rotated_at),
        secret.created_by,
    )


def _secret(row: sqlite3.Row) -> Secret:
    try:
        return Secret(
            id=row["id"],
            tenant_id=row["tenant_id"],
            label=row["label"],
            alg=row["alg"],
            version=row["version"],
            key_id=row["key_id"],
            recipients=_recipients(row["recipients"]),
            aad_meta=decode_json_object(row["aad_meta"]),
            created_at=decode_timestamp(row["created_at"]),
            updated_at=decode_timestamp(row["updated_at"]),
            rotated_at=_optional_time(row["rotated_at"]),
            created_by=row["created_by"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DatabaseError(f"a stored secret is malformed: {exc}") from exc


def _envelope(text: str | None) -> Envelope | None:
    if text is None:
        return None
    try:
        return parse_envelope(json.loads(text), default_alg=None)
    except (BotmoxError, TypeError, ValueError, AttributeError):
        # never the stored text: it is ciphertext
        raise DatabaseError("a stored secret envelope is malformed") from None


def _version(row: sqlite3.Row) -> SecretVersion:
    try:
        return SecretVersion(
            tenant_id=row["tenant_id"],
            secret_id=row["secret_id"],
            version=row["version"],
            alg=row["alg"],
            recipients=_recipients(row["recipients"]),
            key_id=row["key_id"],
            created_at=decode_timestamp(row["created_at"]),
            created_by=row["created_by"],
            envelope=_envelope(row["envelope"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DatabaseError(f"a stored secret version is malformed: {exc}") from exc


def _binding(row: sqlite3.Row) -> SecretBinding:
    try:
        return SecretBinding(
            id=row["id"],
            tenant_id=row["tenant_id"],
            scope_type=ScopeType(row["scope_type"]),
            scope_id=row["scope_id"],
            field_name=row["field_name"],
            secret_ref=row["secret_ref"],
            created_at=decode_timestamp(row["created_at"]),
            updated_at=decode_timestamp(row["updated_at"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DatabaseError(f"a stored secret binding is malformed: {exc}") from exc


class SqliteSecretRepository:
    """Secrets in ``vault_secrets`` and their versions in ``vault_secret_versions``."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def add(self, secret: Secret) -> None:
        """Store a new secret; :class:`DuplicateError` when the tenant has that id."""
        cursor = self._sql.run(
            f"INSERT INTO vault_secrets ({_META_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"  # noqa: S608 - fixed names
            " ON CONFLICT DO NOTHING",
            _secret_row(secret),
        )
        if cursor.rowcount == 0:
            raise DuplicateError(
                "a secret with this id already exists", details={"constraint": "secret_id"}
            )

    def get(self, tenant_id: str, secret_id: str) -> Secret | None:
        rows = self._sql.rows(
            f"SELECT {_META_COLUMNS} FROM vault_secrets WHERE tenant_id = ? AND id = ?",  # noqa: S608 - fixed names
            (tenant_id, secret_id),
        )
        return _secret(rows[0]) if rows else None

    def modify(
        self, tenant_id: str, secret_id: str, change: Callable[[Secret], Secret]
    ) -> Secret | None:
        """Replace the secret with ``change(current)`` in this unit's write transaction."""

        def write(updated: Secret) -> Secret:
            self._sql.run(
                "UPDATE vault_secrets SET tenant_id = ?, id = ?, label = ?, alg = ?, version = ?,"
                " key_id = ?, recipients = ?, aad_meta = ?, created_at = ?, updated_at = ?,"
                " rotated_at = ?, created_by = ? WHERE tenant_id = ? AND id = ?",
                (*_secret_row(updated), tenant_id, secret_id),
            )
            return updated

        return modify_record(self.get(tenant_id, secret_id), change, write)

    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[Secret]:
        rows = self._sql.rows(
            f"SELECT {_META_COLUMNS} FROM vault_secrets WHERE tenant_id = ? AND id > ?"  # noqa: S608 - fixed names
            " ORDER BY id LIMIT ?",
            (tenant_id, after if after is not None else "", max(0, limit)),
        )
        return [_secret(row) for row in rows]

    def add_version(self, version: SecretVersion) -> None:
        """Store a version; :class:`DuplicateError` when that version exists."""
        envelope = (
            None
            if version.envelope is None
            else json.dumps(envelope_document(version.envelope), separators=(",", ":"))
        )
        cursor = self._sql.run(
            f"INSERT INTO vault_secret_versions ({_VERSION_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)"  # noqa: S608 - fixed names
            " ON CONFLICT DO NOTHING",
            (
                version.tenant_id,
                version.secret_id,
                version.version,
                version.alg,
                _recipients_text(version.recipients),
                version.key_id,
                encode_timestamp(version.created_at),
                version.created_by,
                envelope,
            ),
        )
        if cursor.rowcount == 0:
            raise DuplicateError(
                "this version of the secret already exists",
                details={"constraint": "secret_version"},
            )

    def get_version(self, tenant_id: str, secret_id: str, version: int) -> SecretVersion | None:
        rows = self._sql.rows(
            f"SELECT {_VERSION_COLUMNS} FROM vault_secret_versions"  # noqa: S608 - fixed names
            " WHERE tenant_id = ? AND secret_id = ? AND version = ?",
            (tenant_id, secret_id, version),
        )
        return _version(rows[0]) if rows else None

    def versions(self, tenant_id: str, secret_id: str) -> Sequence[SecretVersion]:
        rows = self._sql.rows(
            f"SELECT {_VERSION_COLUMNS} FROM vault_secret_versions"  # noqa: S608 - fixed names
            " WHERE tenant_id = ? AND secret_id = ? ORDER BY version DESC",
            (tenant_id, secret_id),
        )
        return [_version(row) for row in rows]

    def drop_envelopes(self, tenant_id: str, secret_id: str, *, below: int) -> int:
        cursor = self._sql.run(
            "UPDATE vault_secret_versions SET envelope = NULL"
            " WHERE tenant_id = ? AND secret_id = ? AND version < ? AND envelope IS NOT NULL",
            (tenant_id, secret_id, below),
        )
        return max(0, cursor.rowcount)


class SqliteSecretBindingRepository:
    """Bindings in ``vault_bindings``, keyed by (tenant, scope_type, scope_id, field_name)."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def upsert(self, binding: SecretBinding) -> SecretBinding:
        rows = self._sql.rows(
            f"INSERT INTO vault_bindings ({_BINDING_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)"  # noqa: S608 - fixed names
            " ON CONFLICT (tenant_id, scope_type, scope_id, field_name) DO UPDATE"
            " SET secret_ref = excluded.secret_ref, updated_at = excluded.updated_at"
            f" RETURNING {_BINDING_COLUMNS}",
            (
                binding.tenant_id,
                str(binding.scope_type),
                binding.scope_id,
                binding.field_name,
                binding.id,
                binding.secret_ref,
                encode_timestamp(binding.created_at),
                encode_timestamp(binding.updated_at),
            ),
        )
        return _binding(rows[0])

    def get(
        self, tenant_id: str, scope_type: ScopeType, scope_id: str, field_name: str
    ) -> SecretBinding | None:
        rows = self._sql.rows(
            f"SELECT {_BINDING_COLUMNS} FROM vault_bindings WHERE tenant_id = ?"  # noqa: S608 - fixed names
            " AND scope_type = ? AND scope_id = ? AND field_name = ?",
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
        where = ["tenant_id = ?"]
        params: list[Any] = [tenant_id]
        for column, value in (
            ("scope_type", None if scope_type is None else str(scope_type)),
            ("scope_id", scope_id),
            ("secret_ref", secret_ref),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        params.append(max(0, limit))
        rows = self._sql.rows(
            f"SELECT {_BINDING_COLUMNS} FROM vault_bindings WHERE {' AND '.join(where)}"  # noqa: S608 - fixed names
            " ORDER BY created_at DESC, id ASC LIMIT ?",
            params,
        )
        return [_binding(row) for row in rows]

    def delete(self, tenant_id: str, scope_type: ScopeType, scope_id: str, field_name: str) -> bool:
        cursor = self._sql.run(
            "DELETE FROM vault_bindings WHERE tenant_id = ? AND scope_type = ?"
            " AND scope_id = ? AND field_name = ?",
            (tenant_id, str(scope_type), scope_id, field_name),
        )
        return cursor.rowcount > 0
