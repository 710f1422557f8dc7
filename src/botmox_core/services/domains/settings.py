"""The settings tree: one JSON object per tenant, read and written at a path.

Paths are parsed by :func:`~botmox_core.services.domains.settings_paths.settings_path` (a bad
one is a 400 ``Invalid settings path``); a write is a merge in both verbs
(:func:`~botmox_core.services.domains.settings_paths.merge_at`: an object written where an
object is merges shallowly, its ``null`` fields delete; anything else replaces the value,
``null`` deletes it). The body is checked by the schema of its path
(:mod:`~botmox_core.services.domains.settings_schemas`), and the answer is the value at the
path after the write. Both modules' names are re-exported here.

Secret fields (:data:`SECRET_FIELDS`: the VM settings' passwords and the ``api_keys`` values)
never hold plaintext: a write that gives one a value is a 400 ``PLAINTEXT_SECRET_REFUSED``
naming the vault binding that fills it (``null`` still deletes, so legacy plaintext can be
removed), and every read shows each of them as :func:`secret_marker` from the bindings instead
of whatever is stored there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from botmox_core.errors import PlaintextSecretRefusedError
from botmox_core.ports.vault import VaultUnitOfWork, supports_vault
from botmox_core.services import validation as check
from botmox_core.services.domains.base import MAX_SETTINGS_BYTES, DomainService
from botmox_core.services.domains.rules import clean_json, encoded_size, invalid
from botmox_core.services.domains.settings_paths import (
    MAX_PATH_SEGMENTS,
    merge_at,
    settings_path,
    value_at,
)
from botmox_core.services.domains.settings_schemas import (
    GENERIC,
    PATH_SCHEMAS,
    ROOT,
    checked_value,
    schema_for,
)
from botmox_core.services.principal import Principal
from botmox_core.vault.models import ScopeType, SecretBinding

__all__ = [
    "GENERIC",
    "MAX_PATH_SEGMENTS",
    "PATH_SCHEMAS",
    "ROOT",
    "SECRET_FIELDS",
    "SettingsService",
    "checked_value",
    "merge_at",
    "refuse_plaintext_secrets",
    "schema_for",
    "secret_marker",
    "settings_path",
    "value_at",
]


# -- secret fields (C-05) -----------------------------------------------------------------------

#: Settings fields that hold secrets, and the vault binding (scope_type, scope_id, field_name)
#: that fills each one. Their stored values are never served and never written.
SECRET_FIELDS: Mapping[tuple[str, ...], tuple[ScopeType, str, str]] = {
    ("vmgenerator", "proxmox", "password"): (
        ScopeType.VM_SETTINGS,
        "vmgenerator",
        "proxmox.password",
    ),
    ("vmgenerator", "ssh", "password"): (ScopeType.VM_SETTINGS, "vmgenerator", "ssh.password"),
    ("vmgenerator", "services", "tinyFmPassword"): (
        ScopeType.VM_SETTINGS,
        "vmgenerator",
        "services.tinyFmPassword",
    ),
    ("vmgenerator", "services", "syncThingPassword"): (
        ScopeType.VM_SETTINGS,
        "vmgenerator",
        "services.syncThingPassword",
    ),
    ("api_keys", "ipqs", "api_key"): (ScopeType.TENANT, "api_keys", "ipqs.api_key"),
    ("api_keys", "telegram", "bot_token"): (ScopeType.TENANT, "api_keys", "telegram.bot_token"),
}
_MISSING = object()
#: How many bindings of one scope a settings read takes in one call (more: field by field).
SCOPE_BINDINGS_READ = 100


def _binding_doc(field: tuple[str, ...]) -> dict[str, str]:
    scope_type, scope_id, field_name = SECRET_FIELDS[field]
    return {"scope_type": scope_type.value, "scope_id": scope_id, "field_name": field_name}


def secret_marker(
    field: tuple[str, ...], binding: SecretBinding | None, legacy: bool = False
) -> dict[str, Any]:
    """What a read shows in place of a secret field: ``set`` (whether a binding fills it), its
    ``secret_ref``, the ``binding`` coordinates, and ``legacy_plaintext: true`` when a
    plaintext from before the vault is still stored there (never shown; delete it with
    ``null``)."""
    marker: dict[str, Any] = {
        "set": binding is not None,
        "secret_ref": None if binding is None else binding.secret_ref,
        "binding": _binding_doc(field),
    }
    if legacy:
        marker["legacy_plaintext"] = True
    return marker


def _lookup(value: Any, path: tuple[str, ...]) -> Any:
    node = value
    for segment in path:
        if not isinstance(node, Mapping) or segment not in node:
            return _MISSING
        node = node[segment]
    return node


def refuse_plaintext_secrets(path: tuple[str, ...], value: Any) -> None:
    """400 ``PLAINTEXT_SECRET_REFUSED`` when writing ``value`` at ``path`` would give a secret
    field a value (``null`` deletes and is allowed)."""
    for field in SECRET_FIELDS:
        if path[: len(field)] == field and len(path) >= len(field):
            found = value
        elif field[: len(path)] == path:
            found = _lookup(value, field[len(path) :])
        else:
            continue
        if found is _MISSING or found is None:
            continue
        binding = _binding_doc(field)
        raise PlaintextSecretRefusedError(
            f"{'/'.join(field)} holds a secret and never takes plaintext: seal it to the "
            "agents with POST /api/v1/secrets (botmox secret put) and bind it with "
            f"POST /api/v1/secrets/bindings {binding}; send null to delete a stored value",
            details={"field": "/".join(field), "binding": binding},
        )


def _overlay(
    value: Any, path: tuple[str, ...], bindings: Mapping[tuple[str, ...], SecretBinding | None]
) -> Any:
    """``value`` (read at ``path``) with each secret field in it replaced by its marker."""
    for field, binding in bindings.items():
        if path[: len(field)] == field and len(path) > len(field):
            return None  # inside a secret field: a legacy value is never served
        if field[: len(path)] != path:
            continue
        rest = field[len(path) :]
        if not rest:
            return secret_marker(field, binding, legacy=value is not None)
        if value is None and binding is not None:
            value = {}
        node = value
        for segment in rest[:-1]:
            if not isinstance(node, dict):
                break
            child = node.get(segment)
            if not isinstance(child, dict):
                if binding is None:
                    break
                child = node[segment] = {}
            node = child
        else:
            if isinstance(node, dict) and (binding is not None or rest[-1] in node):
                legacy = node.get(rest[-1]) is not None
                node[rest[-1]] = secret_marker(field, binding, legacy=legacy)
    return value


class SettingsService(DomainService):
    """``GET /settings``, ``GET|PUT|PATCH /settings/{path}``: one unit of work, one repository
    call each."""

    def read(self, principal: Principal, raw_path: Any = None) -> Any:
        """The whole tree (``{}`` when empty) or the value at the path (``None`` if absent),
        secret fields shown as :func:`secret_marker`."""
        path = settings_path(raw_path)
        with (uow := self._read_unit()):
            tree = uow.settings.get(principal.tenant_id)
            bindings = self._secret_bindings(uow, principal.tenant_id, path)
        value = value_at(tree or {}, path)
        if not path and value is None:
            value = {}
        return _overlay(value, path, bindings)

    def _secret_bindings(
        self, uow: Any, tenant_id: str, path: tuple[str, ...]
    ) -> dict[tuple[str, ...], SecretBinding | None]:
        """The binding of every secret field a read at ``path`` covers (``None``: unbound)."""
        fields = [
            field
            for field in SECRET_FIELDS
            if field[: len(path)] == path or path[: len(field)] == field
        ]
        if not fields:
            return {}
        if not supports_vault(self._backend):
            return dict.fromkeys(fields)
        vault = cast(VaultUnitOfWork, uow)
        by_scope: dict[tuple[ScopeType, str], list[tuple[str, ...]]] = {}
        for field in fields:
            scope_type, scope_id, _ = SECRET_FIELDS[field]
            by_scope.setdefault((scope_type, scope_id), []).append(field)
        found: dict[tuple[str, ...], SecretBinding | None] = {}
        for (scope_type, scope_id), scoped in by_scope.items():
            # One read per scope (two for the whole tree) instead of one per field: the settings
            # page re-reads the tree in a tight loop. One field is one point read; a scope with
            # more bindings than one list returns is read field by field.
            named: dict[str, SecretBinding] = {}
            complete = False
            if len(scoped) > 1:
                listed = vault.bindings.list(
                    tenant_id, scope_type=scope_type, scope_id=scope_id, limit=SCOPE_BINDINGS_READ
                )
                named = {binding.field_name: binding for binding in listed}
                complete = len(listed) < SCOPE_BINDINGS_READ
            for field in scoped:
                field_name = SECRET_FIELDS[field][2]
                if field_name in named or complete:
                    found[field] = named.get(field_name)
                else:
                    found[field] = vault.bindings.get(tenant_id, scope_type, scope_id, field_name)
        return found

    def write(self, principal: Principal, raw_path: Any, body: Any) -> Any:
        """Merge ``body`` at the path (PUT and PATCH alike); the value at the path after."""
        path = settings_path(raw_path)
        field = "/".join(path) or "body"
        cleaned = clean_json(body, field, max_depth=check.MAX_JSON_DEPTH + 1)
        refuse_plaintext_secrets(path, cleaned)
        value = checked_value(path, cleaned)

        def change(tree: Mapping[str, Any]) -> Mapping[str, Any]:
            updated = merge_at(tree, path, value)
            if encoded_size(updated) > MAX_SETTINGS_BYTES:
                raise invalid(
                    field, f"the settings tree must stay within {MAX_SETTINGS_BYTES} bytes of JSON"
                )
            return updated

        with (uow := self._unit()):
            tree = uow.settings.modify(principal.tenant_id, change)
            bindings = self._secret_bindings(uow, principal.tenant_id, path)
            uow.commit()
        return _overlay(value_at(tree, path), path, bindings)
