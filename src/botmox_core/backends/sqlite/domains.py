"""The SQLite domain repositories: record collections, bot history, finance aggregates and the
settings tree, each always filtered by tenant, in the unit's ``BEGIN IMMEDIATE`` transaction.

Records live in one table ``domain_records`` keyed by (tenant, collection, id) with the entity's
fields as JSON text (``data``) and two derived columns written with every record:

* ``search``: :func:`~botmox_core.domain.listing.search_text` of the record, so ``q`` is one
  substring test (``LIKE '%q%'`` with ``q``'s wildcards escaped: both sides are ASCII-lower-cased
  already, so SQLite's ASCII-only case folding changes nothing, and it scans faster than
  ``instr``) over a covering index (tenant, collection, search): the table is never read for
  rows that do not match;
* ``sort_keys``: for each top-level value that is not null, a text key whose byte order
  (``BINARY``) is the listing order (:func:`value_sort_key`): the rank of the JSON type as its
  first character (``1`` false, ``2`` true, ``3`` numbers, ``4`` strings, ``5`` objects and
  arrays), then for strings their UTF-8 bytes (code point order) and for numbers
  :func:`number_sort_key`. SQLite reads JSON numbers as 64-bit integers or doubles, so integers
  beyond 2**63 (and their order against nearby doubles) would compare wrongly; the keys compare
  exactly as Python compares ``int`` and ``float``.

The listing order of a field is ``json_extract(sort_keys, '$."field"')`` (:func:`sort_key_sql`;
``NULL`` for null or missing, which SQLite sorts first ascending and last descending), ties by
id: that is :func:`~botmox_core.domain.listing.sort_key` exactly.

How a list finds its page without reading a tenant's whole collection (schema version 6):

* Each (tenant, collection) is a *partition* (``domain_partitions``: a number and its record
  count, kept by triggers); a record's integer key ``seq`` is ``partition << 32 | n``, so the
  partition is one ``seq`` range (:func:`partition_range`).
* ``domain_records_fts`` is an FTS5 index of ``search`` with the ``trigram`` tokenizer,
  ``case_sensitive 1`` (both sides are ASCII-lower-cased already, so it compares exactly what
  the substring test compares; its own folding would also fold non-ASCII letters), rowid
  ``seq``. A ``q`` of 3 or more characters is one quoted phrase (:func:`fts_phrase`): the
  records whose search text holds its trigrams at consecutive positions, i.e. holds ``q``.
  Counting those within the partition's ``seq`` range is the total.
* The fields of :data:`~botmox_core.backends.sqlite.schema.SORT_INDEXED_FIELDS` (and ``id``)
  have an index on (tenant, collection, key, id). With an index and many matches, the list walks
  it in order, tests each record with the substring test (``LIKE``) and stops at its page:
  about ``(offset + limit) * records / matches`` rows. With few matches (fewer than that walk),
  or a field without an index, the matching ``seq`` are taken from the FTS index and sorted.
* A ``q`` shorter than a trigram scans the covering index (tenant, collection, search,
  sort_keys, id) with ``LIKE``, counting and ordering in one pass, as does a sort on a field
  without an index.

Only the page's rows have their ``data`` read (``search`` and ``sort_keys`` come first in the
row, so a large ``data`` is not read to test a record).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from botmox_core.backends.sqlite.columns import CODEC, decode_json_object, encode_json_object
from botmox_core.backends.sqlite.repositories import Statements
from botmox_core.backends.sqlite.schema import SORT_INDEXED_FIELDS
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
from botmox_core.ports.modify import modify_record

__all__ = [
    "SqliteAggregateRepository",
    "SqliteBotHistoryRepository",
    "SqliteRecordRepository",
    "SqliteSettingsRepository",
    "INSERT_RECORD",
    "encode_record",
    "fts_phrase",
    "like_pattern",
    "partition_range",
    "number_sort_key",
    "sort_key_sql",
    "value_sort_key",
]

_EXPONENT_BIAS = 1_000_000


def number_sort_key(value: int | float) -> str:
    """A text whose byte order among these keys is the exact numeric order (equal numbers, such
    as ``1`` and ``1.0`` or ``0.0`` and ``-0.0``, get equal keys), prefixed ``3`` (the rank of
    numbers in the listing order).

    A number ``±m × 2**e`` (``1 <= m < 2``) is written as a sign class (``a`` negative, ``b``
    zero, ``c`` positive), the binary exponent (biased, seven digits) and the hex digits of
    ``m``'s fraction without trailing zeros; negatives complement exponent and digits and end
    with ``~`` so that a longer (larger) magnitude sorts first.
    """
    if value == 0:
        return "3b"
    numerator, denominator = abs(value).as_integer_ratio()  # denominator: a power of two
    exponent = numerator.bit_length() - denominator.bit_length()
    bits = bin(numerator)[3:].rstrip("0")  # the fraction after the leading 1
    bits += "0" * (-len(bits) % 4)
    digits = format(int(bits, 2), f"0{len(bits) // 4}x").rstrip("0") if bits else ""
    if value > 0:
        return f"3c{exponent + _EXPONENT_BIAS:07d}{digits}"
    complement = digits.translate(_COMPLEMENT)
    return f"3a{_EXPONENT_BIAS - exponent:07d}{complement}~"


_COMPLEMENT = str.maketrans("0123456789abcdef", "fedcba9876543210")


def value_sort_key(value: Any) -> str | None:
    """The ``sort_keys`` entry of one top-level value (``None`` for null)."""
    if value is None:
        return None
    if value is True:
        return "2"
    if value is False:
        return "1"
    if isinstance(value, int | float):
        return number_sort_key(value)
    if isinstance(value, str):
        return "4" + value
    return "5"


def like_pattern(q: str) -> str:
    """``%q%`` with ``q``'s ``%``, ``_`` and ``\\`` escaped by ``\\``."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


