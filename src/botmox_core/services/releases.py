"""Releases and assignments.

Publishing verifies the *stored* object: the service reads it back from object storage and
refuses a release whose sha256 or size differs from what is declared (the original Bot-Mox
trusted the client). Assignments pick the release a user, or the tenant by default, gets.

Object keys are owned by tenants. The server derives every key it writes, under the tenant's
prefix (:func:`tenant_key_prefix`); a release that names an existing key may only name one under
the caller's own prefix. Anything else is ``FORBIDDEN`` before storage is asked, so the answer is
the same whether or not the key exists, and no error ever carries the stored object's hash or size.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, BinaryIO

import attrs

from botmox_core.errors import (
    ArtifactIntegrityError,
    ArtifactObjectNotFoundError,
    ArtifactReleaseNotFoundError,
    ArtifactScopeMismatchError,
    BotmoxError,
    DuplicateError,
    ForbiddenError,
)
from botmox_core.models import Assignment, Release, ReleaseScope, ReleaseStatus, Role
from botmox_core.ports import DataBackend, ObjectStorage
from botmox_core.ports.storage import MAX_KEY_LENGTH, ProgressCallback, validate_object_key
from botmox_core.services import validation as check
from botmox_core.services.principal import Clock, Principal, utcnow

CHUNK = 1024 * 1024
_KEY_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-")


def tenant_key_prefix(tenant_id: str) -> str:
    """The object-key prefix every object of ``tenant_id`` lives under (ends with ``/``).

    Tenant ids may hold ``_ : @``, which object keys do not all allow: those are written as
    ``_`` and two hex digits (``_`` itself too), so no two tenants share a prefix. Ids made of
    letters, digits, ``.`` and ``-`` are their own prefix (``acme`` -> ``acme/``).
    """
    return "".join(ch if ch in _KEY_SAFE else f"_{ord(ch):02x}" for ch in tenant_id) + "/"


def owned_object_key(principal: Principal, value: Any, field: str = "object_key") -> str:
    """``value`` as an object key of the caller's tenant: a valid key under its prefix, else
    ``FORBIDDEN`` (another tenant's, or nobody's, key) without looking at storage."""
    key = check.optional_text(value, field, MAX_KEY_LENGTH)
    if not key:
        raise check.invalid(field, "is required")
    prefix = tenant_key_prefix(principal.tenant_id)
    if not key.startswith(prefix) or len(key) == len(prefix):
        raise ForbiddenError(
            f"{field} must name an object under this tenant's prefix {prefix!r}",
            details=[{"field": field, "message": f"must start with {prefix}"}],
        )
    return validate_object_key(key)


@attrs.frozen
class AssignmentView:
    """The assignments that apply to a user for one scope.

    Attributes:
        user_assignment: the user's own assignment, if any.
        default_assignment: the tenant default, if any.
        effective_assignment: the user's if present, else the default.
    """

    user_assignment: Assignment | None
    default_assignment: Assignment | None

    @property
    def effective_assignment(self) -> Assignment | None:
        return self.user_assignment or self.default_assignment


def scope_from(module: Any, platform: Any, channel: Any) -> ReleaseScope:
    """A validated release scope."""
    return ReleaseScope(
        check.name(module, "module"),
        check.name(platform, "platform"),
        check.name(channel if channel is not None else "stable", "channel"),
    )


class ReleaseService:
    """Publishes verified releases and manages assignments."""

    def __init__(self, backend: DataBackend, storage: ObjectStorage, clock: Clock = utcnow) -> None:
        self._backend = backend
        self._storage = storage
        self._clock = clock

    def measure_object(self, key: str, progress: ProgressCallback | None = None) -> tuple[str, int]:
        """sha256 and size of the stored object, read back from storage in one pass."""
        if self._storage.head(key) is None:
            raise ArtifactObjectNotFoundError(f"no object stored under {key!r}")
        digest = hashlib.sha256()
        size = 0
        with self._storage.open(key) as stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                if progress is not None:
                    progress(len(chunk))
        return digest.hexdigest(), size

    def publish(
        self,
        principal: Principal,
        *,
        module: Any,
        platform: Any,
        version: Any,
        object_key: Any,
        sha256: Any,
        size_bytes: Any,
        channel: Any = "stable",
        status: Any = None,
        progress: ProgressCallback | None = None,
    ) -> Release:
        """Register a release of an object already in storage, after verifying its bytes."""
        principal.require(Role.ADMIN, Role.INFRA)
        scope = scope_from(module, platform, channel)
        version_name = check.name(version, "version")
        key = owned_object_key(principal, object_key)
        declared_sha = check.sha256_hex(sha256)
        declared_size = check.positive_int(size_bytes, "size_bytes")
        release_status = check.choice(status, "status", ReleaseStatus, ReleaseStatus.ACTIVE)
        actual_sha, actual_size = self.measure_object(key, progress)
        if actual_size != declared_size or actual_sha != declared_sha:
            raise ArtifactIntegrityError(  # never the stored values: they describe the bytes
                "the stored object does not match the declared sha256/size",
                details={"declared": {"sha256": declared_sha, "size_bytes": declared_size}},
            )
        release = Release(
            id=0,
            tenant_id=principal.tenant_id,
            module=scope.module,
            platform=scope.platform,
            channel=scope.channel,
            version=version_name,
            object_key=key,
            sha256=actual_sha,
            size_bytes=actual_size,
            status=release_status,
            created_at=self._clock(),
        )
        with self._backend.unit_of_work() as uow:
            stored = uow.releases.add(release)
            uow.commit()
        return stored

    def upload_and_publish(
        self,
        principal: Principal,
        stream: BinaryIO,
        *,
        module: Any,
        platform: Any,
        version: Any,
        channel: Any = "stable",
        filename: str = "artifact.bin",
        size: int | None = None,
        expected_sha256: str | None = None,
        status: Any = None,
        progress: ProgressCallback | None = None,
        verify_progress: ProgressCallback | None = None,
    ) -> Release:
        """Upload ``stream`` under a fresh key, verify the stored bytes and publish.

        The key is new for every upload, so a published release's bytes are never overwritten;
        if publishing fails the uploaded object is deleted again.
        """
        principal.require(Role.ADMIN, Role.INFRA)
        scope = scope_from(module, platform, channel)
        version_name = check.name(version, "version")
        safe_name = check.name(filename, "filename")
        with self._backend.unit_of_work() as uow:
            if uow.releases.find(principal.tenant_id, scope, version_name) is not None:
                raise DuplicateError(
                    f"{scope.module}/{scope.platform}/{scope.channel} version {version_name}"
                    " is already published",
                    code="RELEASE_VERSION_EXISTS",
                )
        key = tenant_key_prefix(principal.tenant_id) + "/".join(
            (
                scope.module,
                scope.platform,
                scope.channel,
                version_name,
                f"{secrets.token_hex(8)}-{safe_name}",
            )
        )
        info = self._storage.put(key, stream, size=size, progress=progress)
        try:
            if info.sha256 is None:
                raise BotmoxError("storage did not report the uploaded object's sha256")
            declared = check.sha256_hex(expected_sha256) if expected_sha256 else info.sha256
            return self.publish(
                principal,
                module=scope.module,
                platform=scope.platform,
                channel=scope.channel,
                version=version_name,
                object_key=key,
                sha256=declared,
                size_bytes=info.size_bytes if size is None else size,
                status=status,
                progress=verify_progress,
            )
        except BaseException:
            self._storage.delete(key)
            raise

    def get(self, principal: Principal, release_id: Any) -> Release:
        rid = check.positive_int(release_id, "release_id")
        with self._backend.unit_of_work() as uow:
            release = uow.releases.get(principal.tenant_id, rid)
        if release is None:
            raise ArtifactReleaseNotFoundError(f"release {rid} not found")
        return release

    def assign(
        self,
        principal: Principal,
        *,
        module: Any,
        platform: Any,
        channel: Any,
        release_id: Any,
        user_id: Any = None,
    ) -> Assignment:
        """Point a user (or, without ``user_id``, the tenant default) at a release of the same
        scope, replacing the previous assignment for that scope."""
        principal.require(Role.ADMIN, Role.INFRA)
        scope = scope_from(module, platform, channel)
        rid = check.positive_int(release_id, "release_id")
        user = check.optional_identifier(user_id, "user_id")
        with self._backend.unit_of_work() as uow:
            release = uow.releases.get(principal.tenant_id, rid)
            if release is None:
                raise ArtifactReleaseNotFoundError(f"release {rid} not found")
            if release.scope != scope:
                raise ArtifactScopeMismatchError(
                    "the release belongs to another module/platform/channel",
                    details={"release_scope": attrs.asdict(release.scope)},
                )
            assignment = uow.assignments.put(
                Assignment(
                    tenant_id=principal.tenant_id,
                    module=scope.module,
                    platform=scope.platform,
                    channel=scope.channel,
                    release_id=rid,
                    assigned_at=self._clock(),
                    user_id=user,
                )
            )
            uow.commit()
        return assignment

    def assignments_for(
        self, principal: Principal, *, user_id: Any, module: Any, platform: Any, channel: Any
    ) -> AssignmentView:
        """The user's, the default and the effective assignment for a scope."""
        user = check.identifier(user_id, "user_id")
        principal.require(Role.API, Role.ADMIN, Role.INFRA)
        scope = scope_from(module, platform, channel)
        with self._backend.unit_of_work() as uow:
            return AssignmentView(
                uow.assignments.get(principal.tenant_id, user, scope),
                uow.assignments.get(principal.tenant_id, None, scope),
            )
