"""The bot lifecycle log and ban archive of the Supabase backend (``botmox.bot_lifecycle_log``,
``botmox.bot_archive``): append-only, read in (time, id) order page by page."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botmox_core.domain.records import ArchiveEntry, LifecycleLogEntry
from botmox_core.errors import DuplicateError
from botmox_supabase.domain_storage import DomainRepository, json_object, jsonb_param

__all__ = ["PostgresBotHistoryRepository"]


class PostgresBotHistoryRepository(DomainRepository):
    """:class:`~botmox_core.ports.domains.BotHistoryRepository` on ``botmox.bot_lifecycle_log``
    and ``botmox.bot_archive``."""

    _action = "bot history"

    def append_log(self, entry: LifecycleLogEntry) -> None:
        rows = self._rows(
            "insert into botmox.bot_lifecycle_log"
            " (tenant_id, id, bot_id, type, message, details, timestamp_ms)"
            " values (%s, %s, %s, %s, %s, %s, %s) on conflict (tenant_id, id) do nothing"
            " returning id",
            (
                entry.tenant_id,
                entry.id,
                entry.bot_id,
                entry.type,
                entry.message,
                jsonb_param(dict(entry.details)),
                entry.timestamp,
            ),
        )
        if not rows:
            raise DuplicateError(
                f"a lifecycle log entry with id {entry.id!r} already exists",
                details={"id": entry.id},
            )

    def append_archive(self, entry: ArchiveEntry) -> None:
        rows = self._rows(
            "insert into botmox.bot_archive"
            " (tenant_id, id, bot_id, reason, archived_at_ms, ban_details, snapshot)"
            " values (%s, %s, %s, %s, %s, %s, %s) on conflict (tenant_id, id) do nothing"
            " returning id",
            (
                entry.tenant_id,
                entry.id,
                entry.bot_id,
                entry.reason,
                entry.archived_at,
                jsonb_param(dict(entry.ban_details)),
                jsonb_param(dict(entry.snapshot)),
            ),
        )
        if not rows:
            raise DuplicateError(
                f"an archive entry with id {entry.id!r} already exists", details={"id": entry.id}
            )

    def log(
        self,
        tenant_id: str,
        bot_id: str | None = None,
        *,
        limit: int = 500,
        after: tuple[int, str] | None = None,
    ) -> Sequence[LifecycleLogEntry]:
        if limit < 1:
            return []
        columns = "id, bot_id, type, message, details, timestamp_ms"
        where, params = _history_filter("timestamp_ms", tenant_id, bot_id, after)
        rows = self._rows(
            f"select {columns} from botmox.bot_lifecycle_log where {where}"  # noqa: S608
            " order by timestamp_ms, id limit %s",
            (*params, limit),
        )
        return [
            LifecycleLogEntry(
                tenant_id=tenant_id,
                id=entry_id,
                bot_id=entry_bot,
                type=kind,
                message=message,
                timestamp=int(timestamp),
                details=json_object(details, "details"),
            )
            for entry_id, entry_bot, kind, message, details, timestamp in rows
        ]

    def archive(
        self,
        tenant_id: str,
        bot_id: str | None = None,
        *,
        limit: int = 500,
        after: tuple[int, str] | None = None,
    ) -> Sequence[ArchiveEntry]:
        if limit < 1:
            return []
        columns = "id, bot_id, reason, archived_at_ms, ban_details, snapshot"
        where, params = _history_filter("archived_at_ms", tenant_id, bot_id, after)
        rows = self._rows(
            f"select {columns} from botmox.bot_archive where {where}"  # noqa: S608
            " order by archived_at_ms, id limit %s",
            (*params, limit),
        )
        return [
            ArchiveEntry(
                tenant_id=tenant_id,
                id=entry_id,
                bot_id=entry_bot,
                reason=reason,
                archived_at=int(archived_at),
                ban_details=json_object(ban_details, "ban_details"),
                snapshot=json_object(snapshot, "snapshot"),
            )
            for entry_id, entry_bot, reason, archived_at, ban_details, snapshot in rows
        ]


def _history_filter(
    time_column: str, tenant_id: str, bot_id: str | None, after: tuple[int, str] | None
) -> tuple[str, tuple[Any, ...]]:
    """The where clause (fixed text) and parameters of a log or archive read."""
    where = "tenant_id = %s"
    params: list[Any] = [tenant_id]
    if bot_id is not None:
        where += " and bot_id = %s"
        params.append(bot_id)
    if after is not None:
        where += f" and ({time_column}, id) > (%s, %s)"
        params.extend(after)
    return where, tuple(params)
