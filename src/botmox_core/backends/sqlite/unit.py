"""The SQLite unit of work: one ``BEGIN IMMEDIATE`` transaction over every repository, on the
backend's writing connection (:class:`SqliteUnitOfWork`), or a deferred read transaction on a
reader connection of its own (:class:`SqliteReadUnitOfWork`); see
:mod:`botmox_core.backends.sqlite.backend` for the concurrency model.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterable
from types import TracebackType
from typing import Protocol

from botmox_core.backends.sql_inventory import SqlInventory
from botmox_core.backends.sqlite.agents import SqliteAgentRepository, SqliteCommandRepository
from botmox_core.backends.sqlite.columns import CODEC
from botmox_core.backends.sqlite.control import SqliteControlRepository
from botmox_core.backends.sqlite.domains import (
    SqliteAggregateRepository,
    SqliteBotHistoryRepository,
    SqliteSettingsRepository,
)
from botmox_core.backends.sqlite.errors import error_from_sqlite, translate_sqlite_errors
from botmox_core.backends.sqlite.reading import ReaderPool
from botmox_core.backends.sqlite.records import SqliteRecordRepository
from botmox_core.backends.sqlite.repositories import (
    Params,
    SqliteApiTokenRepository,
    SqliteAssignmentRepository,
    SqliteDownloadAuditRepository,
    SqliteLeaseRepository,
    SqliteLicenceRepository,
    SqliteReleaseRepository,
    SqliteVmRepository,
)
from botmox_core.backends.sqlite.vault import (
    SqliteSecretBindingRepository,
    SqliteSecretRepository,
)
from botmox_core.backends.sqlite.writer_queue import WriterQueue
from botmox_core.errors import BotmoxError, DatabaseError, ServiceUnavailableError
from botmox_core.ports.agents import AgentRepository, CommandRepository
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

__all__ = ["SqliteReadUnitOfWork", "SqliteUnitOfWork"]

log = logging.getLogger(__name__)


class _Connections(Protocol):
    """What a unit uses of :class:`~botmox_core.backends.sqlite.backend.SqliteBackend` (a
    protocol, so this module does not import the backend that imports it): the writing
    connection under the instance's lock, the reader pool, and the fork check."""

    _label: str
    _pid: int
    _closed: bool
    _readers: ReaderPool
    _writers: WriterQueue
    busy_timeout: float

    def _checkout(self, timeout: float | None = None) -> sqlite3.Connection: ...

    def _checkin(self, connection: sqlite3.Connection, *, broken: bool) -> None: ...

    def _after_fork(self) -> None: ...