#: Characters a ``q`` needs for the trigram index (shorter filters scan).
TRIGRAM = 3
_PARTITION_BITS = 32


def partition_range(partition: int) -> tuple[int, int]:
    """The first and last ``seq`` of a partition's records."""
    first = partition << _PARTITION_BITS
    return first, first + (1 << _PARTITION_BITS) - 1


def fts_phrase(q: str) -> str:
    """``q`` as one FTS5 phrase (in double quotes, its own ``"`` doubled): with the trigram
    tokenizer, the records whose search text contains ``q`` (``q`` of at least 3 characters)."""
    return '"' + q.replace('"', '""') + '"'


#: Insert one record (named parameters ``tenant_id, collection, id, search, sort_keys, data``)
#: with the next ``seq`` of its partition, which must exist (``INSERT INTO domain_partitions``
#: first); nothing when the id exists. Bulk loaders use it too.
INSERT_RECORD = """
    INSERT INTO domain_records (seq, tenant_id, collection, id, search, sort_keys, data)
    SELECT coalesce(
               (SELECT max(seq) FROM domain_records
                WHERE seq BETWEEN p.id << 32 AND (p.id << 32) + 4294967295),
               p.id << 32
           ) + 1,
           p.tenant_id, p.collection, :id, :search, :sort_keys, :data
    FROM domain_partitions AS p
    WHERE p.tenant_id = :tenant_id AND p.collection = :collection
    ON CONFLICT DO NOTHING
"""

#: Create the partition of a (tenant, collection) if it has none yet.
INSERT_PARTITION = (
    "INSERT INTO domain_partitions (tenant_id, collection) VALUES (?, ?) ON CONFLICT DO NOTHING"
)


def _json(value: Mapping[str, Any], what: str) -> str:
    return encode_json_object(dict(value), what)


@attrs.frozen
class EncodedRecord:
    """The stored columns of a record."""

    data: str
    search: str
    sort_keys: str


def encode_record(record_id: str, data: Mapping[str, Any]) -> EncodedRecord:
    """The columns ``data``, ``search`` and ``sort_keys`` of a record (also used by bulk
    loaders such as the bench)."""
    text = _json(data, "record data")
    keys = {key: value_sort_key(value) for key, value in data.items() if value is not None}
    return EncodedRecord(
        data=text,
        search=search_text(record_id, data),
        sort_keys=json.dumps(keys, ensure_ascii=False, separators=(",", ":")),
    )


def sort_key_sql(field: str) -> str:
    """The SQL expression of the listing order's key of top-level ``field`` (see the module
    doc). ``field`` must match :data:`SORT_FIELD_PATTERN` (it is written into the SQL, so the
    expression is the same text for every query on that field)."""
    if not SORT_FIELD_PATTERN.fullmatch(field):
        raise BadRequestError(f"cannot sort by {field[:80]!r}")
    return f"json_extract(sort_keys, '$.\"{field}\"')"


def _page_sql(chosen: str, descending: bool, *, with_clause: str = "", total: bool = False) -> str:
    """The page's ``id, data`` (and ``total``) in order: ``chosen`` selects ``seq, k, id`` of
    the matching records in order; only the ``LIMIT``/``OFFSET`` rows it keeps are read whole
    (the first two parameters after ``chosen``'s own are the limit and the offset)."""
    direction = " DESC" if descending else ""
    head = f"{with_clause}, page" if with_clause else "WITH page"
    return (
        f"{head} AS MATERIALIZED ({chosen} LIMIT ? OFFSET ?)"  # noqa: S608 - fixed text
        f" SELECT r.id, r.data{', page.total' if total else ''}"
        " FROM page JOIN domain_records AS r ON r.seq = page.seq"
        f" ORDER BY page.k{direction}, page.id{direction}"
    )


