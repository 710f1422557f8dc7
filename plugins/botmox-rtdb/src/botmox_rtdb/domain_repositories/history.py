"""The bot history on RTDB: the lifecycle log at ``logs/bot_lifecycle/{id}`` and the ban
archive at ``archive/{id}``, below the tenant's base."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from botmox_core.domain.records import ArchiveEntry, LifecycleLogEntry
from botmox_rtdb.domain_codec import decode, encode
from botmox_rtdb.domain_repositories.paths import ARCHIVE, LIFECYCLE_LOG
from botmox_rtdb.domain_repositories.writes import DomainWrites, as_children
from botmox_rtdb.layout import checked_key
from botmox_rtdb.queries import query_string_value
from botmox_rtdb.sdk_errors import map_rtdb_errors

__all__ = ["RtdbBotHistoryRepository"]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _millis(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value and abs(value) < 2**63:
        return int(value)
    return 0


def _object(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


class RtdbBotHistoryRepository:
    """The lifecycle log at ``logs/bot_lifecycle/{id}`` and the ban archive at
    ``archive/{id}`` (indexed on ``bot_id``)."""

    def __init__(self, writes: DomainWrites) -> None:
        self._writes = writes

    def append_log(self, entry: LifecycleLogEntry) -> None:
        """Stage the entry for the unit's multi-path update."""
        path = self._writes.layout.path(
            entry.tenant_id, LIFECYCLE_LOG, checked_key(entry.id, "log entry id")
        )
        value = {
            "id": entry.id,
            "bot_id": entry.bot_id,
            "type": entry.type,
            "message": entry.message,
            "details": dict(entry.details),
            "timestamp": entry.timestamp,
        }
        self._writes.stage_write(path, encode(value, "lifecycle log entry"))

    def append_archive(self, entry: ArchiveEntry) -> None:
        """Stage the entry for the unit's multi-path update."""
        path = self._writes.layout.path(
            entry.tenant_id, ARCHIVE, checked_key(entry.id, "archive entry id")
        )
        value = {
            "id": entry.id,
            "bot_id": entry.bot_id,
            "reason": entry.reason,
            "archived_at": entry.archived_at,
            "ban_details": dict(entry.ban_details),
            "snapshot": dict(entry.snapshot),
        }
        self._writes.stage_write(path, encode(value, "archive entry"))

    def _entries(
        self, tenant_id: str, relative: str, bot_id: str | None, operation: str
    ) -> dict[str, dict[str, Any]]:
        parent = self._writes.layout.path(tenant_id, relative)
        if bot_id is None:
            raw = self._writes.children(parent, operation)
        else:
            with map_rtdb_errors(operation):
                raw = as_children(
                    self._writes.buffer.ref(parent)
                    .order_by_child("bot_id")
                    .equal_to(query_string_value(bot_id))
                    .get()
                )
            for key, value in self._writes.pending_under(parent).items():
                if value is None:
                    raw.pop(key, None)
                else:
                    raw[key] = value
        entries = {key: decode(value) for key, value in raw.items()}
        return {
            key: entry
            for key, entry in entries.items()
            if bot_id is None or entry.get("bot_id") == bot_id
        }

    def log(
        self,
        tenant_id: str,
        bot_id: str | None = None,
        *,
        limit: int = 500,
        after: tuple[int, str] | None = None,
    ) -> Sequence[LifecycleLogEntry]:
        """Entries of the tenant (of one bot: an ``orderByChild`` query), oldest first."""
        found = [
            LifecycleLogEntry(
                tenant_id,
                key,
                _text(entry.get("bot_id")),
                _text(entry.get("type")),
                _text(entry.get("message")),
                _millis(entry.get("timestamp")),
                _object(entry.get("details")),
            )
            for key, entry in self._entries(
                tenant_id, LIFECYCLE_LOG, bot_id, "read lifecycle log"
            ).items()
        ]
        found.sort(key=lambda entry: (entry.timestamp, entry.id))
        if after is not None:
            found = [entry for entry in found if (entry.timestamp, entry.id) > after]
        return found[: max(limit, 0)]

    def archive(
        self,
        tenant_id: str,
        bot_id: str | None = None,
        *,
        limit: int = 500,
        after: tuple[int, str] | None = None,
    ) -> Sequence[ArchiveEntry]:
        """Archive entries of the tenant (of one bot), oldest first."""
        found = [
            ArchiveEntry(
                tenant_id,
                key,
                _text(entry.get("bot_id")),
                _text(entry.get("reason")),
                _millis(entry.get("archived_at")),
                _object(entry.get("ban_details")),
                _object(entry.get("snapshot")),
            )
            for key, entry in self._entries(tenant_id, ARCHIVE, bot_id, "read archive").items()
        ]
        found.sort(key=lambda entry: (entry.archived_at, entry.id))
        if after is not None:
            found = [entry for entry in found if (entry.archived_at, entry.id) > after]
        return found[: max(limit, 0)]
