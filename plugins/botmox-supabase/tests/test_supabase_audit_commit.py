"""The group commit of download audit entries on a real PostgreSQL: entries that arrive while a
commit runs share the next one, every caller is answered only after the commit that holds its
entry, each gets its own row's id, one bad entry fails only its own caller, an outage fails a
batch at once, and a resolve whose audit write fails is never answered."""

from __future__ import annotations

import io
import itertools
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import attrs
import psycopg
import pytest
from botmox_supabase.audit_commit import AuditGroupCommit
from botmox_supabase.backend import PostgresDataBackend

from botmox_core.bootstrap import bootstrap
from botmox_core.config import load_settings
from botmox_core.errors import BotmoxError, DatabaseError, ServiceUnavailableError
from botmox_core.models import AuditEvent, AuditResult, DownloadAuditEntry, Role
from botmox_core.services.downloads import ResolvedDownload
from botmox_core.services.principal import Principal

NOW = datetime(2026, 12, 7, 12, 0, 0, 123456, tzinfo=UTC)
#: Appends per thread of the contention test (enough that a lost wake-up shows: it hung in
#: every run of a version that had one).
CONTENDED_APPENDS = 3000
REFUSING_TRIGGER = """
create function botmox.test_refuse_audit() returns trigger language plpgsql as $$
begin
  if new.vm_uuid like 'vm-bad%' then
    raise exception 'audit refused';
  end if;
  return new;
end $$;
create trigger test_refuse_audit before insert on botmox.download_audit
  for each row execute function botmox.test_refuse_audit();
"""


def _entry(tenant: str, vm_uuid: str) -> DownloadAuditEntry:
    return DownloadAuditEntry(
        tenant,
        AuditEvent.DOWNLOAD_URL_ISSUED,
        AuditResult.ALLOWED,
        NOW,
        vm_uuid=vm_uuid,
        metadata={"n": vm_uuid},
    )


