"""The settings tree: one JSON object per tenant, read and written at a path.

Paths (``GET|PUT|PATCH /api/v1/settings/{path}``) are split on ``/`` after trimming spaces and
slashes; a leading ``settings`` segment is dropped. A segment that is empty, ``.``, ``..``, holds
``. # $ [ ]`` or a control character, or is no valid key (:func:`~botmox_core.domain.patching.
key_error`) is a 400 ``Invalid settings path`` with ``details {path, reason}``; so is a path of
more than :data:`MAX_PATH_SEGMENTS` segments.

A write is a merge in both verbs: an object written where an object is merges shallowly
(its ``null`` fields delete), anything else replaces the value (``null`` deletes it). The body
is checked by the schema of the first :data:`PATH_SCHEMAS` entry matching the path, and the
answer is the value at the path after the write.

Secret fields (:data:`SECRET_FIELDS`: the VM settings' passwords and the ``api_keys`` values)
never hold plaintext: a write that gives one a value is a 400 ``PLAINTEXT_SECRET_REFUSED``
naming the vault binding that fills it (``null`` still deletes, so legacy plaintext can be
removed), and every read shows each of them as :func:`secret_marker` from the bindings instead
of whatever is stored there.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

from botmox_core.domain.patching import key_error
from botmox_core.errors import BadRequestError, PlaintextSecretRefusedError
from botmox_core.ports.vault import VaultUnitOfWork, supports_vault
from botmox_core.services import validation as check
from botmox_core.services.domains.base import MAX_SETTINGS_BYTES, DomainService
from botmox_core.services.domains.entities import BOT_STATUSES
from botmox_core.services.domains.rules import (
    Rule,
    anything,
    array,
    boolean,
    choice,
    clean_json,
    encoded_size,
    integer,
    invalid,
    nullable,
    number,
    obj,
    one_of,
    record_of,
    text,
    timestamp,
)
from botmox_core.services.principal import Principal
from botmox_core.vault.models import ScopeType, SecretBinding

__all__ = [
    "MAX_PATH_SEGMENTS",
    "PATH_SCHEMAS",
    "SECRET_FIELDS",
    "SettingsService",
    "merge_at",
    "schema_for",
    "secret_marker",
    "settings_path",
    "value_at",
]

MAX_PATH_SEGMENTS = 8
_FORBIDDEN_IN_SEGMENT = frozenset(".#$[]")


def _bad_path(raw: str, reason: str) -> BadRequestError:
    return BadRequestError("Invalid settings path", details={"path": raw[:200], "reason": reason})


def settings_path(raw: Any) -> tuple[str, ...]:
    """The segments of a settings path below the tree's root (``()`` is the root)."""
    if raw is None:
        return ()
    if not isinstance(raw, str):
        raise _bad_path(str(raw), "the path must be text")
    if any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in raw):
        raise _bad_path(raw, "control characters are not allowed")
    trimmed = raw.strip().strip("/")
    segments = trimmed.split("/") if trimmed else []
    if segments and segments[0] == "settings":
        segments = segments[1:]
    for segment in segments:
        if segment in ("", ".", "..") or any(ch in _FORBIDDEN_IN_SEGMENT for ch in segment):
            raise _bad_path(raw, f"Invalid path segment: {segment[:64]}")
        problem = key_error(segment)
        if problem is not None:
            raise _bad_path(raw, f"Invalid path segment: {problem}")
    if len(segments) > MAX_PATH_SEGMENTS:
        raise _bad_path(raw, f"a settings path has at most {MAX_PATH_SEGMENTS} segments")
    return tuple(segments)


# -- per-path schemas (the Bot-Mox contract §1.6) ----------------------------------------------

_TEXT = text()
_NAME = text(min_len=1)
_TIME = text(
    trim=False,
    pattern=re.compile(r"([01]\d|2[0-3]):[0-5]\d", re.ASCII),
    pattern_message="Expected HH:MM format",
)


def _bools(*names: str) -> dict[str, Rule]:
    return dict.fromkeys(names, boolean())


