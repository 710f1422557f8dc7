"""The domain repositories on a real PostgreSQL: listing matches the reference
(:func:`botmox_core.domain.listing.apply_query`) record for record, writes keep JSON exactly,
modify locks, the ban's three writes are one unit, and tenants never see each other."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from botmox_supabase import domain_listing
from botmox_supabase.backend import PostgresDataBackend
from botmox_supabase.domain_repositories import COLLECTION_TABLES, dump_json, list_statement
from botmox_supabase.migrations import apply_migrations, shipped_migrations

from botmox_core.domain.listing import ListQuery, apply_query, search_text
from botmox_core.domain.patching import apply_patch
from botmox_core.domain.records import (
    AggregateKey,
    ArchiveEntry,
    Collection,
    DomainRecord,
    LifecycleLogEntry,
    new_record_id,
)
from botmox_core.errors import BadRequestError, DuplicateError
from botmox_core.ports import DataBackend
from botmox_core.ports.domains import supports_domains
from botmox_core.testing.domains import DomainRepositoryConformance

T1, T2 = "tenant-one", "tenant-two"
#: The migration that made the narrow search table (botmox.domain_search).
SEARCH_TABLE_MIGRATION = "20261205000000"

# Values chosen to hit every rank and the tricky comparisons: code point order (upper before
# lower, é after z, astral after BMP), ints and floats mixed, nested values, null.
VALUES: list[Any] = [
    None,
    False,
    True,
    0,
    -1,
    2,
    2.5,
    -0.5,
    10**20,
    1e16,
    "",
    "A",
    "a",
    "b",
    "Z",
    "é",
    "\U0001f600",
    "alpha beta",
    "Alpha",
    "10",
    {"x": 1},
    [1, 2],
    [],
    {},
]
FIELDS = ["name", "status", "level", "tags"]


def _random_data(rng: random.Random) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for field in FIELDS:
        if rng.random() < 0.8:
            data[field] = rng.choice(VALUES)
    data["created_at"] = rng.randrange(1, 10**12)
    return data


def _ids(page: Any) -> list[str]:
    return [record.id for record in page.records]


@pytest.fixture
def backend(pg_backend: PostgresDataBackend) -> PostgresDataBackend:
    assert supports_domains(pg_backend)
    return pg_backend


def test_backend_declares_domains(backend: PostgresDataBackend) -> None:
    with backend.unit_of_work() as uow:
        assert uow.records is not None and uow.settings is not None


def test_tenant_rows_estimate(backend: PostgresDataBackend, sql: psycopg.Connection) -> None:
    """``botmox.domain_tenant_rows`` (what a list compares its matches with): a tenant among the
    statistics' most common values gets its share of the table's rows, any other tenant (or a
    table never analysed) all of them, an unknown table nothing; the same answer every call,
    once its plan is kept."""
    with backend.unit_of_work() as uow:
        for index in range(300):
            tenant = T1 if index < 240 else T2
            uow.records.add(DomainRecord(tenant, Collection.BOTS, f"b{index:03d}", {"n": index}))
        uow.commit()
    sql.execute("analyze botmox.bots")

    def estimate(table: str, tenant: str) -> int | None:
        row = sql.execute("select botmox.domain_tenant_rows(%s, %s)", (table, tenant)).fetchone()
        assert row is not None
        return None if row[0] is None else int(row[0])

    for _ in range(8):  # past PL/pgSQL's first five custom plans
        assert estimate("bots", T1) == 240 and estimate("bots", T2) == 60
        assert estimate("bots", "nobody") == 300
        assert estimate("no_such_table", T1) is None


@pytest.mark.parametrize(
    ("factor", "max_ids"),
    [(0.0, 5000), (1e9, 5000), (0.0, 0)],
    ids=["among-matches", "in-sort-order", "filtered-without-ids"],
)
def test_list_matches_the_reference(
    backend: PostgresDataBackend, factor: float, max_ids: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every way of choosing a filtered page (among the matching ids, in sort-index order
    skipping non-matches, or with the filter when the ids were too many to return), with ``q``
    found through the trigram index or the covering index, gives the reference's records,
    order and total."""
    monkeypatch.setattr(domain_listing, "FEW_MATCHES_FACTOR", factor)
    monkeypatch.setattr(domain_listing, "MAX_MATCH_IDS", max_ids)
    rng = random.Random(1234)
    records: list[DomainRecord] = []
    with backend.unit_of_work() as uow:
        for index in range(160):
            record_id = rng.choice(["", "A", "a", "_", "-", "9"]) + f"{index:03d}"
            data = _random_data(rng)
            if index % 20 == 0:  # search texts too long for the covering index
                data["notes"] = "long " * 300 + rng.choice(["alpha", "%", "x" * 300])
            if index % 7 == 0:  # LIKE's wildcards and escape character, as plain text
                data["odd"] = rng.choice(["50%", "a%b", "snake_case", "back\\slash", "_"])
            record = DomainRecord(T1, Collection.BOTS, record_id, data)
            uow.records.add(record)
            records.append(record)
            # The other tenant holds records with the same ids: never listed for T1.
            uow.records.add(DomainRecord(T2, Collection.BOTS, record_id, {"name": "alpha"}))
        uow.commit()
    queries = [ListQuery()]
    for sort in [None, "id", "name", "status", "level", "tags", "missing", "created_at"]:
        for descending in (False, True):
            for q in [
                None,
                "a",
                "alpha",
                "1",
                "true",
                "fals",
                "e+",
                "1e+16",
                "é",
                "\U0001f600",
                "%",
                "_",
                "\\",
                "a%b",
                "x" * 300,
                "snake_case",  # LIKE's wildcards and escape beside trigram words
                "ck\\sla",
                "50%",
                "long long",
                "-0.5",  # words joined by - _ . (the words trigram index)
                "2.5",
                "e_c",
                "-01",
                "a.b",
                "0.",
            ]:
                queries.append(ListQuery(sort=sort, descending=descending, q=q, limit=17))
    queries += [ListQuery(page=page, limit=7, sort="name") for page in range(1, 30)]
    queries += [ListQuery(page=1000, limit=200, q="a"), ListQuery(page=2, limit=200)]
    with backend.unit_of_work() as uow:
        for query in queries:
            got = uow.records.list(T1, Collection.BOTS, query)
            want = apply_query(records, query)
            assert (_ids(got), got.total) == (_ids(want), want.total), query
            assert [r.data for r in got.records] == [r.data for r in want.records]
            assert all(r.tenant_id == T1 for r in got.records)


