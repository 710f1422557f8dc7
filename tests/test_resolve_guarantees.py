"""The guarantees of the fast resolve-download path (docs/operations.md, "Performance and the
revocation bound"):

* every attempt has exactly one durable audit row, also under concurrent load with the SQLite
  group commit, and a failing audit write is never answered 200;
* a revoked API token is refused at once by the replica that revoked it and within the
  revocation bound by any other; a revoked lease at once everywhere;
* read units take no write lock and refuse writes.
"""

from __future__ import annotations

import io
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.bootstrap import App, bootstrap
from botmox_core.config import load_settings
from botmox_core.errors import BotmoxError, UnauthorizedError
from botmox_core.models import AuditEvent, AuditResult, DownloadAuditEntry, Role
from botmox_core.ports.repositories import append_audit_entry, read_unit_of_work
from botmox_core.services import Principal, TokenService
from botmox_core.services.principal import utcnow
from botmox_core.services.tokens import TOKEN_CACHE_SECONDS

TENANT, USER, MODULE, PLATFORM = "acme", "runner-1", "farm-bot", "linux"
BASE_URL = "http://botmox.test"
#: Fails every audit insert whose vm_uuid starts with "vm-bad" (a real database refusal).
FAILING_AUDIT_TRIGGER = (
    "CREATE TRIGGER audit_refuses BEFORE INSERT ON download_audit"
    " WHEN NEW.vm_uuid LIKE 'vm-bad%' BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
)


@pytest.fixture
def core(tmp_path: Path) -> Iterator[App]:
    app = bootstrap(load_settings(environ={"BOTMOX_PLUGINS": "none"}, data_dir=tmp_path))
    try:
        yield app
    finally:
        app.close()


def _provision(core: App) -> tuple[str, Principal]:
    """A tenant with a licence, an entitlement and an assigned release; the user's API token."""
    admin = Principal(TENANT, Role.ADMIN)
    token = core.tokens.create(TENANT, "api", user_id=USER).secret
    core.licences.set_licence(TENANT, "active", None)
    core.licences.set_entitlement(TENANT, USER, [MODULE])
    release = core.releases.upload_and_publish(
        admin, io.BytesIO(b"module bytes" * 100), module=MODULE, platform=PLATFORM, version="1"
    )
    core.releases.assign(
        admin, module=MODULE, platform=PLATFORM, channel="stable", release_id=release.id
    )
    return token, core.tokens.authenticate(token)


def _lease(core: App, principal: Principal, vm_uuid: str) -> str:
    core.vms.register(principal, vm_uuid=vm_uuid)
    return core.leases.issue(principal, vm_uuid=vm_uuid, module=MODULE).token


def _resolve(core: App, principal: Principal, token: str, vm_uuid: str) -> Any:
    return core.downloads.resolve(
        principal,
        lease_token=token,
        vm_uuid=vm_uuid,
        module=MODULE,
        platform=PLATFORM,
        channel="stable",
    )


def _audit_rows(core: App) -> list[DownloadAuditEntry]:
    with core.backend.unit_of_work() as uow:
        return list(uow.audit.list(TENANT, limit=100_000))


def _entry(vm_uuid: str) -> DownloadAuditEntry:
    return DownloadAuditEntry(
        tenant_id=TENANT,
        event=AuditEvent.RESOLVE_DENIED,
        result=AuditResult.DENIED,
        created_at=utcnow(),
        vm_uuid=vm_uuid,
    )


# -- exactly one durable audit row per attempt -----------------------------------------------


def test_one_audit_row_per_attempt_under_concurrent_load(core: App) -> None:
    _, principal = _provision(core)
    leases = [(_lease(core, principal, f"vm-load-{n:04d}"), f"vm-load-{n:04d}") for n in range(4)]
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def attempt(n: int) -> None:
        token, vm = leases[n % len(leases)]
        kind = ("allowed", "wrong-vm", "forged")[n % 3]
        try:
            if kind == "allowed":
                _resolve(core, principal, token, vm)
            elif kind == "wrong-vm":
                _resolve(core, principal, token, "vm-someone-else")
            else:
                _resolve(core, principal, token[:-4] + "AAAA", vm)
            outcome = "allowed"
        except BotmoxError as exc:
            outcome = exc.code
        with lock:
            outcomes[outcome] += 1

    attempts = 240
    with ThreadPoolExecutor(12) as pool:
        list(pool.map(attempt, range(attempts)))
    rows = _audit_rows(core)
    assert len(rows) == attempts
    assert len({row.id for row in rows}) == attempts
    by_result = Counter(
        "allowed" if row.result is AuditResult.ALLOWED else row.reason_code for row in rows
    )
    assert by_result == outcomes
    assert outcomes["allowed"] == attempts // 3
    assert outcomes["VM_UUID_MISMATCH"] == attempts // 3
    assert outcomes["UNAUTHORIZED"] == attempts // 3


