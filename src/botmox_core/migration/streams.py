"""What a migration copies, one *stream* per kind of record of a tenant, each read in one order
through the repository ports so two backends can be compared by a merge of two sorted streams.

A :class:`Stream` reads a page of :class:`Item` after a cursor (the last item's ``key``),
checks that an item can be stored at a target (the services' rules, so a value the target would
refuse is named before anything is written), writes it (create or replace on its natural key,
timestamps as they are) and deletes one (prune). Streams whose port has no delete (the
append-only lifecycle log and archive, secrets, aggregates, the settings tree) raise
:class:`NotPrunable`: the extra record is reported, never silently kept.

Streams (names as reports show them): ``settings``, ``aggregates``, ``records/<collection>``
for the 8 collections, ``lifecycle_log``, ``archive`` (domain data, ``capabilities.domains``);
``secrets`` (metadata and every version with its envelope, ciphertext as stored) and
``bindings`` (``capabilities.vault``): :mod:`botmox_core.migration.vault_streams`;
``tokens``, ``vms``, ``licence``, ``entitlements``, ``releases``, ``assignments``, ``leases``,
``download_audit`` (every backend) and ``agents``, ``commands`` (``capabilities.agents``):
:mod:`botmox_core.migration.artifact_streams`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cached_property
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

import attrs

from botmox_core.domain.records import (
    AggregateKey,
    ArchiveEntry,
    Collection,
    DomainRecord,
    LifecycleLogEntry,
)
from botmox_core.migration.canonical import canonical_text, digest
from botmox_core.ports import DataBackend
from botmox_core.ports.domains import DomainUnitOfWork, supports_domains
from botmox_core.services.domains import transfer

__all__ = [
    "AppendOnlyStream",
    "BulkWrites",
    "Item",
    "NotPrunable",
    "Stream",
    "Unrepresentable",
]

Key = tuple[Any, ...]


class Unrepresentable(Exception):
    """A source record the target cannot hold (the message says why)."""


class NotPrunable(Exception):
    """The stream's port has no delete: an extra record at the target stays (and is reported)."""


@attrs.frozen(eq=False)
class Item:
    """One logical record of a stream.

    Attributes:
        key: its place in the stream's order (and the cursor after it).
        label: how a report names it (the id, or ``timestamp/id`` for log and archive).
        value: what the port returned (written to the other side as it is).
        doc: its logical JSON (what is hashed).
        stamp: its last change in epoch ms when it has one (``--since``).
    """

    key: Key
    label: str
    value: Any
    doc: Any
    stamp: int | None = None

    @cached_property
    def hash(self) -> bytes:
        return digest(self.doc)

    @cached_property
    def text(self) -> str:
        return canonical_text(self.doc)


class Stream(Protocol):
    """One kind of record of a tenant, read in ``key`` order."""

    @property
    def name(self) -> str:
        """How reports and ``--stream`` name it."""

    def available(self, backend: DataBackend) -> bool:
        """Whether ``backend`` stores this kind of record."""

    def read(self, uow: Any, tenant: str, after: Key | None, limit: int) -> Sequence[Item]:
        """Up to ``limit`` items after ``after``, in key order."""

    def check(self, item: Item) -> None:
        """:class:`Unrepresentable` when a backend would refuse ``item``."""

    def write(self, uow: Any, tenant: str, item: Item, current: Item | None) -> None:
        """Make the target hold ``item`` (``current``: what it holds under that key now)."""

    def delete(self, uow: Any, tenant: str, item: Item) -> None:
        """Remove ``item`` from the target (:class:`NotPrunable` when the port cannot)."""


@runtime_checkable
class BulkWrites(Protocol):
    """A stream that writes many items in one call (the engine then writes a batch's creates
    and updates through :meth:`write_many`; deletes still go through ``delete``)."""

    def write_many(self, uow: Any, tenant: str, items: Sequence[Item]) -> None:
        """Make the target hold every item of ``items`` (created or replaced)."""


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _checked_line(line: dict[str, Any]) -> None:
    """The services' rules for one record, as ``botmox data import`` applies them."""
    try:
        transfer._item(line)
    except transfer._Bad as exc:
        raise Unrepresentable(str(exc)) from None