def _nonempty(fields: Mapping[str, Rule], label: str) -> Rule:
    return obj(fields, empty_message=f"{label} payload must not be empty")


_PROJECT_ENTRY = _nonempty(
    {
        "id": _NAME,
        "name": _NAME,
        "game": _TEXT,
        "expansion": _TEXT,
        "max_level": integer(1, 200),
        "currency": _TEXT,
        "currency_symbol": _TEXT,
        "server_region": _TEXT,
        "professions": array(_NAME),
        "referenceData": anything(),
        "gold_price_usd": number(positive=True),
        "created_at": timestamp(),
        "updated_at": timestamp(),
    },
    "Project settings",
)
_SCHEDULE_PARAMS = _nonempty(
    {
        "startTime": _TIME,
        "endTime": _TIME,
        "useSecondWindow": boolean(),
        "startTime2": _TIME,
        "endTime2": _TIME,
        "targetActiveMinutes": integer(30, 1380),
        "minSessionMinutes": integer(15, 240),
        "minBreakMinutes": integer(5, 120),
        "randomOffsetMinutes": integer(0, 60),
        "profile": _TEXT,
        "updated_at": timestamp(),
    },
    "Schedule params",
)
_SCHEDULE_TEMPLATE = _nonempty(
    {
        "name": _NAME,
        "params": _SCHEDULE_PARAMS,
        "created_at": timestamp(),
        "updated_at": timestamp(),
    },
    "Schedule template",
)
_OPTIONS = obj({"options": array(_TEXT), "default": _TEXT})
_PROJECT_HARDWARE = obj({"cores": integer(1, 64), "memory": integer(256, 262144)})
_VM_GENERATOR = _nonempty(
    {
        "proxmox": obj(
            {"url": _TEXT, "username": _TEXT, "password": text(trim=False), "node": _TEXT}
        ),
        "ssh": obj(
            {
                "host": _TEXT,
                "port": integer(1, 65535),
                "username": _TEXT,
                "password": text(trim=False),
                "privateKeyPath": _TEXT,
                "useKeyAuth": boolean(),
            }
        ),
        "storage": _OPTIONS,
        "format": _OPTIONS,
        "template": obj({"vmId": integer(1), "name": _TEXT}),
        "hardware": obj(
            {
                "cores": integer(1, 64),
                "sockets": integer(1, 8),
                "memory": integer(256, 262144),
                "balloon": integer(0, 262144),
                "cpu": _TEXT,
                "onboot": boolean(),
                "agent": boolean(),
            }
        ),
        "projectHardware": obj({"wow_tbc": _PROJECT_HARDWARE, "wow_midnight": _PROJECT_HARDWARE}),
        "hardwareApply": obj(_bools("applyCpu", "applyOnboot", "applyAgent")),
        "services": obj(
            {
                "proxmoxUrl": _TEXT,
                "tinyFmUrl": _TEXT,
                "syncThingUrl": _TEXT,
                "tinyFmUsername": _TEXT,
                "tinyFmPassword": text(trim=False),
                "syncThingUsername": _TEXT,
                "syncThingPassword": text(trim=False),
                **_bools("proxmoxAutoLogin", "tinyFmAutoLogin", "syncThingAutoLogin"),
            }
        ),
        "deleteVmFilters": obj(
            {
                "policy": obj(_bools("allowBanned", "allowPrepareNoResources", "allowOrphan")),
                "view": obj(_bools("showAllowed", "showLocked", "showRunning", "showStopped")),
            }
        ),
    },
    "VM generator settings",
)
_VM_PROFILE = _nonempty(
    {"name": _NAME, "hardware": anything(), "created_at": timestamp(), "updated_at": timestamp()},
    "VM profile",
)
_ACCOUNT_TEMPLATE = _nonempty(
    {"name": _NAME, "settings": anything(), "created_at": timestamp(), "updated_at": timestamp()},
    "Account template",
)


