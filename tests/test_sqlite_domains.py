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
from botmox_core.backends.sqlite.domains import (
    SqliteRecordRepository,
    encode_record,
    number_sort_key,
    partition_range,
    sort_key_sql,
)
from botmox_core.backends.sqlite.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    SORT_INDEXED_FIELDS,
    migrate,
)
from botmox_core.domain.listing import ListQuery, apply_query
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
    assert SCHEMA_VERSION >= 6
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


# -- listing through the trigram index and the sort indexes (schema version 6) -----------------


def _store(backend: SqliteBackend, records: list[DomainRecord]) -> None:
    with backend.unit_of_work() as uow:
        for record in records:
            uow.records.add(record)
        uow.commit()


def _check_list(
    backend: SqliteBackend, records: list[DomainRecord], query: ListQuery, tenant: str = "t"
) -> None:
    with backend.unit_of_work() as uow:
        page = uow.records.list(tenant, Collection.BOTS, query)
    mine = [r for r in records if r.tenant_id == tenant and r.collection is Collection.BOTS]
    expected = apply_query(mine, query)
    assert [r.id for r in page.records] == [r.id for r in expected.records], query
    assert page.total == expected.total, query
    assert [r.data for r in page.records] == [r.data for r in expected.records], query


#: Values whose search text an FTS tokenizer or query parser could get wrong: FTS5 syntax,
#: LIKE wildcards, non-ASCII letters (only ASCII folds: "É" never matches "é"), astral
#: characters, repeats, the separator's neighbours.
TRICKY_VALUES = (
    "ÉCOLE normale",
    "école",
    "Straße STRASSE",
    'say "hi" now',
    "a*b*c NEAR(x y) AND OR NOT ^start col:val",
    "100% of_it \\ back\\slash",
    "\U0001f600\U0001f600 smile 𝄞 clef",
    "aaaa bbbb",
    "İstanbul ıi",
    "日本語テキスト",
    "x-1-2-3",
)

TRICKY_QUERIES = (
    "éco",
    "Éco",
    "école",
    "École",
    "cole",
    "straße",
    "strasse",
    'say "hi',
    '"hi"',
    '"',
    '""',
    "a*b",
    "*b*",
    "near(x",
    "and or",
    "^start",
    "col:val",
    "100%",
    "% of",
    "of_it",
    "f_i",
    "\\ b",
    "\\",
    "\U0001f600\U0001f600",
    "\U0001f600 s",
    "𝄞",
    "𝄞 c",
    "aaa",
    "aaaa",
    "aaaaa",
    "a b",
    "istanbul",
    "İst",
    "ıi",
    "日本語",
    "本",
    "-1-",
    "x-1-2-3",
    "x-1-2-3-",
    "true",
    "fal",
    "42",
    "rec",
)


def test_the_trigram_filter_is_exactly_the_substring_test(tmp_path: Path) -> None:
    """Every q against values full of FTS syntax, wildcards and non-ASCII case pairs: the same
    records and totals as the reference (a case-folding tokenizer would match "éco" in
    "ÉCOLE", FTS syntax unquoted would fail or match otherwise)."""
    backend = SqliteBackend(tmp_path / "fts.sqlite3", synchronous="OFF")
    try:
        records = [
            make_record("t", record_id=f"rec{index:03d}", name=value, level=index)
            for index, value in enumerate(TRICKY_VALUES)
        ]
        records.append(make_record("t", record_id="flags", name="x", active=False))
        records.append(make_record("u", record_id="other", name="école ÉCOLE"))
        _store(backend, records)
        for q in TRICKY_QUERIES:
            for sort in (None, "name", "mixed"):
                _check_list(backend, records, ListQuery(q=q, sort=sort, limit=200))
    finally:
        backend.close()


