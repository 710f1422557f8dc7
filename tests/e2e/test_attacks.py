"""Attacks from issue 9, over real HTTP against a real uvicorn process on every stack.

Two tenants. The attacker uses only the public API and tokens of its own tenant (or a token of
the victim's tenant with a lesser role): each test is one defect that was open before the
hardening, and checks the answer's status and code and that nothing was stored or leaked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from botmox_core.testing.server import admin_cli

from .conftest import CHANNEL, MODULE, OTHER_TENANT, PLATFORM, TENANT, USER, Deployment

pytestmark = pytest.mark.e2e


@attrs.frozen
class Cast:
    """Who plays: the victim tenant's deployment plus the attacker's and bystanders' tokens."""

    d: Deployment
    attacker_admin: str  # admin of the other tenant
    other_user: str  # api token of another user in the victim's tenant
    service: str  # api token of the victim's tenant bound to no user
    agent: str | None  # agent token of the victim's tenant (None where agents are unsupported)


@pytest.fixture(scope="module")
def cast(deployment: Deployment) -> Iterator[Cast]:
    server = deployment.server

    def token(tenant: str, role: str, *user: str) -> str:
        args = ["token", "create", "--tenant", tenant, "--role", role]
        if user:
            args += ["--user", user[0]]
        return str(admin_cli(server, *args)["token"])

    pairing = deployment.call(
        "POST", "/api/v1/agents/pairings", deployment.admin_token, json={"name": "host-1"}
    )
    agent: str | None = None
    if pairing.status_code != 501:  # RTDB stores no agents (501 AGENTS_NOT_SUPPORTED)
        assert pairing.status_code == 201, pairing.text
        registered = deployment.call(
            "POST",
            "/api/v1/agents/register",
            json={
                "pairing_code": pairing.json()["data"]["pairing_code"],
                "version": "1.0",
                "platform": "linux",
                "capabilities": [],
            },
        )
        assert registered.status_code == 201, registered.text
        agent = registered.json()["data"]["agent_token"]
    yield Cast(
        deployment,
        attacker_admin=token(OTHER_TENANT, "admin"),
        other_user=token(TENANT, "api", "user-2"),
        service=token(TENANT, "api"),
        agent=agent,
    )


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == code, body
    return body["error"]  # type: ignore[no-any-return]


def new_vm(d: Deployment, token: str | None = None, **extra: Any) -> str:
    vm_uuid = "vm-" + secrets.token_hex(8)
    r = d.call(
        "POST", "/api/v1/vm/register", token or d.user_token, json={"vm_uuid": vm_uuid, **extra}
    )
    assert r.status_code == 201, r.text
    return vm_uuid


def new_lease(d: Deployment, vm_uuid: str) -> dict[str, Any]:
    r = d.call(
        "POST", "/api/v1/license/lease", d.user_token, json={"vm_uuid": vm_uuid, "module": MODULE}
    )
    assert r.status_code == 201, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def audit_count(d: Deployment) -> int:
    r = d.call("GET", "/api/v1/artifacts/audit", d.admin_token, params={"limit": 200})
    assert r.status_code == 200, r.text
    return len(r.json()["data"])


# 1. Cross-tenant artifact read --------------------------------------------------------------


def test_a_release_cannot_name_another_tenants_object(cast: Cast) -> None:
    d = cast.d
    victim_key = d.release["object_key"]
    assert victim_key.startswith(f"{TENANT}/")
    sha = hashlib.sha256(d.artifact.read_bytes()).hexdigest()
    size = d.artifact.stat().st_size
    answers = []
    for key, declared_sha in [
        (victim_key, sha),  # exists, right hash: the old server published it
        (victim_key, "0" * 64),  # exists, wrong hash: the old 409 handed back the stored hash
        (f"{TENANT}/no/such/object.bin", sha),  # absent: the old 404 told it apart
    ]:
        r = cast.d.call(
            "POST",
            "/api/v1/artifacts/releases",
            cast.attacker_admin,
            json={
                "module": MODULE,
                "platform": PLATFORM,
                "version": "6.6.6-" + secrets.token_hex(2),
                "object_key": key,
                "sha256": declared_sha,
                "size_bytes": size,
            },
        )
        error = assert_error(r, 403, "FORBIDDEN")
        assert sha not in r.text and str(size) not in r.text
        answers.append((r.status_code, error["code"], error["message"]))
    assert len(set(answers)) == 1  # the same answer whether or not the key exists


