"""``botmox migrate``: copy every stream (:mod:`botmox_core.migration.streams`) of some or all
tenants from one data backend to another, through the repository ports.

How a stream is copied: the source and the target are read side by side in the stream's order,
page by page (bounded memory), and merged by key. A key only at the source is created at the
target; a key on both sides whose canonical forms differ
(:mod:`botmox_core.migration.canonical`) is replaced; an equal one is left alone (so a run over
unchanged data writes nothing); a key only at the target is deleted with ``prune``. Records are
written as they are (``created_at``, ``updated_at``, ids: everything the port returns), in
batches of one unit of work each; a stream that writes in bulk (records:
:meth:`~botmox_core.ports.domains.RecordRepository.put_many`) writes a batch's creates and
updates in one call, deletes go one by one. Before a write each record is checked with the
services' rules; one the target cannot hold is reported with its tenant, stream, id and reason,
never silently dropped, and the rest is copied (the run then ends non-zero). A batch the target
refuses is written again one record per unit, so the refused records are named.

Each side is read one page ahead in a thread of its own (:func:`read_stream`), and a batch is
written (then its checkpoint stored) in a writer thread while the next one is read and compared,
one batch at a time in order: the reads, the comparison and the writes overlap. A stream's
writes are done before the next stream starts.

Resumable: after each committed batch the key reached is stored in the *target*'s control
entries (``migration_checkpoint``, in one unit with the lock's renewal; through a stretch that
writes nothing, every :data:`SAVE_SECONDS`); a run with the same source and options goes on
after it.
One migration at a time writes into a target (``migration_lock``); see
:mod:`botmox_core.migration.control`.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, closing
from typing import Any

import attrs

from botmox_core.errors import BotmoxError, ConfigurationError
from botmox_core.migration.catalog import STREAMS
from botmox_core.migration.control import (
    MigrationLock,
    clear_checkpoint,
    control_backend,
    read_checkpoint,
)
from botmox_core.migration.reports import (
    BATCH_SIZE,
    MAX_LISTED_PROBLEMS,
    PAGE_SIZE,
    MigrationOptions,
    MigrationReport,
    Problem,
    Progress,
    StreamReport,
    _Silent,
)
from botmox_core.migration.streams import (
    BulkWrites,
    Item,
    Key,
    NotPrunable,
    Stream,
    Unrepresentable,
)
from botmox_core.ports import DataBackend
from botmox_core.ports.control import supports_control
from botmox_core.ports.domains import after_bulk_write

__all__ = [
    "BATCH_SIZE",
    "MAX_LISTED_PROBLEMS",
    "PAGE_SIZE",
    "MigrationOptions",
    "MigrationReport",
    "Problem",
    "Progress",
    "StreamReport",
    "list_tenants",
    "migrate",
    "read_stream",
]

#: How often the checkpoint (and the lock) is saved while nothing is written.
SAVE_SECONDS = 2.0


def read_stream(
    backend: DataBackend,
    stream: Stream,
    tenant: str,
    after: Key | None,
    page_size: int,
    *,
    ahead: bool = True,
) -> Generator[Item, None, None]:
    """Every item of the stream after ``after``, one unit of work per page. With ``ahead`` the
    next page is read in a thread of its own while the caller works through the current one
    (each page still in a unit of its own; closing the iterator waits for that read)."""

    def page_after(cursor: Key | None) -> list[Item]:
        with backend.unit_of_work() as uow:
            return list(stream.read(uow, tenant, cursor, page_size))

    if not ahead:
        for _ in range(10**9):
            page = page_after(after)
            yield from page
            if len(page) < page_size:
                return
            after = page[-1].key
        return
    with ThreadPoolExecutor(1, thread_name_prefix=f"read-{stream.name}") as reader:
        pending = reader.submit(page_after, after)
        for _ in range(10**9):
            page = pending.result()
            if len(page) < page_size:
                yield from page
                return
            pending = reader.submit(page_after, page[-1].key)
            yield from page


def list_tenants(backend: DataBackend, role: str) -> list[str]:
    """Every tenant holding data in ``backend`` (its control port's list)."""
    if not supports_control(backend):
        raise ConfigurationError(
            f"the {role} backend {backend.name!r} cannot list its tenants; name them with --tenant"
        )
    found: list[str] = []
    after: str | None = None
    for _ in range(10**6):
        with backend.unit_of_work() as uow:
            page = list(uow.control.tenants(after=after, limit=1000))
        found += page
        if len(page) < 1000:
            break
        after = page[-1]
    return found


@attrs.frozen
class _Action:
    kind: str  # create | update | delete
    source: Item | None
    target: Item | None

    @property
    def item(self) -> Item:
        found = self.source or self.target
        assert found is not None
        return found


def _merge(
    source: Iterator[Item], target: Iterator[Item]
) -> Iterator[tuple[Item | None, Item | None]]:
    left, right = next(source, None), next(target, None)
    while left is not None or right is not None:
        if right is None or (left is not None and left.key < right.key):
            yield left, None
            left = next(source, None)
        elif left is None or right.key < left.key:
            yield None, right
            right = next(target, None)
        else:
            yield left, right
            left, right = next(source, None), next(target, None)


class _Run:
    def __init__(
        self,
        source: DataBackend,
        target: DataBackend,
        options: MigrationOptions,
        report: MigrationReport,
        progress: Progress,
        lock: MigrationLock | None,
        state: dict[str, Any],
    ) -> None:
        self.source = source
        self.target = target
        self.options = options
        self.report = report
        self.progress = progress
        self.lock = lock
        self.state = state
        self._wrote = False
        self._saved_at = time.monotonic()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="migrate-write")
        self._pending: Future[None] | None = None

    def close(self) -> None:
        """Wait for the batch being written and stop the writer thread."""
        self._writer.shutdown(wait=True)

    def _commit(
        self,
        tenant: str,
        stream: Stream,
        batch: list[_Action],
        result: StreamReport,
        entry_key: str,
        position: dict[str, Any],
    ) -> None:
        """In the writer thread: write ``batch``, then store the position it reaches. Only
        the writer changes the checkpoint state and the write counts while a stream runs."""
        self._flush(tenant, stream, batch, result)
        self.state["streams"][entry_key] = position
        self._save()

    def _submit(
        self,
        tenant: str,
        stream: Stream,
        batch: list[_Action],
        result: StreamReport,
        entry_key: str,
        position: dict[str, Any],
    ) -> None:
        """Hand the batch to the writer once the one before it is written (its error, the
        lock's loss among them, is raised here)."""
        self._drain()
        self._pending = self._writer.submit(
            self._commit, tenant, stream, batch, result, entry_key, position
        )

    def _drain(self) -> None:
        """Wait until every handed batch is written."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _save(self) -> None:
        """Store the checkpoint with the lock's renewal: after a batch that wrote, otherwise
        every :data:`SAVE_SECONDS` (a resumed run reads again what an unsaved stretch left
        unchanged, and finds it unchanged)."""
        if self.lock is None:
            return
        if not self._wrote and time.monotonic() - self._saved_at < SAVE_SECONDS:
            return
        self.lock.renew(checkpoint=self.state)
        self._wrote = False
        self._saved_at = time.monotonic()

    def copy(self, tenant: str, stream: Stream) -> None:
        entry_key = f"{tenant}\x00{stream.name}"
        saved = self.state["streams"].get(entry_key, {})
        if saved.get("done"):
            return
        after = tuple(saved["after"]) if saved.get("after") is not None else None
        result = StreamReport(
            tenant, stream.name, resumed_after=None if after is None else list(after)
        )
        self.report.streams.append(result)
        label = f"{tenant} {stream.name}"
        self.progress.start(label, None)
        if not stream.available(self.source):
            self.state["streams"][entry_key] = {"after": None, "done": True}
            return
        # Each reading generator is closed here, on this thread, whatever happens (its
        # read-ahead thread joined): one left to the garbage collector can be finalized
        # while another thread starts, joining its reader under threading's shutdown-locks
        # lock, which that start holds: a deadlock (seen in CI on Python 3.11).
        with ExitStack() as opened:
            sources = opened.enter_context(
                closing(read_stream(self.source, stream, tenant, after, self.options.page_size))
            )
            if not stream.available(self.target):
                for unstorable in sources:
                    result.source += 1
                    result.failed += 1
                    self.report.problem(
                        tenant,
                        stream.name,
                        unstorable.label,
                        f"the target backend {self.target.name!r} does not store {stream.name}",
                    )
                self.state["streams"][entry_key] = {"after": None, "done": True}
                return
            targets = opened.enter_context(
                closing(read_stream(self.target, stream, tenant, after, self.options.page_size))
            )
            batch: list[_Action] = []
            reached: Key | None = after
            since = self.options.since
            pending_reads = 0
            advanced = 0
            for left, right in _merge(sources, targets):
                current = left or right
                assert current is not None
                if left is not None:
                    result.source += 1
                    advanced += 1
                if right is not None:
                    result.target += 1
                if left is not None and right is None:
                    batch.append(_Action("create", left, None))
                elif left is None and right is not None:
                    if self.options.prune:
                        batch.append(_Action("delete", None, right))
                elif left is not None and right is not None:
                    old = since is not None and left.stamp is not None and left.stamp < since
                    if old or left.hash == right.hash:
                        result.unchanged += 1
                    else:
                        batch.append(_Action("update", left, right))
                reached = current.key
                pending_reads += 1
                if len(batch) >= self.options.batch_size or pending_reads >= self.options.page_size:
                    position = {"after": list(reached), "done": False}
                    self._submit(tenant, stream, batch, result, entry_key, position)
                    batch = []
                    pending_reads = 0
                    self.progress.advance(label, advanced)
                    advanced = 0
            self._submit(tenant, stream, batch, result, entry_key, {"after": None, "done": True})
            self._drain()
            if advanced:
                self.progress.advance(label, advanced)

    def _flush(
        self, tenant: str, stream: Stream, batch: list[_Action], result: StreamReport
    ) -> None:
        writable: list[_Action] = []
        for action in batch:
            if action.kind == "delete":
                writable.append(action)
                continue
            assert action.source is not None
            try:
                stream.check(action.source)
            except Unrepresentable as exc:
                result.failed += 1
                self.report.problem(tenant, stream.name, action.source.label, str(exc))
                continue
            writable.append(action)
        if not writable:
            return
        if self.options.dry_run:
            for action in writable:
                self._count(action, result)
            return
        self._wrote = True
        try:
            with self.target.unit_of_work() as uow:
                self._apply_all(uow, tenant, stream, writable)
                uow.commit()
        except (BotmoxError, Unrepresentable, NotPrunable):
            if len(writable) > 1:
                for action in writable:
                    self._single(tenant, stream, action, result)
                return
            self._single(tenant, stream, writable[0], result)
            return
        for action in writable:
            self._count(action, result)

    def _single(self, tenant: str, stream: Stream, action: _Action, result: StreamReport) -> None:
        try:
            with self.target.unit_of_work() as uow:
                self._apply(uow, tenant, stream, action)
                uow.commit()
        except NotPrunable as exc:
            result.not_pruned += 1
            self.report.problem(
                tenant, stream.name, action.item.label, f"extra at the target, not pruned: {exc}"
            )
            return
        except Unrepresentable as exc:
            result.failed += 1
            self.report.problem(tenant, stream.name, action.item.label, str(exc))
            return
        except BotmoxError as exc:
            result.failed += 1
            self.report.problem(
                tenant,
                stream.name,
                action.item.label,
                f"the target refused it: {exc.code}: {exc.message}",
            )
            return
        self._count(action, result)

    @classmethod
    def _apply_all(cls, uow: Any, tenant: str, stream: Stream, actions: list[_Action]) -> None:
        """A batch in one unit: the creates and updates in one call when the stream writes in
        bulk, otherwise one by one; deletes one by one."""
        if not isinstance(stream, BulkWrites):
            for action in actions:
                cls._apply(uow, tenant, stream, action)
            return
        writes = [action.source for action in actions if action.source is not None]
        if writes:
            stream.write_many(uow, tenant, writes)
        for action in actions:
            if action.kind == "delete":
                cls._apply(uow, tenant, stream, action)

    @staticmethod
    def _apply(uow: Any, tenant: str, stream: Stream, action: _Action) -> None:
        if action.kind == "delete":
            assert action.target is not None
            stream.delete(uow, tenant, action.target)
        else:
            assert action.source is not None
            stream.write(uow, tenant, action.source, action.target)

    @staticmethod
    def _count(action: _Action, result: StreamReport) -> None:
        if action.kind == "create":
            result.created += 1
        elif action.kind == "update":
            result.updated += 1
        else:
            result.deleted += 1


def _selected(options: MigrationOptions) -> list[Stream]:
    if options.streams is None:
        return list(STREAMS)
    wanted = set(options.streams)
    unknown = wanted - {s.name for s in STREAMS}
    if unknown:
        known = ", ".join(s.name for s in STREAMS)
        raise BotmoxError(
            f"unknown stream {sorted(unknown)[0]!r} (known: {known})", code="BAD_REQUEST"
        )
    return [s for s in STREAMS if s.name in wanted]


def _tenants(source: DataBackend, target: DataBackend, options: MigrationOptions) -> list[str]:
    if options.tenants is not None:
        return sorted(set(options.tenants))
    found = set(list_tenants(source, "source"))
    if options.prune:
        found |= set(list_tenants(target, "target"))
    return sorted(found)


def migrate(
    source: DataBackend,
    target: DataBackend,
    options: MigrationOptions,
    *,
    source_id: str,
    target_id: str = "",
    progress: Progress | None = None,
) -> MigrationReport:
    """Copy the selected streams of the selected tenants from ``source`` to ``target``.

    ``source_id`` identifies the source (a fingerprint of its configuration): a checkpoint is
    resumed only by a run from the same source with the same options. Raises
    :class:`~botmox_core.migration.control.MigrationLockedError` when another migration holds
    the target's lock.
    """
    started = time.perf_counter()
    report = MigrationReport(source_id, target_id, options.dry_run, options.prune, options.since)
    streams = _selected(options)
    tenants = _tenants(source, target, options)
    report.tenants = tenants
    fingerprint = {
        "source": source_id,
        "tenants": tenants if options.tenants is not None else None,
        "streams": [s.name for s in streams],
        "prune": options.prune,
        "since": options.since,
    }
    shown = progress or _Silent()
    if options.dry_run:
        run = _Run(source, target, options, report, shown, None, {"streams": {}})
        try:
            for tenant in tenants:
                for stream in streams:
                    run.copy(tenant, stream)
        finally:
            run.close()
        report.seconds = time.perf_counter() - started
        return report
    controlled = control_backend(target, "target")
    with MigrationLock(controlled, source_id, options.wait_seconds) as lock:
        state = read_checkpoint(controlled) if options.resume else None
        if state is not None and state.get("run") == fingerprint:
            report.resumed = True
        else:
            state = {"run": fingerprint, "streams": {}}
        run = _Run(source, target, options, report, shown, lock, state)
        try:
            for tenant in tenants:
                for stream in streams:
                    run.copy(tenant, stream)
        finally:
            run.close()
        clear_checkpoint(controlled)
        if report.writes:
            after_bulk_write(target)  # statistics and search indexes caught up before lists
    report.seconds = time.perf_counter() - started
    return report