def test_list_of_an_empty_collection(backend: PostgresDataBackend) -> None:
    with backend.unit_of_work() as uow:
        for query in (ListQuery(), ListQuery(page=3, q="x", sort="name", descending=True)):
            page = uow.records.list(T1, Collection.NOTES, query)
            assert (page.records, page.total) == ([], 0)


def test_records_round_trip_exactly(backend: PostgresDataBackend) -> None:
    data = {
        "int": 10**30,
        "neg": -7,
        "float": 0.1,
        "big_float": 1e300,
        "float_16": 1e16,
        "small": 1.5e-7,
        "integral_float": 3.0,
        "text": 'snow ☃ \U0001f600 "quotes" \\',
        "nested": {"a": [1, {"b": None}], "e": {}, "l": []},
        "flag": False,
        "null": None,
        "created_at": 1,
        "updated_at": 2,
    }
    with backend.unit_of_work() as uow:
        added = uow.records.add(DomainRecord(T1, Collection.LICENSES, "lic-1", data))
        uow.commit()
    with backend.unit_of_work() as uow:
        got = uow.records.get(T1, Collection.LICENSES, "lic-1")
    assert got == added == DomainRecord(T1, Collection.LICENSES, "lic-1", data)
    assert got is not None
    assert type(got.data["big_float"]) is float and type(got.data["int"]) is int
    assert type(got.data["float_16"]) is float and type(got.data["integral_float"]) is float


