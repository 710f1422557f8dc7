"""The validated fields of every collection's entities (the Bot-Mox contract, §1.4).

Each :class:`EntitySchema` lists the fields it checks; every other field passes through and is
stored as sent. The same rules serve POST and PATCH (every field optional) except the finance
operation, whose POST needs ``type, category, amount, currency, date``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

from botmox_core.domain.records import Collection
from botmox_core.services.domains.rules import (
    Rule,
    anything,
    array,
    boolean,
    choice,
    integer,
    nullable,
    number,
    obj,
    one_of,
    record_of,
    text,
    timestamp,
)

__all__ = [
    "BAN_MECHANISMS",
    "BOT_STATUSES",
    "ISO_DATE",
    "PROJECT_IDS",
    "SCHEMAS",
    "EntitySchema",
    "ban_body",
]

BOT_STATUSES = ("offline", "prepare", "leveling", "profession", "farming", "banned")
PROJECT_IDS = ("wow_tbc", "wow_midnight")
BAN_MECHANISMS = (
    "battlenet_account_closure",
    "battlenet_account_suspension",
    "game_suspension",
    "hardware_ban",
    "ip_ban",
    "other",
)
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
BAN_DATE = re.compile(r"\d{2}\.\d{2}\.\d{4}", re.ASCII)


@attrs.frozen
class EntitySchema:
    """How one collection's entities are checked.

    Attributes:
        label: the entity's name in messages (``"<label> payload must not be empty"``).
        not_found: the 404 message.
        fields: rules of the validated top-level fields (others pass through).
        required_on_create: fields a POST must carry (not ``null``); a PATCH cannot delete them.
    """

    label: str
    not_found: str
    fields: Mapping[str, Rule]
    required_on_create: tuple[str, ...] = ()

    @property
    def empty_message(self) -> str:
        return f"{self.label} payload must not be empty"


_ID_REF = text(min_len=1)
_TIMESTAMPS: dict[str, Rule] = {"created_at": timestamp(), "updated_at": timestamp()}
_OPTIONAL_TEXT = text()

LICENSE = EntitySchema(
    "License",
    "Resource not found",
    {
        "key": text(min_len=1),
        "type": text(min_len=1),
        "status": choice("active", "expired", "revoked"),
        "bot_ids": array(_ID_REF),
        "bot_names": array(text(min_len=1)),
        "expires_at": timestamp(),
        **_TIMESTAMPS,
    },
)

PROXY = EntitySchema(
    "Proxy",
    "Resource not found",
    {
        "ip": text(min_len=1),
        "port": integer(1, 65535),
        "login": _OPTIONAL_TEXT,
        "password": text(trim=False),
        "provider": _OPTIONAL_TEXT,
        "country": _OPTIONAL_TEXT,
        "country_code": nullable(_OPTIONAL_TEXT),
        "type": choice("http", "socks5"),
        "status": choice("active", "expired", "banned"),
        "bot_id": nullable(_ID_REF),
        "fraud_score": number(),
        "vpn": boolean(),
        "proxy": boolean(),
        "tor": boolean(),
        "bot_status": boolean(),
        "isp": _OPTIONAL_TEXT,
        "organization": _OPTIONAL_TEXT,
        "city": _OPTIONAL_TEXT,
        "region": _OPTIONAL_TEXT,
        "zip_code": _OPTIONAL_TEXT,
        "timezone": _OPTIONAL_TEXT,
        "latitude": number(),
        "longitude": number(),
        "expires_at": timestamp(),
        "last_checked": timestamp(),
        **_TIMESTAMPS,
    },
)

SUBSCRIPTION = EntitySchema(
    "Subscription",
    "Resource not found",
    {
        "type": choice("wow", "bot", "proxy", "vpn", "other"),
        "status": choice("active", "cancelled", "expired", "expiring_soon"),
        "expires_at": timestamp(),
        "bot_id": _ID_REF,
        "account_email": _OPTIONAL_TEXT,
        "auto_renew": boolean(),
        "project_id": choice(*PROJECT_IDS),
        "notes": text(trim=False, max_len=1000),
        **_TIMESTAMPS,
    },
)

NOTE = EntitySchema(
    "Notes",
    "Workspace entity not found",
    {
        "title": _OPTIONAL_TEXT,
        "content": text(trim=False),
        "blocks": one_of(
            record_of(anything()), array(anything()), message="must be an object or an array"
        ),
        "tags": array(_OPTIONAL_TEXT),
        "bot_id": nullable(_ID_REF),
        "project_id": nullable(choice(*PROJECT_IDS)),
        "is_pinned": boolean(),
        "created_by": _OPTIONAL_TEXT,
        **_TIMESTAMPS,
    },
)

_DATE = text(trim=False, pattern=ISO_DATE, pattern_message="Expected YYYY-MM-DD format")

CALENDAR_EVENT = EntitySchema(
    "Calendar",
    "Workspace entity not found",
    {
        "title": _OPTIONAL_TEXT,
        "description": text(trim=False),
        "date": _DATE,
        "linked_note_id": nullable(_ID_REF),
        **_TIMESTAMPS,
    },
)

KANBAN_TASK = EntitySchema(
    "Kanban",
    "Workspace entity not found",
    {
        "title": _OPTIONAL_TEXT,
        "description": text(trim=False),
        "status": choice("todo", "in_progress", "done"),
        "due_date": nullable(_DATE),
        "order": integer(),
        **_TIMESTAMPS,
    },
)

_STAGES = ("prepare", "leveling", "profession", "farming")
_OPTIONAL_NAME = text(min_len=1)

BAN_FIELDS: dict[str, Rule] = {
    "ban_date": text(pattern=BAN_DATE, pattern_message="Expected DD.MM.YYYY format"),
    "ban_reason": text(min_len=1, max_len=1000),
    "ban_mechanism": choice(*BAN_MECHANISMS),
}


def ban_body() -> Rule:
    """The body of ``POST /bots/{id}/lifecycle/ban`` (all three fields required)."""
    return obj(
        BAN_FIELDS, required=tuple(BAN_FIELDS), empty_message="Ban payload must not be empty"
    )


BOT = EntitySchema(
    "Bot",
    "Bot not found",
    {
        "name": text(min_len=1),
        "project_id": text(min_len=1),
        "status": choice(*BOT_STATUSES),
        "character": obj(
            {
                "name": _OPTIONAL_NAME,
                "level": integer(1, 100),
                "class": _OPTIONAL_NAME,
                "race": _OPTIONAL_NAME,
                "server": _OPTIONAL_NAME,
                "faction": choice("alliance", "horde"),
            }
        ),
        "lifecycle": obj(
            {
                "current_stage": choice(*_STAGES, "banned"),
                "previous_status": choice(*BOT_STATUSES),
                "stage_transitions": array(
                    obj(
                        {
                            "from": choice(*_STAGES, "create"),
                            "to": choice(*_STAGES),
                            "timestamp": timestamp(),
                        },
                        required=("from", "to", "timestamp"),
                    )
                ),
                "ban_details": obj(
                    {**BAN_FIELDS, "unbanned_at": timestamp()}, required=tuple(BAN_FIELDS)
                ),
            }
        ),
        **_TIMESTAMPS,
    },
)

FINANCE_OPERATION = EntitySchema(
    "Finance operation",
    "Finance operation not found",
    {
        "type": choice("income", "expense"),
        "category": text(min_len=1),
        "amount": number(),
        "currency": text(min_len=1),
        "date": timestamp(),
        "description": text(trim=False, max_len=1000),
        "bot_id": nullable(_OPTIONAL_TEXT),
        "project_id": nullable(_OPTIONAL_TEXT),
        "gold_amount": number(),
        "gold_price_at_time": nullable(number()),
        **_TIMESTAMPS,
    },
    required_on_create=("type", "category", "amount", "currency", "date"),
)

SCHEMAS: Mapping[Collection, EntitySchema] = {
    Collection.LICENSES: LICENSE,
    Collection.PROXIES: PROXY,
    Collection.SUBSCRIPTIONS: SUBSCRIPTION,
    Collection.NOTES: NOTE,
    Collection.CALENDAR: CALENDAR_EVENT,
    Collection.KANBAN: KANBAN_TASK,
    Collection.BOTS: BOT,
    Collection.FINANCE_OPERATIONS: FINANCE_OPERATION,
}
"""The schema of every collection."""
