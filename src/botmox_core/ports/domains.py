"""Repository ports of the domain data: record collections, the bot history (lifecycle log and
ban archive), finance aggregates and the settings tree.

A data backend supports domain data when its units of work also carry ``records``,
``bot_history``, ``aggregates`` and ``settings`` (:class:`DomainUnitOfWork`) and it declares
``capabilities.domains``; :func:`supports_domains` reads that declaration. Without it the
server answers the domain routes with 501 ``DOMAINS_NOT_SUPPORTED``.

Every method names the tenant and never reads or writes another tenant's data. Values are
validated by the services before they get here (ids match
:data:`~botmox_core.domain.records.RECORD_ID_PATTERN`, keys pass
:func:`~botmox_core.domain.patching.key_error`, JSON nests at most 16 levels), so a backend
stores what it is given exactly and returns it equal (JSON numbers: integers stay integers).

Listing (:meth:`RecordRepository.list`) must give exactly what
:func:`~botmox_core.domain.listing.apply_query` gives over the tenant's collection: the same
records, order and total. SQL backends filter, order, count and page in the database; a
backend that cannot (RTDB) may apply the reference in memory and says so in its docs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeGuard, runtime_checkable

from botmox_core.domain.listing import ListPage, ListQuery
from botmox_core.domain.records import (
    AggregateKey,
    ArchiveEntry,
    Collection,
    DomainRecord,
    LifecycleLogEntry,
)
from botmox_core.errors import BotmoxError
from botmox_core.ports.repositories import DataBackend, UnitOfWork

log = logging.getLogger(__name__)

__all__ = [
    "AggregateRepository",
    "BotHistoryRepository",
    "BulkWriteBackend",
    "DomainDataBackend",
    "DomainUnitOfWork",
    "RecordRepository",
    "SettingsRepository",
    "after_bulk_write",
    "supports_domains",
]


class RecordRepository(Protocol):
    """The record collections of every tenant."""

    def get(self, tenant_id: str, collection: Collection, record_id: str) -> DomainRecord | None:
        """The record, or ``None``."""

    def add(self, record: DomainRecord) -> DomainRecord:
        """Store a new record; :class:`~botmox_core.errors.DuplicateError` if the id exists in
        that tenant's collection."""

    def modify(
        self,
        tenant_id: str,
        collection: Collection,
        record_id: str,
        change: Callable[[DomainRecord], DomainRecord],
    ) -> DomainRecord | None:
        """Atomically replace the record with ``change(current)``; ``None`` (nothing written)
        if absent. ``change`` may raise to abort. It must keep tenant, collection and id; a
        result equal to the current record writes nothing. Concurrent modifies of one record
        never lose an update."""

    def delete(self, tenant_id: str, collection: Collection, record_id: str) -> bool:
        """Remove the record; whether it existed."""

    def put_many(self, records: Sequence[DomainRecord]) -> None:
        """Create or replace every record of ``records`` (any tenants and collections, each
        (tenant, collection, id) at most once): the bulk write of migration and data import.
        The result equals :meth:`add` of each absent record and a replacing :meth:`modify` of
        each present one, in the caller's unit of work (nothing is visible before its commit,
        nothing is kept on rollback); a backend does it in as few round trips as it can."""

    def list(self, tenant_id: str, collection: Collection, query: ListQuery) -> ListPage:
        """One page of the tenant's collection, exactly as
        :func:`~botmox_core.domain.listing.apply_query` defines it."""

    def scan(
        self, tenant_id: str, collection: Collection, *, after: str | None = None, limit: int = 500
    ) -> Sequence[DomainRecord]:
        """Up to ``limit`` records with ids after ``after``, in id order (code point): how
        export and migration read a whole collection page by page."""