def _stall_writer(backend: SqliteBackend) -> Any:
    """Hold the backend's writing connection (an open unit) so that the audit writer's next
    commit blocks until the returned unit is left."""
    unit = backend.unit_of_work()
    unit.__enter__()
    return unit


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_audit_entries_arriving_during_a_commit_share_the_next_one(core: App) -> None:
    backend = core.backend
    assert isinstance(backend, SqliteBackend)
    group = backend._audit_commits
    stalled = _stall_writer(backend)
    with ThreadPoolExecutor(5) as pool:
        first = pool.submit(append_audit_entry, backend, _entry("vm-first-0001"))
        _wait_for(lambda: group.busy and not group._pending)  # the writer took its batch
        rest = [
            pool.submit(append_audit_entry, backend, _entry(f"vm-next-{n:04d}")) for n in range(4)
        ]
        _wait_for(lambda: len(group._pending) == 4)
        stalled.__exit__(None, None, None)
        stored = [first.result(timeout=30), *(f.result(timeout=30) for f in rest)]
    assert group.last_batch_sizes[-2:] == [1, 4]
    assert len({entry.id for entry in stored}) == 5
    # each caller is told the id its own row got (the batch is one executemany)
    assert {(row.id, row.vm_uuid) for row in _audit_rows(core)} == {
        (e.id, e.vm_uuid) for e in stored
    }


def test_a_failing_entry_fails_only_its_own_caller_in_a_shared_commit(core: App) -> None:
    backend = core.backend
    assert isinstance(backend, SqliteBackend)
    with backend.unit_of_work() as uow:
        uow.audit  # noqa: B018 - the unit's connection writes the trigger below
        backend._connection.execute(FAILING_AUDIT_TRIGGER)  # type: ignore[union-attr]
        uow.commit()
    group = backend._audit_commits
    stalled = _stall_writer(backend)
    names = ["vm-good-0001", "vm-bad-00001", "vm-good-0002", "vm-bad-00002"]
    with ThreadPoolExecutor(5) as pool:
        lead = pool.submit(append_audit_entry, backend, _entry("vm-good-0000"))
        _wait_for(lambda: group.busy and not group._pending)
        batch = {name: pool.submit(append_audit_entry, backend, _entry(name)) for name in names}
        _wait_for(lambda: len(group._pending) == 4)
        stalled.__exit__(None, None, None)
        lead.result(timeout=30)
        for name, future in batch.items():
            if name.startswith("vm-bad"):
                with pytest.raises(BotmoxError, match="audit refused"):
                    future.result(timeout=30)
            else:
                assert future.result(timeout=30).vm_uuid == name
    assert sorted(row.vm_uuid or "" for row in _audit_rows(core)) == [
        "vm-good-0000",
        "vm-good-0001",
        "vm-good-0002",
    ]


