"""Writing checked items through the domain ports with upsert semantics (added when absent,
replaced when different, left alone when equal), batch by batch.

A batch's records are looked up per collection in a few reads (a ``get`` and ``scan`` pages
from there, in id order) and the new and changed ones written with one
:meth:`~botmox_core.ports.domains.RecordRepository.put_many`; log and archive entries,
aggregates and the settings tree go item by item. A batch holds a record id at most once (the
importer starts a new batch at a repeated one). A record written by someone else between the
read and the write of its batch is replaced: import is create-or-replace either way."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from botmox_core.domain.records import (
    ArchiveEntry,
    Collection,
    DomainRecord,
    LifecycleLogEntry,
)
from botmox_core.errors import (
    BotmoxError,
    DuplicateError,
)
from botmox_core.ports.domains import DomainDataBackend, DomainUnitOfWork
from botmox_core.services.domains.transfer.format import ImportReport
from botmox_core.services.domains.transfer.lines import (
    _Aggregate,
    _Archive,
    _Bad,
    _Item,
    _label,
    _Log,
    _Record,
    _Settings,
)


def _write_record(uow: DomainUnitOfWork, tenant: str, item: _Record, dry_run: bool) -> str:
    if dry_run:
        current = uow.records.get(tenant, item.collection, item.id)
        if current is None:
            return "created"
        return "unchanged" if _same(current.data, item.data) else "updated"
    outcome: list[str] = []

    def change(current: DomainRecord) -> DomainRecord:
        if _same(current.data, item.data):
            outcome[:] = ["unchanged"]
            return current
        outcome[:] = ["updated"]
        return attrs.evolve(current, data=item.data)

    if uow.records.modify(tenant, item.collection, item.id, change) is not None:
        return outcome[0]
    uow.records.add(DomainRecord(tenant, item.collection, item.id, item.data))
    return "created"


def _same(left: Any, right: Any) -> bool:
    """Equal as JSON values: objects by keys and values, arrays item by item, ``true`` is not
    ``1``, and ``1`` equals ``1.0`` (no backend keeps them apart)."""
    if isinstance(left, dict):
        return (
            isinstance(right, dict)
            and left.keys() == right.keys()
            and all(_same(value, right[key]) for key, value in left.items())
        )
    if isinstance(left, list):
        return isinstance(right, list) and len(left) == len(right) and all(map(_same, left, right))
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    return type(left) is type(right) and bool(left == right)


def _existing(
    read: Callable[[tuple[int, str]], list[Any]],
    time_of: Callable[[Any], int],
    stamp: int,
    entry_id: str,
) -> Any | None:
    """The entry with ``entry_id`` at time ``stamp`` among one bot's entries, read after the
    cursor (``stamp - 1``, past every id) until the time passes ``stamp``."""
    cursor = (stamp - 1, "\x7f")
    for _ in range(10_000):
        page = read(cursor)
        for entry in page:
            if time_of(entry) > stamp:
                return None
            if time_of(entry) == stamp and entry.id == entry_id:
                return entry
        if len(page) < 64:
            return None
        cursor = (time_of(page[-1]), page[-1].id)
    return None


def _write_log(uow: DomainUnitOfWork, tenant: str, item: _Log, dry_run: bool) -> str:
    found = _existing(
        lambda after: list(uow.bot_history.log(tenant, item.bot_id, limit=64, after=after)),
        lambda entry: entry.timestamp,
        item.timestamp,
        item.id,
    )
    entry = LifecycleLogEntry(
        tenant, item.id, item.bot_id, item.type, item.message, item.timestamp, item.details
    )
    if found is not None:
        if (
            found.type == entry.type
            and found.message == entry.message
            and _same(dict(found.details), item.details)
        ):
            return "unchanged"
        raise _Bad(
            f"lifecycle log entry {item.id} exists with other content (entries never change)"
        )
    if not dry_run:
        try:
            uow.bot_history.append_log(entry)
        except DuplicateError:
            raise _Bad(f"lifecycle log entry {item.id} exists with another bot or time") from None
    return "created"


def _write_archive(uow: DomainUnitOfWork, tenant: str, item: _Archive, dry_run: bool) -> str:
    found = _existing(
        lambda after: list(uow.bot_history.archive(tenant, item.bot_id, limit=64, after=after)),
        lambda entry: entry.archived_at,
        item.archived_at,
        item.id,
    )
    entry = ArchiveEntry(
        tenant,
        item.id,
        item.bot_id,
        item.reason,
        item.archived_at,
        item.ban_details,
        item.snapshot,
    )
    if found is not None:
        if (
            found.reason == entry.reason
            and _same(dict(found.ban_details), item.ban_details)
            and _same(dict(found.snapshot), item.snapshot)
        ):
            return "unchanged"
        raise _Bad(f"archive entry {item.id} exists with other content (entries never change)")
    if not dry_run:
        try:
            uow.bot_history.append_archive(entry)
        except DuplicateError:
            raise _Bad(f"archive entry {item.id} exists with another bot or time") from None
    return "created"


def _write_aggregate(uow: DomainUnitOfWork, tenant: str, item: _Aggregate, dry_run: bool) -> str:
    current = uow.aggregates.get(tenant, item.key)
    if current is not None and _same(dict(current), item.value):
        return "unchanged"
    if not dry_run:
        uow.aggregates.put(tenant, item.key, item.value)
    return "created" if current is None else "updated"


def _write_settings(uow: DomainUnitOfWork, tenant: str, item: _Settings, dry_run: bool) -> str:
    if dry_run:
        current = uow.settings.get(tenant)
        if current is None:
            return "created"
        return "unchanged" if _same(dict(current), item.tree) else "updated"
    outcome: list[str] = []

    def change(current: Mapping[str, Any]) -> Mapping[str, Any]:
        if _same(dict(current), item.tree):
            outcome[:] = ["unchanged"]
            return current
        outcome[:] = ["updated" if current else "created"]
        return item.tree

    uow.settings.modify(tenant, change)
    return outcome[0]


def _write(uow: DomainUnitOfWork, tenant: str, item: _Item, dry_run: bool) -> str:
    if isinstance(item, _Record):
        return _write_record(uow, tenant, item, dry_run)
    if isinstance(item, _Log):
        return _write_log(uow, tenant, item, dry_run)
    if isinstance(item, _Archive):
        return _write_archive(uow, tenant, item, dry_run)
    if isinstance(item, _Aggregate):
        return _write_aggregate(uow, tenant, item, dry_run)
    return _write_settings(uow, tenant, item, dry_run)


#: ``scan`` pages a batch's look-up reads before the rest of its ids are read one by one (the
#: target then holds many records between the batch's ids).
_MAX_LOOKUP_SCANS = 4
#: Records a look-up page reads beyond the ids still wanted (a few the file does not hold).
_LOOKUP_SLACK = 64


def _current_records(
    uow: DomainUnitOfWork, tenant: str, collection: Collection, ids: Sequence[str]
) -> dict[str, DomainRecord]:
    """The stored records among ``ids`` (sorted, distinct) by id: a ``get`` of the first, then
    ``scan`` pages after it (an export file's records come in id order, so a batch's ids are
    mostly neighbours at the target too), the rest one ``get`` each."""
    found: dict[str, DomainRecord] = {}
    first = uow.records.get(tenant, collection, ids[0])
    if first is not None:
        found[first.id] = first
    wanted = set(ids)
    remaining = list(ids[1:])
    after = ids[0]
    for _ in range(_MAX_LOOKUP_SCANS):
        if not remaining:
            return found
        limit = len(remaining) + _LOOKUP_SLACK
        page = uow.records.scan(tenant, collection, after=after, limit=limit)
        for record in page:
            if record.id in wanted:
                found[record.id] = record
        if len(page) < limit:
            return found
        after = page[-1].id
        remaining = [record_id for record_id in remaining if record_id > after]
    for record_id in remaining:
        alone = uow.records.get(tenant, collection, record_id)
        if alone is not None:
            found[record_id] = alone
    return found


def _write_records(
    uow: DomainUnitOfWork, tenant: str, records: Sequence[_Record], dry_run: bool
) -> list[str]:
    """The outcome of each record (each id at most once): looked up per collection, the new
    and changed ones written in one ``put_many``."""
    ids: dict[Collection, list[str]] = {}
    for item in records:
        ids.setdefault(item.collection, []).append(item.id)
    stored = {
        collection: _current_records(uow, tenant, collection, sorted(wanted))
        for collection, wanted in ids.items()
    }
    outcomes: list[str] = []
    writes: list[DomainRecord] = []
    for item in records:
        current = stored[item.collection].get(item.id)
        if current is not None and _same(current.data, item.data):
            outcomes.append("unchanged")
            continue
        outcomes.append("created" if current is None else "updated")
        writes.append(DomainRecord(tenant, item.collection, item.id, item.data))
    if writes and not dry_run:
        uow.records.put_many(writes)
    return outcomes


def _write_all(
    uow: DomainUnitOfWork, tenant: str, batch: list[tuple[int, _Item]], dry_run: bool
) -> list[str]:
    """Every item of the batch in ``uow``; their outcomes in batch order."""
    outcomes: list[str | None] = [None] * len(batch)
    records = [(index, item) for index, (_, item) in enumerate(batch) if isinstance(item, _Record)]
    if len(records) > 1:
        written = _write_records(uow, tenant, [item for _, item in records], dry_run)
        for (index, _), known in zip(records, written, strict=True):
            outcomes[index] = known
    done: list[str] = []
    for (_, item), outcome in zip(batch, outcomes, strict=True):
        done.append(outcome if outcome is not None else _write(uow, tenant, item, dry_run))
    return done


def _write_batch(
    backend: DomainDataBackend,
    tenant: str,
    batch: list[tuple[int, _Item]],
    report: ImportReport,
    dry_run: bool,
) -> None:
    """One unit of work for the batch; if any item fails, the batch is rolled back and written
    again one item per unit so the failing lines are named and the rest is written."""
    outcomes: list[str] = []
    try:
        with (uow := backend.unit_of_work()):
            outcomes = _write_all(uow, tenant, batch, dry_run)
            if not dry_run:
                uow.commit()
    except (_Bad, BotmoxError):
        if len(batch) == 1:
            number, item = batch[0]
            try:
                with (uow := backend.unit_of_work()):
                    outcome = _write(uow, tenant, item, dry_run)
                    if not dry_run:
                        uow.commit()
            except _Bad as exc:
                report.add_error(number, str(exc))
                return
            except BotmoxError as exc:
                report.add_error(number, f"the backend refused it: {exc.code}: {exc.message}")
                return
            report.count(_label(item), outcome)
            return
        for single in batch:
            _write_batch(backend, tenant, [single], report, dry_run)
        return
    for (_, item), outcome in zip(batch, outcomes, strict=True):
        report.count(_label(item), outcome)
