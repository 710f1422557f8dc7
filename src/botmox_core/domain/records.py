"""Domain records: the farm's own data (resources, workspace, bots, finance), stored per tenant.

A record is one entity of one :class:`Collection`: an id and a JSON object (``data``) holding the
validated fields, any unknown fields the client sent (they pass through and are stored) and the
``created_at``/``updated_at`` stamps (epoch milliseconds) the services always set. The entity a
client sees is ``{"id": id, **data}`` (:meth:`DomainRecord.entity`).

Besides collections, a tenant has a bot lifecycle log and a ban archive (append-only), finance
aggregates (``daily_stats``, ``gold_price_history``: opaque JSON objects) and one settings tree.
"""

from __future__ import annotations

import enum
import re
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = [
    "RECORD_ID_PATTERN",
    "AggregateKey",
    "ArchiveEntry",
    "Collection",
    "DomainRecord",
    "LifecycleLogEntry",
    "new_record_id",
    "now_ms",
]

#: Record ids every backend can store as they are (RTDB keys included): 1-128 ASCII letters,
#: digits and ``_ - : @``. Firebase push ids (``-Nx...``) and UUIDs qualify.
RECORD_ID_PATTERN = re.compile(r"[A-Za-z0-9_:@-]{1,128}", re.ASCII)


class Collection(enum.StrEnum):
    """The record collections, named by their API path below ``/api/v1``."""

    LICENSES = "resources/licenses"
    PROXIES = "resources/proxies"
    SUBSCRIPTIONS = "resources/subscriptions"
    NOTES = "workspace/notes"
    CALENDAR = "workspace/calendar"
    KANBAN = "workspace/kanban"
    BOTS = "bots"
    FINANCE_OPERATIONS = "finance/operations"


class AggregateKey(enum.StrEnum):
    """Finance aggregates: opaque JSON objects, one per key and tenant."""

    DAILY_STATS = "daily_stats"
    GOLD_PRICE_HISTORY = "gold_price_history"


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


_PUSH_CHARS = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"


_last_push: tuple[int, list[int]] = (-1, [])
_push_lock = threading.Lock()


def new_record_id(at_ms: int | None = None) -> str:
    """A new id in the form of a Firebase push id: 20 characters, 8 encoding the time in
    milliseconds and 12 random ones. Ids made by this process sort in the order they were made:
    within one millisecond the random part of the previous id is incremented (as Firebase's
    clients do)."""
    global _last_push
    stamp = now_ms() if at_ms is None else at_ms
    with _push_lock:
        last_stamp, last_tail = _last_push
        if stamp == last_stamp:
            tail = list(last_tail)
            for position in range(11, -1, -1):  # add one, carrying
                if tail[position] < 63:
                    tail[position] += 1
                    break
                tail[position] = 0
        else:
            tail = [secrets.randbelow(64) for _ in range(12)]
        _last_push = (stamp, tail)
    head = []
    for _ in range(8):
        head.append(_PUSH_CHARS[stamp % 64])
        stamp //= 64
    return "".join(reversed(head)) + "".join(_PUSH_CHARS[index] for index in tail)


@attrs.frozen
class DomainRecord:
    """One entity of a collection.

    Attributes:
        tenant_id: the owning tenant.
        collection: which collection.
        id: the record id (:data:`RECORD_ID_PATTERN`).
        data: the entity without its id: every field, including ``created_at`` and
            ``updated_at`` (epoch ms, always present once the services stored it).
    """

    tenant_id: str
    collection: Collection
    id: str
    data: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def created_at(self) -> int:
        """``data["created_at"]`` (0 when a backend returns a record without it)."""
        value = self.data.get("created_at")
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @property
    def updated_at(self) -> int:
        """``data["updated_at"]`` (0 when absent)."""
        value = self.data.get("updated_at")
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    def entity(self) -> dict[str, Any]:
        """What the API answers: ``{"id": id, **data}``."""
        return {**self.data, "id": self.id}


@attrs.frozen
class LifecycleLogEntry:
    """One entry of a bot's lifecycle log (written by transitions, bans and unbans).

    Attributes:
        tenant_id, id, bot_id: where it belongs (``id`` as :func:`new_record_id`).
        type: ``status_change``, ``ban`` or ``unban``.
        message: a human-readable line.
        details: what changed (JSON object).
        timestamp: when, epoch ms.
    """

    tenant_id: str
    id: str
    bot_id: str
    type: str
    message: str
    timestamp: int
    details: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class ArchiveEntry:
    """A bot's entry in the ban archive (one per ban).

    Attributes:
        tenant_id, id, bot_id: where it belongs.
        reason: why it was archived (``banned``).
        archived_at: when, epoch ms.
        ban_details: the ban as recorded on the bot.
        snapshot: figures of the bot before the ban (project, character, totals).
    """

    tenant_id: str
    id: str
    bot_id: str
    reason: str
    archived_at: int
    ban_details: Mapping[str, Any] = attrs.field(factory=dict)
    snapshot: Mapping[str, Any] = attrs.field(factory=dict)
