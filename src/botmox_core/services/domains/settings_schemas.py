"""The body schemas of settings writes, by path (the Bot-Mox contract §1.6).

A write's body is checked by the schema of the first :data:`PATH_SCHEMAS` entry matching the
path (:func:`schema_for`; the root has :data:`ROOT`, any other path :data:`GENERIC`), its
``null`` fields left out of the check (:func:`checked_value`: they delete).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from botmox_core.services.domains.entities import BOT_STATUSES
from botmox_core.services.domains.rules import (
    Rule,
    anything,
    array,
    boolean,
    choice,
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

__all__ = ["GENERIC", "PATH_SCHEMAS", "ROOT", "checked_value", "schema_for"]

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
