"""Services on the embedded backends: the contract's rules and codes, in order."""

from __future__ import annotations

import hashlib
import io

import attrs
import pytest

from botmox_core import errors
from botmox_core.bootstrap import App
from botmox_core.models import AuditResult, LeaseStatus, Role
from botmox_core.services import Principal

from .conftest import FakeClock

T = "tenant-a"
ADMIN = Principal(T, Role.ADMIN, subject="test")
ALICE = Principal(T, Role.API, user_id="alice")
AGENT_BOB = Principal(T, Role.AGENT, user_id="bob")
PAYLOAD = b"module bytes " * 5000


def setup_tenant(core: App, modules: list[str] | None = None) -> int:
    core.licences.set_licence(T, "active", None)
    core.licences.set_entitlement(T, "alice", modules or ["farm-bot"])
    release = core.releases.upload_and_publish(
        ADMIN, io.BytesIO(PAYLOAD), module="farm-bot", platform="win64", version="1.0.0"
    )
    core.releases.assign(
        ADMIN, module="farm-bot", platform="win64", channel="stable", release_id=release.id
    )
    core.vms.register(ALICE, vm_uuid="VM-ALICE-0001")
    return release.id


def resolve(core: App, token: str, principal: Principal = ALICE, **overrides):
    args = {
        "lease_token": token,
        "vm_uuid": "vm-alice-0001",
        "module": "farm-bot",
        "platform": "win64",
        "channel": "stable",
        **overrides,
    }
    return core.downloads.resolve(principal, **args)


def test_vm_uuid_is_validated_and_lower_cased(core: App) -> None:
    assert core.vms.register(ALICE, vm_uuid="AbC:DEF_1234").vm_uuid == "abc:def_1234"
    for bad in ("short", "x" * 129, "has space1", 12345678, None):
        with pytest.raises(errors.BadRequestError):
            core.vms.register(ALICE, vm_uuid=bad)


def test_only_operators_and_service_tokens_register_for_another_user(core: App) -> None:
    with pytest.raises(errors.ForbiddenError):
        core.vms.register(AGENT_BOB, vm_uuid="vm-00000001", user_id="alice")
    with pytest.raises(errors.ForbiddenError):  # a user's token acts only for that user
        core.vms.register(ALICE, vm_uuid="vm-00000001", user_id="carol")
    service = Principal(T, Role.API, subject="tok_service")  # bound to no user
    assert core.vms.register(service, vm_uuid="vm-00000001", user_id="carol").user_id == "carol"
    assert core.vms.register(ADMIN, vm_uuid="vm-00000002", user_id="carol").user_id == "carol"


def test_a_vm_of_another_user_is_not_taken_over(core: App) -> None:
    core.vms.register(ALICE, vm_uuid="vm-00000001")
    with pytest.raises(errors.VmOwnerMismatchError):
        core.vms.register(Principal(T, Role.API, user_id="mallory"), vm_uuid="vm-00000001")
    assert core.vms.resolve(ALICE, "vm-00000001").user_id == "alice"


@pytest.mark.parametrize(
    ("arrange", "error"),
    [
        ("no_vm", errors.VmNotRegisteredError),
        ("paused_vm", errors.VmInactiveError),
        ("foreign_vm", errors.VmOwnerMismatchError),
        ("no_licence", errors.LicenseInactiveError),
        ("expired_licence", errors.LicenseInactiveError),
        ("no_entitlement", errors.EntitlementRequiredError),
        ("other_module", errors.ModuleNotAllowedError),
    ],
)
def test_lease_refusals(core: App, clock: FakeClock, arrange: str, error: type) -> None:
    core.licences.set_licence(T, "active", None)
    core.licences.set_entitlement(T, "alice", ["farm-bot"])
    vm = "vm-alice-0001"
    module = "farm-bot"
    if arrange != "no_vm":
        core.vms.register(ALICE, vm_uuid=vm)
    if arrange == "paused_vm":
        core.vms.set_status(ADMIN, vm, "paused")
    if arrange == "foreign_vm":
        core.vms.register(ADMIN, vm_uuid=vm, user_id="bob")
    if arrange == "no_licence":
        core.licences.set_licence(T, "inactive", None)
    if arrange == "expired_licence":
        core.licences.set_licence(T, "active", clock.now)
    if arrange == "no_entitlement":
        core.licences.set_entitlement(T, "carol", ["farm-bot"])
        core.licences.set_entitlement(T, "alice", ["farm-bot"])
        core.vms.register(Principal(T, Role.API, user_id="dave"), vm_uuid="vm-dave-00001")
        with pytest.raises(error):
            core.leases.issue(
                Principal(T, Role.API, user_id="dave"), vm_uuid="vm-dave-00001", module=module
            )
        return
    if arrange == "other_module":
        module = "miner-bot"
    with pytest.raises(error):
        core.leases.issue(ALICE, vm_uuid=vm, module=module)


