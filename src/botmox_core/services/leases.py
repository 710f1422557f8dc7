"""Licence leases: issue, heartbeat (extend and rotate the token), revoke.

A lease binds (tenant, user, vm_uuid, module) for ``ttl`` seconds. Its token is an Ed25519-signed
:mod:`lease token <botmox_core.security.lease_tokens>`; only the token's hash is stored.

Who may act on a lease (:func:`check_lease_owner`):

- operators (admin/infra): every lease of their tenant; only they revoke;
- a caller bound to a user (an ``api`` token or JWT with a user): only that user's leases;
- a caller bound to no user (a tenant-wide ``api`` service token, an agent): a lease whose token
  it holds. Resolve-download always carries the token; a heartbeat from such a caller must send
  ``lease_token`` too (the current token or the one it replaced).

Agents take no leases themselves: issuing needs a user, which an agent token does not have, and
an agent may not act for one (a runner on the VM uses a user's ``api`` token).
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import attrs

from botmox_core.errors import (
    EntitlementRequiredError,
    LeaseExpiredError,
    LeaseInactiveError,
    LeaseNotFoundError,
    LeaseOwnerMismatchError,
    LicenseInactiveError,
    ModuleNotAllowedError,
    VmInactiveError,
    VmNotRegisteredError,
    VmOwnerMismatchError,
)
from botmox_core.models import Lease, LeaseStatus, Role, VmStatus
from botmox_core.ports import DataBackend
from botmox_core.security import LeaseTokenSigner, hash_secret, hashes_match
from botmox_core.security.lease_tokens import MAX_TOKEN_LENGTH
from botmox_core.services import validation as check
from botmox_core.services.principal import Clock, Principal, utcnow

MIN_TTL_SECONDS = 60


def holds_token(lease: Lease, token: Any) -> bool:
    """Whether ``token`` is the lease's current token or the one its last heartbeat replaced."""
    if not isinstance(token, str) or not token:
        return False
    return hashes_match(token, lease.token_hash) or hashes_match(token, lease.previous_token_hash)


def check_lease_owner(principal: Principal, lease: Lease, *, token: Any = None) -> None:
    """Raise ``LEASE_OWNER_MISMATCH`` (403) unless ``principal`` may act on ``lease`` (same
    tenant assumed): operators always; a user-bound caller for its own user's leases; a caller
    bound to no user only with the lease's token (``token``). A ``token`` that is given must be
    the lease's, whoever sends it."""
    if token is not None and not holds_token(lease, token):
        raise LeaseOwnerMismatchError("lease_token is not a token of this lease")
    if principal.is_operator:
        return
    if principal.user_id is not None:
        if lease.user_id != principal.user_id:
            raise LeaseOwnerMismatchError("the lease belongs to another user")
        return
    if token is not None and holds_token(lease, token):
        return
    raise LeaseOwnerMismatchError(
        "a token bound to no user must present the lease's token (lease_token)"
    )


@attrs.frozen
class IssuedLease:
    """A lease together with its secret token (returned once, never stored).

    Attributes:
        lease: the stored lease.
        token: the signed lease token.
    """

    lease: Lease
    token: str = attrs.field(repr=False)