# -- domain data ------------------------------------------------------------------------------


class _DomainStream:
    def available(self, backend: DataBackend) -> bool:
        return supports_domains(backend)


@attrs.frozen
class RecordStream(_DomainStream):
    """A record collection, by id (code point order)."""

    collection: Collection

    @property
    def name(self) -> str:
        return f"records/{self.collection}"

    def read(self, uow: DomainUnitOfWork, tenant: str, after: Key | None, limit: int) -> list[Item]:
        page = uow.records.scan(
            tenant, self.collection, after=None if after is None else str(after[0]), limit=limit
        )
        return [
            Item(
                key=(record.id,),
                label=record.id,
                value=record,
                doc={"id": record.id, **record.data},
                stamp=_int_or_none(record.data.get("updated_at")),
            )
            for record in page
        ]

    def check(self, item: Item) -> None:
        record: DomainRecord = item.value
        _checked_line(
            {
                "kind": "record",
                "collection": str(self.collection),
                "id": record.id,
                "data": dict(record.data),
            }
        )

    def write(self, uow: DomainUnitOfWork, tenant: str, item: Item, current: Item | None) -> None:
        record: DomainRecord = item.value
        data = dict(record.data)
        if current is not None:
            changed = uow.records.modify(
                tenant, self.collection, record.id, lambda stored: attrs.evolve(stored, data=data)
            )
            if changed is not None:
                return
        uow.records.add(DomainRecord(tenant, self.collection, record.id, data))

    def write_many(self, uow: DomainUnitOfWork, tenant: str, items: Sequence[Item]) -> None:
        """Create or replace every record of ``items`` in one
        :meth:`~botmox_core.ports.domains.RecordRepository.put_many`."""
        uow.records.put_many(
            [
                DomainRecord(tenant, self.collection, item.value.id, dict(item.value.data))
                for item in items
            ]
        )

    def delete(self, uow: DomainUnitOfWork, tenant: str, item: Item) -> None:
        uow.records.delete(tenant, self.collection, str(item.key[0]))


_Entry = TypeVar("_Entry", LifecycleLogEntry, ArchiveEntry)


class AppendOnlyStream(_DomainStream, ABC, Generic[_Entry]):
    """An append-only history of the bot history port, by (time, id): entries are read after a
    (time, id) cursor, appended when absent, never changed (another version at the target is
    reported) and never deleted. :class:`LogStream` and :class:`ArchiveStream` say which
    history, its time field, its line kind and how an entry reads as a document."""

    #: The stream's name, what reports call the history and one of its entries.
    name: ClassVar[str]
    history: ClassVar[str]
    what: ClassVar[str]
    #: The line kind of the export format (the services' rules check an entry as that line).
    kind: ClassVar[str]

    @abstractmethod
    def entries(
        self, uow: DomainUnitOfWork, tenant: str, after: tuple[int, str] | None, limit: int
    ) -> Sequence[_Entry]:
        """Up to ``limit`` entries after ``after``, oldest first."""

    @abstractmethod
    def stamp(self, entry: _Entry) -> int:
        """The entry's time (epoch ms): the first part of its key."""

    @abstractmethod
    def document(self, entry: _Entry) -> dict[str, Any]:
        """The entry's logical JSON, as an export line holds it (without ``kind``)."""

    @abstractmethod
    def append(self, uow: DomainUnitOfWork, entry: _Entry) -> None:
        """Append ``entry`` at the target."""

    def read(self, uow: DomainUnitOfWork, tenant: str, after: Key | None, limit: int) -> list[Item]:
        cursor = None if after is None else (int(after[0]), str(after[1]))
        items = []
        for entry in self.entries(uow, tenant, cursor, limit):
            stamp = self.stamp(entry)
            items.append(Item((stamp, entry.id), entry.id, entry, self.document(entry), stamp))
        return items

    def check(self, item: Item) -> None:
        _checked_line({"kind": self.kind, **self.document(item.value)})

    def write(self, uow: DomainUnitOfWork, tenant: str, item: Item, current: Item | None) -> None:
        if current is not None:
            raise Unrepresentable(
                f"the target holds another version of this {self.what} (entries never change)"
            )
        self.append(uow, attrs.evolve(item.value, tenant_id=tenant))

    def delete(self, uow: DomainUnitOfWork, tenant: str, item: Item) -> None:
        raise NotPrunable(f"the {self.history} is append-only")