@pytest.fixture
def strategies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the sort indexes that lists walked (in call order)."""
    walked: list[str] = []
    original = SqliteRecordRepository._walked

    def spy(self: SqliteRecordRepository, index: str, *args: Any, **kwargs: Any) -> Any:
        walked.append(index)
        return original(self, index, *args, **kwargs)

    monkeypatch.setattr(SqliteRecordRepository, "_walked", spy)
    return walked


def test_both_page_strategies_match_the_reference(tmp_path: Path, strategies: list[str]) -> None:
    """A broad q (a third of the records) walks the sort index and stops at its page; a rare
    q (5 records) sorts the trigram index's matches; both answer what the reference does, for
    every indexed field, a field without an index, and id, both ways, on every page."""
    backend = SqliteBackend(tmp_path / "pages.sqlite3", synchronous="OFF")
    try:
        rng = __import__("random").Random(7)
        records = []
        for index in range(900):
            kind = "common" if index % 3 == 0 else "plain"
            if index % 180 == 0:
                kind = "rare-needle"
            data: dict[str, Any] = {
                "name": rng.choice([f"{kind} {index % 50}", None, index % 7, True]),
                "status": rng.choice(["farming", "banned", "Farming"]),
                "level": rng.choice([index % 13, 1.5, -2, "9"]),
                "created_at": 1000 + index % 97,
                "updated_at": 5000 - index % 89,
                "custom": rng.choice([index % 11, "z", None]),
                "kind": kind,
            }
            if index % 5 == 0:
                del data["level"]
            records.append(DomainRecord("t", Collection.BOTS, f"r{index:04d}", data))
        records += [
            DomainRecord("u", Collection.BOTS, f"r{index:04d}", {"kind": "common"})
            for index in range(50)
        ]
        _store(backend, records)
        sorts: list[str | None] = [None, "id", "custom", *SORT_INDEXED_FIELDS]
        for q in ("common", "rare-needle", "plain", "nothing-like-it"):
            for sort in sorts:
                for descending in (False, True):
                    for page, limit in ((1, 50), (2, 50), (3, 7), (6, 50), (40, 20), (999, 50)):
                        query = ListQuery(
                            q=q, sort=sort, descending=descending, page=page, limit=limit
                        )
                        _check_list(backend, records, query)
        assert {"domain_records_by_id", *(f"domain_records_by_{f}" for f in SORT_INDEXED_FIELDS)}
        assert set(strategies) == {
            "domain_records_by_id",
            *(f"domain_records_by_{field}" for field in SORT_INDEXED_FIELDS),
        }
        strategies.clear()
        _check_list(backend, records, ListQuery(q="rare-needle", sort="name"))
        assert strategies == []  # 5 matches: sorted from the trigram index's matches
        _check_list(backend, records, ListQuery(q="common", sort="name"))
        assert strategies == ["domain_records_by_name"]
    finally:
        backend.close()


def _fts_integrity(backend: SqliteBackend) -> None:
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
    assert all(kept == counted for kept, counted in counts), counts


def test_writes_keep_the_trigram_index_and_counts_exact(tmp_path: Path) -> None:
    """Adds, modifies (search text changed or not), deletes and a re-created id: after each,
    lists with q and without answer as the reference does, FTS5's integrity check (index
    against the records) passes and each partition's count is its number of records."""
    backend = SqliteBackend(tmp_path / "writes.sqlite3", synchronous="OFF")
    try:
        records = {
            f"b{n}": make_record("t", record_id=f"b{n}", name=f"alpha {n}") for n in range(6)
        }
        _store(backend, list(records.values()))

        def check() -> None:
            for q in ("alpha", "omega", "alpha 3", None, "b1"):
                _check_list(backend, list(records.values()), ListQuery(q=q, sort="name"))
            _fts_integrity(backend)

        check()
        with backend.unit_of_work() as uow:
            changed = uow.records.modify(
                "t",
                Collection.BOTS,
                "b3",
                lambda r: DomainRecord(
                    r.tenant_id, r.collection, r.id, {**r.data, "name": "omega"}
                ),
            )
            uow.records.modify(  # search text unchanged (a nested value)
                "t",
                Collection.BOTS,
                "b2",
                lambda r: DomainRecord(r.tenant_id, r.collection, r.id, {**r.data, "x": {"a": 1}}),
            )
            uow.commit()
        assert changed is not None
        records["b3"] = changed
        records["b2"] = DomainRecord(
            "t", Collection.BOTS, "b2", {**records["b2"].data, "x": {"a": 1}}
        )
        check()
        with backend.unit_of_work() as uow:
            assert uow.records.delete("t", Collection.BOTS, "b1")
            assert uow.records.delete("t", Collection.BOTS, "b5")  # the partition's last seq
            uow.commit()
        del records["b1"], records["b5"]
        check()
        again = make_record("t", record_id="b5", name="omega again")
        fresh = make_record("t", record_id="b9", name="alpha 9")
        _store(backend, [again, fresh])
        records.update(b5=again, b9=fresh)
        check()
        with backend.unit_of_work() as uow:  # a unit rolled back leaves index and counts alone
            uow.records.add(make_record("t", record_id="gone", name="alpha gone"))
            uow.records.delete("t", Collection.BOTS, "b0")
        check()
    finally:
        backend.close()


