"""The domain repositories of the Supabase backend: record collections, the bot lifecycle log and
ban archive, finance aggregates and the settings tree (migration ``20261201000000``).

* One table per collection (:data:`COLLECTION_TABLES`, the Bot-Mox seed's names), rows
  ``(tenant_id, id, data jsonb, search, created_at, updated_at)``. ``search`` is
  :func:`~botmox_core.domain.listing.search_text` of the record, written with every row, so the
  list filter is one ``strpos(search, q) > 0`` in the database.
* Listing filters, orders, counts and pages in PostgreSQL in one statement: the order is
  :func:`~botmox_core.domain.listing.sort_key` as SQL (``botmox.domain_rank``, ``domain_number``
  and ``domain_text`` of ``data -> field``, then ``id``, all ``COLLATE "C"``) and the total is
  an uncorrelated sub-select evaluated once. Only a page past the end (no rows to carry the
  total) takes a second, count-only statement.
* ``modify`` reads the row ``FOR UPDATE`` inside the unit's transaction, so concurrent modifies
  of one record (or one settings tree) queue up and none is lost.

Every statement names the tenant, like the other repositories of this backend.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from botmox_core.domain.listing import (
    SEARCH_SEPARATOR,
    SORT_FIELD_PATTERN,
    ListPage,
    ListQuery,
    search_text,
)
from botmox_core.domain.records import (
    AggregateKey,
    ArchiveEntry,
    Collection,
    DomainRecord,
    LifecycleLogEntry,
)
from botmox_core.errors import BadRequestError, DatabaseError, DuplicateError
from botmox_core.ports.modify import checked_change
from botmox_supabase.error_mapping import map_database_errors

__all__ = [
    "COLLECTION_TABLES",
    "DOMAIN_TABLES",
    "PostgresAggregateRepository",
    "PostgresBotHistoryRepository",
    "PostgresRecordRepository",
    "PostgresSettingsRepository",
    "FEW_MATCHES_FACTOR",
    "INDEXED_SORTS",
    "SEARCH_INDEX_MAX_BYTES",
    "dump_json",
    "like_pattern",
    "list_statement",
]

#: The table of each collection (schema ``botmox``).
COLLECTION_TABLES: Mapping[Collection, str] = {
    Collection.LICENSES: "resources_licenses",
    Collection.PROXIES: "resources_proxies",
    Collection.SUBSCRIPTIONS: "resources_subscriptions",
    Collection.NOTES: "workspace_notes",
    Collection.CALENDAR: "workspace_calendar_events",
    Collection.KANBAN: "workspace_kanban_tasks",
    Collection.BOTS: "bots",
    Collection.FINANCE_OPERATIONS: "finance_operations",
}

#: Every table of the domain data.
DOMAIN_TABLES: tuple[str, ...] = (
    *COLLECTION_TABLES.values(),
    "bot_lifecycle_log",
    "bot_archive",
    "finance_aggregates",
    "app_settings",
)

Connection = Callable[[], psycopg.Connection[Any]]
Params = Sequence[Any] | Mapping[str, Any]


# -- JSON -------------------------------------------------------------------------------------


def _has_big_float(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value) and "e+" in repr(value)
    if isinstance(value, dict):
        return any(_has_big_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_big_float(item) for item in value)
    return False


def dump_json(value: Any) -> str:
    """``value`` as JSON text for a ``jsonb`` column, keeping every number's type.

    ``jsonb`` stores numbers as ``numeric`` and prints them without an exponent, so a float
    Python writes as ``1e+16`` would come back as the integer ``10000000000000000``. Such floats
    are written in full with a ``.0`` (``10000000000000000.0``), which ``numeric`` keeps and
    reads back as the same float. Every other value is ``json.dumps``' text.
    """
    if not _has_big_float(value):
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    marker = f"botmox-float-{secrets.token_hex(8)}-"
    floats: list[str] = []

    def swap(item: Any) -> Any:
        if isinstance(item, float) and math.isfinite(item) and "e+" in repr(item):
            floats.append(f"{int(item)}.0")
            return f"{marker}{len(floats) - 1}"
        if isinstance(item, dict):
            return {key: swap(child) for key, child in item.items()}
        if isinstance(item, list):
            return [swap(child) for child in item]
        return item

    text = json.dumps(swap(value), ensure_ascii=False, allow_nan=False)
    for index in range(len(floats) - 1, -1, -1):  # marker-10 before marker-1
        text = text.replace(json.dumps(f"{marker}{index}"), floats[index])
    return text


def _jsonb(value: Any) -> Jsonb:
    """``value`` for a ``jsonb`` parameter; what JSON cannot hold (NaN, infinities) is a 400."""
    try:
        text = dump_json(value)
    except (ValueError, TypeError) as exc:
        raise BadRequestError(f"the value cannot be stored as JSON: {exc}") from exc
    return Jsonb(value, dumps=lambda _value: text)


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequestError(f"{what} must be a JSON object")
    return value


# -- plumbing ---------------------------------------------------------------------------------


class _Repository:
    _action = "query"

    def __init__(self, connection: Connection) -> None:
        # A callable, not the connection: used after its unit of work ended, it raises.
        self._connection = connection

    def _rows(self, query: str | sql.Composed, params: Params = ()) -> list[tuple[Any, ...]]:
        with (
            map_database_errors(self._action),
            self._connection().cursor(row_factory=tuple_row) as cur,
        ):
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []


def _table(collection: Collection) -> sql.Identifier:
    return sql.Identifier("botmox", COLLECTION_TABLES[Collection(collection)])


def _order_by(query: ListQuery) -> sql.Composable:
    """The ORDER BY list of :func:`~botmox_core.domain.listing.sort_key` (reversed for desc)."""
    direction = sql.SQL(" desc" if query.descending else "")
    if query.sort is None or query.sort == "id":
        return sql.SQL("id{}").format(direction)
    if not SORT_FIELD_PATTERN.fullmatch(query.sort):
        raise BadRequestError(f"cannot sort by {query.sort[:80]!r}")
    field = sql.Literal(query.sort)  # a literal, so an expression index on the field matches
    parts = [
        sql.SQL("botmox.domain_rank(data -> {})").format(field),
        sql.SQL("botmox.domain_number(data -> {})").format(field),
        sql.SQL('botmox.domain_text(data -> {}) collate "C"').format(field),
        sql.SQL("id"),
    ]
    return sql.SQL(", ").join(sql.SQL("{}{}").format(part, direction) for part in parts)


#: Search texts up to this many bytes are in the covering index ``<table>_search_idx``
#: (the migration's partial index predicate; the planner needs the same expression).
SEARCH_INDEX_MAX_BYTES = 1024

#: Sort fields with an expression index per table (migration 20261201000000): a sorted page
#: is read in index order. Without ``q`` (or with many matches) that reads about a page of rows.
INDEXED_SORTS: Mapping[Collection, frozenset[str]] = {
    Collection.BOTS: frozenset({"name", "status", "project_id", "created_at", "updated_at"}),
}

#: Per-row cost of choosing a page among the matching ids, against reading in sort-index order
#: (both read a row per step; the first also hashes the ids): see :func:`_among_matches`.
FEW_MATCHES_FACTOR = 1.0


def _among_matches(query: ListQuery, matches: int, rows: int, indexed: bool) -> bool:
    """Whether to choose the page among the ``matches`` matching ids (found in the covering
    index: about ``matches`` rows read) rather than in sort-index order, skipping non-matches
    (about ``(offset + limit) * rows / matches`` rows read, ``rows`` the tenant's collection)."""
    if not indexed:
        return True
    in_order = (query.offset + query.limit) * rows / max(matches, 1)
    return matches * FEW_MATCHES_FACTOR <= in_order


def like_pattern(q: str) -> str:
    """``q`` as a LIKE pattern matching any text that contains it (``\\``, ``%``, ``_``
    escaped; LIKE's default escape character is the backslash)."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _count_statement(table: sql.Identifier) -> sql.Composed:
    """``(matches, rows)``: how many of the tenant's rows match ``%(pattern)s`` and how many
    there are, in one index-only scan of the covering index (plus the rare rows whose search
    text is longer, read from the table)."""
    return sql.SQL(
        "select coalesce(sum(matches), 0), coalesce(sum(rows), 0) from ("
        "select count(*) filter (where search like %(pattern)s) as matches, count(*) as rows"
        " from {table} where tenant_id = %(tenant)s and octet_length(search) <= {max}"
        " union all"
        " select count(*) filter (where search like %(pattern)s), count(*)"
        " from {table} where tenant_id = %(tenant)s and octet_length(search) > {max}) as parts"
    ).format(table=table, max=sql.Literal(SEARCH_INDEX_MAX_BYTES))


def _matching_ids(table: sql.Identifier) -> sql.Composed:
    return sql.SQL(
        "select id from {table} where tenant_id = %(tenant)s"
        " and octet_length(search) <= {max} and search like %(pattern)s"
        " union all select id from {table} where tenant_id = %(tenant)s"
        " and octet_length(search) > {max} and search like %(pattern)s"
    ).format(table=table, max=sql.Literal(SEARCH_INDEX_MAX_BYTES))


def list_statement(collection: Collection, query: ListQuery, *, few: bool = False) -> sql.Composed:
    """The page statement of :meth:`PostgresRecordRepository.list` (parameters ``tenant``,
    ``pattern``, ``limit``, ``offset``), rows ``(id, data, total)``.

    Without ``q`` the total is an uncorrelated sub-select on every row (one statement). With
    ``q`` the total is counted first (:func:`_count_statement`) and ``total`` is null here;
    ``few`` picks the page among the matching ids (found in the covering index) instead of
    reading in sort order and skipping the rows that do not match.
    """
    table, order = _table(collection), _order_by(query)
    if query.q is None:
        return sql.SQL(
            "select id, data, (select count(*) from {table} where tenant_id = %(tenant)s)"
            " from {table} where tenant_id = %(tenant)s order by {order}"
            " limit %(limit)s offset %(offset)s"
        ).format(table=table, order=order)
    if few:
        return sql.SQL(
            "select id, data, null::bigint from {table} where tenant_id = %(tenant)s"
            " and id in ({ids}) order by {order} limit %(limit)s offset %(offset)s"
        ).format(table=table, ids=_matching_ids(table), order=order)
    return sql.SQL(
        "select id, data, null::bigint from {table} where tenant_id = %(tenant)s"
        " and search like %(pattern)s order by {order} limit %(limit)s offset %(offset)s"
    ).format(table=table, order=order)


# -- records ----------------------------------------------------------------------------------


class PostgresRecordRepository(_Repository):
    """:class:`~botmox_core.ports.domains.RecordRepository` on the collection tables."""

    _action = "domain record"

    def _record(self, tenant_id: str, collection: Collection, row: tuple[Any, ...]) -> DomainRecord:
        return DomainRecord(tenant_id, Collection(collection), row[0], _object(row[1], "data"))

    def get(self, tenant_id: str, collection: Collection, record_id: str) -> DomainRecord | None:
        rows = self._rows(
            sql.SQL("select id, data from {} where tenant_id = %s and id = %s").format(
                _table(collection)
            ),
            (tenant_id, record_id),
        )
        return self._record(tenant_id, collection, rows[0]) if rows else None

    def add(self, record: DomainRecord) -> DomainRecord:
        data = dict(record.data)
        rows = self._rows(
            sql.SQL(
                "insert into {} (tenant_id, id, data, search) values (%s, %s, %s, %s)"
                " on conflict (tenant_id, id) do nothing returning id, data"
            ).format(_table(record.collection)),
            (record.tenant_id, record.id, _jsonb(data), search_text(record.id, data)),
        )
        if not rows:
            raise DuplicateError(
                f"a record with id {record.id!r} already exists in {Collection(record.collection)}",
                details={"id": record.id},
            )
        return self._record(record.tenant_id, record.collection, rows[0])

    def modify(
        self,
        tenant_id: str,
        collection: Collection,
        record_id: str,
        change: Callable[[DomainRecord], DomainRecord],
    ) -> DomainRecord | None:
        # The row lock lasts until the unit of work ends: a concurrent modify waits, then reads
        # this one's committed result. A change that raises has written nothing.
        table = _table(collection)
        rows = self._rows(
            sql.SQL("select id, data from {} where tenant_id = %s and id = %s for update").format(
                table
            ),
            (tenant_id, record_id),
        )
        if not rows:
            return None
        current = self._record(tenant_id, collection, rows[0])
        updated = checked_change(current, change)
        if updated.collection != current.collection:
            raise BadRequestError("a domain record change must not alter the record's collection")
        if updated == current:
            return current
        data = dict(updated.data)
        stored = self._rows(
            sql.SQL(
                "update {} set data = %s, search = %s, updated_at = now()"
                " where tenant_id = %s and id = %s returning id, data"
            ).format(table),
            (_jsonb(data), search_text(record_id, data), tenant_id, record_id),
        )
        return self._record(tenant_id, collection, stored[0])

    def delete(self, tenant_id: str, collection: Collection, record_id: str) -> bool:
        rows = self._rows(
            sql.SQL("delete from {} where tenant_id = %s and id = %s returning id").format(
                _table(collection)
            ),
            (tenant_id, record_id),
        )
        return bool(rows)

    def list(self, tenant_id: str, collection: Collection, query: ListQuery) -> ListPage:
        params: dict[str, Any] = {
            "tenant": tenant_id,
            "pattern": None if query.q is None else like_pattern(query.q),
            "limit": query.limit,
            "offset": query.offset,
        }
        if query.q is None:
            rows = self._rows(list_statement(collection, query), params)
            if rows:
                total = int(rows[0][2])
            else:  # an empty collection, or a page past the end (no row carried the total)
                counted = self._rows(
                    sql.SQL("select count(*) from {} where tenant_id = %(tenant)s").format(
                        _table(collection)
                    ),
                    params,
                )
                total = int(counted[0][0])
        elif SEARCH_SEPARATOR in query.q:  # never in a search text's values (the reference)
            return ListPage([], 0)
        else:
            counted = self._rows(_count_statement(_table(collection)), params)
            total, size = int(counted[0][0]), int(counted[0][1])
            if total == 0 or query.offset >= total:
                return ListPage([], total)
            indexed = query.sort in (None, "id") or query.sort in INDEXED_SORTS.get(
                Collection(collection), frozenset()
            )
            few = _among_matches(query, total, size, indexed)
            rows = self._rows(list_statement(collection, query, few=few), params)
        return ListPage([self._record(tenant_id, collection, row) for row in rows], total)

    def scan(
        self, tenant_id: str, collection: Collection, *, after: str | None = None, limit: int = 500
    ) -> Sequence[DomainRecord]:
        if limit < 1:
            return []
        table = _table(collection)
        if after is None:
            statement = sql.SQL(
                "select id, data from {} where tenant_id = %s order by id limit %s"
            ).format(table)
            params: tuple[Any, ...] = (tenant_id, limit)
        else:
            statement = sql.SQL(
                "select id, data from {} where tenant_id = %s and id > %s order by id limit %s"
            ).format(table)
            params = (tenant_id, after, limit)
        return [self._record(tenant_id, collection, row) for row in self._rows(statement, params)]


# -- bot history ------------------------------------------------------------------------------


class PostgresBotHistoryRepository(_Repository):
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
                _jsonb(dict(entry.details)),
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
                _jsonb(dict(entry.ban_details)),
                _jsonb(dict(entry.snapshot)),
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
                details=_object(details, "details"),
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
                ban_details=_object(ban_details, "ban_details"),
                snapshot=_object(snapshot, "snapshot"),
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


# -- aggregates and settings ------------------------------------------------------------------


class PostgresAggregateRepository(_Repository):
    """:class:`~botmox_core.ports.domains.AggregateRepository` on ``botmox.finance_aggregates``."""

    _action = "finance aggregate"

    def get(self, tenant_id: str, key: AggregateKey) -> Mapping[str, Any] | None:
        rows = self._rows(
            "select data from botmox.finance_aggregates where tenant_id = %s and key = %s",
            (tenant_id, AggregateKey(key).value),
        )
        return _object(rows[0][0], "aggregate") if rows else None

    def put(self, tenant_id: str, key: AggregateKey, value: Mapping[str, Any]) -> None:
        self._rows(
            "insert into botmox.finance_aggregates (tenant_id, key, data) values (%s, %s, %s)"
            " on conflict (tenant_id, key) do update set data = excluded.data,"
            " updated_at = now()",
            (tenant_id, AggregateKey(key).value, _jsonb(dict(value))),
        )


class PostgresSettingsRepository(_Repository):
    """:class:`~botmox_core.ports.domains.SettingsRepository` on ``botmox.app_settings`` (one
    row per tenant holding the whole tree)."""

    _action = "settings"

    def get(self, tenant_id: str) -> Mapping[str, Any] | None:
        rows = self._rows("select data from botmox.app_settings where tenant_id = %s", (tenant_id,))
        return _object(rows[0][0], "settings") if rows else None

    def modify(
        self, tenant_id: str, change: Callable[[Mapping[str, Any]], Mapping[str, Any]]
    ) -> Mapping[str, Any]:
        # The tenant's row is locked until the unit ends. A tenant without a row gets one by an
        # insert that does nothing if a concurrent unit inserted first; then the row exists and
        # the second round reads (and waits for) it, so no update is lost either way.
        for _ in range(2):
            rows = self._rows(
                "select data from botmox.app_settings where tenant_id = %s for update",
                (tenant_id,),
            )
            current = _object(rows[0][0], "settings") if rows else {}
            updated = dict(change(current))
            if rows:
                if updated != current:
                    self._rows(
                        "update botmox.app_settings set data = %s, updated_at = now()"
                        " where tenant_id = %s",
                        (_jsonb(updated), tenant_id),
                    )
                return updated
            inserted = self._rows(
                "insert into botmox.app_settings (tenant_id, data) values (%s, %s)"
                " on conflict (tenant_id) do nothing returning tenant_id",
                (tenant_id, _jsonb(updated)),
            )
            if inserted:
                return updated
        raise DatabaseError("the settings row of the tenant vanished during a modify; try again")