def _collection(entry: Rule, label: str) -> Rule:
    return record_of(nullable(entry), empty_message=f"{label} payload must not be empty")


def _null(value: Any, field: str) -> Any:
    if value is not None:
        raise invalid(field, "must be null")
    return None


#: Any path without a schema of its own: a non-empty object, an array, a string, a finite
#: number, a boolean or ``null`` (which deletes).
GENERIC: Rule = one_of(
    obj({}, empty_message="Settings payload must not be empty"),
    array(anything()),
    text(trim=False),
    number(),
    boolean(),
    _null,
    message="must be a non-empty object, an array, a string, a finite number, a boolean or null",
)
#: The root (``PUT /settings/settings``): an object merged into the tree.
ROOT: Rule = obj({}, empty_message="Settings payload must not be empty")

_CHART_ENTRY = obj(
    {
        "key": _NAME,
        "name": _NAME,
        "color": _NAME,
        "type": choice("line", "bar"),
        "yAxisId": _NAME,
        "visible": boolean(),
        "unit": _NAME,
    },
    required=("key", "name", "color", "type", "yAxisId", "visible", "unit"),
)

#: Schemas by path pattern, first match wins: ``*`` is one segment, a final ``**`` one or more.
PATH_SCHEMAS: Sequence[tuple[tuple[str, ...], Rule]] = (
    (
        ("alerts",),
        _nonempty(
            {"warning_days": integer(1, 365), "updated_at": timestamp(), "updated_by": _TEXT},
            "Alerts",
        ),
    ),
    (
        ("api_keys",),
        _nonempty(
            {
                "ipqs": obj({"api_key": _TEXT, "enabled": boolean()}),
                "telegram": obj({"bot_token": _TEXT, "chat_id": _TEXT, "enabled": boolean()}),
            },
            "API keys",
        ),
    ),
    (
        ("proxy",),
        _nonempty(
            {
                "auto_check_on_add": boolean(),
                "fraud_score_threshold": integer(0, 100),
                "check_interval_hours": integer(0, 168),
            },
            "Proxy settings",
        ),
    ),
    (
        ("notifications", "events"),
        _nonempty(
            _bools(
                "bot_banned",
                "bot_offline",
                "bot_online",
                "level_up",
                "profession_maxed",
                "low_fraud_score",
                "daily_report",
            ),
            "Notification events",
        ),
    ),
    (
        ("storage_policy",),
        _nonempty(
            {
                "secrets": choice("local-only"),
                "operational": choice("local", "cloud"),
                "sync": obj({"enabled": boolean()}),
                "updated_at": timestamp(),
                "updated_by": _TEXT,
            },
            "Storage policy",
        ),
    ),
    (("projects",), _collection(_PROJECT_ENTRY, "Projects")),
    (("projects", "*", "gold_price_usd"), number(positive=True)),
    (("projects", "**"), _PROJECT_ENTRY),
    (
        ("theme",),
        _nonempty(
            {
                "palettes": record_of(anything()),
                "presets": record_of(
                    obj(
                        {
                            "id": _NAME,
                            "name": _NAME,
                            "palettes": record_of(anything()),
                            "created_at": timestamp(),
                            "updated_at": timestamp(),
                        }
                    )
                ),
                "active_preset_id": nullable(_NAME),
                "updated_at": timestamp(),
                "updated_by": _TEXT,
            },
            "Theme",
        ),
    ),
    (("finance", "chart_config"), array(_CHART_ENTRY, max_items=200)),
    (
        ("ui", "resource_tree"),
        _nonempty(
            {
                "expandedKeys": array(_NAME),
                "visibleStatuses": array(choice(*BOT_STATUSES)),
                "showFilters": boolean(),
                "updated_at": timestamp(),
            },
            "Resource tree settings",
        ),
    ),
    (("schedule", "last_params"), _SCHEDULE_PARAMS),
    (("schedule", "templates"), _collection(_SCHEDULE_TEMPLATE, "Schedule templates")),
    (("schedule", "templates", "*"), _SCHEDULE_TEMPLATE),
    (("vmgenerator",), _VM_GENERATOR),
    (("vmgenerator", "profiles"), _collection(_VM_PROFILE, "VM profiles")),
    (("vmgenerator", "profiles", "*"), _VM_PROFILE),
    (
        ("generators", "account", "lastSettings"),
        _nonempty(
            {
                "passwordOptions": obj(
                    {
                        "length": integer(6, 128),
                        **_bools("uppercase", "lowercase", "numbers", "symbols"),
                    }
                ),
                "selectedDomain": _TEXT,
                "customDomain": _TEXT,
                "useCustomDomain": boolean(),
            },
            "Account generator settings",
        ),
    ),
    (("generators", "account", "defaultTemplateId"), nullable(text(trim=False))),
    (("generators", "account", "templates"), _collection(_ACCOUNT_TEMPLATE, "Account templates")),
    (("generators", "account", "templates", "*"), _ACCOUNT_TEMPLATE),
)