def test_wildcard_entitlement_allows_any_module(core: App) -> None:
    core.licences.set_licence(T, "active", None)
    core.licences.set_entitlement(T, "alice", {"*": True})
    core.vms.register(ALICE, vm_uuid="vm-alice-0001")
    assert (
        core.leases.issue(ALICE, vm_uuid="vm-alice-0001", module="anything").lease.module
        == "anything"
    )


def test_lease_ttl_heartbeat_and_expiry(core: App, clock: FakeClock) -> None:
    setup_tenant(core)
    issued = core.leases.issue(ALICE, vm_uuid="vm-alice-0001", module="farm-bot")
    assert (issued.lease.expires_at - clock.now).total_seconds() == 300
    assert issued.token not in repr(issued)
    clock.advance(200)
    beat = core.leases.heartbeat(ALICE, issued.lease.id)
    assert (beat.lease.expires_at - clock.now).total_seconds() == 300
    assert beat.token != issued.token
    with pytest.raises(errors.LeaseOwnerMismatchError):
        core.leases.heartbeat(Principal(T, Role.API, user_id="bob"), issued.lease.id)
    clock.advance(301)
    with pytest.raises(errors.LeaseExpiredError):
        core.leases.heartbeat(ALICE, issued.lease.id)
    with pytest.raises(errors.LeaseNotFoundError):
        core.leases.heartbeat(ALICE, "lease_" + "0" * 32)
    with pytest.raises(errors.LeaseNotFoundError):
        core.leases.heartbeat(Principal("tenant-b", Role.API, user_id="alice"), issued.lease.id)


def test_revoke_needs_an_operator_and_stops_heartbeats(core: App) -> None:
    setup_tenant(core)
    issued = core.leases.issue(ALICE, vm_uuid="vm-alice-0001", module="farm-bot")
    with pytest.raises(errors.ForbiddenError):
        core.leases.revoke(ALICE, issued.lease.id)
    revoked = core.leases.revoke(ADMIN, issued.lease.id, "abuse")
    assert revoked.status is LeaseStatus.REVOKED and revoked.revoke_reason == "abuse"
    assert core.leases.revoke(ADMIN, issued.lease.id, "again").revoke_reason == "abuse"
    with pytest.raises(errors.LeaseInactiveError):
        core.leases.heartbeat(ALICE, issued.lease.id)


def test_url_ttl_never_outlives_the_lease(core: App, clock: FakeClock) -> None:
    setup_tenant(core)
    issued = core.leases.issue(ALICE, vm_uuid="vm-alice-0001", module="farm-bot")
    clock.advance(290)  # 10 s of lease left
    resolved = resolve(core, issued.token)
    assert resolved.url_expires_at <= issued.lease.expires_at
    assert (resolved.url_expires_at - clock.now).total_seconds() <= 10


def test_rotated_out_token_is_refused_after_its_own_expiry(core: App, clock: FakeClock) -> None:
    setup_tenant(core)
    first = core.leases.issue(ALICE, vm_uuid="vm-alice-0001", module="farm-bot")
    clock.advance(100)
    second = core.leases.heartbeat(ALICE, first.lease.id)
    clock.advance(100)
    third = core.leases.heartbeat(ALICE, first.lease.id)
    assert resolve(core, third.token).release.id
    assert resolve(core, second.token).release.id  # previous token, still within its expiry
    with pytest.raises(errors.UnauthorizedError):
        resolve(core, first.token)  # two rotations ago: no longer current


