"""The SQLite data backend and its unit of work.

Concurrency model:

* One backend instance holds one connection, used by one unit of work at a time: a unit takes
  the instance's lock on entry and returns it on exit, so threads of a server's pool queue
  in-process instead of spinning on SQLite's busy handler.
* Every unit runs in a ``BEGIN IMMEDIATE`` transaction, which takes SQLite's write lock at the
  start: reads and writes of one unit, ``LeaseRepository.modify`` and the uniqueness checks are
  serialised against every other connection, including other processes (``botmox`` admin
  commands writing while the server runs). Another process waits up to the busy timeout.
* Files use WAL journaling, so the write lock never blocks readers of other processes, and
  ``synchronous=FULL`` by default, so a committed unit survives a power cut.
* ``":memory:"`` gives a private in-memory database shared by every thread using the instance.
* Read-only units (:meth:`SqliteBackend.read_unit_of_work`) run on reader connections of their
  own in a deferred transaction: they neither take nor wait for the write lock, nor the
  instance's lock (see :mod:`botmox_core.backends.sqlite.reading`). Download audit entries are
  appended with a group commit (:meth:`SqliteBackend.append_audit`): one commit, one fsync, for
  every entry that arrived meanwhile, each caller answered only once its entry is committed.

The units of work are :mod:`botmox_core.backends.sqlite.unit` (re-exported here).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

from botmox_core.backends.sqlite.errors import translate_sqlite_errors
from botmox_core.backends.sqlite.grants import GRANT_SQL, grant_from_row, grant_params
from botmox_core.backends.sqlite.reading import AuditGroupCommit, ReaderPool
from botmox_core.backends.sqlite.schema import (
    SCHEMA_VERSION,
    check_ownership,
    migrate,
    schema_version,
)
from botmox_core.backends.sqlite.unit import SqliteReadUnitOfWork, SqliteUnitOfWork
from botmox_core.backends.sqlite.writer_queue import WriterQueue
from botmox_core.errors import (
    BotmoxError,
    ConfigurationError,
    DatabaseError,
    ServiceUnavailableError,
)
from botmox_core.models import DownloadAuditEntry, ReleaseScope
from botmox_core.ports.health import HealthReport
from botmox_core.ports.repositories import (
    AuditDone,
    BackendCapabilities,
    DownloadGrant,
    read_download_grant_in,
)

__all__ = ["MEMORY", "SqliteBackend", "SqliteReadUnitOfWork", "SqliteUnitOfWork"]

log = logging.getLogger(__name__)

#: The path that selects a private in-memory database.
MEMORY = ":memory:"

_SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
#: Page cache per connection, and how much of a database file is memory-mapped for reading.
_CACHE_KIB = 65_536
_MMAP_BYTES = 1 << 30


class SqliteBackend:
    """The embedded ``sqlite`` data backend.

    Opening creates the file if needed, switches it to WAL and brings the schema up to date;
    a path that cannot be opened raises :class:`ServiceUnavailableError`, a file that is not a
    botmox database (corrupted, foreign or from a newer botmox) :class:`DatabaseError`.

    Args:
        path: database file, or ``":memory:"`` for a private in-memory database.
        busy_timeout: seconds a unit waits for the write lock before :class:`DatabaseError`.
        synchronous: SQLite ``synchronous`` mode for files (``FULL`` by default).
    """

    name = "sqlite"
    #: One SQLite transaction per unit, agents, domain data and the vault included; timestamps
    #: are stored as ISO text with microseconds; CHECK constraints refuse invalid release values.
    capabilities = BackendCapabilities(
        agents=True,
        domains=True,
        vault=True,
        control=True,
        rollback=True,
        multi_record_transactions=True,
        microsecond_timestamps=True,
        validates_release_values=True,
        local_reads=True,
    )

    def __init__(
        self,
        path: str | os.PathLike[str] = MEMORY,
        *,
        busy_timeout: float = 15.0,
        synchronous: str = "FULL",
    ) -> None:
        if busy_timeout < 0:
            raise ConfigurationError("the SQLite busy timeout must not be negative")
        if synchronous.upper() not in _SYNCHRONOUS_MODES:
            raise ConfigurationError(
                f"SQLite synchronous must be one of {', '.join(_SYNCHRONOUS_MODES)}, "
                f"got {synchronous!r}"
            )
        self.path = MEMORY if os.fspath(path) == MEMORY else os.fspath(Path(path).absolute())
        self.in_memory = self.path == MEMORY
        self.busy_timeout = float(busy_timeout)
        self._synchronous = synchronous.upper()
        self._label = "in-memory database" if self.in_memory else f"database {self.path}"
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._closed = False
        self._pid = os.getpid()
        self._inherited: list[sqlite3.Connection] = []
        self._connection: sqlite3.Connection | None = self._open()
        self._readers = ReaderPool(self)
        self._writers = WriterQueue(None if self.in_memory else self.path)
        self._audit_commits = AuditGroupCommit(self)

    def __repr__(self) -> str:
        return f"SqliteBackend(path={self.path!r})"

    def unit_of_work(self) -> SqliteUnitOfWork:
        """A new unit of work; enter it with ``with``. Leaving without ``commit()`` rolls back.

        Units of one backend must not be nested in one thread (the outer unit holds the
        connection); doing so raises :class:`BotmoxError` instead of deadlocking.
        """
        return SqliteUnitOfWork(self)

    def read_unit_of_work(self) -> SqliteUnitOfWork:
        """A unit that only reads (:class:`~botmox_core.ports.repositories.ReadingBackend`): on a
        reader connection of its own for a file; an ordinary unit (rolled back) for
        ``":memory:"``, whose database no other connection can open."""
        if self.in_memory:
            return SqliteUnitOfWork(self)
        return SqliteReadUnitOfWork(self)

    def read_download_grant(
        self, tenant_id: str, lease_id: str, scope: ReleaseScope
    ) -> DownloadGrant:
        """The lease, its effective assignment and release in one ``SELECT`` on a reader
        connection (:class:`~botmox_core.ports.repositories.DownloadGrantBackend`, see
        :mod:`~botmox_core.backends.sqlite.grants`); in a read unit for ``":memory:"``."""
        if self.in_memory:
            with self.read_unit_of_work() as uow:
                return read_download_grant_in(uow, tenant_id, lease_id, scope)
        if os.getpid() != self._pid:
            self._after_fork()
        if self._closed:
            raise ServiceUnavailableError("the SQLite backend is closed")
        connection = self._readers.checkout()
        broken = True
        try:
            with translate_sqlite_errors(self._label):
                row = connection.execute(
                    GRANT_SQL, grant_params(tenant_id, lease_id, scope)
                ).fetchone()
            broken = False
        finally:
            self._readers.checkin(connection, broken=broken)
        return grant_from_row(row)

    def append_audit(self, entry: DownloadAuditEntry) -> DownloadAuditEntry:
        """Append ``entry`` in a commit of its own or shared with the entries that arrived
        meanwhile (:class:`~botmox_core.ports.repositories.DurableAuditBackend`); durable when
        this returns."""
        return self._audit_commits.append(entry)

    def submit_audit(self, entry: DownloadAuditEntry, done: AuditDone) -> None:
        """Queue ``entry`` for the next group commit and return at once
        (:class:`~botmox_core.ports.repositories.QueuedAuditBackend`): ``done(stored, None)``
        runs on the writer thread once the commit holding it is durable, ``done(None, error)``
        when it cannot be written."""
        if os.getpid() != self._pid:
            self._after_fork()
        if self._closed:
            raise ServiceUnavailableError("the SQLite backend is closed")
        self._audit_commits.submit(entry, done)

    def check_health(self) -> HealthReport:
        """Run ``SELECT 1`` (on a fresh connection for files) and report the latency.
        Never raises."""
        started = time.perf_counter()
        try:
            if self._closed:
                raise ServiceUnavailableError("the SQLite backend is closed")
            if self.in_memory:
                connection = self._checkout(timeout=min(self.busy_timeout, 1.0))
                try:
                    with translate_sqlite_errors(self._label):
                        connection.execute("SELECT 1").fetchone()
                        version = schema_version(connection)
                finally:
                    self._checkin(connection, broken=False)
            else:
                with translate_sqlite_errors(self._label):
                    probe = sqlite3.connect(  # mode=rw: a deleted file is reported, not recreated
                        f"{Path(self.path).as_uri()}?mode=rw",
                        uri=True,
                        timeout=min(self.busy_timeout, 1.0),
                        isolation_level=None,
                    )
                    try:
                        probe.execute("SELECT 1").fetchone()
                        version = schema_version(probe)
                    finally:
                        probe.close()
            if version != SCHEMA_VERSION:
                raise DatabaseError(f"schema version {version}, expected {SCHEMA_VERSION}")
        except BotmoxError as exc:
            return HealthReport(
                name=self.name,
                ok=False,
                detail=exc.message,
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        return HealthReport(
            name=self.name,
            ok=True,
            detail=f"SELECT 1 answered (schema version {version})",
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def close(self) -> None:
        """Close the connection. Idempotent; a unit still running in another thread gets up
        to the busy timeout to finish first."""
        if self._closed:
            return
        self._audit_commits.close(timeout=self.busy_timeout)  # queued entries are written first
        acquired = self._lock.acquire(timeout=self.busy_timeout)
        try:
            if self._closed:
                return
            self._closed = True
            self._readers.close()
            self._writers.close()
            connection, self._connection = self._connection, None
            if connection is not None:
                try:
                    connection.close()
                except sqlite3.Error as exc:  # closing must not fail; the file is consistent
                    log.warning("closing the SQLite %s failed: %s", self._label, exc)
        finally:
            if acquired:
                self._lock.release()

    # -- connection handling, used by SqliteUnitOfWork -------------------------------------

    def _open(self) -> sqlite3.Connection:
        with translate_sqlite_errors(self._label):
            connection = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                connection.row_factory = sqlite3.Row
                connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
                check_ownership(connection, self._label)  # before anything writes the file
                if not self.in_memory:
                    self._switch_to_wal(connection)
                    connection.execute(f"PRAGMA synchronous = {self._synchronous}")
                    # Reads (domain listing scans an index) without a system call per page.
                    connection.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
                connection.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
                migrate(connection, self._label)
            except BaseException:
                connection.close()
                raise
        return connection

    def _switch_to_wal(self, connection: sqlite3.Connection) -> None:
        # Switching a fresh file to WAL needs an exclusive lock, and SQLite answers "locked"
        # at once (without its busy handler) while another process opens the same file:
        # retry until the busy timeout, by which time that process has usually switched it.
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.001
        while True:
            try:
                mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
        if str(mode).lower() != "wal":
            raise DatabaseError(f"the SQLite {self._label} cannot use WAL journaling (got {mode})")

    def _checkout(self, timeout: float | None = None) -> sqlite3.Connection:
        """Take the instance's lock and its connection."""
        if os.getpid() != self._pid:
            self._after_fork()
        if self._owner == threading.get_ident():
            raise BotmoxError(
                "a unit of work is already open on this SQLite backend in this thread; "
                "units of work cannot be nested"
            )
        wait = self.busy_timeout if timeout is None else timeout
        if not self._lock.acquire(timeout=wait):
            raise DatabaseError(
                f"timed out after {wait:g} s waiting for the SQLite {self._label} "
                "(another unit of work in this process held it)"
            )
        try:
            if self._closed:
                raise ServiceUnavailableError("the SQLite backend is closed")
            if self._connection is None:
                self._connection = self._open()
        except BaseException:
            self._lock.release()
            raise
        self._owner = threading.get_ident()
        return self._connection

    def _checkin(self, connection: sqlite3.Connection, *, broken: bool) -> None:
        """Return the connection and the lock; a broken connection is closed and reopened by
        the next unit."""
        try:
            if broken and connection is self._connection:
                self._connection = None
                with contextlib.suppress(sqlite3.Error):
                    connection.close()
        finally:
            self._owner = None
            self._lock.release()

    def _after_fork(self) -> None:
        # A connection must not cross fork(): the child keeps the inherited one referenced
        # (closing it could disturb the parent's locks) and opens its own.
        if self.in_memory:
            raise DatabaseError("an in-memory SQLite backend cannot be used after fork()")
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._owner = None
        self._readers.forget_after_fork()
        self._audit_commits = AuditGroupCommit(self)
        if self._connection is not None:
            self._inherited.append(self._connection)
            self._connection = None