class LeaseService:
    """Issues and maintains licence leases."""

    def __init__(
        self,
        backend: DataBackend,
        signer: LeaseTokenSigner,
        *,
        ttl_seconds: int = 300,
        clock: Clock = utcnow,
    ) -> None:
        if ttl_seconds < MIN_TTL_SECONDS:
            raise ValueError(f"lease TTL must be at least {MIN_TTL_SECONDS} s")
        self._backend = backend
        self._signer = signer
        self._ttl = timedelta(seconds=ttl_seconds)
        self._clock = clock

    def issue(
        self,
        principal: Principal,
        *,
        vm_uuid: Any,
        module: Any,
        user_id: Any = None,
        version: Any = None,
        agent_id: Any = None,
        runner_id: Any = None,
    ) -> IssuedLease:
        """Check VM, licence and entitlement (in the contract's order) and issue a lease."""
        uuid = check.vm_uuid(vm_uuid)
        module_name = check.name(module, "module")
        user = principal.acting_user(check.optional_identifier(user_id, "user_id"))
        version_text = check.optional_text(version, "version", 128)
        agent = check.optional_text(agent_id, "agent_id", 128)
        runner = check.optional_text(runner_id, "runner_id", 128)
        tenant = principal.tenant_id
        now = self._clock()
        with self._backend.unit_of_work() as uow:
            vm = uow.vms.get(tenant, uuid)
            if vm is None:
                raise VmNotRegisteredError("the VM is not registered")
            if vm.status is not VmStatus.ACTIVE:
                raise VmInactiveError(f"the VM is {vm.status.value}")
            if vm.user_id != user:
                raise VmOwnerMismatchError("the VM belongs to another user")
            licence = uow.licences.get_licence(tenant)
            if licence is None or not licence.is_active(now):
                raise LicenseInactiveError("the tenant has no active licence")
            entitlement = uow.licences.get_entitlement(tenant, user)
            if entitlement is None:
                raise EntitlementRequiredError("the user has no entitlement")
            if not entitlement.allows(module_name):
                raise ModuleNotAllowedError(f"the user is not entitled to module {module_name}")
            lease_id = "lease_" + secrets.token_hex(16)
            expires_at = now + self._ttl
            token = self._signer.sign(
                lease_id=lease_id,
                tenant_id=tenant,
                vm_uuid=uuid,
                module=module_name,
                issued_at=now,
                expires_at=expires_at,
            )
            lease = Lease(
                id=lease_id,
                tenant_id=tenant,
                user_id=user,
                vm_uuid=uuid,
                module=module_name,
                status=LeaseStatus.ACTIVE,
                token_hash=hash_secret(token),
                issued_at=now,
                expires_at=expires_at,
                version=version_text,
                agent_id=agent,
                runner_id=runner,
            )
            uow.leases.add(lease)
            uow.commit()
        return IssuedLease(lease, token)

    def heartbeat(
        self, principal: Principal, lease_id: Any, lease_token: Any = None
    ) -> IssuedLease:
        """Extend an active, unexpired lease by the TTL and rotate its token. The previous token
        stays valid until its own expiry. ``lease_token`` proves ownership for callers bound to
        no user (see :func:`check_lease_owner`)."""
        lid = self._lease_id(lease_id)
        if lease_token is not None and (
            not isinstance(lease_token, str) or len(lease_token) > MAX_TOKEN_LENGTH
        ):
            raise check.invalid("lease_token", f"must be a string of at most {MAX_TOKEN_LENGTH}")
        now = self._clock()
        issued: dict[str, str] = {}

        def extend(current: Lease) -> Lease:
            check_lease_owner(principal, current, token=lease_token)
            if current.status is not LeaseStatus.ACTIVE:
                raise LeaseInactiveError(f"the lease is {current.status.value}")
            if current.expires_at <= now:
                raise LeaseExpiredError("the lease has expired")
            expires_at = now + self._ttl
            token = self._signer.sign(
                lease_id=current.id,
                tenant_id=current.tenant_id,
                vm_uuid=current.vm_uuid,
                module=current.module,
                issued_at=now,
                expires_at=expires_at,
            )
            issued["token"] = token
            return attrs.evolve(
                current,
                expires_at=expires_at,
                last_heartbeat_at=now,
                previous_token_hash=current.token_hash,
                token_hash=hash_secret(token),
            )

        with self._backend.unit_of_work() as uow:
            lease = uow.leases.modify(principal.tenant_id, lid, extend)
            if lease is None:
                raise LeaseNotFoundError("no such lease")
            uow.commit()
        return IssuedLease(lease, issued["token"])

    def revoke(self, principal: Principal, lease_id: Any, reason: Any = None) -> Lease:
        """Revoke a lease (operators only). Revoking a revoked lease keeps the first revocation."""
        principal.require(Role.ADMIN, Role.INFRA)
        lid = self._lease_id(lease_id)
        reason_text = check.optional_text(reason, "reason", 512)
        now = self._clock()

        def revoke(current: Lease) -> Lease:
            if current.status is LeaseStatus.REVOKED:
                return current
            return attrs.evolve(
                current, status=LeaseStatus.REVOKED, revoked_at=now, revoke_reason=reason_text
            )

        with self._backend.unit_of_work() as uow:
            lease = uow.leases.modify(principal.tenant_id, lid, revoke)
            if lease is None:
                raise LeaseNotFoundError("no such lease")
            uow.commit()
        return lease

    @staticmethod
    def _lease_id(value: Any) -> str:
        if not isinstance(value, str) or not value.startswith("lease_") or len(value) > 64:
            raise LeaseNotFoundError("no such lease")
        return value
