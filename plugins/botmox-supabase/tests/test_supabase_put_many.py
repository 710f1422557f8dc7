"""``RecordRepository.put_many`` on a real PostgreSQL: a batch written by it lists exactly as the
same records written by ``add`` and ``modify`` (records, order, totals, and the derived
``search`` column the list reads), in the caller's unit of work, for any mix of collections."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from botmox_supabase.backend import PostgresDataBackend
from botmox_supabase.domain_records import PUT_MANY_TABLE

from botmox_core.domain.listing import ListQuery, apply_query
from botmox_core.domain.records import Collection, DomainRecord
from botmox_core.errors import BadRequestError

BY_ONE, BY_BATCH = "tenant-by-one", "tenant-by-batch"

VALUES: list[Any] = [
    None,
    False,
    True,
    0,
    -1,
    7,
    2.5,
    10**20,
    1e16,
    "",
    "A",
    "alpha",
    "Alpha Beta",
    "é",
    "\U0001f600",
    "50%",
    "snake_case",
    "back\\slash",
    "vm-17",
    {"x": 1},
    [1, 2],
]


def _data(rng: random.Random, index: int) -> dict[str, Any]:
    data = {
        field: rng.choice(VALUES) for field in ("name", "status", "level") if rng.random() < 0.9
    }
    data["created_at"] = rng.randrange(1, 10**12)
    if index % 15 == 0:  # a search text too long for the covering index
        data["notes"] = "long " * 300 + rng.choice(["alpha", "%", "x" * 300])
    return data


def _as(tenant: str, record: DomainRecord, data: dict[str, Any] | None = None) -> DomainRecord:
    return DomainRecord(tenant, record.collection, record.id, record.data if data is None else data)


def _replace_with(record: DomainRecord) -> Callable[[DomainRecord], DomainRecord]:
    return lambda _current: record


def _stored(sql: psycopg.Connection[Any], tenant: str) -> dict[str, tuple[Any, str]]:
    rows = sql.execute(
        "select id, data, search from botmox.bots where tenant_id = %s", (tenant,)
    ).fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


def test_put_many_lists_as_add_and_modify(
    pg_backend: PostgresDataBackend, sql: psycopg.Connection[Any]
) -> None:
    rng = random.Random(77)
    first = [
        DomainRecord(BY_ONE, Collection.BOTS, f"b{index:03d}", _data(rng, index))
        for index in range(120)
    ]
    # The second round: a third replaced, a third unchanged, and new records.
    second = [
        _as(BY_ONE, record, _data(rng, index) if index % 3 == 0 else None)
        for index, record in enumerate(first)
        if index % 3 != 2
    ] + [
        DomainRecord(BY_ONE, Collection.BOTS, f"n{index:03d}", _data(rng, index))
        for index in range(40)
    ]
    existing = {record.id for record in first}

    with pg_backend.unit_of_work() as uow:
        for record in first:
            uow.records.add(record)
        uow.commit()
    with pg_backend.unit_of_work() as uow:
        for record in second:
            if record.id in existing:
                uow.records.modify(BY_ONE, Collection.BOTS, record.id, _replace_with(record))
            else:
                uow.records.add(record)
        uow.commit()

    with pg_backend.unit_of_work() as uow:
        uow.records.put_many([_as(BY_BATCH, record) for record in first])
        uow.commit()
    unchanged = [record.id for index, record in enumerate(first) if index % 3 == 1]
    xmin = dict(
        sql.execute(
            "select id, xmin::text from botmox.bots where tenant_id = %s and id = any(%s)",
            (BY_BATCH, unchanged),
        ).fetchall()
    )
    with pg_backend.unit_of_work() as uow:
        uow.records.put_many([_as(BY_BATCH, record) for record in second])
        uow.commit()

    # The rows themselves: the same data and the same derived search text, id for id.
    assert _stored(sql, BY_BATCH) == _stored(sql, BY_ONE)
    # A record put again unchanged is not rewritten (as modify writes nothing then).
    assert (
        dict(
            sql.execute(
                "select id, xmin::text from botmox.bots where tenant_id = %s and id = any(%s)",
                (BY_BATCH, unchanged),
            ).fetchall()
        )
        == xmin
    )

    final = {record.id: record for record in first}
    final.update({record.id: record for record in second})
    queries = [ListQuery(page=page, limit=9, sort="name") for page in range(1, 20)]
    for sort in (None, "name", "status", "level", "created_at"):
        for q in (None, "a", "alpha", "vm-17", "%", "_", "\\", "1", "true", "x" * 300, "long"):
            queries.append(ListQuery(sort=sort, descending=sort == "level", q=q, limit=13))
    with pg_backend.unit_of_work() as uow:
        for query in queries:
            by_one = uow.records.list(BY_ONE, Collection.BOTS, query)
            by_batch = uow.records.list(BY_BATCH, Collection.BOTS, query)
            want = apply_query(final.values(), query)
            assert [(r.id, r.data) for r in by_batch.records] == [
                (r.id, r.data) for r in by_one.records
            ], query
            assert by_batch.total == by_one.total == want.total, query
            assert [r.id for r in by_one.records] == [r.id for r in want.records], query


def test_put_many_is_the_callers_unit(
    pg_backend: PostgresDataBackend, sql: psycopg.Connection[Any]
) -> None:
    batch = [
        DomainRecord(BY_BATCH, Collection.NOTES, "n1", {"title": "one"}),
        DomainRecord(BY_BATCH, Collection.PROXIES, "p1", {"ip": "10.0.0.1"}),
        DomainRecord(BY_ONE, Collection.NOTES, "n1", {"title": "other tenant"}),
    ]
    with pg_backend.unit_of_work() as uow:
        uow.records.put_many(batch)
        assert uow.records.get(BY_BATCH, Collection.NOTES, "n1") == batch[0]
    # Left without commit: nothing kept.
    with pg_backend.unit_of_work() as uow:
        assert uow.records.get(BY_BATCH, Collection.NOTES, "n1") is None
        # Twice in one unit (the temporary table is made anew), the second replacing the first;
        # a record repeated in a batch counts once, its last version.
        uow.records.put_many(batch)
        uow.records.put_many(
            [
                DomainRecord(BY_BATCH, Collection.NOTES, "n1", {"title": "first"}),
                DomainRecord(BY_BATCH, Collection.NOTES, "n1", {"title": "two"}),
                DomainRecord(BY_BATCH, Collection.KANBAN, "k1", {"order": 1}),
            ]
        )
        uow.records.put_many([])
        uow.commit()
    with pg_backend.unit_of_work() as uow:
        assert uow.records.get(BY_BATCH, Collection.NOTES, "n1") == DomainRecord(
            BY_BATCH, Collection.NOTES, "n1", {"title": "two"}
        )
        assert uow.records.get(BY_BATCH, Collection.PROXIES, "p1") == batch[1]
        assert uow.records.get(BY_ONE, Collection.NOTES, "n1") == batch[2]
        assert uow.records.list(BY_BATCH, Collection.KANBAN, ListQuery(q="1")).total == 1
    assert sql.execute("select to_regclass(%s)", (PUT_MANY_TABLE,)).fetchone() == (None,)


@pytest.mark.parametrize(
    "data", [{"f": float("nan")}, {"t": "nul\x00byte"}, {"nested": {"t": "nul\x00byte"}}]
)
def test_put_many_refuses_what_postgres_cannot_store(
    pg_backend: PostgresDataBackend, data: dict[str, Any]
) -> None:
    """A value PostgreSQL cannot store is a 400 and the whole batch is refused."""
    batch = [
        DomainRecord(BY_BATCH, Collection.NOTES, "ok", {"title": "fine"}),
        DomainRecord(BY_BATCH, Collection.NOTES, "bad", data),
    ]
    with pg_backend.unit_of_work() as uow, pytest.raises(BadRequestError):
        uow.records.put_many(batch)
    with pg_backend.unit_of_work() as uow:
        assert uow.records.get(BY_BATCH, Collection.NOTES, "ok") is None


def test_put_many_refuses_a_bad_id(pg_backend: PostgresDataBackend) -> None:
    """The table's checks hold for a batch as for ``add``."""
    with pg_backend.unit_of_work() as uow, pytest.raises(BadRequestError):
        uow.records.put_many([DomainRecord(BY_BATCH, Collection.NOTES, "bad id!", {})])
