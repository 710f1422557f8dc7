"""The record collections of the Supabase backend: one table per collection
(:data:`~botmox_supabase.domain_storage.COLLECTION_TABLES`, the Bot-Mox seed's names), rows
``(tenant_id, id, data jsonb, search, created_at, updated_at)``.

* ``search`` is :func:`~botmox_core.domain.listing.search_text` of the record, written with every
  row (by :meth:`~PostgresRecordRepository.add`, ``modify`` and ``put_many`` alike), so the list
  filter is one LIKE in the database (:mod:`botmox_supabase.domain_listing`). Triggers on every
  collection table copy it into the narrow search table
  (:data:`~botmox_supabase.domain_storage.SEARCH_TABLE`) in the same transaction, whichever
  statement writes (migration ``20261205000000``).
* ``modify`` reads the row ``FOR UPDATE`` inside the unit's transaction, so concurrent modifies
  of one record queue up and none is lost.
* ``put_many`` copies the batch into a temporary table (``COPY``, dropped at the end and in any
  case at commit) and upserts every collection's rows from it with one ``INSERT ... SELECT ...
  ON CONFLICT DO UPDATE``: a few round trips for any batch, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from psycopg import sql
from psycopg.rows import tuple_row

from botmox_core.domain.listing import SEARCH_SEPARATOR, ListPage, ListQuery, search_text
from botmox_core.domain.records import Collection, DomainRecord
from botmox_core.errors import BadRequestError, DuplicateError
from botmox_core.ports.modify import checked_change
from botmox_supabase import domain_listing
from botmox_supabase.domain_storage import (
    COLLECTION_TABLES,
    DomainRepository,
    collection_table,
    json_object,
    json_text,
    jsonb_param,
)
from botmox_supabase.error_mapping import map_database_errors

__all__ = ["PUT_MANY_TABLE", "PostgresRecordRepository"]

#: The temporary table :meth:`PostgresRecordRepository.put_many` copies a batch into.
PUT_MANY_TABLE = "botmox_put_many"

_CREATE_PUT_MANY = sql.SQL(
    "create temporary table {} (collection text not null, tenant_id text not null,"
    ' id text collate "C" not null, data jsonb not null, search text collate "C" not null)'
    " on commit drop"
).format(sql.Identifier(PUT_MANY_TABLE))

_COPY_PUT_MANY = sql.SQL("copy {} (collection, tenant_id, id, data, search) from stdin").format(
    sql.Identifier(PUT_MANY_TABLE)
)


def _upsert_from_batch(collection: Collection) -> sql.Composed:
    """Create or replace the batch's rows of ``collection``: as :meth:`add` for a new id; as a
    replacing :meth:`modify` for an existing one, which writes (and stamps ``updated_at``) only
    when the data changed."""
    return sql.SQL(
        "insert into {table} as stored (tenant_id, id, data, search)"
        " select tenant_id, id, data, search from {batch} where collection = {collection}"
        " on conflict (tenant_id, id) do update set data = excluded.data,"
        " search = excluded.search, updated_at = now()"
        " where stored.data is distinct from excluded.data"
    ).format(
        table=collection_table(collection),
        batch=sql.Identifier(PUT_MANY_TABLE),
        collection=sql.Literal(Collection(collection).value),
    )


class PostgresRecordRepository(DomainRepository):
    """:class:`~botmox_core.ports.domains.RecordRepository` on the collection tables."""

    _action = "domain record"

    def _record(self, tenant_id: str, collection: Collection, row: tuple[Any, ...]) -> DomainRecord:
        return DomainRecord(tenant_id, Collection(collection), row[0], json_object(row[1], "data"))

    def get(self, tenant_id: str, collection: Collection, record_id: str) -> DomainRecord | None:
        rows = self._rows(
            sql.SQL("select id, data from {} where tenant_id = %s and id = %s").format(
                collection_table(collection)
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
            ).format(collection_table(record.collection)),
            (record.tenant_id, record.id, jsonb_param(data), search_text(record.id, data)),
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
        table = collection_table(collection)
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
            (jsonb_param(data), search_text(record_id, data), tenant_id, record_id),
        )
        return self._record(tenant_id, collection, stored[0])

    def delete(self, tenant_id: str, collection: Collection, record_id: str) -> bool:
        rows = self._rows(
            sql.SQL("delete from {} where tenant_id = %s and id = %s returning id").format(
                collection_table(collection)
            ),
            (tenant_id, record_id),
        )
        return bool(rows)

    def put_many(self, records: Sequence[DomainRecord]) -> None:
        # Encode first: a value JSON cannot hold is a 400 before anything is sent. A record
        # repeated in the batch counts once, its last version (ON CONFLICT cannot touch a row
        # twice in one statement).
        batch: dict[tuple[str, str, str], tuple[str, str, str, str, str]] = {}
        for record in records:
            collection = Collection(record.collection)
            data = dict(record.data)
            batch[(collection.value, record.tenant_id, record.id)] = (
                collection.value,
                record.tenant_id,
                record.id,
                json_text(data),
                search_text(record.id, data),
            )
        if not batch:
            return
        collections = {Collection(key[0]) for key in batch}
        with map_database_errors(self._action), self._connection().cursor() as cur:
            cur.execute(_CREATE_PUT_MANY)
            with cur.copy(_COPY_PUT_MANY) as copy:
                for row in batch.values():
                    copy.write_row(row)
            for collection in sorted(collections, key=lambda c: COLLECTION_TABLES[c]):
                cur.execute(_upsert_from_batch(collection))
            cur.execute(sql.SQL("drop table {}").format(sql.Identifier(PUT_MANY_TABLE)))

    def list(self, tenant_id: str, collection: Collection, query: ListQuery) -> ListPage:
        params: dict[str, Any] = {
            "tenant": tenant_id,
            "pattern": None if query.q is None else domain_listing.like_pattern(query.q),
            "words": None
            if query.q is None
            else domain_listing.like_pattern(domain_listing.search_words(query.q)),
            "q": query.q,
            "max_ids": domain_listing.MAX_MATCH_IDS,
            "factor": domain_listing.FEW_MATCHES_FACTOR,
            "limit": query.limit,
            "offset": query.offset,
        }
        if query.q is not None and SEARCH_SEPARATOR in query.q:
            return ListPage([], 0)  # never in a search text's values (the reference)
        rows = self._after_list_settings(domain_listing.list_statement(collection, query), params)
        total = next(int(row[2]) for row in rows if row[0] is None)
        page = [self._record(tenant_id, collection, row) for row in rows if row[0] is not None]
        return ListPage(page, total)

    def _after_list_settings(
        self, statement: sql.Composed, params: dict[str, Any]
    ) -> Sequence[tuple[Any, ...]]:
        """The rows of ``statement``, sent in one round trip (a pipeline) after
        :data:`~botmox_supabase.domain_listing.LIST_SETTINGS`."""
        connection = self._connection()
        with (
            map_database_errors(self._action),
            connection.pipeline() as pipeline,
            connection.cursor() as settings,
            connection.cursor(row_factory=tuple_row) as cur,
        ):
            settings.execute(domain_listing.LIST_SETTINGS)
            cur.execute(statement, params)
            pipeline.sync()
            return cur.fetchall()

    def scan(
        self, tenant_id: str, collection: Collection, *, after: str | None = None, limit: int = 500
    ) -> Sequence[DomainRecord]:
        if limit < 1:
            return []
        table = collection_table(collection)
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
