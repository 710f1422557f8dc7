"""``botmox migrate`` and ``botmox parity`` between two SQLite databases: every stream, stamps
kept, idempotent, prune, dry-run, --since, resumable after a crash, one migration per target,
records the target cannot hold reported (and the rest copied), canonical hashes, the CLI."""

from __future__ import annotations

import enum
import gc
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.domain.records import (
    AggregateKey,
    ArchiveEntry,
    Collection,
    DomainRecord,
    LifecycleLogEntry,
)
from botmox_core.migration import MigrationOptions, migrate, parity
from botmox_core.migration import canonical as canonical_module
from botmox_core.migration.canonical import canonical_text, field_diff
from botmox_core.migration.control import (
    LOCK_KEY,
    MigrationLock,
    MigrationLockedError,
    read_checkpoint,
)
from botmox_core.migration.engine import list_tenants
from botmox_core.testing.vault import make_binding, make_secret, make_version


def _sqlite(directory: Path) -> SqliteBackend:
    directory.mkdir(parents=True, exist_ok=True)
    return SqliteBackend(directory / "botmox.sqlite3", synchronous="OFF")


@pytest.fixture
def source(tmp_path: Path) -> Iterator[SqliteBackend]:
    backend = _sqlite(tmp_path / "a")
    yield backend
    backend.close()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[SqliteBackend]:
    backend = _sqlite(tmp_path / "b")
    yield backend
    backend.close()


def _seed(backend: SqliteBackend, tenant: str = "t1", bots: int = 30) -> None:
    with backend.unit_of_work() as uow:
        for i in range(bots):
            uow.records.add(
                DomainRecord(
                    tenant,
                    Collection.BOTS,
                    f"bot-{i:04d}",
                    {
                        "name": f"Бот {i}",
                        "level": i,
                        "tags": ["a", "b"],
                        "created_at": 1000 + i,
                        "updated_at": 2000 + i,
                    },
                )
            )
        uow.records.add(
            DomainRecord(
                tenant, Collection.NOTES, "n1", {"text": "ü", "created_at": 5, "updated_at": 6}
            )
        )
        uow.bot_history.append_log(
            LifecycleLogEntry(tenant, "log1", "bot-0001", "created", "m", 3000, {"k": 1})
        )
        uow.bot_history.append_archive(
            ArchiveEntry(tenant, "arc1", "bot-0002", "banned", 4000, {"why": "x"}, {"a": 1})
        )
        uow.aggregates.put(tenant, AggregateKey.DAILY_STATS, {"2026-01-01": {"gold": 5}})
        uow.settings.modify(tenant, lambda tree: {"theme": {"mode": "dark"}, "n": 1})
        secret = make_secret(tenant)
        uow.secrets.add(secret)
        uow.secrets.add_version(make_version(secret))
        uow.bindings.upsert(make_binding(tenant, secret.id))
        uow.commit()


def _run(source: SqliteBackend, target: SqliteBackend, **options: Any) -> Any:
    return migrate(source, target, MigrationOptions(**options), source_id="src")


def test_copies_every_stream_keeps_stamps_and_a_second_run_writes_nothing(
    source: SqliteBackend, target: SqliteBackend
) -> None:
    _seed(source, "t1")
    _seed(source, "t2", bots=3)
    first = _run(source, target)
    assert first.ok, first.problems
    assert first.tenants == ["t1", "t2"]
    created = {(s.tenant, s.stream): s.created for s in first.streams}
    assert created[("t1", "records/bots")] == 30
    for stream in ("lifecycle_log", "archive", "aggregates", "settings", "secrets", "bindings"):
        assert created[("t1", stream)] == 1, stream
    with target.unit_of_work() as uow:
        bot = uow.records.get("t1", Collection.BOTS, "bot-0007")
        assert bot is not None and bot.data["created_at"] == 1007
        assert bot.data["updated_at"] == 2007
    second = _run(source, target)
    assert second.ok and second.writes == 0
    assert parity(source, target).ok