def test_release_publish_verifies_the_stored_object(core: App) -> None:
    key = f"{T}/manual/obj.bin"
    info = core.storage.put(key, io.BytesIO(PAYLOAD))
    base = {"module": "farm-bot", "platform": "win64", "version": "2.0.0", "object_key": key}
    with pytest.raises(errors.ArtifactIntegrityError) as wrong_sha:
        core.releases.publish(ADMIN, sha256="0" * 64, size_bytes=len(PAYLOAD), **base)
    assert "stored" not in wrong_sha.value.details  # the stored hash would describe the bytes
    assert info.sha256 not in str(wrong_sha.value.details)
    with pytest.raises(errors.ArtifactIntegrityError):
        core.releases.publish(ADMIN, sha256=info.sha256, size_bytes=len(PAYLOAD) + 1, **base)
    with pytest.raises(errors.ArtifactObjectNotFoundError):
        core.releases.publish(
            ADMIN,
            sha256=info.sha256,
            size_bytes=len(PAYLOAD),
            **{**base, "object_key": f"{T}/missing/key"},
        )
    with pytest.raises(errors.ForbiddenError):
        core.releases.publish(ALICE, sha256=info.sha256, size_bytes=len(PAYLOAD), **base)
    release = core.releases.publish(
        ADMIN, sha256=info.sha256.upper(), size_bytes=len(PAYLOAD), **base
    )
    assert release.id > 0 and release.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    with pytest.raises(errors.DuplicateError):
        core.releases.publish(ADMIN, sha256=info.sha256, size_bytes=len(PAYLOAD), **base)


def test_failed_upload_publish_leaves_no_object(core: App) -> None:
    setup_tenant(core)

    def stored_files() -> list[str]:  # objects and their metadata; localfs lock files aside
        root = core.settings.data_dir / "objects"
        return sorted(p.name for p in root.rglob("*") if p.is_file() and p.name != ".lock")

    before = stored_files()
    with pytest.raises(errors.ArtifactIntegrityError):
        core.releases.upload_and_publish(
            ADMIN,
            io.BytesIO(b"other bytes"),
            module="farm-bot",
            platform="win64",
            version="9.9.9",
            expected_sha256="1" * 64,
        )
    assert stored_files() == before
    with pytest.raises(errors.DuplicateError):  # an existing version is never overwritten
        core.releases.upload_and_publish(
            ADMIN, io.BytesIO(b"x"), module="farm-bot", platform="win64", version="1.0.0"
        )


def test_assignments_user_default_and_scope(core: App) -> None:
    default_id = setup_tenant(core)
    other = core.releases.upload_and_publish(
        ADMIN, io.BytesIO(b"beta build"), module="farm-bot", platform="win64", version="1.1.0"
    )
    linux = core.releases.upload_and_publish(
        ADMIN, io.BytesIO(b"linux build"), module="farm-bot", platform="linux", version="1.0.0"
    )
    with pytest.raises(errors.ArtifactScopeMismatchError):
        core.releases.assign(
            ADMIN, module="farm-bot", platform="win64", channel="stable", release_id=linux.id
        )
    with pytest.raises(errors.ArtifactReleaseNotFoundError):
        core.releases.assign(
            ADMIN, module="farm-bot", platform="win64", channel="stable", release_id=999
        )
    view = core.releases.assignments_for(
        ALICE, user_id="alice", module="farm-bot", platform="win64", channel="stable"
    )
    assert view.user_assignment is None and view.effective_assignment.release_id == default_id
    core.releases.assign(
        ADMIN,
        module="farm-bot",
        platform="win64",
        channel="stable",
        release_id=other.id,
        user_id="alice",
    )
    view = core.releases.assignments_for(
        ALICE, user_id="alice", module="farm-bot", platform="win64", channel="stable"
    )
    assert view.effective_assignment.release_id == other.id
    assert view.default_assignment.release_id == default_id
    issued = core.leases.issue(ALICE, vm_uuid="vm-alice-0001", module="farm-bot")
    assert resolve(core, issued.token).release.id == other.id