def test_a_record_outside_its_partition_is_refused(tmp_path: Path) -> None:
    """The triggers refuse rows a writer put in another partition's seq range (the trigram
    index would then answer another tenant's list) and moves between partitions."""
    backend = SqliteBackend(tmp_path / "guard.sqlite3")
    try:
        _store(backend, [make_record("t", record_id="a"), make_record("u", record_id="b")])
        encoded = encode_record("c", {"name": "x"})
        with closing(sqlite3.connect(backend.path)) as raw:
            (other,) = raw.execute(
                "SELECT id FROM domain_partitions WHERE tenant_id = 'u'"
            ).fetchone()
            for seq in (partition_range(other)[0] + 5, None, -1):
                with pytest.raises(sqlite3.IntegrityError, match="partition"):
                    raw.execute(
                        "INSERT INTO domain_records"
                        " (seq, tenant_id, collection, id, search, sort_keys, data)"
                        " VALUES (?, 't', 'bots', 'c', ?, ?, ?)",
                        (seq, encoded.search, encoded.sort_keys, encoded.data),
                    )
            with pytest.raises(sqlite3.IntegrityError, match="keeps"):
                raw.execute("UPDATE domain_records SET tenant_id = 'u' WHERE id = 'a'")
    finally:
        backend.close()


def test_a_version_5_database_gets_partitions_and_its_index(tmp_path: Path) -> None:
    """Records stored before version 6 move to their partitions' seq ranges, keep their data,
    and list (q through the trigram index, sorts through the new indexes) as the reference."""
    path = tmp_path / "v5.sqlite3"
    records = [
        make_record(
            tenant, collection, f"{tenant}-{collection.name.lower()[:3]}-{n}", name=f"n{n} {tenant}"
        )
        for tenant in ("t", "u")
        for collection in (Collection.BOTS, Collection.NOTES)
        for n in range(30)
    ]
    with closing(sqlite3.connect(path, isolation_level=None)) as raw:
        for migration in MIGRATIONS[:5]:
            for statement in migration:
                raw.execute(statement)
        raw.execute("PRAGMA user_version = 5")
        raw.execute("PRAGMA application_id = 1651339128")
        for record in reversed(records):
            encoded = encode_record(record.id, record.data)
            raw.execute(
                "INSERT INTO domain_records (tenant_id, collection, id, data, search, sort_keys)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record.tenant_id,
                    record.collection.value,
                    record.id,
                    encoded.data,
                    encoded.search,
                    encoded.sort_keys,
                ),
            )
    with closing(sqlite3.connect(path, isolation_level=None)) as raw:
        assert migrate(raw) == 5
        partitions = raw.execute(
            "SELECT id, tenant_id, collection, records FROM domain_partitions"
        ).fetchall()
        assert sorted(row[1:] for row in partitions) == [
            ("t", "bots", 30),
            ("t", "workspace/notes", 30),
            ("u", "bots", 30),
            ("u", "workspace/notes", 30),
        ]
        for partition, tenant, collection, _ in partitions:
            first, last = partition_range(partition)
            outside = raw.execute(
                "SELECT count(*) FROM domain_records WHERE tenant_id = ? AND collection = ?"
                " AND seq NOT BETWEEN ? AND ?",
                (tenant, collection, first, last),
            ).fetchone()[0]
            assert outside == 0
    backend = SqliteBackend(path)
    try:
        _fts_integrity(backend)
        for tenant in ("t", "u"):
            for q in (None, "n1", f"n2 {tenant}", "n2 x"):
                _check_list(backend, records, ListQuery(q=q, sort="name"), tenant)
                _check_list(backend, records, ListQuery(q=q, sort="id", descending=True), tenant)
        with backend.unit_of_work() as uow:
            assert uow.records.get("u", Collection.NOTES, "u-not-7") == records[97]
            uow.records.add(make_record("t", record_id="new", name="n1 new"))
            uow.commit()
        records.append(make_record("t", record_id="new", name="n1 new"))
        _check_list(backend, records, ListQuery(q="n1 ", sort="name"))
        _fts_integrity(backend)
    finally:
        backend.close()
