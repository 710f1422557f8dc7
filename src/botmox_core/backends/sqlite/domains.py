"""The SQLite domain repositories: bot history, finance aggregates and the settings tree, each
always filtered by tenant, in the unit's ``BEGIN IMMEDIATE`` transaction; the record collections
are :mod:`botmox_core.backends.sqlite.records` (re-exported here, with the stored columns of
:mod:`botmox_core.backends.sqlite.record_columns`, so existing imports keep working).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from botmox_core.backends.sqlite.columns import CODEC, encode_json_object
from botmox_core.backends.sqlite.record_columns import (
    INSERT_PARTITION,
    INSERT_RECORD,
    PUT_RECORD,
    EncodedRecord,
    encode_record,
    fts_phrase,
    like_pattern,
    number_sort_key,
    partition_range,
    sort_key_sql,
    value_sort_key,
)
from botmox_core.backends.sqlite.records import SqliteRecordRepository, decoded
from botmox_core.backends.sqlite.repositories import Statements
from botmox_core.domain.records import AggregateKey, ArchiveEntry, LifecycleLogEntry
from botmox_core.errors import BadRequestError, DuplicateError

__all__ = [
    "INSERT_PARTITION",
    "INSERT_RECORD",
    "PUT_RECORD",
    "EncodedRecord",
    "SqliteAggregateRepository",
    "SqliteBotHistoryRepository",
    "SqliteRecordRepository",
    "SqliteSettingsRepository",
    "encode_record",
    "fts_phrase",
    "like_pattern",
    "number_sort_key",
    "partition_range",
    "sort_key_sql",
    "value_sort_key",
]


def _json(value: Mapping[str, Any], what: str) -> str:
    return encode_json_object(dict(value), what)


class SqliteBotHistoryRepository:
    """The lifecycle log (``bot_lifecycle_log``) and the ban archive (``bot_archive``)."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def append_log(self, entry: LifecycleLogEntry) -> None:
        """Add a log entry; :class:`DuplicateError` when its id exists in the tenant."""
        row = CODEC.record(entry)
        row["details"] = _json(entry.details, "log details")
        self._insert("bot_lifecycle_log", row, entry.id)

    def append_archive(self, entry: ArchiveEntry) -> None:
        """Add an archive entry; :class:`DuplicateError` when its id exists in the tenant."""
        row = CODEC.record(entry)
        row["ban_details"] = _json(entry.ban_details, "ban details")
        row["snapshot"] = _json(entry.snapshot, "archive snapshot")
        self._insert("bot_archive", row, entry.id)

    def _insert(self, table: str, row: dict[str, Any], entry_id: str) -> None:
        names = ", ".join(row)
        values = ", ".join(f":{name}" for name in row)
        cursor = self._sql.run(
            f"INSERT INTO {table} ({names}) VALUES ({values}) ON CONFLICT DO NOTHING",  # noqa: S608 - fixed names
            row,
        )
        if cursor.rowcount == 0:
            raise DuplicateError(f"a {table} entry with id {entry_id!r} already exists")

    def log(
        self,
        tenant_id: str,
        bot_id: str | None = None,
        *,
        limit: int = 500,
        after: tuple[int, str] | None = None,
    ) -> Sequence[LifecycleLogEntry]:
        """The tenant's (one bot's) log entries, oldest first by (timestamp, id), after
        ``after`` when given."""
        rows = self._rows("bot_lifecycle_log", "timestamp", tenant_id, bot_id, limit, after)
        entries = []
        for row in rows:
            values = dict(zip(row.keys(), row, strict=True))
            values["details"] = decoded(values["details"], "log entry")
            entries.append(CODEC.value(values, LifecycleLogEntry))
        return entries

    def archive(
        self,
        tenant_id: str,
        bot_id: str | None = None,
        *,
        limit: int = 500,
        after: tuple[int, str] | None = None,
    ) -> Sequence[ArchiveEntry]:
        """The tenant's (one bot's) archive entries, oldest first by (archived_at, id), after
        ``after`` when given."""
        rows = self._rows("bot_archive", "archived_at", tenant_id, bot_id, limit, after)
        entries = []
        for row in rows:
            values = dict(zip(row.keys(), row, strict=True))
            values["ban_details"] = decoded(values["ban_details"], "archive entry")
            values["snapshot"] = decoded(values["snapshot"], "archive entry")
            entries.append(CODEC.value(values, ArchiveEntry))
        return entries

    def _rows(
        self,
        table: str,
        time_column: str,
        tenant_id: str,
        bot_id: str | None,
        limit: int,
        after: tuple[int, str] | None,
    ) -> list[sqlite3.Row]:
        where = "tenant_id = ?"
        params: list[Any] = [tenant_id]
        if bot_id is not None:
            where += " AND bot_id = ?"
            params.append(bot_id)
        if after is not None:
            where += f" AND ({time_column}, id) > (?, ?)"
            params.extend(after)
        return self._sql.rows(
            f"SELECT * FROM {table} WHERE {where} ORDER BY {time_column}, id LIMIT ?",  # noqa: S608 - fixed names
            [*params, limit],
        )


class SqliteAggregateRepository:
    """Finance aggregates in table ``domain_aggregates``."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def get(self, tenant_id: str, key: AggregateKey) -> Mapping[str, Any] | None:
        """The stored object, or ``None``."""
        rows = self._sql.rows(
            "SELECT value FROM domain_aggregates WHERE tenant_id = ? AND key = ?",
            (tenant_id, str(key)),
        )
        return decoded(rows[0]["value"], "aggregate") if rows else None

    def put(self, tenant_id: str, key: AggregateKey, value: Mapping[str, Any]) -> None:
        """Store (replace) the object."""
        self._sql.run(
            "INSERT INTO domain_aggregates (tenant_id, key, value) VALUES (?, ?, ?)"
            " ON CONFLICT (tenant_id, key) DO UPDATE SET value = excluded.value",
            (tenant_id, str(key), _json(value, str(key))),
        )


class SqliteSettingsRepository:
    """One settings tree per tenant in table ``domain_settings``."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def get(self, tenant_id: str) -> Mapping[str, Any] | None:
        """The whole tree, or ``None``."""
        rows = self._sql.rows("SELECT tree FROM domain_settings WHERE tenant_id = ?", (tenant_id,))
        return decoded(rows[0]["tree"], "settings tree") if rows else None

    def modify(
        self, tenant_id: str, change: Callable[[Mapping[str, Any]], Mapping[str, Any]]
    ) -> Mapping[str, Any]:
        """Replace the tree with ``change(current)`` in this unit's write transaction (the
        ``BEGIN IMMEDIATE`` lock makes read-change-write atomic) and return it."""
        current = self.get(tenant_id)
        updated = change(dict(current) if current is not None else {})
        if not isinstance(updated, Mapping):
            raise BadRequestError("a settings change must return a JSON object")
        text = _json(updated, "settings")
        if current is None or decoded(text, "settings tree") != current:
            self._sql.run(
                "INSERT INTO domain_settings (tenant_id, tree) VALUES (?, ?)"
                " ON CONFLICT (tenant_id) DO UPDATE SET tree = excluded.tree",
                (tenant_id, text),
            )
        return decoded(text, "settings tree")