def test_dump_json_keeps_floats_as_floats() -> None:
    text = dump_json({"a": 1e16, "b": [1e300, -2e20, "1e+16"], "c": 10**17, "d": 0.5})
    assert '"a": 10000000000000000.0' in text
    assert f"{int(-2e20)}.0" in text
    assert '"1e+16"' in text and "100000000000000000," in text


def test_add_duplicate_and_tenancy(backend: PostgresDataBackend) -> None:
    record = DomainRecord(T1, Collection.PROXIES, "p1", {"ip": "10.0.0.1"})
    with backend.unit_of_work() as uow:
        uow.records.add(record)
        uow.records.add(DomainRecord(T2, Collection.PROXIES, "p1", {"ip": "other"}))
        uow.records.add(DomainRecord(T1, Collection.SUBSCRIPTIONS, "p1", {"type": "wow"}))
        with pytest.raises(DuplicateError) as caught:
            uow.records.add(DomainRecord(T1, Collection.PROXIES, "p1", {"ip": "overwrite"}))
        assert caught.value.status == 409
        uow.commit()
    with backend.unit_of_work() as uow:
        assert uow.records.get(T1, Collection.PROXIES, "p1") == record
        assert uow.records.get("tenant-x", Collection.PROXIES, "p1") is None
        assert uow.records.delete("tenant-x", Collection.PROXIES, "p1") is False
        assert uow.records.modify("tenant-x", Collection.PROXIES, "p1", lambda r: r) is None
        assert uow.records.delete(T1, Collection.PROXIES, "p1") is True
        assert uow.records.delete(T1, Collection.PROXIES, "p1") is False
        uow.commit()
    with backend.unit_of_work() as uow:
        assert uow.records.get(T1, Collection.PROXIES, "p1") is None
        other = uow.records.get(T2, Collection.PROXIES, "p1")
        assert other is not None and other.data == {"ip": "other"}


def test_modify_rules(backend: PostgresDataBackend, sql: psycopg.Connection[Any]) -> None:
    with backend.unit_of_work() as uow:
        uow.records.add(DomainRecord(T1, Collection.KANBAN, "k1", {"title": "a", "order": 1}))
        uow.commit()

    def xmin() -> int:
        row = sql.execute("select xmin::text::bigint from botmox.workspace_kanban_tasks").fetchone()
        assert row is not None
        return int(row[0])

    before = xmin()
    with backend.unit_of_work() as uow:
        same = uow.records.modify(T1, Collection.KANBAN, "k1", lambda r: r)
        assert same is not None and same.data == {"title": "a", "order": 1}
        for bad in (
            lambda r: DomainRecord(r.tenant_id, r.collection, "other", r.data),
            lambda r: DomainRecord("tenant-x", r.collection, r.id, r.data),
            lambda r: DomainRecord(r.tenant_id, Collection.NOTES, r.id, r.data),
        ):
            with pytest.raises(BadRequestError):
                uow.records.modify(T1, Collection.KANBAN, "k1", bad)
        uow.commit()
    assert xmin() == before  # nothing was written

    with backend.unit_of_work() as uow:
        changed = uow.records.modify(
            T1,
            Collection.KANBAN,
            "k1",
            lambda r: DomainRecord(
                r.tenant_id, r.collection, r.id, apply_patch(r.data, {"title": "B", "order": None})
            ),
        )
        assert changed is not None and changed.data == {"title": "B"}
        uow.commit()
    with backend.unit_of_work() as uow:
        assert uow.records.list(T1, Collection.KANBAN, ListQuery(q="b")).total == 1
        assert uow.records.list(T1, Collection.KANBAN, ListQuery(q="a")).total == 0


def test_concurrent_modifies_lose_no_update(backend: PostgresDataBackend) -> None:
    with backend.unit_of_work() as uow:
        uow.records.add(DomainRecord(T1, Collection.BOTS, "b1", {"n": 0}))
        uow.commit()
    rounds, threads = 15, 4
    errors: list[BaseException] = []

    def bump_record(record: DomainRecord) -> DomainRecord:
        return DomainRecord(T1, record.collection, record.id, {"n": record.data["n"] + 1})

    def bump_settings(tree: Any) -> dict[str, Any]:
        return {**tree, "n": tree.get("n", 0) + 1}

    def work() -> None:
        try:
            for _ in range(rounds):
                with backend.unit_of_work() as uow:
                    uow.records.modify(T1, Collection.BOTS, "b1", bump_record)
                    uow.settings.modify(T1, bump_settings)
                    uow.commit()
        except BaseException as exc:  # re-raised by the test
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert errors == []
    with backend.unit_of_work() as uow:
        record = uow.records.get(T1, Collection.BOTS, "b1")
        assert record is not None and record.data["n"] == rounds * threads
        assert uow.settings.get(T1) == {"n": rounds * threads}