def test_parity_names_missing_extra_and_different_records_with_a_field_diff(
    source: SqliteBackend, target: SqliteBackend
) -> None:
    _seed(source)
    _run(source, target)
    with target.unit_of_work() as uow:
        uow.records.delete("t1", Collection.BOTS, "bot-0003")
        uow.records.modify(
            "t1",
            Collection.BOTS,
            "bot-0004",
            lambda r: attrs.evolve(r, data={**r.data, "level": "four"}),
        )
        uow.records.add(DomainRecord("t1", Collection.BOTS, "zz-extra", {"created_at": 1}))
        uow.commit()
    report = parity(source, target, buckets=16)
    assert not report.ok
    bots = next(s for s in report.streams if s.tenant == "t1" and s.stream == "records/bots")
    assert (bots.missing_ids, bots.extra_ids, bots.different_ids) == (
        ["bot-0003"],
        ["zz-extra"],
        ["bot-0004"],
    )
    assert bots.diffs == [
        {"id": "bot-0004", "fields": [{"path": "level", "source": 4, "target": "four"}]}
    ]
    assert 1 <= bots.differing_buckets <= 3
    assert all(s.ok for s in report.streams if s.stream != "records/bots")
    # without prune the extra record stays; with prune the copy converges
    assert _run(source, target).writes == 2
    assert not parity(source, target).ok
    pruned = _run(source, target, prune=True)
    assert pruned.ok and pruned.writes == 1
    assert parity(source, target).ok


def test_dry_run_writes_nothing(source: SqliteBackend, target: SqliteBackend) -> None:
    _seed(source)
    report = _run(source, target, dry_run=True)
    assert report.ok and report.writes > 30
    with target.unit_of_work() as uow:
        assert uow.records.get("t1", Collection.BOTS, "bot-0001") is None
        assert uow.control.get(LOCK_KEY) is None
    assert list_tenants(target, "target") == []


def test_since_leaves_older_changes_alone_but_creates_and_prunes(
    source: SqliteBackend, target: SqliteBackend
) -> None:
    _seed(source, bots=5)
    _run(source, target)

    def stamped(stamp: int) -> Any:
        return lambda r: attrs.evolve(r, data={**r.data, "level": 99, "updated_at": stamp})

    with source.unit_of_work() as uow:
        for record_id, stamp in (("bot-0001", 1), ("bot-0002", 9000)):
            uow.records.modify("t1", Collection.BOTS, record_id, stamped(stamp))
        uow.records.add(DomainRecord("t1", Collection.BOTS, "bot-new", {"updated_at": 10}))
        uow.commit()
    report = _run(source, target, since=5000, streams=["records/bots"])
    bots = report.streams[0]
    assert (bots.created, bots.updated) == (1, 1)
    with target.unit_of_work() as uow:
        old = uow.records.get("t1", Collection.BOTS, "bot-0001")
        assert old is not None and old.data["level"] == 1