def test_release_not_active_and_object_missing(core: App) -> None:
    setup_tenant(core)
    draft = core.releases.upload_and_publish(
        ADMIN,
        io.BytesIO(b"draft"),
        module="farm-bot",
        platform="win64",
        version="3.0.0",
        status="draft",
    )
    core.releases.assign(
        ADMIN, module="farm-bot", platform="win64", channel="stable", release_id=draft.id
    )
    issued = core.leases.issue(ALICE, vm_uuid="vm-alice-0001", module="farm-bot")
    with pytest.raises(errors.ArtifactReleaseNotActiveError):
        resolve(core, issued.token)
    live = core.releases.upload_and_publish(
        ADMIN, io.BytesIO(b"live"), module="farm-bot", platform="win64", version="3.0.1"
    )
    core.releases.assign(
        ADMIN, module="farm-bot", platform="win64", channel="stable", release_id=live.id
    )
    core.storage.delete(live.object_key)
    with pytest.raises(errors.ArtifactObjectNotFoundError):
        resolve(core, issued.token)
    codes = [(e.result, e.reason_code) for e in core.downloads.audit_log(ADMIN)]
    assert codes[:2] == [
        (AuditResult.DENIED, "ARTIFACT_OBJECT_NOT_FOUND"),
        (AuditResult.DENIED, "ARTIFACT_RELEASE_NOT_ACTIVE"),
    ]