def test_closing_writes_every_queued_entry_first_then_refuses_more(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    backend = SqliteBackend(path)
    heard: list[tuple[Any, Any]] = []
    stalled = _stall_writer(backend)
    for n in range(3):
        backend.submit_audit(_entry(f"vm-queued-{n:03d}"), lambda s, e: heard.append((s, e)))
    closing = threading.Thread(target=backend.close)
    closing.start()
    _wait_for(lambda: backend._audit_commits._closing)
    with pytest.raises(BotmoxError, match="clos"):
        backend.submit_audit(_entry("vm-too-late-01"), lambda s, e: heard.append((s, e)))
    stalled.__exit__(None, None, None)
    closing.join(timeout=30)
    assert not closing.is_alive()
    assert [error for _, error in heard] == [None, None, None]
    assert all(stored.id for stored, _ in heard)
    reopened = SqliteBackend(path)
    try:
        with reopened.unit_of_work() as uow:
            rows = uow.audit.list(TENANT, limit=10)
        assert sorted(row.vm_uuid or "" for row in rows) == [f"vm-queued-{n:03d}" for n in range(3)]
    finally:
        reopened.close()


def test_a_resolve_whose_audit_write_fails_is_not_answered_200(tmp_path: Path) -> None:
    testing = pytest.importorskip("litestar.testing", reason="needs [server]")
    from botmox_server.app import create_app

    settings = load_settings(
        environ={"BOTMOX_PLUGINS": "none", "BOTMOX_SQLITE_BUSY_TIMEOUT_MS": "300"},
        data_dir=tmp_path,
        public_url=BASE_URL,
    )
    app = create_app(settings)
    core: App = app.state.core
    assert core.downloads.runs_locally  # the event-loop path: checks inline, audit queued
    token, principal = _provision(core)
    lease = _lease(core, principal, "vm-good-0001")
    headers = {"Authorization": f"Bearer {token}"}

    def body(vm: str) -> dict[str, str]:
        return {
            "lease_token": lease,
            "vm_uuid": vm,
            "module": MODULE,
            "platform": PLATFORM,
            "channel": "stable",
        }

    path = "/api/v1/artifacts/resolve-download"
    with testing.TestClient(app, base_url=BASE_URL) as client:
        assert client.post(path, json=body("vm-good-0001"), headers=headers).status_code == 200
        # Another process holds the write lock past the busy timeout: every check passes (the
        # reads do not need the lock) but the audit row cannot be written.
        holder = sqlite3.connect(tmp_path / "botmox.sqlite3", isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            unaudited = client.post(path, json=body("vm-good-0001"), headers=headers)
            denied_unaudited = client.post(path, json=body("vm-other-0001"), headers=headers)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        after = client.post(path, json=body("vm-good-0001"), headers=headers)
        rows = _audit_rows(core)
    assert unaudited.status_code == 502, unaudited.text
    envelope = unaudited.json()
    assert envelope["success"] is False and envelope["error"]["code"] == "DATABASE_ERROR"
    assert "download_url" not in unaudited.text
    # nor is a denial whose row cannot be written answered as a plain denial
    assert denied_unaudited.status_code == 502
    assert denied_unaudited.json()["error"]["code"] == "DATABASE_ERROR"
    assert after.status_code == 200
    assert [row.result for row in rows] == [AuditResult.ALLOWED, AuditResult.ALLOWED]


def test_a_failing_audit_write_fails_the_service_call(core: App) -> None:
    _, principal = _provision(core)
    token = _lease(core, principal, "vm-bad-00001")
    with core.backend.unit_of_work() as uow:
        uow.audit  # noqa: B018 - the unit's connection writes the trigger below
        core.backend._connection.execute(FAILING_AUDIT_TRIGGER)  # type: ignore[attr-defined]
        uow.commit()
    with pytest.raises(BotmoxError, match="audit refused"):
        _resolve(core, principal, token, "vm-bad-00001")
    assert _audit_rows(core) == []


# -- revocation -------------------------------------------------------------------------------


def test_revoked_api_token_is_refused_at_once_here_and_within_the_bound_elsewhere(
    core: App,
) -> None:
    created = core.tokens.create(TENANT, "api", user_id=USER)
    here = core.tokens
    elsewhere = TokenService(core.backend, cache_seconds=0.5)  # another replica's service
    assert here.authenticate(created.secret).subject == created.record.id
    assert elsewhere.authenticate(created.secret).subject == created.record.id
    assert here.cached(created.secret) is not None
    assert elsewhere.cached(created.secret) is not None

    assert here.revoke(TENANT, created.record.id)
    revoked_at = time.monotonic()
    with pytest.raises(UnauthorizedError, match="revoked"):
        here.authenticate(created.secret)  # this replica: at once
    while time.monotonic() - revoked_at < 5:  # another replica: within its bound
        try:
            elsewhere.authenticate(created.secret)
        except UnauthorizedError:
            break
        time.sleep(0.01)
    assert time.monotonic() - revoked_at <= 0.5 + 0.2
    with pytest.raises(UnauthorizedError):
        elsewhere.authenticate(created.secret)


def test_a_revocation_heard_from_another_replica_empties_the_cache(core: App) -> None:
    created = core.tokens.create(TENANT, "api")
    other = TokenService(core.backend)  # cache bound as deployed
    other.authenticate(created.secret)
    core.tokens.revoke(TENANT, created.record.id)
    assert other.authenticate(created.secret).subject == created.record.id  # still cached
    other.forget_cached()  # what hearing_revocations does on REVOCATION_CHANNEL
    with pytest.raises(UnauthorizedError, match="revoked"):
        other.authenticate(created.secret)


def test_token_cache_serves_only_what_verified_and_honours_expiry(tmp_path: Path) -> None:
    now = [utcnow()]
    backend = SqliteBackend(tmp_path / "db.sqlite3")
    try:
        tokens = TokenService(backend, clock=lambda: now[0])
        assert tokens.cache_seconds == TOKEN_CACHE_SECONDS <= 2
        created = tokens.create(TENANT, "api", expires_at=now[0] + timedelta(seconds=30))
        with pytest.raises(UnauthorizedError):
            tokens.authenticate("bmx_" + "0" * 40)
        assert tokens.cached("bmx_" + "0" * 40) is None  # refusals are never cached
        tokens.authenticate(created.secret)
        assert tokens.cached(created.secret) is not None
        now[0] += timedelta(seconds=31)  # the token expires while cached
        assert tokens.cached(created.secret) is None
        with pytest.raises(UnauthorizedError, match="expired"):
            tokens.authenticate(created.secret)
    finally:
        backend.close()


def test_revoked_lease_is_refused_at_once(core: App) -> None:
    _, principal = _provision(core)
    token = _lease(core, principal, "vm-lease-0001")
    assert _resolve(core, principal, token, "vm-lease-0001").download_url
    lease_id = core.signer.verify(token).lease_id
    core.leases.revoke(Principal(TENANT, Role.ADMIN), lease_id, "stolen")
    with pytest.raises(BotmoxError) as refused:
        _resolve(core, principal, token, "vm-lease-0001")
    assert refused.value.code == "LEASE_INACTIVE"


# -- read units -------------------------------------------------------------------------------


def test_read_units_do_not_wait_for_a_writer_and_refuse_writes(core: App) -> None:
    created = core.tokens.create(TENANT, "api")
    backend = core.backend
    assert isinstance(backend, SqliteBackend)
    writer = _stall_writer(backend)  # holds BEGIN IMMEDIATE and the in-process lock
    try:
        writer.tokens.revoke(TENANT, created.record.id, utcnow())  # not committed yet
        started = time.monotonic()
        with read_unit_of_work(backend) as unit:
            record = unit.tokens.get_by_hash(created.record.token_hash)
            assert record is not None and record.revoked_at is None  # committed state only
            with pytest.raises(BotmoxError, match="readonly"):
                unit.tokens.revoke(TENANT, created.record.id, utcnow())
        assert time.monotonic() - started < 1.0  # well below the 15 s busy timeout
    finally:
        writer.__exit__(None, None, None)


def test_a_revocation_announced_on_the_transport_empties_every_listening_cache(
    core: App,
) -> None:
    import asyncio

    from botmox_core.backends.inprocess_transport import InProcessTransport
    from botmox_core.services.tokens import announce_revocation
    from botmox_server.auth import hearing_revocations

    created = core.tokens.create(TENANT, "api")
    listening = TokenService(core.backend, cache_seconds=3600)  # a bound far away
    listening.authenticate(created.secret)

    async def scenario() -> None:
        transport = InProcessTransport()
        await transport.start()
        try:
            async with hearing_revocations(transport, listening):
                await asyncio.sleep(0.05)  # the listener subscribes
                core.tokens.revoke(TENANT, created.record.id)
                assert listening.cached(created.secret) is not None
                await announce_revocation(transport, TENANT, created.record.id)
                for _ in range(100):
                    if listening.cached(created.secret) is None:
                        break
                    await asyncio.sleep(0.01)
        finally:
            await transport.stop()

    asyncio.run(scenario())
    assert listening.cached(created.secret) is None
    with pytest.raises(UnauthorizedError, match="revoked"):
        listening.authenticate(created.secret)
