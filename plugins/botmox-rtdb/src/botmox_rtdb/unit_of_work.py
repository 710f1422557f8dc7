"""The RTDB unit of work: writes are buffered and applied at commit.

RTDB has no multi-location transaction, so a unit of work keeps two kinds of pending writes:

* **plain writes** (VM upserts, licences, entitlements, assignments, audit entries): applied
  at commit as **one multi-path ``update()``**, which RTDB applies atomically — all or none;
* **conditional writes** (lease and token creation, token revocation, release publication):
  each applied at commit as its own ETag-conditional transaction, which re-checks uniqueness
  against the latest data. They run before the plain update, in the order they were made.
  If one fails (a racing duplicate, a lost connection), the conditional writes this commit
  already made are undone (each again by a conditional transaction) and nothing of the plain
  update is written; the error is raised.

Between those steps other clients can observe a partly applied commit (a new lease before the
VM update of the same unit, say): a unit of work is **not** atomic as a whole. Before anything is
written, every pending value is checked against RTDB's 32-level depth limit, so a value the
database would refuse fails the commit with :class:`~botmox_core.errors.BadRequestError` and no
write at all, never half of a commit. Reads inside
the unit see its own pending writes. ``LeaseRepository.modify`` is not buffered: it is an
immediate compare-and-set on the lease, durable even if the unit then rolls back (unless the
lease was created in the same, still pending, unit — then the pending value is changed).
Ids (release ids, audit entry ids) are taken from counters immediately; a rolled back unit
leaves a gap.

Domain data (records, bot history, aggregates, settings) stages into the same buffer; its
modifies are compare-and-set at commit, and a unit with a modify and other writes (a bot's ban)
commits them in the one multi-path update under per-record locks
(:mod:`botmox_rtdb.domain_repositories`). So does the vault (secrets, versions, bindings;
:mod:`botmox_rtdb.vault_repositories`): a secret's modify is a conditional write, applied first.

The pending writes live in a :class:`~botmox_rtdb.write_buffer.WriteBuffer`; this module only
composes the repositories over one buffer and commits or discards it.
"""

from __future__ import annotations

from types import TracebackType

import firebase_admin

from botmox_core.errors import BotmoxError
from botmox_core.ports.control import ControlRepository
from botmox_core.ports.domains import (
    AggregateRepository,
    BotHistoryRepository,
    RecordRepository,
    SettingsRepository,
)
from botmox_core.ports.repositories import (
    ApiTokenRepository,
    AssignmentRepository,
    DownloadAuditRepository,
    LeaseRepository,
    LicenceRepository,
    ReleaseRepository,
    VmRepository,
)
from botmox_core.ports.vault import SecretBindingRepository, SecretRepository
from botmox_rtdb.control_repository import RtdbControlRepository
from botmox_rtdb.domain_repositories import (
    DomainLayout,
    DomainWrites,
    RtdbAggregateRepository,
    RtdbBotHistoryRepository,
    RtdbRecordRepository,
    RtdbSettingsRepository,
)
from botmox_rtdb.repositories import (
    RtdbApiTokenRepository,
    RtdbAssignmentRepository,
    RtdbDownloadAuditRepository,
    RtdbLeaseRepository,
    RtdbLicenceRepository,
    RtdbReleaseRepository,
    RtdbVmRepository,
)
from botmox_rtdb.vault_repositories import RtdbSecretBindingRepository, RtdbSecretRepository
from botmox_rtdb.write_buffer import WriteBuffer

__all__ = ["RtdbReadUnitOfWork", "RtdbUnitOfWork"]


class RtdbUnitOfWork:
    """A unit of work over every RTDB repository (see the module docstring for guarantees):
    the repositories share one :class:`~botmox_rtdb.write_buffer.WriteBuffer`, which the unit
    commits or discards."""

    tokens: ApiTokenRepository
    vms: VmRepository
    licences: LicenceRepository
    leases: LeaseRepository
    releases: ReleaseRepository
    assignments: AssignmentRepository
    audit: DownloadAuditRepository
    records: RecordRepository
    bot_history: BotHistoryRepository
    aggregates: AggregateRepository
    settings: SettingsRepository
    control: ControlRepository
    secrets: SecretRepository
    bindings: SecretBindingRepository

    def __init__(self, app: firebase_admin.App, domain_layout: DomainLayout | None = None) -> None:
        self.app = app
        self.buffer = WriteBuffer(app)
        self.domain = DomainWrites(self.buffer, domain_layout or DomainLayout())
        self.records = RtdbRecordRepository(self.domain)
        self.bot_history = RtdbBotHistoryRepository(self.domain)
        self.aggregates = RtdbAggregateRepository(self.domain)
        self.settings = RtdbSettingsRepository(self.domain)
        self.tokens = RtdbApiTokenRepository(self.buffer)
        self.vms = RtdbVmRepository(self.buffer)
        self.licences = RtdbLicenceRepository(self.buffer)
        self.leases = RtdbLeaseRepository(self.buffer)
        self.releases = RtdbReleaseRepository(self.buffer)
        self.assignments = RtdbAssignmentRepository(self.buffer)
        self.audit = RtdbDownloadAuditRepository(self.buffer)
        self.control = RtdbControlRepository(self.buffer, self.domain.layout.legacy_tenant)
        self.secrets = RtdbSecretRepository(self.buffer)
        self.bindings = RtdbSecretBindingRepository(self.buffer)

    def commit(self) -> None:
        """Apply the conditional writes, then every plain write in one atomic update; domain
        modifies as :mod:`botmox_rtdb.domain_repositories` describes."""
        self.domain.commit()

    def rollback(self) -> None:
        """Discard every pending write (immediate lease modifications stay)."""
        self.domain.discard()
        self.buffer.discard()

    def __enter__(self) -> RtdbUnitOfWork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.rollback()


class RtdbReadUnitOfWork(RtdbUnitOfWork):
    """A unit that only reads (:meth:`RtdbBackend.read_unit_of_work`). RTDB reads take no lock
    anyway; this unit refuses :meth:`commit`, so a write buffered through it is never applied."""

    def commit(self) -> None:
        self.rollback()
        raise BotmoxError("this unit of work only reads")
