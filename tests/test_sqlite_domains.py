"""The domain conformance kit on the embedded SQLite backend (a file with a second instance on
it, and a private in-memory database), plus what only SQLite shows: the exact number keys, the
migration of a version-2 file and the query plans listing relies on."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.backends.sqlite.domains import number_sort_key, sort_key_sql
from botmox_core.backends.sqlite.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from botmox_core.domain.listing import ListQuery
from botmox_core.domain.records import Collection, DomainRecord
from botmox_core.testing.domains import (
    EDGE_NUMBERS,
    DomainRepositoryConformance,
    make_record,
)


class TestSqliteFileDomains(DomainRepositoryConformance[SqliteBackend]):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[SqliteBackend]:
        backend = SqliteBackend(tmp_path / "botmox.sqlite3", synchronous="OFF")
        yield backend
        backend.close()

    @pytest.fixture
    def second_backend(self, backend: SqliteBackend) -> Iterator[SqliteBackend]:
        other = SqliteBackend(backend.path, synchronous="OFF")
        yield other
        other.close()


class TestSqliteMemoryDomains(DomainRepositoryConformance[SqliteBackend]):
    @pytest.fixture
    def backend(self) -> Iterator[SqliteBackend]:
        backend = SqliteBackend(":memory:")
        yield backend
        backend.close()


# -- number keys ---------------------------------------------------------------------------------

NUMBERS: list[int | float] = [
    *EDGE_NUMBERS,
    2.5,
    -2.5,
    0.75,
    -0.75,
    2**1000 + 1,
    -(2**1000) - 1,
    float(2**1000),
    10**400,
    -(10**400),
    2.0**-1074,
    1 / 3,
    -1 / 3,
]


@pytest.mark.parametrize("a", NUMBERS, ids=repr)
def test_number_keys_order_exactly_as_python_compares(a: int | float) -> None:
    for b in NUMBERS:
        ka, kb = number_sort_key(a), number_sort_key(b)
        assert (ka < kb) == (a < b) and (ka == kb) == (a == b), (a, b, ka, kb)


def test_number_keys_of_equal_values_are_equal() -> None:
    assert number_sort_key(1) == number_sort_key(1.0)
    assert number_sort_key(0.0) == number_sort_key(-0.0) == number_sort_key(0)
    assert number_sort_key(2**53) == number_sort_key(float(2**53))
    assert number_sort_key(2**53 + 1) != number_sort_key(float(2**53 + 1))


def test_sort_field_is_checked_before_it_reaches_sql() -> None:
    assert sort_key_sql("name") == "json_extract(sort_keys, '$.\"name\"')"
    with pytest.raises(Exception, match="cannot sort"):
        sort_key_sql("name'); DROP TABLE domain_records; --")


def test_big_integers_order_exactly_where_sqlite_alone_would_not(tmp_path: Path) -> None:
    """SQLite reads 10**30 and 10**30 + 1 as the same double; the stored keys keep them apart
    (a plain json_extract ORDER BY would tie them and order by id)."""
    backend = SqliteBackend(tmp_path / "db.sqlite3")
    try:
        with backend.unit_of_work() as uow:
            uow.records.add(make_record("t", record_id="a", value=10**30 + 1))
            uow.records.add(make_record("t", record_id="b", value=10**30))
            uow.records.add(make_record("t", record_id="c", value=1e30))
            uow.commit()
        with backend.unit_of_work() as uow:
            page = uow.records.list("t", Collection.BOTS, ListQuery(sort="value"))
        assert [record.id for record in page.records] == ["b", "a", "c"]
    finally:
        backend.close()


# -- schema ----------------------------------------------------------------------------------------


def test_a_version_2_database_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with closing(sqlite3.connect(path, isolation_level=None)) as raw:
        for statement in (*MIGRATIONS[0], *MIGRATIONS[1]):
            raw.execute(statement)
        raw.execute("PRAGMA user_version = 2")
        raw.execute("PRAGMA application_id = 1651339128")
        raw.execute(
            "INSERT INTO licences (tenant_id, status, updated_at)"
            " VALUES ('t', 'active', '2026-01-01T00:00:00.000000Z')"
        )
    assert SCHEMA_VERSION == 4
    with closing(sqlite3.connect(path, isolation_level=None)) as raw:
        assert migrate(raw) == 2
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert raw.execute("SELECT count(*) FROM licences").fetchone()[0] == 1
    backend = SqliteBackend(path)
    try:
        with backend.unit_of_work() as uow:
            uow.records.add(make_record("t", record_id="x"))
            uow.commit()
        with backend.unit_of_work() as uow:
            assert uow.records.get("t", Collection.BOTS, "x") is not None
    finally:
        backend.close()


def _plan(backend: SqliteBackend, sql: str, params: list[Any]) -> str:
    connection = sqlite3.connect(backend.path)
    try:
        rows = connection.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    finally:
        connection.close()
    return " | ".join(str(row[-1]) for row in rows)


def test_a_filtered_count_reads_only_the_covering_index(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "plan.sqlite3")
    try:
        plan = _plan(
            backend,
            "SELECT count(*) FROM domain_records WHERE tenant_id = ? AND collection = ?"
            " AND search LIKE ? ESCAPE '\\'",
            ["t", "bots", "%x%"],
        )
        assert "COVERING INDEX domain_records_search" in plan, plan
    finally:
        backend.close()


def test_stored_columns_hold_the_search_text_and_number_keys(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "cols.sqlite3")
    try:
        record = DomainRecord("t", Collection.BOTS, "Id1", {"Name": "Ab", "n": 2**64, "x": [1]})
        with backend.unit_of_work() as uow:
            uow.records.add(record)
            uow.commit()
        with closing(sqlite3.connect(backend.path)) as raw:
            search, keys = raw.execute("SELECT search, sort_keys FROM domain_records").fetchone()
        assert search == "\x1fid1\x1fab\x1f18446744073709551616\x1f"
        assert json.loads(keys) == {"Name": "4Ab", "n": number_sort_key(2**64), "x": "5"}
    finally:
        backend.close()