def _rows(dsn: str, tenant: str) -> dict[int, str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select id, vm_uuid from botmox.download_audit where tenant_id = %s", (tenant,)
        ).fetchall()
    return dict(rows)


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _blocked_inserts(dsn: str) -> list[int]:
    """Backends whose audit insert waits for the table lock."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "select pid from pg_stat_activity where wait_event_type = 'Lock'"
            " and query like 'insert into botmox.download_audit%%'"
        ).fetchall()
    return [pid for (pid,) in rows]


@pytest.fixture
def table_lock(database_url: str) -> Iterator[psycopg.Connection]:
    """A connection that can hold a lock on the audit table, so inserts queue behind it."""
    with psycopg.connect(database_url) as conn:
        yield conn


def test_concurrent_entries_each_get_their_own_row(pg_backend: PostgresDataBackend) -> None:
    tenant = f"tenant-{secrets.token_hex(3)}"
    names = [f"vm-{n:05d}" for n in range(400)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        stored = list(pool.map(lambda name: pg_backend.append_audit(_entry(tenant, name)), names))
    rows = _rows(pg_backend.options.database_url, tenant)
    assert len(rows) == len(names)  # exactly one row per entry
    assert {entry.id: entry.vm_uuid for entry in stored} == rows  # each caller's own id
    assert all(entry == _entry(tenant, entry.vm_uuid or "") for entry in _without_ids(stored))


def _without_ids(entries: list[DownloadAuditEntry]) -> list[DownloadAuditEntry]:
    return [attrs.evolve(entry, id=0) for entry in entries]


def test_entries_arriving_during_a_commit_share_the_next_one(
    pg_backend: PostgresDataBackend, table_lock: psycopg.Connection
) -> None:
    tenant = f"tenant-{secrets.token_hex(3)}"
    dsn = pg_backend.options.database_url
    committer = pg_backend._audit
    table_lock.execute("lock table botmox.download_audit in exclusive mode")
    with ThreadPoolExecutor(max_workers=6) as pool:
        first = pool.submit(pg_backend.append_audit, _entry(tenant, "vm-first"))
        _wait_for(lambda: len(_blocked_inserts(dsn)) == 1, "the first insert to wait")
        rest = [pool.submit(pg_backend.append_audit, _entry(tenant, f"vm-{n}")) for n in range(5)]
        _wait_for(lambda: committer.queued == 5, "five entries to queue")
        time.sleep(0.05)
        assert not first.done() and not any(f.done() for f in rest)  # nobody answered early
        table_lock.commit()
        stored = [first.result(timeout=10)] + [f.result(timeout=10) for f in rest]
    assert list(committer.batch_sizes)[-2:] == [1, 5]
    assert {entry.id: entry.vm_uuid for entry in stored} == _rows(dsn, tenant)


def test_a_failing_entry_fails_only_its_own_caller_in_a_shared_commit(
    own_database_url: str,
    make_backend: Callable[..., PostgresDataBackend],
) -> None:
    with psycopg.connect(own_database_url, autocommit=True) as conn:
        conn.execute(REFUSING_TRIGGER)
    backend = make_backend(own_database_url)
    tenant = f"tenant-{secrets.token_hex(3)}"
    names = ["vm-good-1", "vm-bad-1", "vm-good-2", "vm-bad-2"]
    with psycopg.connect(own_database_url) as lock, ThreadPoolExecutor(max_workers=6) as pool:
        lock.execute("lock table botmox.download_audit in exclusive mode")
        first = pool.submit(backend.append_audit, _entry(tenant, "vm-good-0"))
        _wait_for(lambda: len(_blocked_inserts(own_database_url)) == 1, "the first insert")
        queued = {name: pool.submit(backend.append_audit, _entry(tenant, name)) for name in names}
        _wait_for(lambda: backend._audit.queued == len(names), "the entries to queue")
        lock.commit()
        outcomes = {name: _outcome(future) for name, future in queued.items()}
        assert first.result(timeout=10).vm_uuid == "vm-good-0"
    assert isinstance(outcomes["vm-bad-1"], DatabaseError)
    assert isinstance(outcomes["vm-bad-2"], DatabaseError)
    good = {o.id: o.vm_uuid for o in outcomes.values() if isinstance(o, DownloadAuditEntry)}
    assert sorted(str(vm) for vm in good.values()) == ["vm-good-1", "vm-good-2"]
    assert _rows(own_database_url, tenant) == {**good, first.result().id: "vm-good-0"}
    # the shared batch failed, then each of its entries was written alone
    assert list(backend._audit.batch_sizes)[-6:] == [1, 4, 1, 1, 1, 1]


def test_an_outage_fails_a_whole_batch_at_once(
    pg_backend: PostgresDataBackend, table_lock: psycopg.Connection
) -> None:
    """A batch that meets an outage (here: its connection terminated) fails every caller in
    it with 503 at once -- no entry is retried alone, none is stored, none answered early."""
    tenant = f"tenant-{secrets.token_hex(3)}"
    dsn = pg_backend.options.database_url
    committer = pg_backend._audit
    table_lock.execute("lock table botmox.download_audit in exclusive mode")
    with ThreadPoolExecutor(max_workers=6) as pool:
        first = pool.submit(pg_backend.append_audit, _entry(tenant, "vm-first"))
        _wait_for(lambda: len(_blocked_inserts(dsn)) == 1, "the first insert to wait")
        rest = [pool.submit(pg_backend.append_audit, _entry(tenant, f"vm-{n}")) for n in range(4)]
        _wait_for(lambda: committer.queued == 4, "four entries to queue")
        _terminate(dsn, _blocked_inserts(dsn))
        assert isinstance(_outcome(first), ServiceUnavailableError)
        _wait_for(lambda: len(_blocked_inserts(dsn)) == 1, "the batch of four to wait")
        _terminate(dsn, _blocked_inserts(dsn))
        outcomes = [_outcome(future) for future in rest]
    table_lock.rollback()
    assert all(isinstance(outcome, ServiceUnavailableError) for outcome in outcomes), outcomes
    assert list(committer.batch_sizes)[-2:] == [1, 4]
    assert _rows(dsn, tenant) == {}
    # the pool recovers: the next entry is written
    assert pg_backend.append_audit(_entry(tenant, "vm-after")).vm_uuid == "vm-after"


def _terminate(dsn: str, pids: list[int]) -> None:
    assert pids
    with psycopg.connect(dsn, autocommit=True) as conn:
        for pid in pids:
            conn.execute("select pg_terminate_backend(%s)", (pid,))


def _outcome(future: Future[DownloadAuditEntry]) -> DownloadAuditEntry | BaseException:
    try:
        return future.result(timeout=10)
    except BotmoxError as exc:
        return exc


def test_a_resolve_whose_audit_write_fails_is_not_answered(
    own_database_url: str, tmp_path: Path
) -> None:
    """Through the service: the checks pass and the URL is signed, but the audit insert is
    refused by the database -- the resolve raises the database's error, nothing is answered."""
    with psycopg.connect(own_database_url, autocommit=True) as conn:
        conn.execute(REFUSING_TRIGGER)
    app = bootstrap(
        load_settings(
            environ={
                "DATA_BACKEND": "supabase",
                "BOTMOX_SUPABASE_DATABASE_URL": own_database_url,
                "BOTMOX_DATA_DIR": str(tmp_path / "data"),
                "BOTMOX_STORAGE": "localfs",
            }
        )
    )
    try:
        tenant, user = "tenant-audit", "runner-1"
        admin, runner = Principal(tenant, Role.ADMIN), Principal(tenant, Role.API, user_id=user)
        app.licences.set_licence(tenant, "active", None)
        app.licences.set_entitlement(tenant, user, ["fishing"])
        release = app.releases.upload_and_publish(
            admin, io.BytesIO(b"bytes" * 100), module="fishing", platform="linux", version="1"
        )
        app.releases.assign(
            admin, module="fishing", platform="linux", channel="stable", release_id=release.id
        )
        outcomes: dict[str, ResolvedDownload | BotmoxError] = {}
        for vm in ("vm-good-0001", "vm-bad-0001"):
            app.vms.register(runner, vm_uuid=vm)
            token = app.leases.issue(runner, vm_uuid=vm, module="fishing").token
            try:
                outcomes[vm] = app.downloads.resolve(
                    runner,
                    lease_token=token,
                    vm_uuid=vm,
                    module="fishing",
                    platform="linux",
                    channel="stable",
                )
            except BotmoxError as exc:
                outcomes[vm] = exc
    finally:
        app.close()
    good = outcomes["vm-good-0001"]
    assert isinstance(good, ResolvedDownload) and good.download_url
    assert isinstance(outcomes["vm-bad-0001"], DatabaseError)
    assert sorted(_rows(own_database_url, "tenant-audit").values()) == ["vm-good-0001"]