class BotHistoryRepository(Protocol):
    """The bot lifecycle log and the ban archive (append-only)."""

    def append_log(self, entry: LifecycleLogEntry) -> None:
        """Add a lifecycle log entry (ids are unique per tenant)."""

    def append_archive(self, entry: ArchiveEntry) -> None:
        """Add a ban archive entry (ids are unique per tenant)."""

    def log(
        self,
        tenant_id: str,
        bot_id: str | None = None,
        *,
        limit: int = 500,
        after: tuple[int, str] | None = None,
    ) -> Sequence[LifecycleLogEntry]:
        """Log entries of the tenant (of one bot), oldest first by (timestamp, id); with
        ``after`` only those after that (timestamp, id): how export and migration read the
        whole log page by page."""

    def archive(
        self,
        tenant_id: str,
        bot_id: str | None = None,
        *,
        limit: int = 500,
        after: tuple[int, str] | None = None,
    ) -> Sequence[ArchiveEntry]:
        """Archive entries of the tenant (of one bot), oldest first by (archived_at, id); with
        ``after`` only those after that (archived_at, id)."""


class AggregateRepository(Protocol):
    """Finance aggregates: one JSON object per tenant and key."""

    def get(self, tenant_id: str, key: AggregateKey) -> Mapping[str, Any] | None:
        """The stored object, or ``None``."""

    def put(self, tenant_id: str, key: AggregateKey, value: Mapping[str, Any]) -> None:
        """Store (replace) the object."""


class SettingsRepository(Protocol):
    """One settings tree (a JSON object) per tenant."""

    def get(self, tenant_id: str) -> Mapping[str, Any] | None:
        """The whole tree, or ``None`` if the tenant has none."""

    def modify(
        self, tenant_id: str, change: Callable[[Mapping[str, Any]], Mapping[str, Any]]
    ) -> Mapping[str, Any]:
        """Atomically replace the tree with ``change(current)`` (``current`` is ``{}`` when
        absent) and return the new tree; concurrent modifies never lose an update."""


class DomainUnitOfWork(UnitOfWork, Protocol):
    """A unit of work that also carries the domain repositories. A bot's ban (record, archive
    entry, log entry) is written in one unit: all or nothing."""

    records: RecordRepository
    bot_history: BotHistoryRepository
    aggregates: AggregateRepository
    settings: SettingsRepository


@runtime_checkable
class DomainDataBackend(DataBackend, Protocol):
    """A :class:`DataBackend` whose units of work are :class:`DomainUnitOfWork`."""

    def unit_of_work(self) -> DomainUnitOfWork:
        """A new unit of work with the domain repositories."""


def supports_domains(backend: DataBackend) -> TypeGuard[DomainDataBackend]:
    """Whether ``backend`` declares domain data (``capabilities.domains``)."""
    return backend.capabilities.domains


class BulkWriteBackend(Protocol):
    """A :class:`DomainDataBackend` that brings its query planning up to date after many
    records were written at once. Optional: :func:`after_bulk_write` calls it where it exists."""

    def after_bulk_write(self) -> None:
        """Refresh what lists are planned and served from after a bulk write (an import, a
        migration): statistics, pending index entries. Called once at the end, outside any unit
        of work; it must not change any record, and may be slow (seconds on millions of rows)."""


def after_bulk_write(backend: DataBackend) -> None:
    """Call ``backend``'s :meth:`BulkWriteBackend.after_bulk_write` when it has one. A
    PostgreSQL database fresh from an import lists about five times slower until its statistics
    and trigram indexes catch up (autovacuum does it within minutes); this does it at once. The
    data is written by then, so a refresh that fails (the database gone, a timeout) is logged
    as a warning and does not fail the import or migration that called it."""
    refresh = getattr(backend, "after_bulk_write", None)
    if not callable(refresh):
        return
    try:
        refresh()
    except BotmoxError as exc:
        log.warning(
            "the data is written, but refreshing the %s backend's statistics failed (%s: %s); "
            "lists may be slow until autovacuum catches up",
            getattr(backend, "name", "data"),
            exc.code,
            exc.message,
        )
