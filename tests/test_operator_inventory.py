"""``botmox admin <kind> list|show|revoke`` through the real console script, on the embedded
default's files: tokens, licences, entitlements, releases, assignments, VMs and leases. Every
listing filters, every revocation has its effect on the services, and no token or hash is
ever printed except by ``token create``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from botmox_core.bootstrap import bootstrap
from botmox_core.config import load_settings
from botmox_core.errors import LicenseInactiveError, ModuleNotAllowedError, VmInactiveError
from botmox_core.models import Role
from botmox_core.services import Principal

BOTMOX = str(Path(sys.executable).parent / "botmox")
TENANT = "tenant-ops"
OTHER = "tenant-other"


@attrs.frozen
class Installation:
    data_dir: Path
    token_ids: dict[str, str]
    secrets: tuple[str, ...]
    release_ids: tuple[int, ...]
    lease_ids: tuple[str, ...]
    lease_token: str


def botmox(data_dir: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [BOTMOX, "admin", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def as_json(data_dir: Path, *args: str) -> Any:
    return json.loads(botmox(data_dir, *args, "--json").stdout)


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    data_dir = tmp_path_factory.mktemp("ops") / "data"
    artifact = data_dir.parent / "agent.zip"
    artifact.write_bytes(b"module bytes " * 100)
    init = ["--init"]
    tokens = {}
    secrets = []
    for role, user in [("admin", None), ("api", "alice"), ("infra", None)]:
        extra = ["--user", user] if user else []
        made = as_json(
            data_dir, "token", "create", "--tenant", TENANT, "--role", role, *extra, *init
        )
        tokens[role] = made["id"]
        secrets.append(made["token"])
        init = []
    as_json(data_dir, "token", "create", "--tenant", OTHER, "--role", "admin")
    as_json(data_dir, "license", "set", "--tenant", TENANT, "--status", "active", "--perpetual")
    as_json(data_dir, "license", "set", "--tenant", OTHER, "--status", "suspended", "--perpetual")
    for user, module in [("alice", "agent"), ("bob", "*")]:
        as_json(
            data_dir, "entitlement", "set", "--tenant", TENANT, "--user", user, "--module", module
        )
    release_ids = []
    for version in ["1.0.0", "1.1.0"]:
        release = as_json(
            data_dir, "release", "publish", str(artifact), "--tenant", TENANT,
            "--module", "agent", "--platform", "linux", "--version", version,
        )  # fmt: skip
        release_ids.append(int(release["id"]))
    scope = ["--module", "agent", "--platform", "linux"]
    as_json(
        data_dir,
        "release",
        "assign",
        "--tenant",
        TENANT,
        "--release-id",
        str(release_ids[0]),
        *scope,
    )
    as_json(
        data_dir, "release", "assign", "--tenant", TENANT, "--release-id", str(release_ids[1]),
        *scope, "--user", "alice",
    )  # fmt: skip
    core = bootstrap(load_settings({}, data_dir=data_dir))
    try:
        admin = Principal(tenant_id=TENANT, role=Role.ADMIN, subject="test")
        alice = Principal(tenant_id=TENANT, role=Role.API, subject="alice", user_id="alice")
        core.vms.register(alice, vm_uuid="vm-alice-0001", vm_name="first")
        core.vms.register(alice, vm_uuid="vm-alice-0002", vm_name="second")
        core.vms.register(admin, vm_uuid="vm-bob-00001", user_id="bob")
        leases = [
            core.leases.issue(alice, vm_uuid="vm-alice-0001", module="agent"),
            core.leases.issue(alice, vm_uuid="vm-alice-0002", module="agent"),
        ]
    finally:
        core.close()
    yield Installation(
        data_dir,
        tokens,
        tuple(secrets),
        tuple(release_ids),
        tuple(lease.lease.id for lease in leases),
        leases[0].token,
    )


def _assert_no_secrets(installation: Installation, text: str) -> None:
    for secret in installation.secrets:
        assert secret not in text
    assert installation.lease_token not in text
    assert "token_hash" not in text


def test_token_list_show_revoke(installation: Installation) -> None:
    data_dir = installation.data_dir
    listed = botmox(data_dir, "token", "list", "--tenant", TENANT, "--json").stdout
    _assert_no_secrets(installation, listed)
    assert {t["id"] for t in json.loads(listed)} == set(installation.token_ids.values())
    apis = as_json(data_dir, "token", "list", "--tenant", TENANT, "--role", "api")
    assert [(t["role"], t["user_id"]) for t in apis] == [("api", "alice")]
    text = botmox(data_dir, "token", "list", "--tenant", TENANT).stdout
    _assert_no_secrets(installation, text)
    assert installation.token_ids["infra"] in text and "active" in text
    shown = as_json(
        data_dir, "token", "show", "--tenant", TENANT, "--id", installation.token_ids["api"]
    )
    assert shown["user_id"] == "alice" and "token" not in shown
    other = botmox(
        data_dir,
        "token",
        "show",
        "--tenant",
        OTHER,
        "--id",
        installation.token_ids["api"],
        ok=False,
    )
    assert other.returncode == 1 and "NOT_FOUND" in other.stderr  # another tenant's token
    botmox(data_dir, "token", "revoke", "--tenant", TENANT, "--id", installation.token_ids["infra"])
    live = as_json(data_dir, "token", "list", "--tenant", TENANT)
    assert installation.token_ids["infra"] not in {t["id"] for t in live}
    every = as_json(data_dir, "token", "list", "--tenant", TENANT, "--include-revoked")
    revoked = [t for t in every if t["id"] == installation.token_ids["infra"]]
    assert revoked and revoked[0]["revoked_at"]


def test_license_list_show_revoke(installation: Installation) -> None:
    data_dir = installation.data_dir
    every = as_json(data_dir, "license", "list")
    assert [(x["tenant_id"], x["status"]) for x in every] == [
        (TENANT, "active"),
        (OTHER, "suspended"),
    ]
    assert as_json(data_dir, "license", "list", "--status", "suspended")[0]["tenant_id"] == OTHER
    assert as_json(data_dir, "license", "show", "--tenant", TENANT)["status"] == "active"
    assert "perpetual" in botmox(data_dir, "license", "show", "--tenant", TENANT).stdout
    missing = botmox(data_dir, "license", "show", "--tenant", "tenant-none", ok=False)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    assert as_json(data_dir, "license", "revoke", "--tenant", OTHER)["status"] == "inactive"
    core = bootstrap(load_settings({}, data_dir=data_dir))
    try:
        principal = Principal(tenant_id=OTHER, role=Role.ADMIN, subject="t", user_id="u")
        core.vms.register(principal, vm_uuid="vm-other-0001")
        with pytest.raises(LicenseInactiveError):
            core.leases.issue(principal, vm_uuid="vm-other-0001", module="agent")
    finally:
        core.close()


def test_entitlement_list_show_revoke(installation: Installation) -> None:
    data_dir = installation.data_dir
    every = as_json(data_dir, "entitlement", "list", "--tenant", TENANT)
    assert [(e["user_id"], sorted(e["modules"])) for e in every] == [
        ("alice", ["agent"]),
        ("bob", ["*"]),
    ]
    assert (
        as_json(data_dir, "entitlement", "list", "--tenant", TENANT, "--user", "bob")[0]["user_id"]
        == "bob"
    )
    assert as_json(data_dir, "entitlement", "show", "--tenant", TENANT, "--user", "alice")[
        "modules"
    ] == ["agent"]
    revoked = as_json(data_dir, "entitlement", "revoke", "--tenant", TENANT, "--user", "bob")
    assert revoked["modules"] == []
    assert (
        "(none)"
        in botmox(data_dir, "entitlement", "show", "--tenant", TENANT, "--user", "bob").stdout
    )
    core = bootstrap(load_settings({}, data_dir=data_dir))
    try:
        bob = Principal(tenant_id=TENANT, role=Role.API, subject="bob", user_id="bob")
        with pytest.raises(ModuleNotAllowedError):
            core.leases.issue(bob, vm_uuid="vm-bob-00001", module="agent")
    finally:
        core.close()


def test_release_list_show_revoke(installation: Installation) -> None:
    data_dir = installation.data_dir
    first, second = installation.release_ids
    listed = as_json(data_dir, "release", "list", "--tenant", TENANT)
    assert [r["id"] for r in listed] == [second, first]
    assert as_json(data_dir, "release", "list", "--tenant", TENANT, "--module", "other") == []
    assert (
        as_json(data_dir, "release", "show", "--tenant", TENANT, "--id", str(first))["version"]
        == "1.0.0"
    )
    revoked = as_json(data_dir, "release", "revoke", "--tenant", TENANT, "--id", str(second))
    assert revoked["status"] == "disabled"
    disabled = as_json(data_dir, "release", "list", "--tenant", TENANT, "--status", "disabled")
    assert [r["id"] for r in disabled] == [second]
    archived = as_json(
        data_dir,
        "release",
        "revoke",
        "--tenant",
        TENANT,
        "--id",
        str(second),
        "--status",
        "archived",
    )
    assert archived["status"] == "archived"
    missing = botmox(data_dir, "release", "revoke", "--tenant", OTHER, "--id", str(first), ok=False)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr  # another tenant's release
    assert (
        as_json(data_dir, "release", "show", "--tenant", TENANT, "--id", str(first))["status"]
        == "active"
    )


def test_assignment_list_show_revoke(installation: Installation) -> None:
    data_dir = installation.data_dir
    first, second = installation.release_ids
    scope = ["--module", "agent", "--platform", "linux"]
    every = as_json(data_dir, "assignment", "list", "--tenant", TENANT)
    assert sorted((a["user_id"] or "", a["release_id"]) for a in every) == [
        ("", first),
        ("alice", second),
    ]
    defaults = as_json(data_dir, "assignment", "list", "--tenant", TENANT, "--defaults")
    assert [a["release_id"] for a in defaults] == [first]
    assert (
        as_json(data_dir, "assignment", "list", "--tenant", TENANT, "--user", "alice")[0][
            "release_id"
        ]
        == second
    )
    shown = as_json(data_dir, "assignment", "show", "--tenant", TENANT, *scope, "--user", "alice")
    assert shown["release_id"] == second
    assert as_json(data_dir, "assignment", "revoke", "--tenant", TENANT, *scope, "--user", "alice")[
        "revoked"
    ]
    gone = botmox(
        data_dir, "assignment", "show", "--tenant", TENANT, *scope, "--user", "alice", ok=False
    )
    assert gone.returncode == 1 and "NOT_FOUND" in gone.stderr
    again = botmox(
        data_dir, "assignment", "revoke", "--tenant", TENANT, *scope, "--user", "alice", ok=False
    )
    assert again.returncode == 1 and "NOT_FOUND" in again.stderr
    assert (
        as_json(data_dir, "assignment", "show", "--tenant", TENANT, *scope)["release_id"] == first
    )


def test_vm_list_show_revoke(installation: Installation) -> None:
    data_dir = installation.data_dir
    every = as_json(data_dir, "vm", "list", "--tenant", TENANT)
    assert {v["vm_uuid"] for v in every} == {"vm-alice-0001", "vm-alice-0002", "vm-bob-00001"}
    bobs = as_json(data_dir, "vm", "list", "--tenant", TENANT, "--user", "bob")
    assert [v["vm_uuid"] for v in bobs] == ["vm-bob-00001"]
    assert len(as_json(data_dir, "vm", "list", "--tenant", TENANT, "--limit", "1")) == 1
    assert (
        as_json(data_dir, "vm", "show", "--tenant", TENANT, "--vm", "VM-ALICE-0002")["vm_name"]
        == "second"
    )
    assert (
        as_json(data_dir, "vm", "revoke", "--tenant", TENANT, "--vm", "vm-alice-0002")["status"]
        == "revoked"
    )
    revoked = as_json(data_dir, "vm", "list", "--tenant", TENANT, "--status", "revoked")
    assert [v["vm_uuid"] for v in revoked] == ["vm-alice-0002"]
    core = bootstrap(load_settings({}, data_dir=data_dir))
    try:
        alice = Principal(tenant_id=TENANT, role=Role.API, subject="alice", user_id="alice")
        with pytest.raises(VmInactiveError):
            core.leases.issue(alice, vm_uuid="vm-alice-0002", module="agent")
    finally:
        core.close()


def test_lease_list_show_revoke(installation: Installation) -> None:
    data_dir = installation.data_dir
    first, second = installation.lease_ids
    listed = botmox(data_dir, "lease", "list", "--tenant", TENANT, "--json").stdout
    _assert_no_secrets(installation, listed)
    assert [x["id"] for x in json.loads(listed)] == [second, first]
    by_vm = as_json(data_dir, "lease", "list", "--tenant", TENANT, "--vm", "vm-alice-0001")
    assert [x["id"] for x in by_vm] == [first]
    shown = botmox(data_dir, "lease", "show", "--tenant", TENANT, "--id", first).stdout
    _assert_no_secrets(installation, shown)
    revoked = as_json(
        data_dir, "lease", "revoke", "--tenant", TENANT, "--id", first, "--reason", "stolen"
    )
    assert (revoked["status"], revoked["revoke_reason"]) == ("revoked", "stolen")
    active = as_json(data_dir, "lease", "list", "--tenant", TENANT, "--status", "active")
    assert [x["id"] for x in active] == [second]
    text = botmox(data_dir, "lease", "list", "--tenant", TENANT, "--status", "revoked").stdout
    assert first in text and "reason=stolen" in text
    missing = botmox(data_dir, "lease", "revoke", "--tenant", OTHER, "--id", first, ok=False)
    assert missing.returncode == 1 and "LEASE_NOT_FOUND" in missing.stderr


def test_hashes_are_dropped_and_a_missing_installation_is_refused(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from botmox_core.cli import inventory as module
    from botmox_core.ports.inventory import inventory_of

    assert module.public_view([{"token_hash": "x", "id": "a"}]) == [{"id": "a"}]
    assert inventory_of(SimpleNamespace(tokens=None)) is None  # e.g. rtdb: refused clearly
    done = subprocess.run(
        [BOTMOX, "admin", "vm", "list", "--tenant", TENANT, "--data-dir", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1 and "no botmox database" in done.stderr