def test_a_crashed_run_resumes_from_its_checkpoint(
    source: SqliteBackend, target: SqliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(source, bots=1000)
    from botmox_core.migration import streams

    calls = {"n": 0}
    original = streams.RecordStream.write_many

    def failing(self: Any, uow: Any, tenant: str, items: Any) -> None:
        calls["n"] += self.collection is Collection.BOTS
        if calls["n"] == 5:  # the batch of bot-0400 to bot-0499
            raise KeyboardInterrupt  # not a BotmoxError: the run stops like a killed one
        original(self, uow, tenant, items)

    monkeypatch.setattr(streams.RecordStream, "write_many", failing)
    with pytest.raises(KeyboardInterrupt):
        _run(source, target, batch_size=100, page_size=100)
    monkeypatch.setattr(streams.RecordStream, "write_many", original)
    state = read_checkpoint(target)
    assert state is not None
    bots = state["streams"]["t1\x00records/bots"]
    assert bots == {"after": ["bot-0399"], "done": False}
    resumed = _run(source, target, batch_size=100, page_size=100)
    assert resumed.ok and resumed.resumed
    bots_report = next(s for s in resumed.streams if s.stream == "records/bots")
    assert bots_report.resumed_after == ["bot-0399"]
    assert bots_report.created == 600  # the 400 committed before the crash are not read again
    assert read_checkpoint(target) is None
    assert parity(source, target).ok


def test_a_second_migration_into_the_same_target_is_refused(
    source: SqliteBackend, target: SqliteBackend
) -> None:
    _seed(source, bots=2)
    with MigrationLock(target, "someone else"):
        with pytest.raises(MigrationLockedError) as refused:
            _run(source, target)
        assert refused.value.code == "MIGRATION_LOCKED"
        with pytest.raises(MigrationLockedError):
            _run(source, target, wait_seconds=0.3)
    assert _run(source, target).ok


def test_a_run_whose_lock_is_taken_over_stops_before_its_next_batch(
    source: SqliteBackend, target: SqliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer thread finds the lock gone when it stores a batch's checkpoint: the run
    raises and writes no batch after that one (nor its checkpoint)."""
    _seed(source, bots=1000)
    from botmox_core.migration import streams

    batches: list[str] = []
    write_many, renew = streams.RecordStream.write_many, MigrationLock.renew

    def counted(self: Any, uow: Any, tenant: str, items: Any) -> None:
        if self.collection is Collection.BOTS:
            batches.append(items[-1].label)
        write_many(self, uow, tenant, items)

    def renew_after_a_takeover(self: MigrationLock, checkpoint: Any = None) -> None:
        if len(batches) == 2:
            with target.unit_of_work() as uow:
                uow.control.modify(LOCK_KEY, lambda held: {**(held or {}), "owner": "someone else"})
                uow.commit()
        renew(self, checkpoint)

    monkeypatch.setattr(streams.RecordStream, "write_many", counted)
    monkeypatch.setattr(MigrationLock, "renew", renew_after_a_takeover)
    with pytest.raises(MigrationLockedError):
        _run(source, target, batch_size=100, page_size=100)
    assert batches == ["bot-0099", "bot-0199"]
    with target.unit_of_work() as uow:
        assert [r.id for r in uow.records.scan("t1", Collection.BOTS, limit=1000)][-1] == "bot-0199"
    state = read_checkpoint(target)
    assert state is not None and state["streams"]["t1\x00records/bots"]["after"] == ["bot-0099"]


def test_a_lock_left_by_a_dead_process_is_taken_over(
    source: SqliteBackend, target: SqliteBackend
) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    import socket

    with target.unit_of_work() as uow:
        uow.control.modify(
            LOCK_KEY,
            lambda current: {
                "owner": "x",
                "host": socket.gethostname(),
                "pid": int(dead.stdout),
                "expires_at": 10**15,
            },
        )
        uow.commit()
    _seed(source, bots=1)
    assert _run(source, target).ok


def test_records_the_target_cannot_hold_are_reported_and_the_rest_is_copied(
    source: SqliteBackend, target: SqliteBackend
) -> None:
    with source.unit_of_work() as uow:
        uow.records.add(DomainRecord("t1", Collection.BOTS, "good", {"a": 1}))
        uow.records.add(DomainRecord("t1", Collection.BOTS, "bad-key", {"a.b": 1}))
        uow.records.add(DomainRecord("t1", Collection.BOTS, "bad stamp", {"created_at": "x"}))
        uow.records.add(DomainRecord("t1", Collection.BOTS, "huge", {"x": "y" * 300_000}))
        uow.records.add(DomainRecord("t1", Collection.NOTES, "fine", {"b": 2}))
        uow.commit()
    report = _run(source, target)
    assert not report.ok and report.problem_count == 3
    reasons = {p.id: p.reason for p in report.problems}
    assert set(reasons) == {"bad-key", "bad stamp", "huge"}
    assert "a.b" in reasons["bad-key"]
    assert all(p.tenant == "t1" and p.stream == "records/bots" for p in report.problems)
    with target.unit_of_work() as uow:
        assert uow.records.get("t1", Collection.BOTS, "good") is not None
        assert uow.records.get("t1", Collection.NOTES, "fine") is not None
        assert uow.records.get("t1", Collection.BOTS, "huge") is None


def test_a_batch_the_target_refuses_is_written_record_by_record(
    source: SqliteBackend, target: SqliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creates and updates of a batch go through one put_many; when the target refuses the
    batch, each record is written in a unit of its own: the refused one is named, the rest
    land, and the batch's updates and deletes (prune) still apply."""
    from botmox_core.backends.sqlite.records import SqliteRecordRepository
    from botmox_core.errors import BadRequestError

    with source.unit_of_work() as uow:
        for index in range(20):
            uow.records.add(DomainRecord("t1", Collection.BOTS, f"b{index:02d}", {"n": index}))
        uow.commit()
    with target.unit_of_work() as uow:
        uow.records.add(DomainRecord("t1", Collection.BOTS, "b03", {"n": "old"}))
        uow.records.add(DomainRecord("t1", Collection.BOTS, "extra", {"n": 0}))
        uow.commit()
    batches: list[int] = []
    put_many, add = SqliteRecordRepository.put_many, SqliteRecordRepository.add

    def refusing_put_many(self: Any, records: Any) -> None:
        batches.append(len(records))
        if any(record.id == "b07" for record in records):
            raise BadRequestError("no b07 here")
        put_many(self, records)

    def refusing_add(self: Any, record: DomainRecord) -> DomainRecord:
        if record.id == "b07":
            raise BadRequestError("no b07 here")
        return add(self, record)

    monkeypatch.setattr(SqliteRecordRepository, "put_many", refusing_put_many)
    monkeypatch.setattr(SqliteRecordRepository, "add", refusing_add)
    report = _run(source, target, streams=["records/bots"], prune=True, batch_size=500)
    assert batches == [20]  # the whole batch in one call, refused
    bots = report.streams[0]
    assert (bots.created, bots.updated, bots.deleted, bots.failed) == (18, 1, 1, 1)
    assert [(p.id, p.stream) for p in report.problems] == [("b07", "records/bots")]
    assert "no b07 here" in report.problems[0].reason
    with target.unit_of_work() as uow:
        stored = uow.records.scan("t1", Collection.BOTS)
    assert [r.id for r in stored] == [f"b{i:02d}" for i in range(20) if i != 7]
    assert stored[3].data == {"n": 3}


def test_canonical_form_ignores_what_backends_cannot_keep_apart() -> None:
    assert canonical_text({"b": 1.0, "a": [], "c": None, "d": {}}) == '{"b":1}'
    assert canonical_text({"x": ["p", "q"]}) == canonical_text({"x": {"0": "p", "1": "q"}})
    assert canonical_text({"x": True}) != canonical_text({"x": 1})
    assert canonical_text({"x": 1.5}) != canonical_text({"x": 1})
    assert field_diff({"a": {"b": 1}, "c": 2}, {"a": {"b": 2}}) == [
        {"path": "a/b", "source": 1, "target": 2},
        {"path": "c", "source": 2, "target": None},
    ]


def _general_text(value: Any) -> str:
    """The canonical text by the general walk alone (what the fast paths must equal)."""
    normal = canonical_module._general(value)
    return json.dumps(
        None if normal is canonical_module.EMPTY else normal,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


class _Kind(enum.StrEnum):
    FARMING = "farming"


class _Level(enum.IntEnum):
    ONE = 1


class _Ratio(float):
    pass


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "b": "x", "c": True, "d": 1.5, "e": {"f": "g"}},
        {"a": 1.0, "b": -0.0, "c": 1e16, "d": 2.0**64, "e": 1e-7, "f": float("nan")},
        {"null": "null", "t": "[x]", "u": "{}", "v": "1.0", "w": "e+"},
        {"a": None, "b": {}, "c": [], "d": [None], "e": {"f": None}},
        {"tags": ["a", None, "b"], "deep": [[1, {"x": []}], {"y": 2.0}]},
        {"k": _Kind.FARMING, "l": _Level.ONE, "r": _Ratio(2.0), "s": _Ratio(2.5)},
        {1: "int key", "a": {True: "bool key", None: "none key"}},
        {"big": 2**70, "neg": -(2**70), "tuple": (1, 2), "set": frozenset({3, 1})},
        {"when": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC), "ü ✓ \U0001f600": "\x00"},
        {},
        {"a": {"b": {}}},
    ],
)
def test_the_fast_canonical_paths_equal_the_general_walk(value: Any) -> None:
    assert canonical_text(value) == _general_text(value)
    assert canonical_module.canonical(value) == canonical_module._general(value)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botmox_core", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_cli_migrate_parity_and_freeze(tmp_path: Path) -> None:
    source = _sqlite(tmp_path / "a")
    _seed(source)
    source.close()
    ends = [
        "--from",
        "sqlite",
        "--from-data-dir",
        str(tmp_path / "a"),
        "--to",
        "sqlite",
        "--to-data-dir",
        str(tmp_path / "b"),
    ]
    done = _cli("migrate", *ends, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["ok"] and summary["writes"] == summary["records"] == 37
    again = json.loads(_cli("migrate", *ends, "--json").stdout)
    assert again["writes"] == 0
    same = _cli("parity", *ends)
    assert same.returncode == 0 and "Overall: PARITY OK" in same.stdout
    target = _sqlite(tmp_path / "b")
    with target.unit_of_work() as uow:
        uow.records.delete("t1", Collection.BOTS, "bot-0001")
        uow.commit()
    target.close()
    differs = _cli("parity", *ends, "--json")
    assert differs.returncode == 1
    assert json.loads(differs.stdout)["ok"] is False
    assert "PARITY MISMATCH" in differs.stderr
    bad = _cli("migrate", *ends, "--to-env", "NOEQUALS")
    assert bad.returncode != 0 and "KEY=VALUE" in bad.stderr
    frozen = _cli(
        "cutover",
        "freeze",
        "--backend",
        "sqlite",
        "--data-dir",
        str(tmp_path / "a"),
        "--retry-after",
        "7",
        "--json",
    )
    assert json.loads(frozen.stdout)["frozen"] is True
    status = _cli("cutover", "status", "--backend", "sqlite", "--data-dir", str(tmp_path / "a"))
    assert "FROZEN" in status.stdout and "Retry-After 7s" in status.stdout
    opened = _cli("cutover", "unfreeze", "--backend", "sqlite", "--data-dir", str(tmp_path / "a"))
    assert "writes: open" in opened.stdout
    switch = _cli(
        "cutover", "switch", "--to", "sqlite", "--to-data-dir", str(tmp_path / "b"), "--json"
    )
    assert switch.returncode == 0, switch.stderr
    assert json.loads(switch.stdout)["apply"] == {"BOTMOX_DATA_BACKEND": "sqlite"}


def test_the_target_is_refreshed_after_a_run_not_after_a_dry_run(
    source: SqliteBackend, target: SqliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run ends with the target's ``after_bulk_write`` (PostgreSQL: VACUUM ANALYZE, so lists
    are not planned from stale statistics); a dry run wrote nothing and refreshes nothing."""
    refreshed: list[object] = []
    monkeypatch.setattr(target, "after_bulk_write", lambda: refreshed.append(target), raising=False)
    monkeypatch.setattr(source, "after_bulk_write", lambda: refreshed.append(source), raising=False)
    _seed(source)
    _run(source, target, dry_run=True)
    assert refreshed == []
    assert _run(source, target).ok
    assert refreshed == [target]


def test_a_failed_run_leaves_no_reading_thread_behind(
    source: SqliteBackend, target: SqliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run stopped by an error mid-stream closes its reading generators itself, on its own
    thread: their read-ahead threads are gone when ``migrate`` raises. Left to the garbage
    collector, such a generator was once finalized while another thread started, and joined its
    reader under the lock that start held: the run hung in CI (Python 3.11)."""
    from botmox_core.migration import streams

    _seed(source, bots=1000)
    original = streams.RecordStream.write_many
    calls = {"n": 0}

    def failing(self: Any, uow: Any, tenant: str, items: Any) -> None:
        calls["n"] += self.collection is Collection.BOTS
        if calls["n"] == 2:
            raise KeyboardInterrupt  # not a BotmoxError: the run stops
        original(self, uow, tenant, items)

    monkeypatch.setattr(streams.RecordStream, "write_many", failing)
    collecting = gc.isenabled()
    gc.disable()  # only the run itself may close them
    try:
        with pytest.raises(KeyboardInterrupt):
            _run(source, target, batch_size=100, page_size=100)
        readers = [t.name for t in threading.enumerate() if t.name.startswith("read-")]
    finally:
        if collecting:
            gc.enable()
    assert readers == []


def test_a_run_that_writes_nothing_refreshes_nothing(
    source: SqliteBackend, target: SqliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(source)
    assert _run(source, target).writes > 0
    refreshed: list[object] = []
    monkeypatch.setattr(target, "after_bulk_write", lambda: refreshed.append(1), raising=False)
    again = _run(source, target)
    assert again.ok and again.writes == 0 and refreshed == []
