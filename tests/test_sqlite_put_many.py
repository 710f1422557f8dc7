"""``RecordRepository.put_many`` on SQLite: the bulk create-or-replace leaves every derived
structure (partitions and their counts, the FTS5 trigram index, the sort indexes) exactly as
add and modify of the same records do, so lists with ``q``, ``sort`` and pages answer what the
reference :func:`~botmox_core.domain.listing.apply_query` answers, in two statements."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.backends.sqlite.schema import SORT_INDEXED_FIELDS
from botmox_core.domain.listing import ListQuery, apply_query
from botmox_core.domain.records import Collection, DomainRecord
from botmox_core.errors import BadRequestError

Key = tuple[str, Collection, str]


def _bot(rng: random.Random, tenant: str, collection: Collection, n: int) -> DomainRecord:
    data: dict[str, Any] = {
        "name": rng.choice([f"alpha {n % 40}", f"Beta-{n}", None, n % 7, "école ÉCOLE"]),
        "status": rng.choice(["farming", "banned", "Farming", "100% of_it"]),
        "level": rng.choice([n % 13, 1.5, -2, "9", 2**70]),
        "created_at": 1000 + n % 97,
        "updated_at": 5000 - n % 89,
        "custom": rng.choice([n % 11, "z", None, True]),
        "nested": {"a": n},
    }
    if n % 5 == 0:
        del data["level"]
    return DomainRecord(tenant, collection, f"r{n:04d}", data)


def _changed(rng: random.Random, record: DomainRecord) -> DomainRecord:
    """A replacement: new search text, or only a nested value (search text unchanged)."""
    if rng.random() < 0.3:
        data = {**record.data, "nested": {"b": rng.random()}}
    else:
        data = {**record.data, "name": f"omega {rng.randrange(30)}", "level": rng.randrange(50)}
        data.pop("custom", None)
    return DomainRecord(record.tenant_id, record.collection, record.id, data)


def _to(replacement: DomainRecord) -> Callable[[DomainRecord], DomainRecord]:
    return lambda _current: replacement


@pytest.fixture
def backends(tmp_path: Path) -> Iterator[tuple[SqliteBackend, SqliteBackend]]:
    added = SqliteBackend(tmp_path / "added.sqlite3", synchronous="OFF")
    put = SqliteBackend(tmp_path / "put.sqlite3", synchronous="OFF")
    yield added, put
    added.close()
    put.close()


def _page_ids(backend: SqliteBackend, tenant: str, collection: Collection, query: ListQuery) -> Any:
    with backend.unit_of_work() as uow:
        page = uow.records.list(tenant, collection, query)
    return [(r.id, r.data) for r in page.records], page.total


def _check_structures(backend: SqliteBackend) -> None:
    """FTS5's own integrity check (the index against the records) and each partition's count."""
    with closing(sqlite3.connect(backend.path)) as raw:
        raw.execute(
            "INSERT INTO domain_records_fts (domain_records_fts, rank)"
            " VALUES ('integrity-check', 1)"
        )
        counts = raw.execute(
            "SELECT p.records, (SELECT count(*) FROM domain_records AS r"
            " WHERE r.tenant_id = p.tenant_id AND r.collection = p.collection)"
            " FROM domain_partitions AS p"
        ).fetchall()
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert counts and all(kept == counted for kept, counted in counts), counts


def _seqs(backend: SqliteBackend) -> dict[tuple[str, str, str], int]:
    with closing(sqlite3.connect(backend.path)) as raw:
        rows = raw.execute("SELECT tenant_id, collection, id, seq FROM domain_records")
        return {(t, c, i): seq for t, c, i, seq in rows}


def _compare_lists(
    added: SqliteBackend, put: SqliteBackend, expected: dict[Key, DomainRecord]
) -> None:
    scopes = {(tenant, collection) for tenant, collection, _ in expected}
    sorts: list[str | None] = [None, "id", "custom", *SORT_INDEXED_FIELDS]
    for tenant, collection in sorted(scopes, key=str):
        mine = [r for (t, c, _), r in expected.items() if (t, c) == (tenant, collection)]
        for q in (None, "alpha", "omega 1", "ec", "école", "100% of", "r00"):
            for sort in sorts:
                for descending in (False, True):
                    for page, limit in ((1, 50), (3, 7), (99, 50)):
                        query = ListQuery(
                            q=q, sort=sort, descending=descending, page=page, limit=limit
                        )
                        reference = apply_query(mine, query)
                        want = [(r.id, r.data) for r in reference.records], reference.total
                        assert _page_ids(put, tenant, collection, query) == want, query
                        assert _page_ids(added, tenant, collection, query) == want, query


def test_put_many_lists_exactly_as_add_and_modify(
    backends: tuple[SqliteBackend, SqliteBackend],
) -> None:
    added, put = backends
    rng = random.Random(11)
    scopes = [("t", Collection.BOTS), ("t", Collection.NOTES), ("u", Collection.BOTS)]
    first = [_bot(rng, t, c, n) for t, c in scopes for n in range(0, 240, 1 + (t == "u"))]
    expected: dict[Key, DomainRecord] = {(r.tenant_id, r.collection, r.id): r for r in first}

    with added.unit_of_work() as uow:
        for record in first:
            uow.records.add(record)
        uow.commit()
    with put.unit_of_work() as uow:
        uow.records.put_many(first)
        uow.commit()
    _check_structures(put)
    _compare_lists(added, put, expected)
    seqs_before = _seqs(put)

    # The second batch replaces a third of the records (some with the same search text), puts
    # another third back unchanged and creates new ids, in a new partition too.
    replaced = [_changed(rng, r) for r in first if rng.random() < 0.33]
    unchanged = [r for r in first if rng.random() < 0.3 and r not in replaced]
    unchanged = [
        r
        for r in unchanged
        if (r.tenant_id, r.collection, r.id)
        not in {(x.tenant_id, x.collection, x.id) for x in replaced}
    ]
    fresh = [
        _bot(rng, t, c, n) for t, c in [*scopes, ("v", Collection.BOTS)] for n in range(240, 300)
    ]
    with added.unit_of_work() as uow:
        for record in replaced:
            uow.records.modify(record.tenant_id, record.collection, record.id, _to(record))
        for record in fresh:
            uow.records.add(record)
        uow.commit()
    batch = [*replaced, *unchanged, *fresh]
    rng.shuffle(batch)
    with put.unit_of_work() as uow:
        uow.records.put_many(batch)
        uow.commit()
    expected.update({(r.tenant_id, r.collection, r.id): r for r in batch})

    _check_structures(put)
    _compare_lists(added, put, expected)
    seqs_after = _seqs(put)
    assert all(seqs_after[key] == seq for key, seq in seqs_before.items())  # replaced in place
    with put.unit_of_work() as uow:
        for record in batch[:20]:
            assert uow.records.get(record.tenant_id, record.collection, record.id) == record


def test_put_many_is_two_statements_in_the_callers_unit(
    backends: tuple[SqliteBackend, SqliteBackend],
) -> None:
    """Partitions, then records, each one executemany; a unit left without commit keeps
    nothing (records, counts, index); invalid data fails before anything is written."""
    _, put = backends
    rng = random.Random(5)
    records = [_bot(rng, t, Collection.BOTS, n) for t in ("t", "u") for n in range(100)]
    with put.unit_of_work() as uow:
        calls: list[str] = []
        statements = uow.records._sql  # type: ignore[attr-defined]
        for name in ("run", "rows", "run_many"):
            original = getattr(statements, name)

            def spy(*args: Any, _name: str = name, _original: Any = original) -> Any:
                calls.append(_name)
                return _original(*args)

            setattr(statements, name, spy)
        uow.records.put_many(records)
        assert calls == ["run_many", "run_many"]
        # not committed: leaving the unit rolls back
    with put.unit_of_work() as uow:
        assert uow.records.list("t", Collection.BOTS, ListQuery(q="farming")).total == 0
        assert uow.records.get("t", Collection.BOTS, records[0].id) is None
    with put.unit_of_work() as uow:
        uow.records.put_many(records[:10])
        uow.commit()
    bad = DomainRecord("t", Collection.BOTS, "bad", {"x": float("nan")})
    with put.unit_of_work() as uow:
        with pytest.raises(BadRequestError):
            uow.records.put_many([*records[10:], bad])
        uow.commit()
    with put.unit_of_work() as uow:
        assert uow.records.list("t", Collection.BOTS, ListQuery()).total == 10
        uow.records.put_many([])
    _check_structures(put)
