"""RTDB-specific behaviour of the backend: layout, key checks, error mapping, units of work,
concurrency and compatibility with existing data. Real firebase-admin, real HTTP, emulator."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import firebase_admin
import pytest
from botmox_rtdb import RtdbBackend, build_backend
from botmox_rtdb.testing import RtdbEmulator, emulator_environ, running_emulator

from botmox_core.config import load_settings
from botmox_core.errors import (
    BadRequestError,
    ConfigurationError,
    DatabaseError,
    DuplicateError,
    ServiceUnavailableError,
)
from botmox_core.models import (
    ApiToken,
    Assignment,
    AuditEvent,
    AuditResult,
    DownloadAuditEntry,
    Entitlement,
    Lease,
    LeaseStatus,
    Licence,
    LicenceStatus,
    Release,
    ReleaseScope,
    ReleaseStatus,
    Role,
    Vm,
    VmStatus,
)

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
SHA = "ab" * 32


def vm(tenant: str = "t1", vm_uuid: str = "vm-0001", **changes: Any) -> Vm:
    value = Vm(tenant_id=tenant, vm_uuid=vm_uuid, user_id="user-1", status=VmStatus.ACTIVE,
               created_at=NOW, updated_at=NOW)
    return attrs.evolve(value, **changes)


def lease(tenant: str = "t1", lease_id: str = "lease_1", **changes: Any) -> Lease:
    value = Lease(id=lease_id, tenant_id=tenant, user_id="user-1", vm_uuid="vm-0001",
                  module="fishing", status=LeaseStatus.ACTIVE, token_hash=SHA, issued_at=NOW,
                  expires_at=NOW + timedelta(minutes=5))
    return attrs.evolve(value, **changes)


def release(tenant: str = "t1", version: str = "1.0.0", **changes: Any) -> Release:
    value = Release(id=0, tenant_id=tenant, module="fishing", platform="windows",
                    channel="stable", version=version,
                    object_key=f"fishing/windows/{version}.zip", sha256=SHA, size_bytes=10,
                    status=ReleaseStatus.ACTIVE, created_at=NOW)
    return attrs.evolve(value, **changes)


def commit(backend: RtdbBackend, action: Callable[[Any], Any]) -> Any:
    with backend.unit_of_work() as uow:
        result = action(uow)
        uow.commit()
    return result


# -- layout ---------------------------------------------------------------------------------


def test_records_are_stored_in_the_documented_layout(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    token = ApiToken(id="tok_1", tenant_id="t1", role=Role.ADMIN, token_hash=SHA, created_at=NOW)

    def write(uow: Any) -> Release:
        uow.tokens.add(token)
        uow.vms.upsert(vm(metadata={"rack": "r1"}))
        uow.licences.put_licence(Licence("t1", LicenceStatus.ACTIVE, updated_at=NOW))
        uow.licences.put_entitlement(Entitlement("t1", "user-1", frozenset({"*", "fishing"}), NOW))
        uow.leases.add(lease())
        stored = uow.releases.add(release())
        uow.assignments.put(Assignment("t1", "fishing", "windows", "stable", stored.id, NOW))
        uow.assignments.put(Assignment("t1", "fishing", "windows", "stable", stored.id, NOW,
                                       user_id="user-1"))
        uow.audit.append(DownloadAuditEntry("t1", AuditEvent.RESOLVE_SUCCESS,
                                            AuditResult.ALLOWED, NOW, lease_id="lease_1"))
        return stored  # type: ignore[no-any-return]

    stored = commit(rtdb, write)
    tree = emulator.read(namespace, "tenants/t1")
    assert tree["vm_registry"]["vm-0001"]["status"] == "active"
    assert tree["vm_registry"]["vm-0001"]["metadata"] == {"rack": "r1"}
    assert tree["licenses"]["current"]["status"] == "active"
    assert tree["entitlements"]["user-1"]["modules"] == {"*": True, "fishing": True}
    assert tree["execution_leases"]["lease_1"]["expires_at"] == "2026-11-24T12:05:00.000Z"
    assert tree["api_tokens"]["tok_1"]["token_hash"] == SHA
    releases = emulator.read(namespace, "tenants/t1/artifact_releases")
    assert [r for r in releases if r] == [emulator.read(namespace,
                                                        f"tenants/t1/artifact_releases/{stored.id}")]
    scope = tree["artifact_assignments"]["fishing"]["windows"]["stable"]
    assert scope["default"]["release_id"] == stored.id
    assert scope["users"]["user-1"]["release_id"] == stored.id
    assert emulator.read(namespace, "tenants/t1/download_audit/1")["lease_id"] == "lease_1"
    assert tree["counters"]["download_audit"] == 1
    assert emulator.read(namespace, "botmox_meta/counters/release_id") == stored.id
    assert emulator.read(namespace, f"botmox_meta/api_token_hashes/{SHA}") == {
        "tenant_id": "t1", "token_id": "tok_1"}


def test_existing_data_shapes_are_read(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    """Entitlement modules as a list or a map with false entries; metadata as an object."""
    emulator.write(namespace, "tenants/t1/entitlements/u-list",
                   {"modules": ["fishing", "mining"], "updated_at": "2026-01-01T00:00:00Z"})
    emulator.write(namespace, "tenants/t1/entitlements/u-map",
                   {"modules": {"fishing": True, "mining": False}, "updated_at": "2026-01-01"})
    emulator.write(namespace, "tenants/t1/vm_registry/vm-legacy",
                   {"vm_uuid": "vm-legacy", "user_id": "u", "status": "paused",
                    "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                    "metadata": {"a": 1}, "legacy_field": "ignored"})
    with rtdb.unit_of_work() as uow:
        listed = uow.licences.get_entitlement("t1", "u-list")
        mapped = uow.licences.get_entitlement("t1", "u-map")
        legacy = uow.vms.get("t1", "vm-legacy")
    assert listed is not None and listed.modules == frozenset({"fishing", "mining"})
    assert mapped is not None and mapped.modules == frozenset({"fishing"})
    assert legacy is not None and legacy.metadata == {"a": 1} and legacy.tenant_id == "t1"


def test_metadata_rtdb_cannot_keep_is_stored_as_json_text(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    lossy = {"list": [1, None], "empty": {}, "key.with.dots": 1, "0": "array-like"}
    commit(rtdb, lambda uow: uow.vms.upsert(vm(metadata=lossy)))
    stored = emulator.read(namespace, "tenants/t1/vm_registry/vm-0001/metadata")
    assert isinstance(stored, str)
    with rtdb.unit_of_work() as uow:
        got = uow.vms.get("t1", "vm-0001")
    assert got is not None and got.metadata == lossy


def test_corrupt_records_are_database_errors(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    emulator.write(namespace, "tenants/t1/execution_leases/lease_bad", {"id": "lease_bad"})
    emulator.write(namespace, "tenants/t1/vm_registry/vm-bad", "not an object")
    with rtdb.unit_of_work() as uow:
        with pytest.raises(DatabaseError):
            uow.leases.get("t1", "lease_bad")
        with pytest.raises(DatabaseError):
            uow.vms.get("t1", "vm-bad")


# -- keys from user input -------------------------------------------------------------------

FORBIDDEN = [".", "#", "$", "[", "]", "/", "\x00", "\x7f"]


@pytest.mark.parametrize("char", FORBIDDEN)
def test_forbidden_characters_in_keys_are_refused_and_never_written(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str, char: str
) -> None:
    bad = f"bad{char}key"
    attempts: list[Callable[[Any], Any]] = [
        lambda uow: uow.vms.upsert(vm(vm_uuid=bad)),
        lambda uow: uow.vms.upsert(vm(user_id=bad)),
        lambda uow: uow.vms.upsert(vm(tenant=bad)),
        lambda uow: uow.vms.get(bad, "vm-0001"),
        lambda uow: uow.leases.add(lease(module=bad)),
        lambda uow: uow.leases.add(lease(lease_id=bad)),
        lambda uow: uow.leases.get("t1", bad),
        lambda uow: uow.licences.put_entitlement(Entitlement("t1", bad, frozenset(), NOW)),
        lambda uow: uow.licences.put_entitlement(Entitlement("t1", "u", frozenset({bad}), NOW)),
        lambda uow: uow.releases.add(release(module=bad)),
        lambda uow: uow.assignments.get("t1", None, ReleaseScope("m", "p", bad)),
        lambda uow: uow.assignments.put(Assignment("t1", "m", "p", "c", 1, NOW, user_id=bad)),
        lambda uow: uow.audit.append(DownloadAuditEntry(bad, AuditEvent.RESOLVE_DENIED,
                                                        AuditResult.DENIED, NOW)),
    ]
    for attempt in attempts:
        with pytest.raises(BadRequestError) as caught:
            commit(rtdb, attempt)
        assert caught.value.code == "INVALID_KEY"
        envelope = caught.value.to_envelope()
        assert envelope["success"] is False and envelope["error"]["code"] == "INVALID_KEY"
        assert caught.value.status == 400
    assert emulator.read(namespace, "/") is None, "nothing was written"


def test_overlong_keys_are_refused(rtdb: RtdbBackend, emulator: RtdbEmulator,
                                   namespace: str) -> None:
    with pytest.raises(BadRequestError, match="768"):
        commit(rtdb, lambda uow: uow.vms.upsert(vm(vm_uuid="v" * 769)))
    assert emulator.read(namespace, "/") is None


# -- error mapping ----------------------------------------------------------------------------


def test_unreachable_database_is_service_unavailable() -> None:
    with running_emulator() as host_port:
        backend = build_backend(load_settings(emulator_environ(host_port, "gone")))
    try:  # the emulator has stopped: nothing listens on that port any more
        report = backend.check_health()
        assert report.ok is False and "unreachable" in (report.detail or "")
        with pytest.raises(ServiceUnavailableError) as caught, backend.unit_of_work() as uow:
            uow.vms.get("t1", "vm-0001")
        assert caught.value.retryable and caught.value.__cause__ is None
        with pytest.raises(ServiceUnavailableError), backend.unit_of_work() as uow:
            uow.releases.add(release())
    finally:
        backend.close()


def test_missing_index_names_the_rules_command() -> None:
    with running_emulator() as host_port:  # default rules: no .indexOn at all
        backend = build_backend(load_settings(emulator_environ(host_port, "noindex")))
        try:
            with pytest.raises(DatabaseError, match=r"python -m botmox_rtdb\.rules"):
                commit(backend, lambda uow: uow.releases.list("t1", module="fishing"))
        finally:
            backend.close()


def test_health_reports_firebase_ready_with_latency(rtdb: RtdbBackend) -> None:
    report = rtdb.check_health()
    assert report.ok and report.name == "rtdb"
    assert report.detail and "firebase_ready" in report.detail
    assert report.latency_ms is not None and report.latency_ms >= 0


# -- units of work --------------------------------------------------------------------------


def test_unit_reads_its_own_pending_writes(rtdb: RtdbBackend) -> None:
    with rtdb.unit_of_work() as uow:
        uow.vms.upsert(vm())
        uow.leases.add(lease())
        stored = uow.releases.add(release())
        entry = uow.audit.append(DownloadAuditEntry("t1", AuditEvent.RESOLVE_SUCCESS,
                                                    AuditResult.ALLOWED, NOW, lease_id="l&x"))
        assert uow.vms.get("t1", "vm-0001") == vm()
        assert uow.leases.get("t1", "lease_1") == lease()
        assert uow.releases.get("t1", stored.id) == stored
        assert uow.releases.find("t1", stored.scope, "1.0.0") == stored
        assert list(uow.releases.list("t1", module="fishing")) == [stored]
        assert list(uow.audit.list("t1", lease_id="l&x")) == [entry]
        revoked = uow.leases.modify("t1", "lease_1",
                                    lambda cur: attrs.evolve(cur, status=LeaseStatus.REVOKED))
        assert revoked is not None and revoked.status is LeaseStatus.REVOKED
        uow.commit()
    with rtdb.unit_of_work() as uow:
        got = uow.leases.get("t1", "lease_1")
    assert got is not None and got.status is LeaseStatus.REVOKED, "the pending lease was changed"


def test_conditional_write_lost_at_commit_undoes_the_unit(
    make_backend: Callable[..., RtdbBackend], emulator: RtdbEmulator, namespace: str
) -> None:
    """A racing writer takes a lease id between add() and commit(): the commit raises
    DuplicateError, undoes the token it had already created and writes none of the plain
    writes."""
    first, second = make_backend(), make_backend()
    token = ApiToken(id="tok_1", tenant_id="t1", role=Role.API, token_hash=SHA, created_at=NOW)
    with first.unit_of_work() as uow:
        uow.tokens.add(token)
        uow.vms.upsert(vm())
        uow.leases.add(lease())
        commit(second, lambda other: other.leases.add(lease(module="racer")))
        with pytest.raises(DuplicateError):
            uow.commit()
    tree = emulator.read(namespace, "/")
    assert list(tree["tenants"]["t1"]) == ["execution_leases"]
    assert tree["tenants"]["t1"]["execution_leases"]["lease_1"]["module"] == "racer"
    assert "botmox_meta" not in tree, "the token's hash pointer was undone"


def test_release_duplicate_raced_at_commit_is_refused(
    make_backend: Callable[..., RtdbBackend],
) -> None:
    first, second = make_backend(), make_backend()
    with first.unit_of_work() as uow:
        uow.releases.add(release(version="2.0.0"))
        commit(second, lambda other: other.releases.add(release(version="2.0.0",
                                                                object_key="other.zip")))
        with pytest.raises(DuplicateError):
            uow.commit()
    with first.unit_of_work() as uow:
        listed = uow.releases.list("t1")
    assert [r.object_key for r in listed] == ["other.zip"]


def test_query_values_with_url_special_characters_round_trip(rtdb: RtdbBackend) -> None:
    odd_ids = ["lease&x=1", "lease+plus", "lease%41", 'lease"quote', "lease é ✓", "lease?q"]
    for lease_id in odd_ids:
        commit(rtdb, lambda uow, lid=lease_id: uow.audit.append(DownloadAuditEntry(
            "t1", AuditEvent.RESOLVE_DENIED, AuditResult.DENIED, NOW, lease_id=lid)))
    with rtdb.unit_of_work() as uow:
        for lease_id in odd_ids:
            found = uow.audit.list("t1", lease_id=lease_id)
            assert [e.lease_id for e in found] == [lease_id]
    odd_version = "1.0.0+build&x=%41"
    stored = commit(rtdb, lambda uow: uow.releases.add(release(version=odd_version)))
    with rtdb.unit_of_work() as uow:
        assert uow.releases.find("t1", stored.scope, odd_version) == stored


# -- concurrency: no lost update --------------------------------------------------------------


def _run_together(actions: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(actions))

    def run(action: Callable[[], Any]) -> Any:
        barrier.wait(timeout=10)
        try:
            return action()
        except Exception as exc:  # collected for the assertions
            return exc

    with ThreadPoolExecutor(len(actions)) as pool:
        return [f.result() for f in [pool.submit(run, a) for a in actions]]


def test_concurrent_revocations_and_heartbeats_lose_no_update(
    make_backend: Callable[..., RtdbBackend],
) -> None:
    one, two = make_backend(), make_backend()
    commit(one, lambda uow: uow.leases.add(lease(revoke_reason="")))

    def heartbeat(backend: RtdbBackend, tag: str) -> Callable[[], Any]:
        def change(cur: Lease) -> Lease:
            return attrs.evolve(cur, expires_at=cur.expires_at + timedelta(seconds=60),
                                revoke_reason=(cur.revoke_reason or "") + f"[hb-{tag}]")
        return lambda: commit(backend, lambda uow: uow.leases.modify("t1", "lease_1", change))

    def revoke(backend: RtdbBackend, tag: str) -> Callable[[], Any]:
        def change(cur: Lease) -> Lease:
            return attrs.evolve(cur, status=LeaseStatus.REVOKED, revoked_at=NOW,
                                revoke_reason=(cur.revoke_reason or "") + f"[rv-{tag}]")
        return lambda: commit(backend, lambda uow: uow.leases.modify("t1", "lease_1", change))

    for _round in range(5):
        results = _run_together([revoke(one, "a"), revoke(two, "b"),
                                 heartbeat(one, "c"), heartbeat(two, "d")])
        assert all(isinstance(r, Lease) for r in results), results
    with one.unit_of_work() as uow:
        final = uow.leases.get("t1", "lease_1")
    assert final is not None and final.status is LeaseStatus.REVOKED
    assert final.expires_at == NOW + timedelta(minutes=5) + timedelta(seconds=60 * 2 * 5)
    tags = sorted((final.revoke_reason or "").strip("[]").split("]["))
    assert tags == sorted(f"{kind}-{tag}" for kind, tag in
                          [("rv", "a"), ("rv", "b"), ("hb", "c"), ("hb", "d")] * 5)


def test_concurrent_publishes_of_one_version_let_exactly_one_win(
    make_backend: Callable[..., RtdbBackend],
) -> None:
    backends = [make_backend() for _ in range(4)]
    results = _run_together([
        (lambda b=b, n=n: commit(b, lambda uow: uow.releases.add(
            release(version="7.0.0", object_key=f"k{n}.zip"))))
        for n, b in enumerate(backends)
    ])
    winners = [r for r in results if isinstance(r, Release)]
    assert len(winners) == 1, results
    assert all(isinstance(r, DuplicateError) for r in results if r not in winners)
    with backends[0].unit_of_work() as uow:
        assert list(uow.releases.list("t1")) == winners


def test_concurrent_publishes_of_one_object_key_let_exactly_one_win(
    make_backend: Callable[..., RtdbBackend],
) -> None:
    backends = [make_backend() for _ in range(3)]
    results = _run_together([
        (lambda b=b, n=n: commit(b, lambda uow: uow.releases.add(
            release(version=f"8.0.{n}", object_key="same.zip"))))
        for n, b in enumerate(backends)
    ])
    assert sum(isinstance(r, Release) for r in results) == 1, results


def test_concurrent_publishes_get_distinct_ids_and_all_land(
    make_backend: Callable[..., RtdbBackend],
) -> None:
    backends = [make_backend() for _ in range(4)]

    def publish_many(backend: RtdbBackend, worker: int) -> Callable[[], list[int]]:
        def run() -> list[int]:
            return [commit(backend, lambda uow, s=step: uow.releases.add(
                release(version=f"9.{worker}.{s}"))).id for step in range(5)]
        return run

    results = _run_together([publish_many(b, n) for n, b in enumerate(backends)])
    ids = [i for batch in results for i in batch]
    assert len(set(ids)) == 20 and min(ids) > 0
    with backends[0].unit_of_work() as uow:
        assert sorted(r.id for r in uow.releases.list("t1")) == sorted(ids)


def test_concurrent_audit_appends_get_distinct_ids(
    make_backend: Callable[..., RtdbBackend],
) -> None:
    backends = [make_backend() for _ in range(4)]

    def append_many(backend: RtdbBackend) -> Callable[[], list[int]]:
        def run() -> list[int]:
            return [commit(backend, lambda uow: uow.audit.append(DownloadAuditEntry(
                "t1", AuditEvent.RESOLVE_SUCCESS, AuditResult.ALLOWED, NOW))).id
                for _ in range(5)]
        return run

    ids = [i for batch in _run_together([append_many(b) for b in backends]) for i in batch]
    assert sorted(ids) == list(range(1, 21))
    with backends[0].unit_of_work() as uow:
        assert [e.id for e in uow.audit.list("t1")] == list(range(20, 0, -1))


# -- apps -----------------------------------------------------------------------------------


def test_each_backend_has_its_own_app_deleted_on_close(
    make_backend: Callable[..., RtdbBackend],
) -> None:
    one, two = make_backend(), make_backend()
    assert one.app.name != two.app.name
    name = one.app.name
    one.close()
    with pytest.raises(ValueError):
        firebase_admin.get_app(name)
    with pytest.raises(ConfigurationError):
        one.unit_of_work()
    assert two.check_health().ok
    one.close()
    assert "open=False" in repr(one)