def test_settings_first_write_race_inserts_once(backend: PostgresDataBackend) -> None:
    """Units that all find no settings row insert concurrently: every change counts."""
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            with backend.unit_of_work() as uow:
                start.wait(timeout=10)
                uow.settings.modify(T1, lambda tree: {**tree, f"k{index}": index})
                uow.commit()
        except BaseException as exc:  # re-raised by the test
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    with backend.unit_of_work() as uow:
        assert uow.settings.get(T1) == {f"k{i}": i for i in range(6)}
        assert uow.settings.get(T2) is None


def test_settings_and_aggregates(backend: PostgresDataBackend) -> None:
    with backend.unit_of_work() as uow:
        assert uow.settings.get(T1) is None
        assert uow.aggregates.get(T1, AggregateKey.DAILY_STATS) is None
        tree = uow.settings.modify(T1, lambda t: {**t, "alerts": {"warning_days": 7}})
        assert tree == {"alerts": {"warning_days": 7}}
        uow.aggregates.put(T1, AggregateKey.DAILY_STATS, {"2026-01-01": {"net_profit": 1.5}})
        uow.aggregates.put(T1, AggregateKey.DAILY_STATS, {"2026-01-02": {"net_profit": 2}})
        uow.aggregates.put(T2, AggregateKey.GOLD_PRICE_HISTORY, {"x": 1})
        uow.commit()
    with backend.unit_of_work() as uow:
        assert uow.settings.get(T1) == {"alerts": {"warning_days": 7}}
        assert uow.aggregates.get(T1, AggregateKey.DAILY_STATS) == {"2026-01-02": {"net_profit": 2}}
        assert uow.aggregates.get(T1, AggregateKey.GOLD_PRICE_HISTORY) is None
        # A change that raises writes nothing (the row is not even created).
        with pytest.raises(BadRequestError):
            uow.settings.modify(T2, _refuse)
        uow.commit()
    with backend.unit_of_work() as uow:
        assert uow.settings.get(T2) is None


def _refuse(tree: Any) -> Any:
    raise BadRequestError("no")


def test_ban_is_one_unit(backend: PostgresDataBackend) -> None:
    """Record patch, archive entry and log entry: nothing of it survives a unit left early."""
    with backend.unit_of_work() as uow:
        uow.records.add(DomainRecord(T1, Collection.BOTS, "bot-1", {"status": "farming"}))
        uow.commit()

    def ban(uow: Any) -> None:
        uow.records.modify(
            T1,
            Collection.BOTS,
            "bot-1",
            lambda r: DomainRecord(T1, r.collection, r.id, {**r.data, "status": "banned"}),
        )
        uow.bot_history.append_archive(
            ArchiveEntry(T1, "arc-1", "bot-1", "banned", 5, {"ban_reason": "x"}, {"level": 1})
        )
        uow.bot_history.append_log(
            LifecycleLogEntry(T1, "log-1", "bot-1", "ban", "Bot banned: x", 5, {"from": "farming"})
        )

    with backend.unit_of_work() as uow:
        ban(uow)  # left without commit
    with backend.unit_of_work() as uow:
        record = uow.records.get(T1, Collection.BOTS, "bot-1")
        assert record is not None and record.data["status"] == "farming"
        assert uow.bot_history.log(T1) == [] and uow.bot_history.archive(T1) == []
        ban(uow)
        uow.commit()
    with backend.unit_of_work() as uow:
        record = uow.records.get(T1, Collection.BOTS, "bot-1")
        assert record is not None and record.data["status"] == "banned"
        assert [e.id for e in uow.bot_history.log(T1, "bot-1")] == ["log-1"]
        assert uow.bot_history.archive(T1)[0] == ArchiveEntry(
            T1, "arc-1", "bot-1", "banned", 5, {"ban_reason": "x"}, {"level": 1}
        )
        assert uow.bot_history.log(T2) == [] and uow.bot_history.archive(T2, "bot-1") == []
        with pytest.raises(DuplicateError):
            uow.bot_history.append_log(LifecycleLogEntry(T1, "log-1", "bot-2", "ban", "m", 1))