def _decoded(text: str, what: str) -> dict[str, Any]:
    try:
        return decode_json_object(text)
    except (TypeError, ValueError) as exc:
        raise DatabaseError(f"a stored {what} is not a JSON object: {exc}") from exc


def _record(tenant_id: str, collection: Collection, row: sqlite3.Row) -> DomainRecord:
    return DomainRecord(tenant_id, collection, row["id"], _decoded(row["data"], "record"))


class SqliteRecordRepository:
    """Record collections in table ``domain_records``."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def get(self, tenant_id: str, collection: Collection, record_id: str) -> DomainRecord | None:
        """The record, or ``None``."""
        rows = self._sql.rows(
            "SELECT id, data FROM domain_records WHERE tenant_id = ? AND collection = ? AND id = ?",
            (tenant_id, str(collection), record_id),
        )
        return _record(tenant_id, collection, rows[0]) if rows else None

    def add(self, record: DomainRecord) -> DomainRecord:
        """Store a new record; :class:`DuplicateError` when the id exists in that tenant's
        collection."""
        encoded = encode_record(record.id, record.data)
        self._sql.run(INSERT_PARTITION, (record.tenant_id, str(record.collection)))
        cursor = self._sql.run(
            INSERT_RECORD,
            {
                "tenant_id": record.tenant_id,
                "collection": str(record.collection),
                "id": record.id,
                "search": encoded.search,
                "sort_keys": encoded.sort_keys,
                "data": encoded.data,
            },
        )
        if cursor.rowcount == 0:
            raise DuplicateError(
                f"a record with id {record.id!r} already exists in {record.collection}",
                details={"id": record.id},
            )
        return attrs.evolve(record, data=json.loads(encoded.data))

    def modify(
        self,
        tenant_id: str,
        collection: Collection,
        record_id: str,
        change: Callable[[DomainRecord], DomainRecord],
    ) -> DomainRecord | None:
        """Replace the record with ``change(current)`` in this unit's write transaction;
        ``None`` when absent. The change must keep tenant, collection and id
        (:class:`BadRequestError`); an equal result writes nothing."""

        def guarded(current: DomainRecord) -> DomainRecord:
            updated = change(current)
            if isinstance(updated, DomainRecord) and updated.collection != current.collection:
                raise BadRequestError("a domain record change must not alter its collection")
            return updated

        def write(updated: DomainRecord) -> DomainRecord:
            encoded = encode_record(updated.id, updated.data)
            self._sql.run(
                "UPDATE domain_records SET data = ?, search = ?, sort_keys = ?"
                " WHERE tenant_id = ? AND collection = ? AND id = ?",
                (
                    encoded.data,
                    encoded.search,
                    encoded.sort_keys,
                    tenant_id,
                    str(collection),
                    record_id,
                ),
            )
            return attrs.evolve(updated, data=json.loads(encoded.data))

        current = self.get(tenant_id, collection, record_id)
        return modify_record(current, guarded, write)

    def delete(self, tenant_id: str, collection: Collection, record_id: str) -> bool:
        """Remove the record; whether it existed."""
        cursor = self._sql.run(
            "DELETE FROM domain_records WHERE tenant_id = ? AND collection = ? AND id = ?",
            (tenant_id, str(collection), record_id),
        )
        return cursor.rowcount > 0

    def list(self, tenant_id: str, collection: Collection, query: ListQuery) -> ListPage:
        """One page, filtered, ordered, counted and paged by SQLite (see the module doc)."""
        if query.q is not None and SEARCH_SEPARATOR in query.q:
            return ListPage([], 0)
        found = self._sql.rows(
            "SELECT id, records FROM domain_partitions WHERE tenant_id = ? AND collection = ?",
            (tenant_id, str(collection)),
        )
        if not found or found[0]["records"] == 0:
            return ListPage([], 0)
        first, last = partition_range(int(found[0]["id"]))
        size = int(found[0]["records"])
        field = None if query.sort in (None, "id") else query.sort
        key = "id" if field is None else sort_key_sql(field)
        index = "domain_records_by_id" if field is None else None
        if field in SORT_INDEXED_FIELDS:
            index = f"domain_records_by_{field}"
        direction = " DESC" if query.descending else ""
        order = f"k{direction}, id{direction}"
        scope = [tenant_id, str(collection)]
        if not query.q:
            if query.offset >= size:  # a page past the end: the count alone
                return ListPage([], size)
            if index is None:
                return self._scanned(tenant_id, collection, query, key, order, None)
            page = self._walked(index, key, order, scope, None, query)
            return ListPage([_record(tenant_id, collection, row) for row in page], size)
        if len(query.q) < TRIGRAM:
            return self._scanned(tenant_id, collection, query, key, order, query.q)
        phrase = fts_phrase(query.q)
        total = int(
            self._sql.rows(
                "SELECT count(*) FROM domain_records_fts"
                " WHERE domain_records_fts MATCH ? AND rowid BETWEEN ? AND ?",
                (phrase, first, last),
            )[0][0]
        )
        if total <= query.offset:
            return ListPage([], total)
        walk = (query.offset + query.limit) * size / total
        if index is not None and walk < total:
            page = self._walked(index, key, order, scope, query.q, query)
        else:
            hits = (
                "WITH hits (seq) AS (SELECT rowid FROM domain_records_fts"
                " WHERE domain_records_fts MATCH ? AND rowid BETWEEN ? AND ?)"
            )
            chosen = (
                f"SELECT r.seq, {key} AS k, r.id FROM hits"  # noqa: S608 - fixed text
                f" JOIN domain_records AS r ON r.seq = hits.seq ORDER BY {order}"
            )
            page = self._sql.rows(
                _page_sql(chosen, query.descending, with_clause=hits),
                (phrase, first, last, query.limit, query.offset),
            )
        return ListPage([_record(tenant_id, collection, row) for row in page], total)

    def _walked(
        self,
        index: str,
        key: str,
        order: str,
        scope: Sequence[Any],
        q: str | None,
        query: ListQuery,
    ) -> Sequence[sqlite3.Row]:
        """The page read by walking ``index`` in order (testing each record against ``q``)."""
        where = "tenant_id = ? AND collection = ?"
        params = list(scope)
        if q is not None:
            where += " AND search LIKE ? ESCAPE '\\'"
            params.append(like_pattern(q))
        chosen = (
            f"SELECT seq, {key} AS k, id FROM domain_records INDEXED BY {index}"  # noqa: S608
            f" WHERE {where} ORDER BY {order}"
        )
        return self._sql.rows(
            _page_sql(chosen, query.descending), [*params, query.limit, query.offset]
        )

    def _scanned(
        self,
        tenant_id: str,
        collection: Collection,
        query: ListQuery,
        key: str,
        order: str,
        q: str | None,
    ) -> ListPage:
        """The page and count from one pass over the covering search index."""
        where = "tenant_id = ? AND collection = ?"
        params = [tenant_id, str(collection)]
        if q is not None:
            where += " AND search LIKE ? ESCAPE '\\'"
            params.append(like_pattern(q))
        chosen = (
            f"SELECT seq, {key} AS k, id, count(*) OVER () AS total"  # noqa: S608 - fixed text
            f" FROM domain_records INDEXED BY domain_records_search WHERE {where} ORDER BY {order}"
        )
        rows = self._sql.rows(
            _page_sql(chosen, query.descending, total=True), [*params, query.limit, query.offset]
        )
        if rows:
            total = int(rows[0]["total"])
        elif query.offset == 0:
            total = 0
        else:  # a page past the end
            count_sql = f"SELECT count(*) FROM domain_records WHERE {where}"  # noqa: S608
            total = int(self._sql.rows(count_sql, params)[0][0])
        return ListPage([_record(tenant_id, collection, row) for row in rows], total)

    def scan(
        self, tenant_id: str, collection: Collection, *, after: str | None = None, limit: int = 500
    ) -> Sequence[DomainRecord]:
        """Up to ``limit`` records with ids after ``after``, in id order."""
        rows = self._sql.rows(
            "SELECT id, data FROM domain_records WHERE tenant_id = ? AND collection = ?"
            " AND id > ? ORDER BY id LIMIT ?",
            (tenant_id, str(collection), after or "", limit),
        )
        return [_record(tenant_id, collection, row) for row in rows]


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
            values["details"] = _decoded(values["details"], "log entry")
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
            values["ban_details"] = _decoded(values["ban_details"], "archive entry")
            values["snapshot"] = _decoded(values["snapshot"], "archive entry")
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
        return _decoded(rows[0]["value"], "aggregate") if rows else None

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
        return _decoded(rows[0]["tree"], "settings tree") if rows else None

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
        if current is None or _decoded(text, "settings tree") != current:
            self._sql.run(
                "INSERT INTO domain_settings (tenant_id, tree) VALUES (?, ?)"
                " ON CONFLICT (tenant_id) DO UPDATE SET tree = excluded.tree",
                (tenant_id, text),
            )
        return _decoded(text, "settings tree")
