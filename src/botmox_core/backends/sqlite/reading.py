"""Read-only units of work and the group-committed audit append of the SQLite backend.

* **Read units** (:meth:`SqliteBackend.read_unit_of_work`) run on reader connections of their
  own (a small pool, ``PRAGMA query_only``), in a deferred transaction: under WAL they take no
  lock that a writer waits for and wait for no writer, and they do not queue behind the
  backend's one writing connection. A read unit sees every unit committed before its first
  read. Writing through one raises :class:`~botmox_core.errors.DatabaseError`.
* **Audit appends** (:meth:`SqliteBackend.append_audit`, :meth:`SqliteBackend.submit_audit`)
  are group-committed by a writer thread: every entry queued while a commit runs goes into the
  next ``BEGIN IMMEDIATE`` ... ``COMMIT`` (one fsync under ``synchronous=FULL``); a caller hears
  of its entry only after the commit that holds it, so each entry is as durable as a unit of
  work of its own. When a batch fails, its entries are written one by one, so one bad entry
  fails only its own caller.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from botmox_core.backends.sqlite.errors import translate_sqlite_errors
from botmox_core.errors import ServiceUnavailableError
from botmox_core.ports.repositories import AuditDone

if TYPE_CHECKING:
    from botmox_core.models import DownloadAuditEntry

__all__ = ["AuditGroupCommit", "ReaderPool"]

log = logging.getLogger(__name__)

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
class _Waiter:
    """Turns :meth:`AuditGroupCommit.submit` back into a blocking call."""

    ready: threading.Event = attrs.Factory(threading.Event)
    stored: DownloadAuditEntry | None = None
    error: BaseException | None = None

    def __call__(self, stored: DownloadAuditEntry | None, error: BaseException | None) -> None:
        self.stored, self.error = stored, error
        self.ready.set()


class AuditGroupCommit:
    """Appends audit entries durably, one commit for every entry that arrived while the previous
    commit ran, on a writer thread of its own (started on first use, stopped by :meth:`close`).

    :meth:`submit` queues an entry and returns at once; the writer takes everything queued,
    writes it in one ``BEGIN IMMEDIATE`` ... ``COMMIT`` (one fsync under ``synchronous=FULL``)
    and then tells each caller, so an entry is reported stored only once it is as durable as a
    unit of work of its own. When a batch fails, its entries are written one by one, so one bad
    entry fails only its own caller. :meth:`append` is the blocking form. A server awaits the
    callback from its event loop, so a resolve holds no worker thread while its entry commits.
    """

    def __init__(self, backend: _Backend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: list[tuple[DownloadAuditEntry, AuditDone]] = []
        self._writer: threading.Thread | None = None
        self._closing = False
        self._idle = False  # the writer waits for entries (set and read under the lock)
        #: True while the writer writes a batch (for tests).
        self.busy = False
        #: Entries per commit of the last batches (figures for tests and the bench).
        self.last_batch_sizes: list[int] = []

    def submit(self, entry: DownloadAuditEntry, done: AuditDone) -> None:
        """Queue ``entry``; ``done(stored, None)`` is called on the writer thread after the
        commit that holds it, ``done(None, error)`` when it cannot be written. ``done`` must be
        quick and must not raise (it runs between commits). Raises
        :class:`ServiceUnavailableError` (and calls nothing) once :meth:`close` has begun."""
        with self._lock:
            if self._closing:
                raise ServiceUnavailableError("the SQLite backend is closing")
            self._pending.append((entry, done))
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._run, name="botmox-sqlite-audit", daemon=True
                )
                self._writer.start()
            elif self._idle:  # the writer sleeps: wake it (a busy one takes the queue next)
                self._idle = False
                self._wake.notify()

    def append(self, entry: DownloadAuditEntry) -> DownloadAuditEntry:
        """Append ``entry`` and return it with its id once its commit is over; raise what kept
        it from being written."""
        waiter = _Waiter()
        self.submit(entry, waiter)
        waiter.ready.wait()
        if waiter.error is not None:
            raise waiter.error
        if waiter.stored is None:  # pragma: no cover - the writer settles every entry
            raise ServiceUnavailableError("the audit entry was not written")
        return waiter.stored

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued, then stop the writer (new entries are refused from now)."""
        with self._lock:
            self._closing = True
            writer = self._writer
            self._wake.notify()
        if writer is not None and writer is not threading.current_thread():
            writer.join(timeout)

    def forget_after_fork(self) -> None:
        """Start afresh in a forked child (the parent's writer thread does not exist here)."""
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending = []
        self._writer = None
        self._closing = False
        self._idle = False
        self.busy = False

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closing:
                    self._idle = True
                    self._wake.wait()
                self._idle = False
                if not self._pending:  # closing and nothing left
                    self._writer = None
                    return
                batch, self._pending = self._pending, []
                self.busy = True
            try:
                self._write(batch)
            finally:
                self.busy = False

    def _write(self, batch: list[tuple[DownloadAuditEntry, AuditDone]]) -> None:
        self.last_batch_sizes = [*self.last_batch_sizes[-63:], len(batch)]
        try:
            stored = self._commit([entry for entry, _ in batch])
        except BaseException as exc:
            if len(batch) == 1:
                _tell(batch[0][1], None, exc)
                return
        else:
            for (_, done), entry in zip(batch, stored, strict=True):
                _tell(done, entry, None)
            return
        for entry, done in batch:  # the batch failed: each entry alone, so only bad ones fail
            try:
                (alone,) = self._commit([entry])
            except BaseException as exc:
                _tell(done, None, exc)
            else:
                _tell(done, alone, None)

    def _commit(self, entries: list[DownloadAuditEntry]) -> list[DownloadAuditEntry]:
        with self._backend.unit_of_work() as uow:
            stored: list[DownloadAuditEntry] = uow.audit.append_many(entries)
            uow.commit()
        return stored


def _tell(done: AuditDone, stored: DownloadAuditEntry | None, error: BaseException | None) -> None:
    try:
        done(stored, error)
    except Exception:  # a caller's callback must not stop the writer
        log.exception("an audit completion callback failed")