def test_history_order_and_limit(backend: PostgresDataBackend) -> None:
    with backend.unit_of_work() as uow:
        for index, stamp in enumerate([30, 10, 20, 10]):
            uow.bot_history.append_log(
                LifecycleLogEntry(T1, f"l{index}", f"b{index % 2}", "status_change", "m", stamp)
            )
            uow.bot_history.append_archive(
                ArchiveEntry(T1, f"a{index}", f"b{index % 2}", "banned", stamp)
            )
        uow.commit()
    with backend.unit_of_work() as uow:
        assert [e.id for e in uow.bot_history.log(T1)] == ["l1", "l3", "l2", "l0"]
        assert [e.id for e in uow.bot_history.log(T1, "b1", limit=1)] == ["l1"]
        assert [e.id for e in uow.bot_history.archive(T1, "b0")] == ["a2", "a0"]
        assert uow.bot_history.log(T1, limit=0) == []


def test_scan_pages_in_code_point_order(backend: PostgresDataBackend) -> None:
    ids = [new_record_id() for _ in range(30)] + ["A", "a", "_", "-", "0", "Z:9", "a@b"]
    with backend.unit_of_work() as uow:
        for record_id in ids:
            uow.records.add(DomainRecord(T1, Collection.CALENDAR, record_id, {"d": 1}))
            uow.records.add(DomainRecord(T2, Collection.CALENDAR, record_id, {"d": 2}))
        uow.commit()
    seen: list[str] = []
    after: str | None = None
    with backend.unit_of_work() as uow:
        for _ in range(20):
            batch = uow.records.scan(T1, Collection.CALENDAR, after=after, limit=8)
            if not batch:
                break
            assert all(r.tenant_id == T1 and r.data == {"d": 1} for r in batch)
            seen += [r.id for r in batch]
            after = batch[-1].id
    assert seen == sorted(ids)


def test_bad_values_are_bad_requests(backend: PostgresDataBackend) -> None:
    """What PostgreSQL cannot store (U+0000 in text, NaN) is a 400, and nothing is written."""
    for data in ({"t": "nul\x00byte"}, {"f": float("nan")}):
        with backend.unit_of_work() as uow, pytest.raises(BadRequestError):
            uow.records.add(DomainRecord(T1, Collection.NOTES, "n1", data))
    with backend.unit_of_work() as uow:
        assert uow.records.get(T1, Collection.NOTES, "n1") is None


@pytest.mark.parametrize(
    "sort", ["name", "status", "project_id", "level", "created_at", "updated_at"]
)
@pytest.mark.parametrize("descending", [False, True])
def test_bot_sorts_use_their_index(
    sort: str, descending: bool, sql: psycopg.Connection[Any]
) -> None:
    """The bots' sort indexes serve the list statement: no sort node over the collection."""
    sql.execute("set enable_seqscan = off")
    sql.execute("set enable_bitmapscan = off")
    query = ListQuery(sort=sort, descending=descending, limit=50)
    plan = "\n".join(
        row[0]
        for row in sql.execute(
            b"explain " + list_statement(Collection.BOTS, query).as_bytes(sql),
            {"tenant": T1, "limit": 50, "offset": 0},
        ).fetchall()
    )
    assert f"bots_sort_{sort}_idx" in plan, plan
    assert "Sort" not in plan.replace("Sort Key", ""), plan


