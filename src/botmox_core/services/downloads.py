"""Resolve-download: the lease-gated door to an artifact.

Checks run in the contract's order and the first failure wins: ``UNAUTHORIZED`` (token does not
verify), ``LEASE_EXPIRED``, ``LEASE_NOT_FOUND``, ``FORBIDDEN`` (other tenant), ``LEASE_INACTIVE``,
``VM_UUID_MISMATCH``, ``MODULE_MISMATCH``, ``ARTIFACT_ASSIGNMENT_NOT_FOUND``,
``ARTIFACT_RELEASE_NOT_FOUND``, ``ARTIFACT_RELEASE_NOT_ACTIVE``, ``ARTIFACT_OBJECT_NOT_FOUND``,
then storage failures (502). Every attempt, allowed or not, writes exactly one audit entry, even
when a check fails in a way nobody planned for (then the entry's result is ``error``).

Who may resolve a lease (see :func:`botmox_core.services.leases.check_lease_owner`): an operator
(admin/infra) any lease of the tenant; a caller bound to a user only that user's leases
(``LEASE_OWNER_MISMATCH`` otherwise, checked right after the tenant and the token); a caller
bound to no user (a tenant service token, an agent) any lease whose token it holds.

How one resolve runs (the hot path of every VM boot): :meth:`DownloadService.attempt` checks the
lease token's signature first (no I/O; a token verified before is remembered, its key asked
again); the lease, the effective assignment and its release are read together
(:func:`~botmox_core.ports.repositories.read_download_grant`: one ``SELECT`` on SQLite, one
statement on PostgreSQL; no write lock, and it sees every unit committed before it, so a lease
revoked before the resolve started is refused); the checks then run in the order above; the
storage is asked for the object and the URL signed outside any unit. Nothing is written yet:
the attempt carries its audit entry, which must be appended durably before
:meth:`DownloadService.finish` gives the answer -- :meth:`DownloadService.resolve` does both in
the calling thread (:func:`~botmox_core.ports.repositories.append_audit_entry`: its own
transaction, committed before it returns); a server whose backend and storage read only local
files (:attr:`DownloadService.runs_locally`) runs the attempt on its event loop and awaits the
backend's group commit (:meth:`DownloadService.submit_audit`). When the audit entry cannot be
written ``finish`` raises the backend's error (503/502), so no attempt is ever answered 200
without its audit row.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import attrs

from botmox_core.errors import (
    ArtifactAssignmentNotFoundError,
    ArtifactObjectNotFoundError,
    ArtifactReleaseNotActiveError,
    ArtifactReleaseNotFoundError,
    BotmoxError,
    ForbiddenError,
    LeaseExpiredError,
    LeaseInactiveError,
    LeaseNotFoundError,
    ModuleMismatchError,
    StorageError,
    UnauthorizedError,
    UpstreamError,
    VmUuidMismatchError,
)
from botmox_core.models import (
    AuditEvent,
    AuditResult,
    DownloadAuditEntry,
    LeaseStatus,
    Release,
    ReleaseScope,
    ReleaseStatus,
    Role,
)
from botmox_core.ports import DataBackend, ObjectStorage, PresigningStorage, presigning
from botmox_core.ports.repositories import (
    AuditDone,
    DownloadGrant,
    append_audit_entry,
    read_download_grant,
    read_unit_of_work,
)
from botmox_core.security import LeaseTokenSigner, hashes_match
from botmox_core.security.lease_tokens import peek_lease_id
from botmox_core.services import validation as check
from botmox_core.services.leases import check_lease_owner
from botmox_core.services.principal import Clock, Principal, utcnow
from botmox_core.services.releases import scope_from

log = logging.getLogger(__name__)


def _well_formed(rule: Any, value: Any) -> str | None:
    try:
        return str(rule(value, "value"))
    except BotmoxError:
        return None


@attrs.frozen
class ResolveAttempt:
    """One resolve's outcome before its audit entry is written.

    Attributes:
        entry: the audit entry recording it, to append durably before answering.
        resolved: the download, when every check passed.
        error: why not (a :class:`BotmoxError`, or what failed unexpectedly).
    """

    entry: DownloadAuditEntry
    resolved: ResolvedDownload | None
    error: BaseException | None


@attrs.frozen
class ResolvedDownload:
    """Where and what to download.

    Attributes:
        download_url: presigned URL (secret: never log it).
        url_expires_at: when the URL stops working.
        release: the release it points at (id, version, sha256, size_bytes).
    """

    download_url: str = attrs.field(repr=False)
    url_expires_at: datetime
    release: Release


class DownloadService:
    """Turns a valid lease into a short-lived download URL."""

    def __init__(
        self,
        backend: DataBackend,
        storage: ObjectStorage,
        signer: LeaseTokenSigner,
        *,
        url_ttl_seconds: int = 300,
        clock: Clock = utcnow,
    ) -> None:
        self._backend = backend
        self._storage = storage
        self._signer = signer
        self._url_ttl = url_ttl_seconds
        self._clock = clock
        self._presigner: PresigningStorage | None = None  # checked on first use, then kept
        self._local: bool | None = None  # likewise

    def _presigning(self) -> PresigningStorage:
        # presigning() is a runtime Protocol check (~50 µs): once per service, not per resolve
        if self._presigner is None:
            self._presigner = presigning(self._storage)
        return self._presigner

    @property
    def runs_locally(self) -> bool:
        """Whether a resolve's reads stay on this host and its audit entry can be queued
        (backend and storage declare ``local_reads``; the backend is a
        :class:`~botmox_core.ports.repositories.QueuedAuditBackend`): a server may then run
        :meth:`attempt` on its event loop and await :meth:`submit_audit`."""
        if self._local is None:
            local = getattr(self._backend.capabilities, "local_reads", False) and getattr(
                self._storage.capabilities, "local_reads", False
            )
            self._local = bool(local) and callable(getattr(self._backend, "submit_audit", None))
        return self._local

    def resolve(
        self,
        principal: Principal,
        *,
        lease_token: Any,
        vm_uuid: Any,
        module: Any,
        platform: Any,
        channel: Any,
        request_ip: str | None = None,
    ) -> ResolvedDownload:
        """Check the lease and assignment and issue a URL; audit the attempt either way (the
        entry is durable before this returns or raises)."""
        attempt = self.attempt(
            principal,
            lease_token=lease_token,
            vm_uuid=vm_uuid,
            module=module,
            platform=platform,
            channel=channel,
            request_ip=request_ip,
        )
        try:
            append_audit_entry(self._backend, attempt.entry)
        except BotmoxError as exc:
            return self.finish(attempt, exc)
        return self.finish(attempt, None)

    def attempt(
        self,
        principal: Principal,
        *,
        lease_token: Any,
        vm_uuid: Any,
        module: Any,
        platform: Any,
        channel: Any,
        request_ip: str | None = None,
    ) -> ResolveAttempt:
        """Run every check and sign the URL, writing nothing: the outcome and the audit entry
        that records it. The caller must append :attr:`ResolveAttempt.entry` durably and then
        call :meth:`finish` (:meth:`resolve` does both)."""
        now = self._clock()
        draft: dict[str, Any] = {  # what the checks learn, kept even when one of them fails
            "tenant_id": principal.tenant_id,
            "event": AuditEvent.RESOLVE_DENIED,
            "result": AuditResult.DENIED,
            "created_at": now,
            "user_id": principal.user_id,
            # only well-formed values reach the audit record: it must be writable whatever
            # a caller sends (NUL bytes, megabytes, control characters)
            "vm_uuid": _well_formed(check.vm_uuid, vm_uuid),
            "module": _well_formed(check.name, module),
            "platform": _well_formed(check.name, platform),
            "channel": _well_formed(check.name, channel),
            "request_ip": request_ip,
        }
        try:
            resolved = self._check(
                principal, draft, now, lease_token, vm_uuid, module, platform, channel
            )
        except BotmoxError as exc:
            draft["result"] = (
                AuditResult.ERROR if isinstance(exc, UpstreamError) else AuditResult.DENIED
            )
            draft["reason_code"] = exc.code
            return ResolveAttempt(DownloadAuditEntry(**draft), None, exc)
        except Exception as exc:
            log.exception("resolve-download failed (tenant=%s)", draft["tenant_id"])
            draft.update(result=AuditResult.ERROR, reason_code="INTERNAL_ERROR")
            return ResolveAttempt(DownloadAuditEntry(**draft), None, exc)
        return ResolveAttempt(DownloadAuditEntry(**draft), resolved, None)

    def submit_audit(self, attempt: ResolveAttempt, done: AuditDone) -> None:
        """Queue the attempt's entry on a :class:`~botmox_core.ports.repositories.
        QueuedAuditBackend` (see :attr:`runs_locally`); ``done`` reports when it is durable."""
        self._backend.submit_audit(attempt.entry, done)  # type: ignore[attr-defined]

    def finish(
        self, attempt: ResolveAttempt, audit_error: BaseException | None
    ) -> ResolvedDownload:
        """The attempt's answer once its audit entry was appended (``audit_error`` None), or
        the append's error: no attempt is answered without its entry."""
        if audit_error is not None:
            entry = attempt.entry
            log.error(
                "could not write the download audit entry (tenant=%s lease=%s result=%s): %s",
                entry.tenant_id,
                entry.lease_id,
                entry.result.value,
                audit_error,
            )
            raise audit_error
        if attempt.error is not None:
            raise attempt.error
        assert attempt.resolved is not None
        return attempt.resolved

    def _check(
        self,
        principal: Principal,
        draft: dict[str, Any],
        now: datetime,
        lease_token: Any,
        vm_uuid: Any,
        module: Any,
        platform: Any,
        channel: Any,
    ) -> ResolvedDownload:
        if not isinstance(lease_token, str) or not lease_token:
            raise UnauthorizedError("lease_token is missing")
        try:
            claims = self._signer.verify(lease_token)
        except UnauthorizedError:
            claimed = peek_lease_id(lease_token)
            if claimed is not None:
                draft["metadata"] = {"claimed_lease_id": claimed, "claim_verified": False}
            raise
        draft["lease_id"] = claims.lease_id
        if claims.expired(now):
            raise LeaseExpiredError("the lease token has expired")
        try:  # the scope is checked in the contract's order below; here it only shapes the read
            scope: ReleaseScope | None = scope_from(module, platform, channel)
        except BotmoxError:
            scope = None
        if scope is None:
            with read_unit_of_work(self._backend) as uow:
                grant = DownloadGrant(uow.leases.get(claims.tenant_id, claims.lease_id))
        else:
            grant = read_download_grant(self._backend, claims.tenant_id, claims.lease_id, scope)
        lease = grant.lease
        if lease is None:
            raise LeaseNotFoundError("no such lease")
        if lease.tenant_id != principal.tenant_id:
            raise ForbiddenError("the lease belongs to another tenant")
        if not (
            hashes_match(lease_token, lease.token_hash)
            or hashes_match(lease_token, lease.previous_token_hash)
        ):
            raise UnauthorizedError("the lease token is not current")
        check_lease_owner(principal, lease, token=lease_token)
        draft["user_id"] = lease.user_id
        if lease.status is not LeaseStatus.ACTIVE:
            raise LeaseInactiveError(f"the lease is {lease.status.value}")
        if lease.expires_at <= now:
            raise LeaseExpiredError("the lease has expired")
        uuid = check.vm_uuid(vm_uuid)
        if uuid != lease.vm_uuid:
            raise VmUuidMismatchError("the lease was issued to another VM")
        scope = scope_from(module, platform, channel)
        if scope.module != lease.module:
            raise ModuleMismatchError("the lease was issued for another module")
        assignment = grant.assignment
        if assignment is None:
            raise ArtifactAssignmentNotFoundError(
                f"no release is assigned for module {scope.module}, platform {scope.platform},"
                f" channel {scope.channel}",
                details={
                    "module": scope.module,
                    "platform": scope.platform,
                    "channel": scope.channel,
                },
            )
        release = grant.release
        if release is None:
            raise ArtifactReleaseNotFoundError(
                f"the assigned release {assignment.release_id} does not exist",
                details={"release_id": assignment.release_id},
            )
        draft["release_id"] = release.id
        if release.status is not ReleaseStatus.ACTIVE:
            raise ArtifactReleaseNotActiveError(f"the assigned release is {release.status.value}")
        try:
            if self._storage.head(release.object_key) is None:
                raise ArtifactObjectNotFoundError("the release's object is missing from storage")
            remaining = int((lease.expires_at - now).total_seconds())
            ttl = max(1, min(self._url_ttl, remaining))
            url = self._presigning().presign_download(release.object_key, ttl_seconds=ttl)
        except BotmoxError:
            raise
        except Exception as exc:  # a storage plugin that leaked an SDK error
            log.exception("storage %s failed", self._storage.name)
            raise StorageError("object storage failed") from exc
        url_expires_at = min(url.expires_at, lease.expires_at, now + timedelta(seconds=ttl))
        draft.update(
            event=AuditEvent.DOWNLOAD_URL_ISSUED,
            result=AuditResult.ALLOWED,
            url_expires_at=url_expires_at,
        )
        return ResolvedDownload(url.url, url_expires_at, release)

    def audit_log(
        self, principal: Principal, *, lease_id: str | None = None, limit: int = 100
    ) -> list[DownloadAuditEntry]:
        """The tenant's audit entries, newest first (operators only)."""
        principal.require(Role.ADMIN, Role.INFRA)
        with self._backend.unit_of_work() as uow:
            return list(uow.audit.list(principal.tenant_id, lease_id=lease_id, limit=limit))
