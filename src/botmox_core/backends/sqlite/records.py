"""The SQLite record repository: the record collections of every tenant in ``domain_records``
(the stored columns: :mod:`botmox_core.backends.sqlite.record_columns`), always filtered by
tenant, in the unit's ``BEGIN IMMEDIATE`` transaction.

How a list finds its page without reading a tenant's whole collection (schema version 6):

* The (tenant, collection) is one partition: one ``seq`` range, with its record count.
* ``domain_records_fts`` is an FTS5 index of ``search`` with the ``trigram`` tokenizer,
  ``case_sensitive 1`` (both sides are ASCII-lower-cased already, so it compares exactly what
  the substring test compares; its own folding would also fold non-ASCII letters), rowid
  ``seq``. A ``q`` of 3 or more characters is one quoted phrase
  (:func:`~botmox_core.backends.sqlite.record_columns.fts_phrase`): the records whose search
  text holds its trigrams at consecutive positions, i.e. holds ``q``. Counting those within
  the partition's ``seq`` range is the total.
* The fields of :data:`~botmox_core.backends.sqlite.schema.SORT_INDEXED_FIELDS` (and ``id``)
  have an index on (tenant, collection, key, id). With an index and many matches, the list walks
  it in order, tests each record with the substring test (``LIKE``) and stops at its page:
  about ``(offset + limit) * records / matches`` rows. With few matches (fewer than that walk),
  or a field without an index, the matching ``seq`` are taken from the FTS index and sorted.
* A ``q`` shorter than a trigram, and a list without ``q`` sorted by a field without an index,
  scan the covering index (tenant, collection, search, sort_keys, id) with ``LIKE``, counting
  and ordering in one pass.

Only the page's rows have their ``data`` read (``search`` and ``sort_keys`` come first in the
row, so a large ``data`` is not read to test a record).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import attrs

from botmox_core.backends.sqlite.columns import decode_json_object
from botmox_core.backends.sqlite.record_columns import (
    INSERT_PARTITION,
    INSERT_RECORD,
    PUT_RECORD,
    TRIGRAM,
    encode_record,
    fts_phrase,
    like_pattern,
    partition_range,
    sort_key_sql,
)
from botmox_core.backends.sqlite.repositories import Params, Statements
from botmox_core.backends.sqlite.schema import SORT_INDEXED_FIELDS
from botmox_core.domain.listing import SEARCH_SEPARATOR, ListPage, ListQuery
from botmox_core.domain.records import Collection, DomainRecord
from botmox_core.errors import BadRequestError, DatabaseError, DuplicateError
from botmox_core.ports.modify import modify_record

__all__ = ["BulkStatements", "SqliteRecordRepository", "decoded"]


class BulkStatements(Statements, Protocol):
    """:class:`~botmox_core.backends.sqlite.repositories.Statements` that can also run one
    statement over many parameter sets (``executemany``) in the unit's transaction."""

    def run_many(self, sql: str, params: Iterable[Params]) -> sqlite3.Cursor:
        """Execute ``sql`` once per parameter set; errors arrive translated."""


def decoded(text: str, what: str) -> dict[str, Any]:
    """The JSON object of a stored column; :class:`DatabaseError` naming ``what`` when the
    stored text is not one (edited by hand, written by something else)."""
    try:
        return decode_json_object(text)
    except (TypeError, ValueError) as exc:
        raise DatabaseError(f"a stored {what} is not a JSON object: {exc}") from exc


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


#: The ``seq`` of the records whose search text holds an FTS phrase (parameters: the phrase,
#: the first and the last ``seq`` of the range), in ``seq`` order.
_MATCHING = "FROM domain_records_fts WHERE domain_records_fts MATCH ? AND rowid BETWEEN ? AND ?"
_HITS = "SELECT rowid " + _MATCHING
_COUNT_HITS = "SELECT count(*) " + _MATCHING


def _record(tenant_id: str, collection: Collection, row: sqlite3.Row) -> DomainRecord:
    return DomainRecord(tenant_id, collection, row["id"], decoded(row["data"], "record"))


class SqliteRecordRepository:
    """Record collections in table ``domain_records``."""

    def __init__(self, statements: BulkStatements) -> None:
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

    def put_many(self, records: Sequence[DomainRecord]) -> None:
        """Create or replace every record (any tenants and collections, each id at most once)
        with two ``executemany`` statements in this unit's transaction: the missing partitions,
        then :data:`~botmox_core.backends.sqlite.record_columns.PUT_RECORD` per record (the
        triggers keep the trigram index and the partition counts as for add and modify)."""
        if not records:
            return
        encoded = [(record, encode_record(record.id, record.data)) for record in records]
        partitions = dict.fromkeys((r.tenant_id, str(r.collection)) for r in records)
        self._sql.run_many(INSERT_PARTITION, list(partitions))

        def rows() -> Iterator[dict[str, str]]:
            for record, columns in encoded:
                yield {
                    "tenant_id": record.tenant_id,
                    "collection": str(record.collection),
                    "id": record.id,
                    "search": columns.search,
                    "sort_keys": columns.sort_keys,
                    "data": columns.data,
                }

        self._sql.run_many(PUT_RECORD, rows())

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
        total = int(self._sql.rows(_COUNT_HITS, (phrase, first, last))[0][0])
        if total <= query.offset:
            return ListPage([], total)
        walk = (query.offset + query.limit) * size / total
        if index is not None and walk < total:
            page = self._walked(index, key, order, scope, query.q, query)
        else:
            hits = f"WITH hits (seq) AS ({_HITS})"
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