def test_the_lead_is_handed_on_under_contention_without_a_lost_wake_up() -> None:
    """The hand-over protocol alone, as fast as it goes (a writer that stores in memory, a
    thread switch forced every microsecond): every caller gets its own entry back and none
    waits forever -- a caller promoted to leader between queueing and waiting, or settled
    before it waits, still goes on."""
    ids = itertools.count(1)
    stored: dict[int, str] = {}

    def write(entries: Sequence[DownloadAuditEntry]) -> list[DownloadAuditEntry]:
        time.sleep(0)  # let queued callers in while the "statement" runs
        written = [attrs.evolve(entry, id=next(ids)) for entry in entries]
        stored.update((entry.id, entry.vm_uuid or "") for entry in written)
        return written

    committer = AuditGroupCommit(write)
    failures: list[str] = []

    def caller(name: int) -> None:
        for n in range(CONTENDED_APPENDS):
            entry = _entry("tenant-x", f"vm-{name}-{n}")
            got = committer.append(entry)
            if got.vm_uuid != entry.vm_uuid or stored.get(got.id) != entry.vm_uuid:
                failures.append(f"{entry.vm_uuid} got {got}")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=caller, args=(n,), daemon=True) for n in range(16)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
    finally:
        sys.setswitchinterval(interval)
    assert not any(thread.is_alive() for thread in threads), "a caller never woke up"
    assert not failures, failures[:3]
    assert len(stored) == 16 * CONTENDED_APPENDS and max(committer.batch_sizes) > 1


def test_a_lone_caller_is_not_kept_waiting(pg_backend: PostgresDataBackend) -> None:
    """No load, no batching delay: each entry is its own batch, answered after its insert."""
    tenant = f"tenant-{secrets.token_hex(3)}"
    before = len(pg_backend._audit.batch_sizes)
    for n in range(3):
        pg_backend.append_audit(_entry(tenant, f"vm-{n}"))
    assert list(pg_backend._audit.batch_sizes)[before:] == [1, 1, 1]