def test_own_releases_by_key_still_work_and_never_echo_the_stored_hash(cast: Cast) -> None:
    d = cast.d
    key = d.release["object_key"]
    r = d.call(
        "POST",
        "/api/v1/artifacts/releases",
        d.admin_token,
        json={
            "module": MODULE,
            "platform": PLATFORM,
            "channel": "beta",
            "version": "1.2.0",
            "object_key": key,
            "sha256": "0" * 64,
            "size_bytes": 1,
        },
    )
    assert_error(r, 409, "ARTIFACT_INTEGRITY_MISMATCH")
    assert d.release["sha256"] not in r.text


# 2. Deeply nested JSON ------------------------------------------------------------------------


def deep_object(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


@pytest.mark.parametrize("levels", [17, 300, 1_000, 100_000])
def test_deep_vm_metadata_is_refused_and_reads_keep_working(cast: Cast, levels: int) -> None:
    d = cast.d
    vm_uuid = "vm-" + secrets.token_hex(8)
    body = '{"vm_uuid":"' + vm_uuid + '","metadata":' + deep_object(levels) + "}"
    r = d.call(
        "POST",
        "/api/v1/vm/register",
        d.user_token,
        content=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code in (400, 413), r.text
    assert r.json()["success"] is False
    if r.status_code == 400:
        assert r.json()["error"]["code"] == "BAD_REQUEST"
        assert "metadata" in r.text or "deep" in r.text
    assert_error(d.call("GET", f"/api/v1/vm/{vm_uuid}/resolve", d.user_token), 404, "NOT_FOUND")
    assert d.call("GET", "/api/v1/artifacts/audit", d.admin_token).status_code == 200
    assert d.call("GET", "/api/v1/vm-ops/commands", d.admin_token).status_code in (200, 501)


def test_a_forged_deeply_nested_lease_token_is_401_and_audited(cast: Cast) -> None:
    d = cast.d
    vm = new_vm(d)
    payload = base64.urlsafe_b64encode(("[" * 690 + "]" * 690).encode()).decode().rstrip("=")
    forged = f"bml1.{payload}.{'A' * 86}"
    before = audit_count(d)
    r = d.call(
        "POST",
        "/api/v1/artifacts/resolve-download",
        d.user_token,
        json={
            "lease_token": forged,
            "vm_uuid": vm,
            "module": MODULE,
            "platform": PLATFORM,
            "channel": CHANNEL,
        },
    )
    assert_error(r, 401, "UNAUTHORIZED")
    assert audit_count(d) == before + 1


def test_hostile_resolve_input_is_audited_once(cast: Cast) -> None:
    d = cast.d
    before = audit_count(d)
    r = d.call(
        "POST",
        "/api/v1/artifacts/resolve-download",
        d.user_token,
        json={
            "lease_token": "x",
            "vm_uuid": "vm\x00" + "z" * 100_000,
            "module": "m\n",
            "platform": PLATFORM,
        },
    )
    assert_error(r, 401, "UNAUTHORIZED")
    assert audit_count(d) == before + 1


# 3. VM status and ownership --------------------------------------------------------------------


def test_a_runner_cannot_reactivate_a_paused_or_revoked_vm(cast: Cast) -> None:
    d = cast.d
    vm = new_vm(d)
    for status in ("paused", "revoked"):
        r = d.call("POST", f"/api/v1/vm/{vm}/status", d.admin_token, json={"status": status})
        assert r.status_code == 200 and r.json()["data"]["status"] == status, r.text
        assert_error(
            d.call(
                "POST",
                "/api/v1/vm/register",
                d.user_token,
                json={"vm_uuid": vm, "status": "active"},
            ),
            403,
            "FORBIDDEN",
        )
        again = d.call("POST", "/api/v1/vm/register", d.user_token, json={"vm_uuid": vm})
        assert again.status_code == 201 and again.json()["data"]["status"] == status
        assert_error(
            d.call(
                "POST",
                "/api/v1/license/lease",
                d.user_token,
                json={"vm_uuid": vm, "module": MODULE},
            ),
            403,
            "VM_INACTIVE",
        )
    assert_error(
        d.call("POST", f"/api/v1/vm/{vm}/status", d.user_token, json={"status": "active"}),
        403,
        "FORBIDDEN",
    )
    assert_error(
        d.call("POST", f"/api/v1/vm/{vm}/status", cast.attacker_admin, json={"status": "active"}),
        404,
        "NOT_FOUND",
    )


def test_a_user_token_touches_only_its_own_users_vms(cast: Cast) -> None:
    d = cast.d
    vm = new_vm(d)  # user-1's VM
    assert_error(
        d.call(
            "POST",
            "/api/v1/vm/register",
            cast.other_user,
            json={"vm_uuid": vm, "user_id": USER, "vm_name": "taken"},
        ),
        403,
        "FORBIDDEN",
    )
    assert_error(
        d.call("POST", "/api/v1/vm/register", cast.other_user, json={"vm_uuid": vm}),
        403,
        "VM_OWNER_MISMATCH",
    )
    assert_error(d.call("GET", f"/api/v1/vm/{vm}/resolve", cast.other_user), 404, "NOT_FOUND")
    mine = d.call("GET", f"/api/v1/vm/{vm}/resolve", d.user_token)
    assert mine.status_code == 200 and mine.json()["data"].get("vm_name") != "taken"


# 4. Lease ownership -----------------------------------------------------------------------------


def test_an_agent_token_cannot_heartbeat_or_resolve_a_lease_it_does_not_hold(cast: Cast) -> None:
    d = cast.d
    vm = new_vm(d)
    lease = new_lease(d, vm)
    for caller in (c for c in (cast.agent, cast.service) if c is not None):
        assert_error(
            d.call(
                "POST", "/api/v1/license/heartbeat", caller, json={"lease_id": lease["lease_id"]}
            ),
            403,
            "LEASE_OWNER_MISMATCH",
        )
    assert_error(
        d.call(
            "POST",
            "/api/v1/license/heartbeat",
            cast.other_user,
            json={"lease_id": lease["lease_id"], "lease_token": lease["token"]},
        ),
        403,
        "LEASE_OWNER_MISMATCH",
    )
    body = {
        "lease_token": lease["token"],
        "vm_uuid": vm,
        "module": MODULE,
        "platform": PLATFORM,
        "channel": CHANNEL,
    }
    assert_error(
        d.call("POST", "/api/v1/artifacts/resolve-download", cast.other_user, json=body),
        403,
        "LEASE_OWNER_MISMATCH",
    )
    # the token holder without a user (a service token) proves the lease with its token
    beat = d.call(
        "POST",
        "/api/v1/license/heartbeat",
        cast.service,
        json={"lease_id": lease["lease_id"], "lease_token": lease["token"]},
    )
    assert beat.status_code == 200, beat.text
    if cast.agent is not None:  # agents take no leases (they act for no user)
        assert_error(
            d.call(
                "POST",
                "/api/v1/license/lease",
                cast.agent,
                json={"vm_uuid": vm, "module": MODULE, "user_id": USER},
            ),
            403,
            "FORBIDDEN",
        )


def test_revoke_is_for_operators_of_the_tenant(cast: Cast) -> None:
    d = cast.d
    lease = new_lease(d, new_vm(d))
    for caller in (c for c in (d.user_token, cast.agent, cast.service) if c is not None):
        assert_error(
            d.call("POST", "/api/v1/license/revoke", caller, json={"lease_id": lease["lease_id"]}),
            403,
            "FORBIDDEN",
        )
    assert_error(
        d.call(
            "POST",
            "/api/v1/license/revoke",
            cast.attacker_admin,
            json={"lease_id": lease["lease_id"]},
        ),
        404,
        "LEASE_NOT_FOUND",
    )


# 5. Identifiers with a trailing newline, NUL, look-alikes -------------------------------------


@pytest.mark.parametrize("suffix", ["\n", "\r", "\r\n", "\x00", "\u0430", "\uff11"])
def test_look_alike_vm_ids_are_refused(cast: Cast, suffix: str) -> None:
    d = cast.d
    vm = "vm-" + secrets.token_hex(8)
    r = d.call("POST", "/api/v1/vm/register", d.user_token, json={"vm_uuid": vm + suffix})
    assert_error(r, 400, "BAD_REQUEST")
    assert_error(d.call("GET", f"/api/v1/vm/{vm}/resolve", d.user_token), 404, "NOT_FOUND")


def test_assignment_not_found_names_the_scope(cast: Cast) -> None:
    d = cast.d
    vm = new_vm(d)
    lease = new_lease(d, vm)
    r = d.call(
        "POST",
        "/api/v1/artifacts/resolve-download",
        d.user_token,
        json={
            "lease_token": lease["token"],
            "vm_uuid": vm,
            "module": MODULE,
            "platform": "linux-arm64",
            "channel": CHANNEL,
        },
    )
    error = assert_error(r, 404, "ARTIFACT_ASSIGNMENT_NOT_FOUND")
    assert MODULE in error["message"] and "linux-arm64" in error["message"]
    assert error["details"] == {"module": MODULE, "platform": "linux-arm64", "channel": CHANNEL}
    assert json.dumps(error)  # plain JSON
