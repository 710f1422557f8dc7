"""Races on the real database, through botmox's own services with ``DATA_BACKEND=supabase``:
revocation against heartbeats and resolve-downloads, heartbeats against each other, and two
publishes of the same version. No lost update, no duplicate row, deterministic error codes."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from botmox_core.bootstrap import App, bootstrap
from botmox_core.config import load_settings
from botmox_core.errors import BotmoxError, DuplicateError, LeaseInactiveError
from botmox_core.models import LeaseStatus, Role
from botmox_core.services.principal import Principal
from botmox_core.services.releases import tenant_key_prefix

TENANT = "tenant-race"
USER = "user-1"
VM = "vm-race-0001"
ADMIN = Principal(TENANT, Role.ADMIN, user_id=None, subject="test-admin")
RUNNER = Principal(TENANT, Role.API, user_id=USER, subject="test-runner")
ARTIFACT = b"botmox race artifact\n" * 100


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    settings = load_settings(
        environ={
            "DATA_BACKEND": "supabase",
            "BOTMOX_SUPABASE_DATABASE_URL": database_url,
            "BOTMOX_SUPABASE_POOL_MAX_SIZE": "12",
            "BOTMOX_DATA_DIR": str(tmp_path / "data"),
            "BOTMOX_STORAGE": "localfs",
        }
    )
    app = bootstrap(settings)
    assert app.backend.name == "supabase"
    yield app
    app.close()


def _publish(app: App, version: str) -> Any:
    key = f"{tenant_key_prefix(ADMIN.tenant_id)}fishing/windows/stable/{version}.zip"
    app.storage.put(key, io.BytesIO(ARTIFACT), size=len(ARTIFACT))
    return app.releases.publish(
        ADMIN,
        module="fishing",
        platform="windows",
        channel="stable",
        version=version,
        object_key=key,
        sha256=hashlib.sha256(ARTIFACT).hexdigest(),
        size_bytes=len(ARTIFACT),
    )


@pytest.fixture
def lease_setup(app: App) -> Any:
    """A registered VM, an active licence, an entitlement, an assigned release, a lease."""
    app.vms.register(RUNNER, vm_uuid=VM)
    app.licences.set_licence(TENANT, "active", None)
    app.licences.set_entitlement(TENANT, USER, ["fishing"])
    release = _publish(app, "1.0.0")
    app.releases.assign(
        ADMIN, module="fishing", platform="windows", channel="stable", release_id=release.id
    )
    return app.leases.issue(RUNNER, vm_uuid=VM, module="fishing")


def _chain_end(first: str, leases: list[Any]) -> str:
    """The last token of the heartbeat chain that starts at ``first``; asserts that every
    heartbeat replaced exactly the token current before it (one line, no fork: no lost update)."""
    chain = {lease.previous_token_hash: lease.token_hash for lease in leases}
    assert len(chain) == len(leases), "two heartbeats replaced the same token"
    current, steps = first, 0
    while current in chain:
        current, steps = chain[current], steps + 1
    assert steps == len(leases), "a heartbeat is missing from the token chain"
    return current


def _race(workers: list[Callable[[], Any]]) -> list[Any]:
    """Start every worker at the same instant; results (or the exception raised) in order."""
    start = threading.Barrier(len(workers))

    def run(work: Callable[[], Any]) -> Any:
        start.wait(timeout=30)
        try:
            return work()
        except BaseException as exc:
            return exc

    with ThreadPoolExecutor(len(workers)) as pool:
        return list(pool.map(run, workers))


def test_two_heartbeats_at_once_both_apply(app: App, lease_setup: Any) -> None:
    lease_id = lease_setup.lease.id
    for _ in range(5):
        before = app.leases.heartbeat(RUNNER, lease_id).lease
        results = _race([lambda: app.leases.heartbeat(RUNNER, lease_id)] * 2)
        assert not [r for r in results if isinstance(r, BaseException)], results
        # Serialised by the row lock: the second saw the first's token as current.
        end = _chain_end(before.token_hash, [r.lease for r in results])
        with app.backend.unit_of_work() as uow:
            stored = uow.leases.get(TENANT, lease_id)
        assert stored.token_hash == end
        assert stored in [r.lease for r in results]


def test_many_heartbeats_lose_no_update(app: App, lease_setup: Any) -> None:
    lease_id = lease_setup.lease.id
    first = lease_setup.lease.token_hash
    results = _race([lambda: app.leases.heartbeat(RUNNER, lease_id)] * 8)
    assert not [r for r in results if isinstance(r, BaseException)], results
    end = _chain_end(first, [r.lease for r in results])
    with app.backend.unit_of_work() as uow:
        assert uow.leases.get(TENANT, lease_id).token_hash == end


def test_revocation_racing_heartbeats(app: App, lease_setup: Any) -> None:
    lease_id = lease_setup.lease.id
    for round_number in range(3):
        if round_number:
            lease_setup = app.leases.issue(RUNNER, vm_uuid=VM, module="fishing")
            lease_id = lease_setup.lease.id
        heartbeat: Callable[[], Any] = lambda lid=lease_id: app.leases.heartbeat(RUNNER, lid)  # noqa: E731
        revoke: Callable[[], Any] = lambda lid=lease_id: app.leases.revoke(ADMIN, lid, "race")  # noqa: E731
        results = _race([heartbeat, heartbeat, revoke, heartbeat, heartbeat])
        revoked = results[2]
        assert not isinstance(revoked, BaseException), revoked
        assert revoked.status is LeaseStatus.REVOKED
        for result in results[:2] + results[3:]:
            if isinstance(result, BaseException):
                assert isinstance(result, LeaseInactiveError), repr(result)
                assert (result.code, result.status) == ("LEASE_INACTIVE", 409)
        with app.backend.unit_of_work() as uow:
            final = uow.leases.get(TENANT, lease_id)
        # No heartbeat overwrote the revocation, and the revocation kept every heartbeat
        # that committed before it (its token is the last successful one, or the original).
        assert final.status is LeaseStatus.REVOKED and final.revoke_reason == "race"
        assert final == revoked
        succeeded = [r.lease for r in results[:2] + results[3:] if not isinstance(r, BaseException)]
        assert final.token_hash == _chain_end(lease_setup.lease.token_hash, succeeded)


def test_revocation_racing_resolve_download(app: App, lease_setup: Any) -> None:
    lease_id, token = lease_setup.lease.id, lease_setup.token
    revoked_at: list[float] = []
    outcomes: list[tuple[float, str]] = []
    stop = time.monotonic() + 3

    def resolver() -> None:
        while time.monotonic() < stop:
            started = time.monotonic()
            try:
                app.downloads.resolve(
                    RUNNER,
                    lease_token=token,
                    vm_uuid=VM,
                    module="fishing",
                    platform="windows",
                    channel="stable",
                )
                outcomes.append((started, "OK"))
            except BotmoxError as exc:
                outcomes.append((started, exc.code))
            if revoked_at and started > revoked_at[0] + 0.5:
                return

    def revoker() -> None:
        time.sleep(0.3)
        app.leases.revoke(ADMIN, lease_id, "race")
        revoked_at.append(time.monotonic())

    threads = [threading.Thread(target=resolver) for _ in range(4)]
    threads.append(threading.Thread(target=revoker))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert revoked_at, "the revocation did not complete"
    codes = {code for _, code in outcomes}
    assert codes <= {"OK", "LEASE_INACTIVE"}, codes
    assert "OK" in codes and "LEASE_INACTIVE" in codes
    # A resolve that started after the revocation returned never succeeds.
    late = [code for started, code in outcomes if started > revoked_at[0]]
    assert late and set(late) == {"LEASE_INACTIVE"}
    # Exactly one audit entry per attempt, none lost or doubled under the race.
    with psycopg.connect(app.backend.options.database_url) as conn:  # type: ignore[attr-defined]
        rows = conn.execute(
            "select result, reason_code, count(*) from botmox.download_audit"
            " where tenant_id = %s and lease_id = %s group by 1, 2",
            (TENANT, lease_id),
        ).fetchall()
    audited = {(result, reason): count for result, reason, count in rows}
    assert sum(audited.values()) == len(outcomes)
    assert audited.get(("allowed", None), 0) == sum(1 for _, c in outcomes if c == "OK")


def test_two_publishes_of_the_same_version(app: App, database_url: str) -> None:
    for attempt in range(5):
        version = f"2.0.{attempt}"
        results = _race([lambda v=version: _publish(app, v)] * 2)
        published = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(published) == 1 and len(refused) == 1, results
        assert isinstance(refused[0], DuplicateError)
        assert (refused[0].code, refused[0].status) == ("DUPLICATE", 409)
        with psycopg.connect(database_url) as conn:
            count = conn.execute(
                "select count(*) from botmox.releases where tenant_id = %s and version = %s",
                (TENANT, version),
            ).fetchone()
        assert count == (1,)