def test_search_words_is_the_sql_function(sql: psycopg.Connection[Any]) -> None:
    """``search_words`` maps exactly as ``botmox.domain_search_words`` (every ASCII character,
    and others), and the words trigram index is used only for a ``q`` without a word of its
    own that has one once joined."""
    texts = [
        "".join(chr(code) for code in range(1, 128)),
        "\x1fbot-4242\x1fvm_17\x1f10.0.0.1:80\x1fa b\x1f",
        "é-ж_\U0001f600.q",
        "",
    ]
    for text in texts:
        row = sql.execute("select botmox.domain_search_words(%s)", (text,)).fetchone()
        assert row == (domain_listing.search_words(text),), text
    assert domain_listing.search_words("vm-17") == "vmq17"
    assert [
        domain_listing.uses_word_trigrams(q)
        for q in ["vm-17", "e_1", "1.5", "farming", "-1", "a b"]
    ] == [True, True, True, False, False, False]


def test_a_joined_q_is_counted_through_the_words_index(sql: psycopg.Connection[Any]) -> None:
    """The count of a ``q`` such as ``vm-17`` reads the search table through its words index
    (and the exact test re-checks), not every row of the tenant."""
    sql.execute(
        "insert into botmox.bots (tenant_id, id, data, search) select %s, 'b' || g, '{}',"
        " chr(31) || 'b' || g || chr(31) || 'vm-' || g %% 400 || chr(31)"
        " from generate_series(1, 20000) as g",
        (T1,),
    )
    sql.execute("analyze botmox.domain_search")
    sql.execute("set enable_seqscan = off")  # (a table this small is cheaper to read whole)
    query = ListQuery(q="vm-17", sort="level")
    plan = "\n".join(
        row[0]
        for row in sql.execute(
            b"explain " + list_statement(Collection.BOTS, query).as_bytes(sql),
            {
                "tenant": T1,
                "pattern": domain_listing.like_pattern("vm-17"),
                "words": domain_listing.like_pattern("vmq17"),
                "q": "vm-17",
                "max_ids": 10,
                "factor": 1.0,
                "limit": 50,
                "offset": 0,
            },
        ).fetchall()
    )
    assert "domain_search_bots_words_idx" in plan, plan
    assert "strpos(search, 'vm-17'::text) > 0" in plan, plan


def _search_rows(sql: psycopg.Connection[Any]) -> tuple[set[tuple[str, ...]], set[tuple[str, ...]]]:
    """(what the search table holds, what it must hold: every collection row's search text)."""
    held = set(
        sql.execute("select tenant_id, collection, id, search from botmox.domain_search").fetchall()
    )
    want: set[tuple[str, ...]] = set()
    for table in COLLECTION_TABLES.values():
        rows = sql.execute(f"select tenant_id, id, search from botmox.{table}").fetchall()
        want |= {(tenant, table, record_id, search) for tenant, record_id, search in rows}
    return held, want


def _renamed(name: str) -> Callable[[DomainRecord], DomainRecord]:
    return lambda r: DomainRecord(r.tenant_id, r.collection, r.id, {**r.data, "name": name})


def test_search_table_migration_fills_in_existing_rows(empty_database_url: str) -> None:
    """Rows written before the search table's migration are in it after the migration."""
    shipped = shipped_migrations()
    before = [m for m in shipped if m.version < SEARCH_TABLE_MIGRATION]
    assert [m.version for m in shipped[len(before) :]][:1] == [SEARCH_TABLE_MIGRATION]
    apply_migrations(empty_database_url, before)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        for tenant in (T1, T2):
            for index in range(3):
                data = {"name": f"bot {index}", "tenant": tenant}
                conn.execute(
                    "insert into botmox.bots (tenant_id, id, data, search) values (%s, %s, %s, %s)",
                    (tenant, f"b{index}", dump_json(data), search_text(f"b{index}", data)),
                )
        conn.execute(
            "insert into botmox.workspace_notes (tenant_id, id, data, search)"
            " values (%s, 'n1', '{}', %s)",
            (T1, search_text("n1", {})),
        )
        apply_migrations(empty_database_url)
        held, want = _search_rows(conn)
    assert held == want and len(want) == 7


