"""Domain values of botmox.

All models are frozen attrs classes: they are values, changed with :func:`attrs.evolve`.
Timestamps are timezone-aware UTC :class:`~datetime.datetime`. (Un)structuring to JSON or rows
lives in :mod:`botmox_core.converter`, never here.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import attrs

__all__ = [
    "Agent",
    "AgentStatus",
    "ApiToken",
    "Command",
    "CommandStatus",
    "Assignment",
    "AuditEvent",
    "AuditResult",
    "DownloadAuditEntry",
    "Entitlement",
    "Lease",
    "LeaseStatus",
    "Licence",
    "LicenceStatus",
    "ObjectInfo",
    "Release",
    "ReleaseScope",
    "ReleaseStatus",
    "Role",
    "Tenant",
    "Vm",
    "VmStatus",
]


class Role(enum.StrEnum):
    """Roles a bearer token can carry."""

    API = "api"
    ADMIN = "admin"
    INFRA = "infra"
    AGENT = "agent"


class VmStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    REVOKED = "revoked"


class LicenceStatus(enum.StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    SUSPENDED = "suspended"


class LeaseStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class ReleaseStatus(enum.StrEnum):
    ACTIVE = "active"
    DRAFT = "draft"
    DISABLED = "disabled"
    ARCHIVED = "archived"


class AuditEvent(enum.StrEnum):
    RESOLVE_SUCCESS = "resolve_success"
    RESOLVE_DENIED = "resolve_denied"
    DOWNLOAD_URL_ISSUED = "download_url_issued"


class AuditResult(enum.StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    ERROR = "error"


@attrs.frozen
class Tenant:
    """A customer of the control plane; every record belongs to exactly one.

    Attributes:
        id: the tenant id carried by tokens (``tenant_id`` claim or token record).
    """

    id: str


@attrs.frozen
class ApiToken:
    """An operator-issued opaque bearer token. Only its hash is ever stored.

    Attributes:
        id: public identifier of the token (not secret; shown in listings and logs).
        tenant_id: the tenant the token acts for.
        role: the role it grants.
        user_id: the user it acts as, if any.
        token_hash: hex sha256 of the secret token.
        created_at: when it was issued.
        expires_at: when it stops working, or ``None`` for never.
        revoked_at: when it was revoked, or ``None``.
        label: free-form operator note.
    """

    id: str
    tenant_id: str
    role: Role
    token_hash: str
    created_at: datetime
    user_id: str | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    label: str | None = None


@attrs.frozen
class Vm:
    """A virtual machine registered by a runner.

    Attributes:
        tenant_id: owning tenant.
        vm_uuid: the VM's id, lower-cased, 8–128 of ``[a-z0-9:_-]``.
        user_id: the user the VM belongs to.
        status: active, paused or revoked; only active VMs get leases.
        vm_name, project_id: optional labels.
        metadata: free-form JSON object.
        created_at, updated_at: bookkeeping.
    """

    tenant_id: str
    vm_uuid: str
    user_id: str
    status: VmStatus
    created_at: datetime
    updated_at: datetime
    vm_name: str | None = None
    project_id: str | None = None
    metadata: dict[str, Any] = attrs.Factory(dict)


@attrs.frozen
class Licence:
    """A tenant's licence. Active means status active and (perpetual or future expiry).

    Attributes:
        tenant_id: the licensed tenant.
        status: licence status.
        expires_at: expiry, or ``None`` for a perpetual licence.
        updated_at: last change.
    """

    tenant_id: str
    status: LicenceStatus
    updated_at: datetime
    expires_at: datetime | None = None

    def is_active(self, now: datetime) -> bool:
        return self.status is LicenceStatus.ACTIVE and (
            self.expires_at is None or self.expires_at > now
        )


@attrs.frozen
class Entitlement:
    """Which modules a user of a tenant may lease. ``"*"`` in ``modules`` allows every module.

    Attributes:
        tenant_id: owning tenant.
        user_id: the entitled user.
        modules: allowed module names (``"*"`` is a wildcard).
        updated_at: last change.
    """

    tenant_id: str
    user_id: str
    modules: frozenset[str]
    updated_at: datetime

    def allows(self, module: str) -> bool:
        return "*" in self.modules or module in self.modules


@attrs.frozen
class Lease:
    """A licence lease held by a VM for one module.

    The lease token itself is never stored: ``token_hash`` is the hex sha256 of the current token
    and ``previous_token_hash`` that of the token a heartbeat replaced, which stays valid until its
    own expiry so a resolve racing a heartbeat does not fail.

    Attributes:
        id: lease id (``lease_`` + random hex).
        tenant_id, user_id, vm_uuid, module: what the lease is bound to.
        status: active or revoked.
        token_hash, previous_token_hash: hashes of the valid tokens.
        issued_at, expires_at: lifetime; heartbeats move ``expires_at``.
        last_heartbeat_at: last heartbeat, if any.
        version, agent_id, runner_id: optional context given at issue.
        revoked_at, revoke_reason: set on revocation.
    """

    id: str
    tenant_id: str
    user_id: str
    vm_uuid: str
    module: str
    status: LeaseStatus
    token_hash: str
    issued_at: datetime
    expires_at: datetime
    previous_token_hash: str | None = None
    last_heartbeat_at: datetime | None = None
    version: str | None = None
    agent_id: str | None = None
    runner_id: str | None = None
    revoked_at: datetime | None = None
    revoke_reason: str | None = None


@attrs.frozen
class ReleaseScope:
    """Where a release applies: a module built for a platform on a channel."""

    module: str
    platform: str
    channel: str


@attrs.frozen
class Release:
    """A published, verified artifact of a module.

    Attributes:
        id: positive integer id, unique across the backend.
        tenant_id: owning tenant.
        module, platform, channel, version: the release's scope and version; unique together
            per tenant.
        object_key: key of the artifact in object storage, unique per tenant.
        sha256: lower-case hex digest of the stored object, verified at publish.
        size_bytes: size of the stored object, verified at publish.
        status: only active releases are downloadable.
        created_at: publish time.
    """

    id: int
    tenant_id: str
    module: str
    platform: str
    channel: str
    version: str
    object_key: str
    sha256: str
    size_bytes: int
    status: ReleaseStatus
    created_at: datetime

    @property
    def scope(self) -> ReleaseScope:
        return ReleaseScope(self.module, self.platform, self.channel)


@attrs.frozen
class Assignment:
    """The release a user (or the tenant default, ``user_id=None``) gets for a scope.

    Attributes:
        tenant_id: owning tenant.
        user_id: the user, or ``None`` for the tenant default.
        module, platform, channel: the scope.
        release_id: the assigned release.
        assigned_at: last change.
    """

    tenant_id: str
    module: str
    platform: str
    channel: str
    release_id: int
    assigned_at: datetime
    user_id: str | None = None


@attrs.frozen
class DownloadAuditEntry:
    """One resolve-download attempt, allowed or not.

    Attributes:
        id: entry id (assigned by the repository when 0).
        tenant_id: the tenant the attempt was made for.
        event: resolve_success, resolve_denied or download_url_issued.
        result: allowed, denied or error.
        reason_code: the error code for denials and errors, ``None`` when allowed.
        created_at: when.
        lease_id, user_id, vm_uuid, module, platform, channel, release_id: what was asked and
            found, as far as it was known.
        request_ip: the caller's address.
        url_expires_at: expiry of the issued URL.
        metadata: extra JSON detail.
    """

    tenant_id: str
    event: AuditEvent
    result: AuditResult
    created_at: datetime
    id: int = 0
    reason_code: str | None = None
    lease_id: str | None = None
    user_id: str | None = None
    vm_uuid: str | None = None
    module: str | None = None
    platform: str | None = None
    channel: str | None = None
    release_id: int | None = None
    request_ip: str | None = None
    url_expires_at: datetime | None = None
    metadata: dict[str, Any] = attrs.Factory(dict)


@attrs.frozen
class ObjectInfo:
    """What object storage knows of a stored object.

    Attributes:
        key: the object key.
        size_bytes: object size.
        sha256: hex digest when the backend recorded one at upload, else ``None``.
        etag: backend ETag, if any.
        content_type: stored content type, if any.
    """

    key: str
    size_bytes: int
    sha256: str | None = None
    etag: str | None = None
    content_type: str | None = None


class AgentStatus(enum.StrEnum):
    """Stored agent states. ``offline`` is not stored: it is an active agent not seen lately."""

    PENDING = "pending"
    ACTIVE = "active"
    REVOKED = "revoked"


class CommandStatus(enum.StrEnum):
    """Command states; the legal moves between them are in
    :data:`botmox_core.domain.commands.TRANSITIONS`."""

    QUEUED = "queued"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def is_final(self) -> bool:
        return self in _FINAL_COMMAND_STATES


_FINAL_COMMAND_STATES = frozenset(
    {
        CommandStatus.SUCCEEDED,
        CommandStatus.FAILED,
        CommandStatus.EXPIRED,
        CommandStatus.CANCELLED,
        CommandStatus.TIMED_OUT,
    }
)


@attrs.frozen
class Agent:
    """An agent next to the infrastructure: created pending by a pairing, made active by
    registering with the pairing code, ended by revocation.

    Secrets are never stored: ``pairing_code_hash`` and ``token_hash`` are hex sha256 digests.

    Attributes:
        id: agent id (``agt_`` + random hex); also the pairing id.
        tenant_id: owning tenant.
        name: operator's label.
        status: pending, active or revoked.
        created_at: when the pairing was created.
        pairing_code_hash: hash of the unused pairing code; ``None`` once used.
        pairing_expires_at: when the pairing code stops working.
        version, platform, capabilities: what the agent reported at registration.
        public_key: the agent's X25519 public key (base64 of 32 bytes), if it sent one.
        token_hash, token_expires_at: the agent token's hash and expiry.
        registered_at: when it registered.
        last_seen_at: last heartbeat or frame.
        revoked_at, revoke_reason: set on revocation.
    """

    id: str
    tenant_id: str
    status: AgentStatus
    created_at: datetime
    pairing_expires_at: datetime
    name: str | None = None
    pairing_code_hash: str | None = attrs.field(default=None, repr=False)
    version: str | None = None
    platform: str | None = None
    capabilities: tuple[str, ...] = ()
    public_key: str | None = None
    token_hash: str | None = attrs.field(default=None, repr=False)
    token_expires_at: datetime | None = None
    registered_at: datetime | None = None
    last_seen_at: datetime | None = None
    revoked_at: datetime | None = None
    revoke_reason: str | None = None


@attrs.frozen
class Command:
    """A command queued for one agent.

    Attributes:
        id: command id (``cmd_`` + random hex).
        tenant_id, agent_id: whose agent runs it.
        command_type: what to run (``proxmox.start``, ``syncthing.scan`` ...).
        payload: JSON object handed to the agent's handler.
        status: current state.
        queued_at: when it was enqueued.
        expires_at: delivery deadline: still queued or dispatched after it → expired.
        updated_at: last state change.
        execution_timeout_seconds: running longer than this → timed_out.
        idempotency_key: the caller's key; one command per (tenant, agent, key).
        attempts: how many times it was dispatched.
        max_attempts: dispatches allowed before it is failed as undeliverable.
        dispatched_at, started_at, finished_at: state change times.
        cancel_requested_at: when cancellation was asked for.
        result: the agent's JSON result.
        error: why it failed, expired, timed out or was cancelled.
        output_bytes: size of the stored output (UTF-8 bytes).
        created_by: subject of the caller that enqueued it.
    """

    id: str
    tenant_id: str
    agent_id: str
    command_type: str
    status: CommandStatus
    queued_at: datetime
    expires_at: datetime
    updated_at: datetime
    payload: dict[str, Any] = attrs.Factory(dict)
    execution_timeout_seconds: int = 3600
    idempotency_key: str | None = None
    attempts: int = 0
    max_attempts: int = 5
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    output_bytes: int = 0
    created_by: str | None = None
