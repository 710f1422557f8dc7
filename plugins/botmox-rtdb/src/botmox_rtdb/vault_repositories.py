"""The vault repositories on RTDB: secrets, their versions (the stored envelopes) and bindings.

Layout, for every tenant — the legacy tenant too (the seed kept secrets only in Supabase, so
there is no seed path to honour)::

    tenants/{tenant_id}/vault/
        secrets/{secret_id}             the secret's metadata
        versions/{secret_id}/{version}  one version: metadata and (until retention drops it)
                                        the envelope
        bindings/{binding_key}          a binding; binding_key = SHA-256 (hex) of the JSON
                                        array [scope_type, scope_id, field_name]

Values: times are ISO 8601 text with milliseconds (like every RTDB record); ``recipients`` is an
array of ``{agent_id, key_id}`` (absent when empty); ``aad_meta`` and ``envelope`` are JSON
*text* (the envelope's wire document, :func:`~botmox_core.vault.envelopes.envelope_document`),
so RTDB's changes to JSON (dropped nulls and empty objects, keys it cannot store) never alter
them. Envelopes are read back through :func:`~botmox_core.vault.envelopes.parse_envelope`: a
value altered in the database reads as a :class:`~botmox_core.errors.DatabaseError` whose
message never quotes it. Nothing here opens an envelope. A binding's key is a hash because scope
ids and field names may hold characters an RTDB key cannot (``.``, ``/``, ``#``...).

Writes are staged in the unit's :class:`~botmox_rtdb.write_buffer.WriteBuffer`:

* ``secrets.add``, ``add_version``: conditional creates (refused at commit if a racing writer
  took the id or version first; refused at once when already visible);
* ``secrets.modify`` (the rotation's check-and-set): a conditional write applied at commit by
  ETag compare-and-set; on a conflict the change runs again on the value that won (so a
  rotation that expects a version raises its conflict, and no update is lost). It runs before
  the unit's other conditional writes; if a later one fails (a racing rotation already stored
  that version: :class:`~botmox_core.errors.DuplicateError`), it is undone;
* ``bindings.upsert``: a conditional write (keeps ``id`` and ``created_at`` of the binding it
  finds at commit);
* ``drop_envelopes`` and ``bindings.delete``: plain writes in the unit's one multi-path update.

``bindings.list`` with ``secret_ref`` or ``scope_id`` is an indexed ``orderByChild`` query
(``.indexOn`` in :mod:`botmox_rtdb.rules`); otherwise it reads the tenant's bindings.

Size: just over 500 lines; the secret and binding repositories share one layout, its value
codecs and the write-buffer rules above, which read best in one place.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from botmox_core.converter import format_timestamp, parse_timestamp
from botmox_core.errors import BotmoxError, DatabaseError, DuplicateError
from botmox_core.ports.modify import checked_change
from botmox_core.vault.envelopes import Envelope, envelope_document, parse_envelope
from botmox_core.vault.models import (
    ScopeType,
    Secret,
    SecretBinding,
    SecretRecipient,
    SecretVersion,
)
from botmox_rtdb.layout import checked_key, tenant_path
from botmox_rtdb.queries import query_string_value
from botmox_rtdb.records import children_of
from botmox_rtdb.sdk_errors import map_rtdb_errors
from botmox_rtdb.transactions import UNCHANGED
from botmox_rtdb.write_buffer import ConditionalWrite, WriteBuffer, create_if_absent

__all__ = [
    "BINDINGS",
    "SECRETS",
    "VAULT",
    "VERSIONS",
    "RtdbSecretBindingRepository",
    "RtdbSecretRepository",
    "binding_key",
]

VAULT = "vault"
SECRETS = f"{VAULT}/secrets"
VERSIONS = f"{VAULT}/versions"
BINDINGS = f"{VAULT}/bindings"


def binding_key(scope_type: ScopeType | str, scope_id: str, field_name: str) -> str:
    """The RTDB key of a binding: SHA-256 (lower-case hex) of the UTF-8 JSON array
    ``[scope_type, scope_id, field_name]`` (no spaces, non-ASCII kept)."""
    text = json.dumps(
        [str(scope_type), scope_id, field_name], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# -- values ---------------------------------------------------------------------------------


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _recipients_value(recipients: Sequence[SecretRecipient]) -> list[dict[str, str]] | None:
    return [{"agent_id": r.agent_id, "key_id": r.key_id} for r in recipients] or None


def _recipients(stored: Any) -> tuple[SecretRecipient, ...]:
    if stored is None:
        return ()
    items = children_of(stored)
    ordered = [items[key] for key in sorted(items, key=int)]
    return tuple(
        SecretRecipient(agent_id=str(item["agent_id"]), key_id=str(item["key_id"]))
        for item in ordered
    )


def _time(stored: Any) -> Any:
    if not isinstance(stored, str):
        raise TypeError("a stored time is not text")
    return parse_timestamp(stored)


def _without_none(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def _secret_value(secret: Secret) -> dict[str, Any]:
    return _without_none(
        {
            "label": secret.label,
            "alg": secret.alg,
            "version": secret.version,
            "key_id": secret.key_id,
            "recipients": _recipients_value(secret.recipients),
            "aad_meta": _json_text(dict(secret.aad_meta)),
            "created_at": format_timestamp(secret.created_at),
            "updated_at": format_timestamp(secret.updated_at),
            "rotated_at": (
                None if secret.rotated_at is None else format_timestamp(secret.rotated_at)
            ),
            "created_by": secret.created_by,
        }
    )


def _secret(tenant_id: str, secret_id: str, stored: Any) -> Secret:
    try:
        aad_meta = json.loads(stored.get("aad_meta", "{}"))
        if not isinstance(aad_meta, dict):
            raise TypeError("aad_meta is not a JSON object")
        version = stored["version"]
        if not isinstance(version, int) or isinstance(version, bool):
            raise TypeError("version is not an integer")
        rotated_at = stored.get("rotated_at")
        return Secret(
            id=secret_id,
            tenant_id=tenant_id,
            label=str(stored["label"]),
            alg=str(stored["alg"]),
            version=version,
            key_id=stored.get("key_id"),
            recipients=_recipients(stored.get("recipients")),
            aad_meta=aad_meta,
            created_at=_time(stored["created_at"]),
            updated_at=_time(stored["updated_at"]),
            rotated_at=None if rotated_at is None else _time(rotated_at),
            created_by=stored.get("created_by"),
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise DatabaseError(f"a stored secret is malformed: {type(exc).__name__}") from None


def _version_value(version: SecretVersion) -> dict[str, Any]:
    envelope = None if version.envelope is None else _json_text(envelope_document(version.envelope))
    return _without_none(
        {
            "alg": version.alg,
            "recipients": _recipients_value(version.recipients),
            "key_id": version.key_id,
            "created_at": format_timestamp(version.created_at),
            "created_by": version.created_by,
            "envelope": envelope,
        }
    )


def _envelope(stored: Any) -> Envelope | None:
    if stored is None:
        return None
    try:
        return parse_envelope(json.loads(stored), default_alg=None)
    except (BotmoxError, TypeError, ValueError, AttributeError, KeyError):
        # never the stored text: it is ciphertext
        raise DatabaseError("a stored secret envelope is malformed") from None


def _version(tenant_id: str, secret_id: str, number: int, stored: Any) -> SecretVersion:
    envelope = _envelope(stored.get("envelope") if isinstance(stored, dict) else None)
    try:
        return SecretVersion(
            tenant_id=tenant_id,
            secret_id=secret_id,
            version=number,
            alg=str(stored["alg"]),
            recipients=_recipients(stored.get("recipients")),
            key_id=stored.get("key_id"),
            created_at=_time(stored["created_at"]),
            created_by=stored.get("created_by"),
            envelope=envelope,
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise DatabaseError(f"a stored secret version is malformed: {type(exc).__name__}") from None


def _binding_value(binding: SecretBinding) -> dict[str, Any]:
    return {
        "scope_type": str(binding.scope_type),
        "scope_id": binding.scope_id,
        "field_name": binding.field_name,
        "id": binding.id,
        "secret_ref": binding.secret_ref,
        "created_at": format_timestamp(binding.created_at),
        "updated_at": format_timestamp(binding.updated_at),
    }


def _binding(tenant_id: str, stored: Any) -> SecretBinding:
    try:
        return SecretBinding(
            id=str(stored["id"]),
            tenant_id=tenant_id,
            scope_type=ScopeType(stored["scope_type"]),
            scope_id=str(stored["scope_id"]),
            field_name=str(stored["field_name"]),
            secret_ref=str(stored["secret_ref"]),
            created_at=_time(stored["created_at"]),
            updated_at=_time(stored["updated_at"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DatabaseError(f"a stored secret binding is malformed: {type(exc).__name__}") from None


def _version_key(key: str) -> int | None:
    return int(key) if key.isascii() and key.isdigit() and not key.startswith("0") else None


# -- repositories ---------------------------------------------------------------------------


class _Vault:
    def __init__(self, buffer: WriteBuffer) -> None:
        self._buffer = buffer

    def _children(self, parent: str, operation: str, query: Any = None) -> dict[str, Any]:
        """The children of ``parent`` (or of ``query`` on it) with this unit's pending writes
        (deletes removed)."""
        with map_rtdb_errors(operation):
            found = (query if query is not None else self._buffer.ref(parent)).get()
        children = {key: value for key, value in children_of(found).items() if value is not None}
        for key, value in self._buffer.pending_children(parent).items():
            if value is None:
                children.pop(key, None)
            else:
                children[key] = value
        return children


class RtdbSecretRepository(_Vault):
    """:class:`~botmox_core.ports.vault.SecretRepository` at ``tenants/{tenant}/vault``."""

    @staticmethod
    def _path(tenant_id: str, secret_id: str) -> str:
        return tenant_path(tenant_id, SECRETS, checked_key(secret_id, "secret id"))

    @staticmethod
    def _versions_path(tenant_id: str, secret_id: str) -> str:
        return tenant_path(tenant_id, VERSIONS, checked_key(secret_id, "secret id"))

    def add(self, secret: Secret) -> None:
        """Stage a new secret; :class:`DuplicateError` now, or at commit if a racing writer took
        the id first."""
        path = self._path(secret.tenant_id, secret.id)

        def exists() -> DuplicateError:
            return DuplicateError(
                "a secret with this id already exists", details={"constraint": "secret_id"}
            )

        if self._buffer.read(path) is not None:
            raise exists()
        self._buffer.stage_conditional(
            create_if_absent(path, _secret_value(secret), exists, "add secret")
        )

    def get(self, tenant_id: str, secret_id: str) -> Secret | None:
        stored = self._buffer.read(self._path(tenant_id, secret_id))
        return None if stored is None else _secret(tenant_id, secret_id, stored)

    def modify(
        self, tenant_id: str, secret_id: str, change: Callable[[Secret], Secret]
    ) -> Secret | None:
        """Stage ``change(current)``; applied at commit by compare-and-set (module docstring)."""
        path = self._path(tenant_id, secret_id)
        stored = self._buffer.read(path)
        if stored is None:
            return None
        current = _secret(tenant_id, secret_id, stored)
        updated = checked_change(current, change)
        if updated == current:
            return current
        pending = self._buffer.pending_conditional(path)
        if pending is not None:  # created or modified earlier in this unit: change that value
            pending.pending_value = _secret_value(updated)
            if isinstance(pending, _SecretChange):
                pending.steps.append(change)
            return updated
        self._buffer.stage_conditional(
            _SecretChange(tenant_id, secret_id, path, stored, _secret_value(updated), change)
        )
        return updated

    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[Secret]:
        if limit <= 0:
            return []
        parent = tenant_path(tenant_id, SECRETS)
        query = self._buffer.ref(parent).order_by_key()
        if after is not None:
            query = query.start_at(query_string_value(after))
        query = query.limit_to_first(limit + 1)
        children = self._children(parent, "scan secrets", query)
        keys = sorted(key for key in children if after is None or key > after)[:limit]
        return [_secret(tenant_id, key, children[key]) for key in keys]

    def add_version(self, version: SecretVersion) -> None:
        """Stage a version; :class:`DuplicateError` now, or at commit if a racing writer stored
        that version first."""
        path = f"{self._versions_path(version.tenant_id, version.secret_id)}/{version.version}"

        def exists() -> DuplicateError:
            return DuplicateError(
                "this version of the secret already exists",
                details={"constraint": "secret_version"},
            )

        if self._buffer.read(path) is not None:
            raise exists()
        self._buffer.stage_conditional(
            create_if_absent(path, _version_value(version), exists, "add secret version")
        )

    def get_version(self, tenant_id: str, secret_id: str, version: int) -> SecretVersion | None:
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            return None
        stored = self._buffer.read(f"{self._versions_path(tenant_id, secret_id)}/{version}")
        return None if stored is None else _version(tenant_id, secret_id, version, stored)

    def _stored_versions(self, tenant_id: str, secret_id: str) -> list[tuple[int, str, Any]]:
        parent = self._versions_path(tenant_id, secret_id)
        found = []
        for key, stored in self._children(parent, "read secret versions").items():
            number = _version_key(key)
            if number is not None:
                found.append((number, f"{parent}/{key}", stored))
        return sorted(found, key=lambda item: item[0], reverse=True)

    def versions(self, tenant_id: str, secret_id: str) -> Sequence[SecretVersion]:
        return [
            _version(tenant_id, secret_id, number, stored)
            for number, _, stored in self._stored_versions(tenant_id, secret_id)
        ]

    def drop_envelopes(self, tenant_id: str, secret_id: str, *, below: int) -> int:
        dropped = 0
        for number, path, stored in self._stored_versions(tenant_id, secret_id):
            if number < below and isinstance(stored, dict) and "envelope" in stored:
                self._buffer.stage_write(
                    path, {key: value for key, value in stored.items() if key != "envelope"}
                )
                dropped += 1
        return dropped


class _SecretChange(ConditionalWrite):
    """A staged ``secrets.modify``: at commit, writes the new value if the secret is still what
    was read, else runs the change(s) again on the value that won."""

    def __init__(
        self,
        tenant_id: str,
        secret_id: str,
        path: str,
        base: Any,
        new: Any,
        change: Callable[[Secret], Secret],
    ) -> None:
        super().__init__(path, self._apply, self._undo, path, new, "modify secret")
        self.steps: list[Callable[[Secret], Secret]] = [change]
        self._tenant_id = tenant_id
        self._secret_id = secret_id
        self._base = base
        self._before: Any = None

    def _apply(self, current: Any) -> Any:
        self._before = current
        if current is None:
            raise DatabaseError("the secret disappeared while it was being changed")
        if current == self._base:
            return self.pending_value
        secret = _secret(self._tenant_id, self._secret_id, current)
        for step in self.steps:
            secret = checked_change(secret, step)
        new = _secret_value(secret)
        if new == current:
            return UNCHANGED
        self.pending_value = new
        return new

    def _undo(self, current: Any) -> Any:
        if current != self.pending_value or self._before is None:
            return UNCHANGED
        return self._before


class RtdbSecretBindingRepository(_Vault):
    """:class:`~botmox_core.ports.vault.SecretBindingRepository` at
    ``tenants/{tenant}/vault/bindings``."""

    @staticmethod
    def _path(tenant_id: str, scope_type: ScopeType, scope_id: str, field_name: str) -> str:
        return tenant_path(tenant_id, BINDINGS, binding_key(scope_type, scope_id, field_name))

    def upsert(self, binding: SecretBinding) -> SecretBinding:
        path = self._path(
            binding.tenant_id, binding.scope_type, binding.scope_id, binding.field_name
        )
        fresh = _binding_value(binding)

        def stored_for(current: Any) -> dict[str, Any]:
            if not isinstance(current, dict):
                return fresh
            return {**current, "secret_ref": fresh["secret_ref"], "updated_at": fresh["updated_at"]}

        write = ConditionalWrite(path, lambda _: None, lambda _: None, path, None, "bind secret")
        before: list[Any] = [None]

        def apply(current: Any) -> Any:
            before[0] = current
            write.pending_value = stored_for(current)
            return write.pending_value

        def undo(current: Any) -> Any:
            if current != write.pending_value:
                return UNCHANGED
            return {} if before[0] is None else before[0]

        write.apply, write.undo = apply, undo
        write.pending_value = stored_for(self._buffer.read(path))
        self._buffer.stage_conditional(write)
        return _binding(binding.tenant_id, write.pending_value)

    def get(
        self, tenant_id: str, scope_type: ScopeType, scope_id: str, field_name: str
    ) -> SecretBinding | None:
        stored = self._buffer.read(self._path(tenant_id, scope_type, scope_id, field_name))
        return None if stored is None else _binding(tenant_id, stored)

    def list(
        self,
        tenant_id: str,
        *,
        scope_type: ScopeType | None = None,
        scope_id: str | None = None,
        secret_ref: str | None = None,
        limit: int = 1000,
    ) -> Sequence[SecretBinding]:
        parent = tenant_path(tenant_id, BINDINGS)
        query = None
        for child, value in (("secret_ref", secret_ref), ("scope_id", scope_id)):
            if value is not None:
                query = (
                    self._buffer.ref(parent)
                    .order_by_child(child)
                    .equal_to(query_string_value(value))
                )
                break
        found = [
            _binding(tenant_id, stored)
            for stored in self._children(parent, "list secret bindings", query).values()
        ]
        matching = [
            binding
            for binding in found
            if (scope_type is None or binding.scope_type == scope_type)
            and (scope_id is None or binding.scope_id == scope_id)
            and (secret_ref is None or binding.secret_ref == secret_ref)
        ]
        matching.sort(key=lambda binding: binding.id)
        matching.sort(key=lambda binding: binding.created_at, reverse=True)
        return matching[: max(0, limit)]

    def delete(self, tenant_id: str, scope_type: ScopeType, scope_id: str, field_name: str) -> bool:
        path = self._path(tenant_id, scope_type, scope_id, field_name)
        if self._buffer.read(path) is None:
            return False
        self._buffer.stage_write(path, None)
        return True
