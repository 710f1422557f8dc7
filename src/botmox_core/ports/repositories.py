"""Repository ports, one per aggregate, and the unit of work that groups them.

Every read and write names the tenant: a repository never returns another tenant's record.
Repositories raise :class:`~botmox_core.errors.DuplicateError` on a uniqueness violation and
:class:`~botmox_core.errors.DatabaseError` (or :class:`~botmox_core.errors.ServiceUnavailableError`
when the database cannot be reached) for backend failures; they never leak SDK exceptions.

A :class:`UnitOfWork` is a context manager: leaving it without :meth:`UnitOfWork.commit`
rolls back. Backends that cannot make several writes atomic (e.g. Firebase RTDB) document which
guarantees they keep; the state changes that must not race go through ``modify`` methods, which
every backend makes atomic for the one record they touch. What a backend guarantees beyond that
it declares in :attr:`DataBackend.capabilities` (a :class:`BackendCapabilities`): the composition
root and the conformance suite read the declaration, they never probe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol

import attrs

from botmox_core.models import (
    ApiToken,
    Assignment,
    DownloadAuditEntry,
    Entitlement,
    Lease,
    Licence,
    Release,
    ReleaseScope,
    Vm,
)
from botmox_core.ports.health import HealthReport


@attrs.frozen(kw_only=True)
class BackendCapabilities:
    """What a :class:`DataBackend` guarantees beyond the base contract, declared by the backend.

    Every flag defaults to the weaker promise (``False``/``None``), so a backend claims only what
    it states. The composition root reads ``agents`` and ``preferred_agent_transport``; the
    conformance suite (:mod:`botmox_core.testing`) runs the tests of every claimed capability,
    so a claim a backend cannot keep fails its suite instead of being skipped.

    Attributes:
        agents: units of work carry ``agents`` and ``commands`` (the backend is an
            :class:`~botmox_core.ports.agents.AgentDataBackend`); without it the server answers
            the agent routes with 501 ``AGENTS_NOT_SUPPORTED``.
        rollback: leaving a unit without ``commit()`` (or calling ``rollback()``) discards its
            buffered writes.
        multi_record_transactions: a unit's writes to several records commit all or nothing,
            and a unit reads its own uncommitted writes.
        microsecond_timestamps: stored timestamps keep microseconds (milliseconds are always
            required).
        validates_release_values: ``releases.add`` itself refuses a ``sha256`` that is not 64
            lower-case hex digits and a ``size_bytes`` below 1 (:class:`BadRequestError`);
            without it only the services check them.
        domains: units of work carry the domain repositories (``records``, ``bot_history``,
            ``aggregates``, ``settings``; the backend is a
            :class:`~botmox_core.ports.domains.DomainDataBackend`); without it the server
            answers the domain routes with 501 ``DOMAINS_NOT_SUPPORTED``.
        vault: units of work carry the vault repositories (``secrets``, ``bindings``; the
            backend is a :class:`~botmox_core.ports.vault.VaultDataBackend`); without it the
            server answers the vault routes with 501 ``VAULT_NOT_SUPPORTED``.
        control: units of work carry ``control``, the deployment's shared control entries
            (write freeze, migration lock and checkpoints; the backend is a
            :class:`~botmox_core.ports.control.ControlDataBackend`); without it the server
            cannot be frozen and the backend cannot be a migration's target.
        local_reads: :func:`read_download_grant` reads a database on this host's own disk
            (no network round trip) and takes microseconds, as an embedded database's reads do.
            The server then runs resolve-download's reads on its event loop rather than in a
            worker thread (when the storage declares the same and the backend is a
            :class:`QueuedAuditBackend`). A backend that talks to a server must not claim it.
        preferred_agent_transport: the agent transport that fits this backend when replicas
            share it (e.g. ``postgres`` for Supabase), used unless ``BOTMOX_AGENT_TRANSPORT``
            says otherwise and only when that transport is installed.
    """

    agents: bool = False
    domains: bool = False
    vault: bool = False
    control: bool = False
    rollback: bool = False
    multi_record_transactions: bool = False
    microsecond_timestamps: bool = False
    validates_release_values: bool = False
    local_reads: bool = False
    preferred_agent_transport: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(str))
    )


class ApiTokenRepository(Protocol):
    """Operator-issued API tokens (hashes only)."""

    def add(self, token: ApiToken) -> None:
        """Store a new token record. :class:`DuplicateError` if the id or hash exists."""

    def get_by_hash(self, token_hash: str) -> ApiToken | None:
        """The token whose hash is ``token_hash`` (any tenant: the hash is the credential)."""

    def revoke(self, tenant_id: str, token_id: str, at: datetime) -> bool:
        """Mark a token revoked. False when no such token exists for the tenant."""

    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[ApiToken]:
        """Up to ``limit`` of the tenant's tokens after ``after``, by id (code point order): the
        whole set read page by page (export, migration)."""


class VmRepository(Protocol):
    """VM registry."""

    def upsert(self, vm: Vm) -> Vm:
        """Create the VM or replace the record with the same (tenant, vm_uuid), keeping
        ``created_at`` of an existing record. Returns the stored record."""

    def get(self, tenant_id: str, vm_uuid: str) -> Vm | None:
        """The VM, or None."""

    def scan(self, tenant_id: str, *, after: str | None = None, limit: int = 500) -> Sequence[Vm]:
        """Up to ``limit`` of the tenant's VMs after ``after``, by ``vm_uuid`` (code point
        order): the whole set read page by page (export, migration)."""


class LicenceRepository(Protocol):
    """Tenant licences and per-user entitlements."""

    def put_licence(self, licence: Licence) -> None:
        """Create or replace the tenant's licence."""

    def get_licence(self, tenant_id: str) -> Licence | None:
        """The tenant's licence, or None."""

    def put_entitlement(self, entitlement: Entitlement) -> None:
        """Create or replace a user's entitlement."""

    def get_entitlement(self, tenant_id: str, user_id: str) -> Entitlement | None:
        """The user's entitlement, or None."""

    def scan_entitlements(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[Entitlement]:
        """Up to ``limit`` of the tenant's entitlements after the user id ``after``, by user id
        (code point order)."""


class LeaseRepository(Protocol):
    """Licence leases."""

    def add(self, lease: Lease) -> None:
        """Store a new lease. :class:`DuplicateError` if the id exists."""

    def get(self, tenant_id: str, lease_id: str) -> Lease | None:
        """The lease, or None."""

    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[Lease]:
        """Up to ``limit`` of the tenant's leases after ``after``, by id (code point order): the
        whole set read page by page (export, migration)."""

    def modify(
        self, tenant_id: str, lease_id: str, change: Callable[[Lease], Lease]
    ) -> Lease | None:
        """Atomically replace the lease with ``change(current)`` and return the new value.

        ``change`` sees the latest committed state and may raise a :class:`BotmoxError` to abort
        (nothing is written). Concurrent modifications never lose an update: backends lock the
        row or retry ``change`` on conflict, so ``change`` must be a pure function of its input.
        Returns None when no such lease exists. ``change`` must return a lease with the same id
        and tenant (else :class:`BadRequestError`, nothing written), and a lease equal to the
        current one is not written: every backend enforces this with
        :mod:`botmox_core.ports.modify`.
        """


class ReleaseRepository(Protocol):
    """Published releases."""

    def add(self, release: Release) -> Release:
        """Store a release (its ``id`` is ignored) and return it with a newly allocated
        positive integer id. :class:`DuplicateError` when (tenant, module, platform, channel,
        version) or (tenant, object_key) is taken."""

    def get(self, tenant_id: str, release_id: int) -> Release | None:
        """The release, or None."""

    def find(self, tenant_id: str, scope: ReleaseScope, version: str) -> Release | None:
        """The release with that scope and version, or None."""

    def list(self, tenant_id: str, module: str | None = None) -> Sequence[Release]:
        """The tenant's releases (optionally of one module), newest id first."""

    def scan(
        self, tenant_id: str, *, after: int | None = None, limit: int = 500
    ) -> Sequence[Release]:
        """Up to ``limit`` of the tenant's releases after ``after``, by id (ascending): the
        whole set read page by page (export, migration)."""

    def put(self, release: Release) -> Release:
        """Store the release under its own ``id`` (a migration keeps ids: assignments name
        them): create it, or replace every field of the tenant's release with that id. Later
        :meth:`add` calls allocate ids above it. :class:`DuplicateError` when the scope and
        version or the object key is taken by another release, and where ids are unique across
        the backend (SQLite, PostgreSQL) when the id is another tenant's (RTDB keys releases per
        tenant: another tenant's release is never touched)."""


class AssignmentRepository(Protocol):
    """Which release a user, or a tenant by default, gets for a scope."""

    def put(self, assignment: Assignment) -> Assignment:
        """Create or replace the assignment for (tenant, user_id or default, scope)."""

    def get(self, tenant_id: str, user_id: str | None, scope: ReleaseScope) -> Assignment | None:
        """The assignment of ``user_id`` (``None``: the tenant default) for the scope."""

    def scan(
        self,
        tenant_id: str,
        *,
        after: tuple[str | None, str, str, str] | None = None,
        limit: int = 500,
    ) -> Sequence[Assignment]:
        """Up to ``limit`` of the tenant's assignments after ``after`` = (user_id, module,
        platform, channel), by that tuple: the tenant defaults (``user_id`` None) first, then
        by user id; strings in code point order."""


class DownloadAuditRepository(Protocol):
    """Append-only log of resolve-download attempts."""

    def append(self, entry: DownloadAuditEntry) -> DownloadAuditEntry:
        """Store an entry and return it with its allocated positive id."""

    def list(
        self, tenant_id: str, *, lease_id: str | None = None, limit: int = 100
    ) -> Sequence[DownloadAuditEntry]:
        """The tenant's entries (optionally for one lease), newest first, at most ``limit``."""

    def scan(
        self, tenant_id: str, *, after: int | None = None, limit: int = 500
    ) -> Sequence[DownloadAuditEntry]:
        """Up to ``limit`` of the tenant's entries after ``after``, by id (ascending): the
        whole set read page by page (export, migration)."""

    def import_(self, entry: DownloadAuditEntry) -> DownloadAuditEntry:
        """Store an entry under its own positive ``id`` (a migration keeps ids); later
        :meth:`append` calls allocate ids above it. :class:`DuplicateError` when the id is
        taken."""


class UnitOfWork(Protocol):
    """One transaction over all repositories. Exit without :meth:`commit` rolls back."""

    tokens: ApiTokenRepository
    vms: VmRepository
    licences: LicenceRepository
    leases: LeaseRepository
    releases: ReleaseRepository
    assignments: AssignmentRepository
    audit: DownloadAuditRepository

    def commit(self) -> None:
        """Make every write of this unit durable."""

    def rollback(self) -> None:
        """Discard every uncommitted write of this unit."""

    def __enter__(self) -> UnitOfWork: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class DataBackend(Protocol):
    """A repository backend (``sqlite``, ``supabase``, ``rtdb`` ...), built by a plugin factory.

    Attributes:
        name: the backend's name (as registered).
        capabilities: what it guarantees beyond the base contract (usually a class attribute).
    """

    name: str
    capabilities: BackendCapabilities

    def unit_of_work(self) -> UnitOfWork:
        """A new unit of work; use it as a context manager."""

    def check_health(self) -> HealthReport:
        """Whether the backend answers (a cheap round trip)."""

    def close(self) -> None:
        """Release connections and files. Idempotent."""


class ReadingBackend(Protocol):
    """A :class:`DataBackend` with units of work that only read (the hot read paths: the API
    token lookup, resolve-download's lease, assignment and release reads).

    A read unit takes no write lock (SQLite: its own connection in a deferred transaction under
    WAL; PostgreSQL: a pooled connection in autocommit, no ``BEGIN``/``ROLLBACK`` round trips),
    so readers never queue behind writers. It sees every unit committed before it started;
    writing through it raises :class:`~botmox_core.errors.BotmoxError` (or, where the backend
    buffers writes, discards them). Use :func:`read_unit_of_work` rather than calling it
    directly: that falls back to :meth:`DataBackend.unit_of_work` for a backend without it.
    """

    def read_unit_of_work(self) -> UnitOfWork:
        """A new read-only unit of work; use it as a context manager."""


class DurableAuditBackend(Protocol):
    """A :class:`DataBackend` that appends one download audit entry in a transaction of its own,
    durable when the call returns (SQLite: several concurrent entries share one commit, a group
    commit; PostgreSQL: one ``INSERT`` in autocommit, one round trip). Use
    :func:`append_audit_entry`, which falls back to a unit of work for a backend without it."""

    def append_audit(self, entry: DownloadAuditEntry) -> DownloadAuditEntry:
        """Store ``entry`` durably and return it with its id; raise as ``audit.append`` and
        ``commit`` do when it cannot (then nothing of it was stored)."""


AuditDone = Callable[["DownloadAuditEntry | None", "BaseException | None"], None]
"""What :meth:`QueuedAuditBackend.submit_audit` calls when an entry's commit is over: the stored
entry and None, or None and the error that kept it from being written."""


class QueuedAuditBackend(Protocol):
    """A :class:`DurableAuditBackend` that can also append without blocking its caller: the
    entry is queued and a callback reports when it is durable (the SQLite backend's group
    commit). A server awaits the callback on its event loop instead of holding a thread."""

    def submit_audit(self, entry: DownloadAuditEntry, done: AuditDone) -> None:
        """Queue ``entry`` and return at once. ``done(stored, None)`` is called -- on a thread of
        the backend's -- once ``entry`` is as durable as :meth:`DurableAuditBackend.append_audit`
        makes it, ``done(None, error)`` when it cannot be written; exactly one call either way.
        Raises (calling nothing) when the entry cannot even be queued."""


@attrs.frozen
class DownloadGrant:
    """What resolve-download reads for one lease and scope, in one read.

    Attributes:
        lease: the lease, or None.
        assignment: the assignment of the lease's user for the scope, else the tenant default
            (None when there is neither, or no lease).
        release: the release that assignment names, or None.
    """

    lease: Lease | None
    assignment: Assignment | None = None
    release: Release | None = None


class DownloadGrantBackend(Protocol):
    """A :class:`DataBackend` that reads a :class:`DownloadGrant` in one round trip (PostgreSQL:
    one statement). Use :func:`read_download_grant`, which composes the repositories' reads in a
    read unit for a backend without it."""

    def read_download_grant(
        self, tenant_id: str, lease_id: str, scope: ReleaseScope
    ) -> DownloadGrant:
        """The lease ``lease_id`` of ``tenant_id``, the effective assignment of its user for
        ``scope`` and that assignment's release, as :func:`read_download_grant` defines them."""


def read_download_grant(
    backend: DataBackend, tenant_id: str, lease_id: str, scope: ReleaseScope
) -> DownloadGrant:
    """The lease, the effective assignment (the lease user's for ``scope``, else the tenant
    default) and its release: the backend's :meth:`DownloadGrantBackend.read_download_grant`, or
    these reads in one read-only unit of work."""
    reader = getattr(backend, "read_download_grant", None)
    if callable(reader):
        return reader(tenant_id, lease_id, scope)  # type: ignore[no-any-return]
    with read_unit_of_work(backend) as uow:
        return read_download_grant_in(uow, tenant_id, lease_id, scope)


def read_download_grant_in(
    uow: UnitOfWork, tenant_id: str, lease_id: str, scope: ReleaseScope
) -> DownloadGrant:
    """:func:`read_download_grant` through the repositories of a unit of work already open."""
    lease = uow.leases.get(tenant_id, lease_id)
    if lease is None:
        return DownloadGrant(None)
    assignment = uow.assignments.get(tenant_id, lease.user_id, scope)
    if assignment is None:
        assignment = uow.assignments.get(tenant_id, None, scope)
    if assignment is None:
        return DownloadGrant(lease)
    return DownloadGrant(lease, assignment, uow.releases.get(tenant_id, assignment.release_id))


def read_unit_of_work(backend: DataBackend) -> UnitOfWork:
    """A read-only unit of ``backend`` (:class:`ReadingBackend`), or an ordinary unit of work
    (which is only ever rolled back) for a backend that has none."""
    reading = getattr(backend, "read_unit_of_work", None)
    if callable(reading):
        return reading()  # type: ignore[no-any-return]
    return backend.unit_of_work()


def append_audit_entry(backend: DataBackend, entry: DownloadAuditEntry) -> DownloadAuditEntry:
    """Append ``entry`` durably: the backend's :meth:`DurableAuditBackend.append_audit`, or one
    unit of work with ``audit.append`` and ``commit``."""
    append = getattr(backend, "append_audit", None)
    if callable(append):
        return append(entry)  # type: ignore[no-any-return]
    with backend.unit_of_work() as uow:
        stored = uow.audit.append(entry)
        uow.commit()
    return stored