class LogStream(AppendOnlyStream[LifecycleLogEntry]):
    """The bot lifecycle log, by (timestamp, id); append-only."""

    name = "lifecycle_log"
    history = "lifecycle log"
    what = "lifecycle log entry"
    kind = transfer.LOG

    def entries(
        self, uow: DomainUnitOfWork, tenant: str, after: tuple[int, str] | None, limit: int
    ) -> Sequence[LifecycleLogEntry]:
        return uow.bot_history.log(tenant, limit=limit, after=after)

    def stamp(self, entry: LifecycleLogEntry) -> int:
        return entry.timestamp

    def document(self, entry: LifecycleLogEntry) -> dict[str, Any]:
        return {
            "id": entry.id,
            "bot_id": entry.bot_id,
            "type": entry.type,
            "message": entry.message,
            "timestamp": entry.timestamp,
            "details": dict(entry.details),
        }

    def append(self, uow: DomainUnitOfWork, entry: LifecycleLogEntry) -> None:
        uow.bot_history.append_log(entry)


class ArchiveStream(AppendOnlyStream[ArchiveEntry]):
    """The ban archive, by (archived_at, id); append-only."""

    name = "archive"
    history = "ban archive"
    what = "archive entry"
    kind = transfer.ARCHIVE

    def entries(
        self, uow: DomainUnitOfWork, tenant: str, after: tuple[int, str] | None, limit: int
    ) -> Sequence[ArchiveEntry]:
        return uow.bot_history.archive(tenant, limit=limit, after=after)

    def stamp(self, entry: ArchiveEntry) -> int:
        return entry.archived_at

    def document(self, entry: ArchiveEntry) -> dict[str, Any]:
        return {
            "id": entry.id,
            "bot_id": entry.bot_id,
            "reason": entry.reason,
            "archived_at": entry.archived_at,
            "ban_details": dict(entry.ban_details),
            "snapshot": dict(entry.snapshot),
        }

    def append(self, uow: DomainUnitOfWork, entry: ArchiveEntry) -> None:
        uow.bot_history.append_archive(entry)


class AggregateStream(_DomainStream):
    """The finance aggregates (``daily_stats``, ``gold_price_history``), by key."""

    name = "aggregates"

    def read(self, uow: DomainUnitOfWork, tenant: str, after: Key | None, limit: int) -> list[Item]:
        items: list[Item] = []
        for key in sorted(AggregateKey, key=str):
            if after is not None and str(key) <= str(after[0]):
                continue
            value = uow.aggregates.get(tenant, key)
            if value is not None:
                items.append(Item((str(key),), str(key), dict(value), {"key": str(key), **value}))
        return items[:limit]

    def check(self, item: Item) -> None:
        _checked_line({"kind": "aggregate", "key": item.key[0], "value": item.value})

    def write(self, uow: DomainUnitOfWork, tenant: str, item: Item, current: Item | None) -> None:
        uow.aggregates.put(tenant, AggregateKey(item.key[0]), item.value)

    def delete(self, uow: DomainUnitOfWork, tenant: str, item: Item) -> None:
        raise NotPrunable("aggregates have no delete in the repository port")


class SettingsStream(_DomainStream):
    """The settings tree (one item)."""

    name = "settings"

    def read(self, uow: DomainUnitOfWork, tenant: str, after: Key | None, limit: int) -> list[Item]:
        if after is not None or limit < 1:
            return []
        tree = uow.settings.get(tenant)
        if tree is None:
            return []
        return [Item(("settings",), "settings", dict(tree), dict(tree))]

    def check(self, item: Item) -> None:
        _checked_line({"kind": "settings", "tree": item.value})

    def write(self, uow: DomainUnitOfWork, tenant: str, item: Item, current: Item | None) -> None:
        tree = item.value
        uow.settings.modify(tenant, lambda stored: tree)

    def delete(self, uow: DomainUnitOfWork, tenant: str, item: Item) -> None:
        raise NotPrunable("a settings tree has no delete in the repository port")
