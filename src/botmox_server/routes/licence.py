"""Licence lease routes."""

from __future__ import annotations

from typing import Any

from litestar import Response, get, post
from litestar.params import JSONBody

from botmox_core.services import IssuedLease
from botmox_server.bodies import HeartbeatBody, LeaseBody, RevokeBody
from botmox_server.dependencies import Caller, Core
from botmox_server.envelope import ok


def _lease_payload(issued: IssuedLease) -> dict[str, Any]:
    lease = issued.lease
    return {
        "lease_id": lease.id,
        "token": issued.token,
        "expires_at": lease.expires_at,
        "tenant_id": lease.tenant_id,
        "user_id": lease.user_id,
        "vm_uuid": lease.vm_uuid,
        "module": lease.module,
        "status": lease.status,
    }


@post("/api/v1/license/lease", sync_to_thread=True, tags=["license"])
def issue_lease(data: JSONBody[LeaseBody], core: Core, principal: Caller) -> Response[Any]:
    """Issue a lease for a registered, active VM of an entitled user."""
    issued = core.leases.issue(
        principal,
        vm_uuid=data.vm_uuid,
        module=data.module,
        user_id=data.user_id,
        version=data.version,
        agent_id=data.agent_id,
        runner_id=data.runner_id,
    )
    return ok(_lease_payload(issued), 201)


@post("/api/v1/license/heartbeat", sync_to_thread=True, tags=["license"])
def heartbeat(data: JSONBody[HeartbeatBody], core: Core, principal: Caller) -> Response[Any]:
    """Extend the lease by its TTL; answers a rotated token (the previous one stays valid until
    its own expiry). A token bound to no user must also send ``lease_token``."""
    issued = core.leases.heartbeat(principal, data.lease_id, data.lease_token)
    payload = _lease_payload(issued)
    payload["last_heartbeat_at"] = issued.lease.last_heartbeat_at
    return ok(payload)


@post("/api/v1/license/revoke", sync_to_thread=True, tags=["license"])
def revoke(data: JSONBody[RevokeBody], core: Core, principal: Caller) -> Response[Any]:
    """Revoke a lease (admin/infra)."""
    lease = core.leases.revoke(principal, data.lease_id, data.reason)
    return ok({"lease_id": lease.id, "status": "revoked", "revoked_at": lease.revoked_at})


@get("/api/v1/license/public-key", tags=["license"])
async def public_key(core: Core) -> Response[Any]:
    """The Ed25519 public key new lease tokens are signed with (raw 32 bytes, base64url), its
    key id, and ``keys``: every key that still verifies tokens (active first)."""
    keys = core.signer.public_keys()
    return ok(
        {
            "algorithm": "Ed25519",
            "public_key": keys[0]["public_key"],
            "kid": keys[0]["kid"],
            "keys": keys,
        }
    )