def _matches(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    if pattern and pattern[-1] == "**":
        head = pattern[:-1]
        return len(path) > len(head) and _matches(head, path[: len(head)])
    return len(pattern) == len(path) and all(
        want in ("*", got) for want, got in zip(pattern, path, strict=True)
    )


def schema_for(path: tuple[str, ...]) -> Rule:
    """The body schema of a write at ``path``."""
    if not path:
        return ROOT
    for pattern, rule in PATH_SCHEMAS:
        if _matches(pattern, path):
            return rule
    return GENERIC


def value_at(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at ``path`` (``None`` when absent)."""
    node: Any = tree
    for segment in path:
        if not isinstance(node, Mapping) or segment not in node:
            return None
        node = node[segment]
    return copy.deepcopy(node)


def _merge_into(target: dict[str, Any], value: Mapping[str, Any]) -> None:
    for key, item in value.items():
        if item is None:
            target.pop(key, None)
        else:
            target[key] = copy.deepcopy(item)


def merge_at(tree: Mapping[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """``tree`` after writing ``value`` at ``path`` (a new tree): an object merges shallowly
    into an object found there (its ``null`` fields delete), anything else replaces what is
    there, ``null`` deletes it; objects are created on the way (replacing non-objects)."""
    result = copy.deepcopy(dict(tree))
    if not path:
        _merge_into(result, value)
        return result
    node = result
    for segment in path[:-1]:
        child = node.get(segment)
        if not isinstance(child, dict):
            if value is None:
                return result
            child = {}
            node[segment] = child
        node = child
    last = path[-1]
    existing = node.get(last)
    if value is None:
        node.pop(last, None)
    elif isinstance(value, dict):
        merged = dict(existing) if isinstance(existing, dict) else {}
        _merge_into(merged, value)
        node[last] = merged
    else:
        node[last] = copy.deepcopy(value)
    return result


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


def checked_value(path: tuple[str, ...], value: Any) -> Any:
    """``value`` checked by the schema of ``path``. The ``null`` fields of an object delete
    (the merge) and are not checked: a body of deletions only is not empty."""
    field = "/".join(path) or "body"
    rule = schema_for(path)
    if not isinstance(value, dict) or all(item is not None for item in value.values()):
        return rule(value, field)
    kept = {key: item for key, item in value.items() if item is not None}
    checked = rule(kept, field) if kept else {}
    return {key: checked.get(key) for key in value}


class SettingsService(DomainService):
    """``GET /settings``, ``GET|PUT|PATCH /settings/{path}``: one unit of work, one repository
    call each."""

    def read(self, principal: Principal, raw_path: Any = None) -> Any:
        """The whole tree (``{}`` when empty) or the value at the path (``None`` if absent),
        secret fields shown as :func:`secret_marker`."""
        path = settings_path(raw_path)
        with (uow := self._unit()):
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
        found: dict[tuple[str, ...], SecretBinding | None] = {}
        for field in fields:
            scope_type, scope_id, field_name = SECRET_FIELDS[field]
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