class SqliteUnitOfWork:
    """One ``BEGIN IMMEDIATE`` transaction over every repository.

    Leaving the ``with`` block without :meth:`commit` rolls back. After :meth:`commit` or
    :meth:`rollback` the unit may go on: the next statement starts a new transaction. If SQLite
    itself aborts the transaction (disk full, I/O error), every later statement of the unit
    raises :class:`DatabaseError` rather than writing half a unit.
    """

    def __init__(self, backend: _Connections) -> None:
        self._backend = backend
        self._connection: sqlite3.Connection | None = None
        self._entered = False
        self._transaction_open = False
        self._aborted = False
        self._queued = False  # holds the backend's writer queue lock
        statements = _UnitStatements(self)
        self.tokens: ApiTokenRepository = SqliteApiTokenRepository(statements)
        self.vms: VmRepository = SqliteVmRepository(statements)
        self.licences: LicenceRepository = SqliteLicenceRepository(statements)
        self.leases: LeaseRepository = SqliteLeaseRepository(statements)
        self.releases: ReleaseRepository = SqliteReleaseRepository(statements)
        self.assignments: AssignmentRepository = SqliteAssignmentRepository(statements)
        self.audit: DownloadAuditRepository = SqliteDownloadAuditRepository(statements)
        self.agents: AgentRepository = SqliteAgentRepository(statements)
        self.commands: CommandRepository = SqliteCommandRepository(statements)
        self.records: RecordRepository = SqliteRecordRepository(statements)
        self.bot_history: BotHistoryRepository = SqliteBotHistoryRepository(statements)
        self.aggregates: AggregateRepository = SqliteAggregateRepository(statements)
        self.settings: SettingsRepository = SqliteSettingsRepository(statements)
        self.secrets: SecretRepository = SqliteSecretRepository(statements)
        self.bindings: SecretBindingRepository = SqliteSecretBindingRepository(statements)
        self.control: ControlRepository = SqliteControlRepository(statements)
        self.inventory = SqlInventory(
            lambda sql, params: [dict(row) for row in statements.rows(sql, params)], CODEC
        )

    def __enter__(self) -> SqliteUnitOfWork:
        if self._entered:
            raise BotmoxError("a unit of work can be entered only once")
        self._entered = True
        connection = self._backend._checkout()
        try:
            self._begin(connection)
        except BaseException:
            self._backend._checkin(connection, broken=False)
            raise
        self._connection = connection
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        broken = False
        try:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
        except sqlite3.Error as rollback_error:
            broken = True
            if exc is None:
                raise error_from_sqlite(
                    rollback_error, database=self._backend._label
                ) from rollback_error
            log.warning("rollback failed after %s: %s", exc_type, rollback_error)
        finally:
            self._transaction_open = False
            self._dequeue()
            self._backend._checkin(connection, broken=broken)

    def commit(self) -> None:
        """Make the unit's writes durable; :class:`DatabaseError` if SQLite already aborted
        the transaction (its writes are gone, nothing is committed)."""
        connection = self._active_connection()
        self._raise_if_aborted(connection)
        try:
            if connection.in_transaction:
                with translate_sqlite_errors(self._backend._label):
                    connection.execute("COMMIT")
        finally:
            if not connection.in_transaction:
                self._dequeue()
        self._transaction_open = False

    def rollback(self) -> None:
        """Discard the unit's uncommitted writes."""
        connection = self._active_connection()
        try:
            if connection.in_transaction:
                with translate_sqlite_errors(self._backend._label):
                    connection.execute("ROLLBACK")
        finally:
            if not connection.in_transaction:
                self._dequeue()
        self._transaction_open = False

    def _active_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise BotmoxError("the unit of work is used outside its with-block")
        return self._connection

    def _statement_connection(self) -> sqlite3.Connection:
        connection = self._active_connection()
        self._raise_if_aborted(connection)
        if not self._transaction_open:
            self._begin(connection)
        return connection

    def _raise_if_aborted(self, connection: sqlite3.Connection) -> None:
        if self._aborted or (self._transaction_open and not connection.in_transaction):
            self._aborted = True
            raise DatabaseError(
                "SQLite aborted this unit of work's transaction after an error; "
                "its writes were discarded, start a new unit of work"
            )

    def _begin(self, connection: sqlite3.Connection) -> None:
        backend = self._backend
        self._queued = backend._writers.acquire(backend.busy_timeout)
        try:
            with translate_sqlite_errors(backend._label):
                connection.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._dequeue()
            raise
        self._transaction_open = True

    def _dequeue(self) -> None:
        if self._queued:
            self._queued = False
            self._backend._writers.release()


class SqliteReadUnitOfWork(SqliteUnitOfWork):
    """A unit that only reads, on a reader connection (``PRAGMA query_only``) in a deferred
    transaction: it takes no write lock and does not wait for writers. A write through it raises
    :class:`DatabaseError`; :meth:`commit` only ends the read transaction."""

    def __enter__(self) -> SqliteReadUnitOfWork:
        if self._entered:
            raise BotmoxError("a unit of work can be entered only once")
        self._entered = True
        backend = self._backend
        if os.getpid() != backend._pid:
            backend._after_fork()
        if backend._closed:
            raise ServiceUnavailableError("the SQLite backend is closed")
        connection = backend._readers.checkout()
        try:
            self._begin(connection)
        except BaseException:
            backend._readers.checkin(connection, broken=True)
            raise
        self._connection = connection
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        broken = False
        try:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
        except sqlite3.Error:
            broken = True
        finally:
            self._transaction_open = False
            self._backend._readers.checkin(connection, broken=broken)

    def _begin(self, connection: sqlite3.Connection) -> None:
        with translate_sqlite_errors(self._backend._label):
            connection.execute("BEGIN")
        self._transaction_open = True


class _UnitStatements:
    """The :class:`~botmox_core.backends.sqlite.records.BulkStatements` a unit hands its
    repositories: SQL runs in the unit's transaction, with errors translated."""

    def __init__(self, unit: SqliteUnitOfWork) -> None:
        self._unit = unit

    def run(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        connection = self._unit._statement_connection()
        with translate_sqlite_errors(self._unit._backend._label):
            return connection.execute(sql, params)

    def run_many(self, sql: str, params: Iterable[Params]) -> sqlite3.Cursor:
        connection = self._unit._statement_connection()
        with translate_sqlite_errors(self._unit._backend._label):
            return connection.executemany(sql, params)

    def rows(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        connection = self._unit._statement_connection()
        with translate_sqlite_errors(self._unit._backend._label):
            return connection.execute(sql, params).fetchall()