class BrokenStorage:
    """Wraps a real storage; fails like an unreachable S3 on the calls resolve makes."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = "broken"

    def head(self, key):
        raise errors.StorageError("connection refused")

    def __getattr__(self, item):
        return getattr(self.inner, item)


def test_storage_failure_is_502_and_audited_as_error(core: App) -> None:
    setup_tenant(core)
    issued = core.leases.issue(ALICE, vm_uuid="vm-alice-0001", module="farm-bot")
    core.downloads._storage = BrokenStorage(core.storage)
    with pytest.raises(errors.StorageError) as failure:
        resolve(core, issued.token)
    assert failure.value.status == 502
    entry = core.downloads.audit_log(ADMIN, lease_id=issued.lease.id)[0]
    assert (entry.result, entry.reason_code) == (AuditResult.ERROR, "STORAGE_ERROR")


def test_tenants_are_isolated(core: App) -> None:
    setup_tenant(core)
    other = Principal("tenant-b", Role.ADMIN)
    with pytest.raises(errors.NotFoundError):
        core.vms.resolve(Principal("tenant-b", Role.API, user_id="alice"), "vm-alice-0001")
    with pytest.raises(errors.ArtifactReleaseNotFoundError):
        core.releases.get(other, 1)
    assert core.downloads.audit_log(other) == []
    issued = core.leases.issue(ALICE, vm_uuid="vm-alice-0001", module="farm-bot")
    with pytest.raises(errors.ForbiddenError):
        core.downloads.resolve(
            Principal("tenant-b", Role.API, user_id="alice"),
            lease_token=issued.token,
            vm_uuid="vm-alice-0001",
            module="farm-bot",
            platform="win64",
            channel="stable",
        )
    assert attrs.asdict(core.leases.revoke(ADMIN, issued.lease.id))["tenant_id"] == T


def test_lease_owner_rules_for_agents_and_tokens_without_a_user(core: App) -> None:
    setup_tenant(core)
    issued = core.leases.issue(ALICE, vm_uuid="vm-alice-0001", module="farm-bot")
    lease_id = issued.lease.id
    service = Principal(T, Role.API, subject="tok_service")  # a tenant token bound to no user
    agent = Principal(T, Role.AGENT, subject="agt_1")
    for caller in (service, agent):
        with pytest.raises(errors.LeaseOwnerMismatchError):
            core.leases.heartbeat(caller, lease_id)
        with pytest.raises(errors.LeaseOwnerMismatchError):
            core.leases.heartbeat(caller, lease_id, "bml1.forged.token")
    # holding the lease's token is the proof a caller without a user gives
    beat = core.leases.heartbeat(service, lease_id, issued.token)
    assert core.leases.heartbeat(agent, lease_id, beat.token).lease.id == lease_id
    # a token that is sent must be the lease's, whoever sends it
    with pytest.raises(errors.LeaseOwnerMismatchError):
        core.leases.heartbeat(ALICE, lease_id, "bml1.forged.token")
    with pytest.raises(errors.BadRequestError):
        core.leases.heartbeat(ALICE, lease_id, "x" * 5000)
    # resolve: a user-bound caller only for its own user's leases, whoever holds the token
    with pytest.raises(errors.LeaseOwnerMismatchError):
        resolve(core, beat.token, principal=Principal(T, Role.API, user_id="bob"))
    assert resolve(core, beat.token, principal=agent).release.id > 0
    # agents take no leases: they act for no user
    with pytest.raises(errors.BadRequestError):
        core.leases.issue(agent, vm_uuid="vm-alice-0001", module="farm-bot")
    with pytest.raises(errors.ForbiddenError):
        core.leases.issue(agent, vm_uuid="vm-alice-0001", module="farm-bot", user_id="alice")
    with pytest.raises(errors.ForbiddenError):  # a user's token cannot lease for another user
        core.leases.issue(
            Principal(T, Role.API, user_id="bob"),
            vm_uuid="vm-alice-0001",
            module="farm-bot",
            user_id="alice",
        )


def test_vm_status_is_an_operator_decision(core: App) -> None:
    core.vms.register(ALICE, vm_uuid="vm-alice-0001")
    core.vms.set_status(ADMIN, "vm-alice-0001", "revoked")
    for status in ("active", "paused"):
        with pytest.raises(errors.ForbiddenError):
            core.vms.register(ALICE, vm_uuid="vm-alice-0001", status=status)
        with pytest.raises(errors.ForbiddenError):  # operators too: registering keeps status
            core.vms.register(ADMIN, vm_uuid="vm-alice-0001", user_id="alice", status=status)
    assert core.vms.register(ALICE, vm_uuid="vm-alice-0001").status.value == "revoked"
    assert core.vms.register(ALICE, vm_uuid="vm-alice-0001", status="revoked").status.value == (
        "revoked"
    )
    with pytest.raises(errors.ForbiddenError):
        core.vms.set_status(ALICE, "vm-alice-0001", "active")
    with pytest.raises(errors.ForbiddenError):  # a new VM starts active unless an operator says
        core.vms.register(ALICE, vm_uuid="vm-alice-0002", status="paused")
    assert core.vms.register(ADMIN, vm_uuid="vm-x-00000003", user_id="bob", status="paused")
    with pytest.raises(errors.NotFoundError):  # another user's VM is not visible to alice
        core.vms.resolve(ALICE, "vm-x-00000003")
    with pytest.raises(errors.NotFoundError):
        core.vms.set_status(ADMIN, "vm-missing-01", "active")


@pytest.mark.parametrize(
    "key",
    [
        "tenant-b/farm-bot/obj.bin",  # another tenant's prefix
        "tenant-a",  # the prefix without its slash
        "tenant-a/",  # the prefix alone
        "tenant-ab/obj.bin",  # a tenant whose id starts like ours
        "other/tenant-a/obj.bin",
        "tenant-a/../tenant-b/obj.bin",
    ],
)
def test_a_release_names_only_keys_under_its_tenant_prefix(core: App, key: str) -> None:
    core.storage.put("tenant-b/farm-bot/obj.bin", io.BytesIO(PAYLOAD))
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    with pytest.raises((errors.ForbiddenError, errors.BadRequestError)) as refused:
        core.releases.publish(
            ADMIN,
            module="farm-bot",
            platform="win64",
            version="9.0.0",
            object_key=key,
            sha256=sha,
            size_bytes=len(PAYLOAD),
        )
    assert sha not in str(refused.value.details) and str(len(PAYLOAD)) not in refused.value.message


def test_tenant_key_prefixes_never_collide() -> None:
    from botmox_core.services.releases import tenant_key_prefix

    tenants = ["acme", "acme_1", "acme:1", "acme@1", "acme_3a1", "acme_5f1", "a.b-c", "A_a"]
    prefixes = [tenant_key_prefix(t) for t in tenants]
    assert len(set(prefixes)) == len(prefixes)
    assert tenant_key_prefix("acme") == "acme/"
    from botmox_core.ports.storage import validate_object_key

    for prefix in prefixes:
        validate_object_key(prefix + "x")
