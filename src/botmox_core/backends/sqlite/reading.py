"""Read-only units of work and the group-committed audit append of the SQLite backend.

* **Read units** (:meth:`SqliteBackend.read_unit_of_work`) run on reader connections of their
  own (a small pool, ``PRAGMA query_only``), in a deferred transaction: under WAL they take no
  lock that a writer waits for and wait for no writer, and they do not queue behind the
  backend's one writing connection. A read unit sees every unit committed before its first
  read. Writing through one raises :class:`~botmox_core.errors.DatabaseError`.
* **Audit appends** (:meth:`SqliteBackend.append_audit`) are group-committed: the first caller
  becomes the leader and writes every entry queued meanwhile in one ``BEGIN IMMEDIATE`` ...
  ``COMMIT`` (one fsync under ``synchronous=FULL``); every caller returns only after the commit
  that holds its entry, so each entry is as durable as a unit of work of its own. When a batch
  fails, its entries are written one by one, so one bad entry fails only its own caller.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from botmox_core.backends.sqlite.errors import translate_sqlite_errors
from botmox_core.errors import ServiceUnavailableError

if TYPE_CHECKING:
    from botmox_core.models import DownloadAuditEntry

__all__ = ["AuditGroupCommit", "ReaderPool"]

#: Reader connections kept open per backend (more are opened while more threads read at once;
#: a server's worker threads are 40 by default).
READERS_KEPT = 64


class _Backend(Protocol):
    """What these helpers use of :class:`~botmox_core.backends.sqlite.backend.SqliteBackend`
    (a protocol, so this module does not import the backend that imports it)."""

    _label: str
    busy_timeout: float

    @property
    def path(self) -> Any: ...

    def unit_of_work(self) -> Any: ...


class ReaderPool:
    """Reader connections of one SQLite file, opened on demand and kept up to a limit."""

    def __init__(self, backend: _Backend) -> None:
        self._backend = backend
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def checkout(self) -> sqlite3.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        backend = self._backend
        with translate_sqlite_errors(backend._label):
            # mode=ro would refuse a WAL file whose -shm another process still has to create;
            # query_only refuses writes just as well.
            connection = sqlite3.connect(
                backend.path,
                timeout=backend.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                connection.row_factory = sqlite3.Row
                connection.execute(f"PRAGMA busy_timeout = {int(backend.busy_timeout * 1000)}")
                connection.execute("PRAGMA query_only = ON")
                connection.execute("PRAGMA mmap_size = 1073741824")
            except BaseException:
                connection.close()
                raise
        return connection

    def checkin(self, connection: sqlite3.Connection, *, broken: bool) -> None:
        with self._lock:
            if not broken and len(self._idle) < READERS_KEPT:
                self._idle.append(connection)
                return
        with contextlib.suppress(sqlite3.Error):
            connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(sqlite3.Error):
                connection.close()

    def forget_after_fork(self) -> None:
        """Drop (without closing) connections inherited across ``fork()``."""
        self._lock = threading.Lock()
        self._idle = []


@attrs.define
class _Slot:
    entry: DownloadAuditEntry
    ready: threading.Event = attrs.Factory(threading.Event)
    lead: bool = False  # set when this slot's caller is handed the next batch to write
    stored: DownloadAuditEntry | None = None
    error: BaseException | None = None


class AuditGroupCommit:
    """Appends audit entries with one commit for every entry that arrived while the previous
    commit ran. No thread of its own: the caller that finds no commit running writes the batch
    (the leader), the others wait for their entry's commit; when the leader is done it hands the
    next batch to the first caller waiting for one. Each waiting caller is woken once."""

    def __init__(self, backend: _Backend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._pending: list[_Slot] = []
        self._writing = False
        #: Entries per commit of the last batches (figures for tests and the bench).
        self.last_batch_sizes: list[int] = []

    def append(self, entry: DownloadAuditEntry) -> DownloadAuditEntry:
        slot = _Slot(entry)
        with self._lock:
            self._pending.append(slot)
            lead = not self._writing
            self._writing = True
        if not lead:
            slot.ready.wait()
            if not slot.lead:
                return _outcome(slot)
        with self._lock:
            batch, self._pending = self._pending, []
        try:
            self._write(batch)
        finally:
            with self._lock:
                if self._pending:
                    successor = self._pending[0]
                    successor.lead = True
                    successor.ready.set()
                else:
                    self._writing = False
            for each in batch:
                if each is not slot:
                    each.ready.set()
        return _outcome(slot)

    def _write(self, batch: list[_Slot]) -> None:
        self.last_batch_sizes = [*self.last_batch_sizes[-63:], len(batch)]
        try:
            self._commit(batch)
            return
        except BaseException as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
        for slot in batch:  # the batch failed: each entry alone, so only bad ones fail
            try:
                self._commit([slot])
            except BaseException as exc:
                slot.error = exc

    def _commit(self, batch: list[_Slot]) -> None:
        with self._backend.unit_of_work() as uow:
            stored = [uow.audit.append(slot.entry) for slot in batch]
            uow.commit()
        for slot, entry in zip(batch, stored, strict=True):
            slot.stored = entry


def _outcome(slot: _Slot) -> DownloadAuditEntry:
    if slot.error is not None:
        raise slot.error
    if slot.stored is None:  # pragma: no cover - a leader always settles its batch
        raise ServiceUnavailableError("the audit entry was not written")
    return slot.stored