def test_search_table_follows_every_write(
    backend: PostgresDataBackend, sql: psycopg.Connection[Any]
) -> None:
    """The narrow search table holds exactly each record's (tenant, collection, id, search)
    after add, modify, delete and put_many (new, changed and unchanged records, several
    collections), a bulk COPY straight into a collection table, a unit left uncommitted, an
    update changing a key, and a truncate; and a list with ``q`` counts from it."""
    with backend.unit_of_work() as uow:
        for index in range(6):
            uow.records.add(
                DomainRecord(T1, Collection.BOTS, f"b{index}", {"name": f"alpha {index}"})
            )
            uow.records.add(DomainRecord(T2, Collection.BOTS, f"b{index}", {"name": "beta"}))
        uow.records.add(DomainRecord(T1, Collection.NOTES, "n1", {"title": "alpha note"}))
        uow.commit()
    held, want = _search_rows(sql)
    assert held == want and len(want) == 13

    with backend.unit_of_work() as uow:
        rename = _renamed("gamma")
        assert uow.records.modify(T1, Collection.BOTS, "b0", rename) is not None
        assert uow.records.delete(T1, Collection.BOTS, "b1")
        uow.records.put_many(
            [
                DomainRecord(T1, Collection.BOTS, "b2", {"name": "alpha 2"}),  # unchanged
                DomainRecord(T1, Collection.BOTS, "b3", {"name": "delta"}),  # changed
                DomainRecord(T1, Collection.BOTS, "b9", {"name": "alpha new"}),  # new
                DomainRecord(T1, Collection.PROXIES, "p1", {"ip": "10.0.0.1"}),
            ]
        )
        uow.commit()
    held, want = _search_rows(sql)
    assert held == want
    assert (T1, "bots", "b0", "\x1fb0\x1fgamma\x1f") in held
    assert not any(row[2] == "b1" and row[0] == T1 for row in held)

    with backend.unit_of_work() as uow:  # not committed: the search table keeps its rows
        uow.records.put_many([DomainRecord(T1, Collection.BOTS, "b2", {"name": "omega"})])
        uow.records.delete(T1, Collection.BOTS, "b4")
    assert _search_rows(sql)[0] == held

    with sql.cursor().copy(
        "copy botmox.workspace_notes (tenant_id, id, data, search) from stdin"
    ) as copy:
        for index in range(3):
            copy.write_row(
                (T2, f"c{index}", dump_json({"t": "copied"}), f"\x1fc{index}\x1fcopied\x1f")
            )
    sql.execute(
        "update botmox.bots set id = 'b5-renamed' where tenant_id = %s and id = 'b5'", (T1,)
    )
    held, want = _search_rows(sql)
    assert held == want
    assert (T1, "bots", "b5-renamed", "\x1fb5\x1falpha 5\x1f") in held

    with backend.unit_of_work() as uow:
        page = uow.records.list(T1, Collection.BOTS, ListQuery(q="alpha", sort="name"))
        assert ([r.id for r in page.records], page.total) == (["b2", "b4", "b5-renamed", "b9"], 4)
        assert uow.records.list(T2, Collection.NOTES, ListQuery(q="copied")).total == 3

    sql.execute("truncate botmox.bots")
    held, want = _search_rows(sql)
    assert held == want and {row[1] for row in held} == {"workspace_notes", "resources_proxies"}


def test_every_collection_has_its_table(sql: psycopg.Connection[Any]) -> None:
    for collection in Collection:
        table = COLLECTION_TABLES[collection]
        assert sql.execute("select to_regclass(%s)", (f"botmox.{table}",)).fetchone() != (None,)


class TestSupabaseDomainConformance(DomainRepositoryConformance[DataBackend]):
    """The domain conformance kit, unchanged, on a real PostgreSQL."""

    concurrency_threads = 6

    @pytest.fixture
    def backend(self, database_url: str, make_backend: Callable[..., DataBackend]) -> DataBackend:
        return make_backend(database_url)

    @pytest.fixture
    def second_backend(
        self, database_url: str, make_backend: Callable[..., DataBackend]
    ) -> DataBackend:
        return make_backend(database_url)
