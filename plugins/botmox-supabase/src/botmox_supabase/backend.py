"""The ``supabase`` data backend: a psycopg 3 connection pool and one transaction per unit of work.

In ``pooler_mode = transaction`` (the default) connections are opened with
``prepare_threshold=None`` (no server-side prepared statements), so the backend works through
Supavisor's transaction mode as well as on direct connections; no session state is relied on
between transactions (the optional role switch is ``SET LOCAL``). In ``session`` mode (a direct
connection or a session-mode pooler) statements a connection runs repeatedly are prepared on the
server and the role is set once per connection.

Resolve-download's two database steps are shaped for the hot path: the grant is one call of the
``botmox.download_grant()`` function in autocommit (:mod:`botmox_supabase.download_grant`: its
plans are cached per connection even unprepared), and audit entries are group-committed
(:mod:`botmox_supabase.audit_commit`: one ``INSERT`` per batch of concurrent entries, each caller
answered after the commit holding its entry).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import psycopg
import psycopg_pool
from psycopg import sql

from botmox_core.errors import BotmoxError, ConfigurationError
from botmox_core.models import DownloadAuditEntry, ReleaseScope
from botmox_core.ports.agents import AgentRepository, CommandRepository
from botmox_core.ports.control import ControlRepository
from botmox_core.ports.domains import (
    AggregateRepository,
    BotHistoryRepository,
    RecordRepository,
    SettingsRepository,
)
from botmox_core.ports.health import HealthReport
from botmox_core.ports.repositories import (
    ApiTokenRepository,
    AssignmentRepository,
    BackendCapabilities,
    DownloadAuditRepository,
    DownloadGrant,
    LeaseRepository,
    LicenceRepository,
    ReleaseRepository,
    VmRepository,
)
from botmox_core.ports.vault import SecretBindingRepository, SecretRepository
from botmox_supabase.agent_repositories import PostgresAgentRepository, PostgresCommandRepository
from botmox_supabase.audit_commit import AuditGroupCommit, audit_insert, stored_in_order
from botmox_supabase.control_repository import PostgresControlRepository
from botmox_supabase.domain_repositories import (
    PostgresAggregateRepository,
    PostgresBotHistoryRepository,
    PostgresRecordRepository,
    PostgresSettingsRepository,
)
from botmox_supabase.domain_storage import DOMAIN_TABLES
from botmox_supabase.download_grant import DOWNLOAD_GRANT_SQL, decode_grant, grant_params
from botmox_supabase.error_mapping import map_database_errors
from botmox_supabase.options import SupabaseOptions
from botmox_supabase.repositories import (
    PostgresApiTokenRepository,
    PostgresAssignmentRepository,
    PostgresDownloadAuditRepository,
    PostgresLeaseRepository,
    PostgresLicenceRepository,
    PostgresReleaseRepository,
    PostgresVmRepository,
    inventory,
)
from botmox_supabase.vault_repositories import (
    PostgresSecretBindingRepository,
    PostgresSecretRepository,
)

__all__ = ["PostgresDataBackend", "PostgresReadUnitOfWork", "PostgresUnitOfWork"]

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 2.0
#: A pooled connection unused for longer than this is checked with a round trip before use.
IDLE_CHECK_SECONDS = 2.0
#: ``pooler_mode = session``: a statement is prepared on the server at a connection's 5th run.
PREPARE_THRESHOLD = 5
_HEALTH_QUERY = (
    "select current_user::text, coalesce((select rolsuper or rolbypassrls from pg_roles"
    " where rolname = current_user), false),"
    " to_regclass('botmox.leases') is not null and to_regclass('botmox.download_audit') is not null"
)


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class PostgresUnitOfWork:
    """One database transaction over every repository; leaving without :meth:`commit` rolls back.

    The connection is taken from the pool on ``__enter__`` and returned on ``__exit__``; a
    connection broken mid-way is discarded by the pool, never reused. Carries the agent command
    bus repositories (``agents``, ``commands``) as well: an
    :class:`~botmox_core.ports.AgentUnitOfWork`; and the domain data repositories (``records``,
    ``bot_history``, ``aggregates``, ``settings``): a
    :class:`~botmox_core.ports.domains.DomainUnitOfWork`; and the vault (``secrets``,
    ``bindings``): a :class:`~botmox_core.ports.vault.VaultUnitOfWork`.
    """

    tokens: ApiTokenRepository
    vms: VmRepository
    licences: LicenceRepository
    leases: LeaseRepository
    releases: ReleaseRepository
    assignments: AssignmentRepository
    audit: DownloadAuditRepository
    agents: AgentRepository
    commands: CommandRepository
    records: RecordRepository
    bot_history: BotHistoryRepository
    aggregates: AggregateRepository
    settings: SettingsRepository
    secrets: SecretRepository
    bindings: SecretBindingRepository
    control: ControlRepository

    def __init__(self, backend: PostgresDataBackend) -> None:
        self._backend = backend
        self._conn: psycopg.Connection[Any] | None = None

    def __enter__(self) -> PostgresUnitOfWork:
        if self._conn is not None:
            raise RuntimeError("unit of work entered twice")
        self._conn = self._backend._checkout()
        self._entered(self._conn)
        connection = self._connection
        self.tokens = PostgresApiTokenRepository(connection)
        self.vms = PostgresVmRepository(connection)
        self.licences = PostgresLicenceRepository(connection)
        self.leases = PostgresLeaseRepository(connection)
        self.releases = PostgresReleaseRepository(connection)
        self.assignments = PostgresAssignmentRepository(connection)
        self.audit = PostgresDownloadAuditRepository(connection)
        self.agents = PostgresAgentRepository(self._connection)
        self.commands = PostgresCommandRepository(self._connection)
        self.records = PostgresRecordRepository(self._connection)
        self.bot_history = PostgresBotHistoryRepository(self._connection)
        self.aggregates = PostgresAggregateRepository(self._connection)
        self.settings = PostgresSettingsRepository(self._connection)
        self.secrets = PostgresSecretRepository(self._connection)
        self.bindings = PostgresSecretBindingRepository(self._connection)
        self.control = PostgresControlRepository(self._connection)
        self.inventory = inventory(self._connection)
        return self

    def _entered(self, conn: psycopg.Connection[Any]) -> None:
        """Hook for :class:`PostgresReadUnitOfWork`."""

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise RuntimeError("unit of work used outside its with-block")
        return self._conn

    def commit(self) -> None:
        """Commit the transaction; a later write starts a new one (rolled back unless committed)."""
        with map_database_errors("commit"):
            self._connection().commit()
        self._backend._begin(self._connection())

    def rollback(self) -> None:
        """Discard every uncommitted write."""
        with map_database_errors("rollback"):
            self._connection().rollback()
        self._backend._begin(self._connection())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if not conn.closed:
                conn.rollback()
                conn.autocommit = False  # a read unit's connection goes back as it came
        except psycopg.Error as rollback_error:
            # The connection broke: the server aborts an open transaction when its session
            # ends, so nothing uncommitted survives; the pool discards the connection.
            log.debug("rollback on a broken connection failed: %s", type(rollback_error).__name__)
        finally:
            self._backend._checkin(conn)


class PostgresReadUnitOfWork(PostgresUnitOfWork):
    """A unit that only reads (:meth:`PostgresDataBackend.read_unit_of_work`): its connection
    runs in autocommit, so a read is one round trip (no ``BEGIN`` before it, no ``ROLLBACK``
    after), and it holds no transaction, hence no lock. Each read sees what was committed when it
    ran. :meth:`commit` and :meth:`rollback` are refused; the database itself does not refuse a
    write sent through it, so callers only read (the services' token and resolve reads)."""

    def _entered(self, conn: psycopg.Connection[Any]) -> None:
        with map_database_errors("read"):
            conn.rollback()  # nothing is open (no SET LOCAL without a role): no round trip
            conn.autocommit = True

    def commit(self) -> None:
        raise BotmoxError("this unit of work only reads")

    def rollback(self) -> None:
        raise BotmoxError("this unit of work only reads")


class PostgresDataBackend:
    """:class:`~botmox_core.ports.DataBackend` on Supabase/PostgreSQL (``DATA_BACKEND=supabase``).

    The pool opens in the background, so the backend can be built while the database is down:
    :meth:`check_health` then reports not ok and operations raise
    :class:`~botmox_core.errors.ServiceUnavailableError` until it returns.
    """

    name = "supabase"
    #: One PostgreSQL transaction per unit, agents included; ``timestamptz`` keeps microseconds;
    #: CHECK constraints refuse invalid release values; the domain data (records, bot history,
    #: aggregates, settings) is listed in the database; the vault (secrets, versions, bindings)
    #: stores envelopes it never opens. The agent transport that fits when
    #: several server replicas share the database is this plugin's ``postgres`` LISTEN/NOTIFY
    #: one; the composition root picks it unless ``BOTMOX_AGENT_TRANSPORT`` says otherwise.
    capabilities = BackendCapabilities(
        agents=True,
        domains=True,
        vault=True,
        control=True,
        rollback=True,
        multi_record_transactions=True,
        microsecond_timestamps=True,
        validates_release_values=True,
        preferred_agent_transport="postgres",
    )
    #: The rate-limit store that makes a limit hold across replicas (``postgres``: counters in
    #: this database); used unless ``BOTMOX_RATE_LIMIT_STORE`` says otherwise.
    preferred_rate_limit_store = "postgres"

    def __init__(self, options: SupabaseOptions) -> None:
        self.options = options
        self._returned_at: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        self._pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            options.database_url,
            min_size=options.pool_min_size,
            max_size=options.pool_max_size,
            timeout=options.pool_timeout,
            kwargs={
                # session mode: psycopg's default (prepared on a connection's 5th run of it)
                "prepare_threshold": PREPARE_THRESHOLD if options.keeps_session else None,
                "autocommit": False,
                "connect_timeout": max(1, round(options.connect_timeout)),
                "application_name": "botmox",
            },
            configure=self._configure if options.keeps_session and options.role else None,
            check=self._check_idle_connection,
            reconnect_timeout=max(30.0, options.pool_timeout * 6),
            name="botmox-supabase",
            open=False,
        )
        self._pool.open(wait=False)
        self._closed = False
        self._audit = AuditGroupCommit(self._write_audit)

    def __repr__(self) -> str:
        return f"PostgresDataBackend({self.options!r})"

    # -- connections -------------------------------------------------------------------------

    def _checkout(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise ConfigurationError("the supabase backend is closed")
        with map_database_errors("connect"):
            conn: psycopg.Connection[Any] = self._pool.getconn()
        try:
            self._begin(conn)
        except BaseException:
            self._pool.putconn(conn)
            raise
        return conn

    def _begin(self, conn: psycopg.Connection[Any]) -> None:
        """Start the transaction's session state: the optional ``SET LOCAL ROLE`` (``transaction``
        pooler mode; in ``session`` mode the role was set when the connection opened)."""
        role = self.options.role
        if role and not self.options.keeps_session:
            with map_database_errors("set role"):
                conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))

    @property
    def _role_per_transaction(self) -> bool:
        return bool(self.options.role) and not self.options.keeps_session

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        """Pool ``configure`` callback (``session`` mode with a ``role``): ``SET ROLE`` once for
        the connection's life."""
        assert self.options.role is not None
        conn.execute(sql.SQL("set role {}").format(sql.Identifier(self.options.role)))
        conn.commit()

    @contextmanager
    def _autocommit(self, action: str) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in autocommit for one statement that is its own transaction (no
        ``BEGIN``/``COMMIT`` round trips); errors mapped. Not with a per-transaction role."""
        if self._closed:
            raise ConfigurationError("the supabase backend is closed")
        with map_database_errors(action):
            conn: psycopg.Connection[Any] = self._pool.getconn()
        try:
            with map_database_errors(action):
                conn.autocommit = True
                yield conn
        finally:
            try:
                if not conn.closed:
                    conn.autocommit = False  # back to the pool as it came
            except psycopg.Error as error:  # broken: the pool discards it
                log.debug("resetting autocommit failed: %s", type(error).__name__)
            self._checkin(conn)

    def _check_idle_connection(self, conn: psycopg.Connection[Any]) -> None:
        """Pool ``check`` callback: a round trip only for a connection idle long enough that the
        server may have gone away meanwhile (a busy pool skips it; a connection that broke anyway
        fails its statement, is mapped to 503 and discarded)."""
        returned = self._returned_at.get(conn)
        if returned is None or time.monotonic() - returned > IDLE_CHECK_SECONDS:
            psycopg_pool.ConnectionPool.check_connection(conn)

    def _checkin(self, conn: psycopg.Connection[Any]) -> None:
        self._returned_at[conn] = time.monotonic()
        try:
            self._pool.putconn(conn)
        except psycopg_pool.PoolClosed:
            conn.close()

    # -- DataBackend ---------------------------------------------------------------------------

    def unit_of_work(self) -> PostgresUnitOfWork:
        """A new unit of work (one transaction); use it as a context manager."""
        return PostgresUnitOfWork(self)

    def read_unit_of_work(self) -> PostgresUnitOfWork:
        """A unit that only reads, one round trip per read (:class:`PostgresReadUnitOfWork`);
        with a ``role`` in ``transaction`` pooler mode an ordinary unit instead (``SET LOCAL
        ROLE`` needs the transaction)."""
        if self._role_per_transaction:
            return PostgresUnitOfWork(self)
        return PostgresReadUnitOfWork(self)

    def after_bulk_write(self) -> None:
        """``VACUUM (ANALYZE)`` of the domain tables, in autocommit
        (:class:`~botmox_core.ports.domains.BulkWriteBackend`): fresh statistics for the list
        plans and ``botmox.domain_tenant_rows()``, the trigram indexes' pending entries merged,
        the visibility map set for index-only scans. Right after a load of 20,000 bots a
        list took 20-23 ms at p50 against 3.4-4.1 ms once this ran (two runs). A role that
        owns none of the tables gets PostgreSQL's warning and nothing done (autovacuum catches
        up within minutes)."""
        statement = sql.SQL("vacuum (analyze) {}").format(
            sql.SQL(", ").join(sql.Identifier("botmox", table) for table in DOMAIN_TABLES)
        )
        started = time.perf_counter()
        with self._autocommit("vacuum after a bulk write") as conn:
            conn.execute(statement)
        log.info("vacuumed and analyzed the domain tables in %.1f ms", _elapsed_ms(started))

    def read_download_grant(
        self, tenant_id: str, lease_id: str, scope: ReleaseScope
    ) -> DownloadGrant:
        """The lease, the effective assignment (the lease user's, else the tenant default) and
        its release in one statement, one round trip
        (:class:`~botmox_core.ports.repositories.DownloadGrantBackend`): a call of
        ``botmox.download_grant()`` (:mod:`botmox_supabase.download_grant`) in autocommit, so
        it sees every transaction committed before it began."""
        params = grant_params(tenant_id, lease_id, scope)
        if self._role_per_transaction:
            with self.unit_of_work() as unit, map_database_errors("download grant"):
                row = unit._connection().execute(DOWNLOAD_GRANT_SQL, params).fetchone()
        else:
            with self._autocommit("download grant") as conn:
                row = conn.execute(DOWNLOAD_GRANT_SQL, params).fetchone()
        return decode_grant(row)

    def append_audit(self, entry: DownloadAuditEntry) -> DownloadAuditEntry:
        """Append a download audit entry, durable when this returns
        (:class:`~botmox_core.ports.repositories.DurableAuditBackend`): group-committed with the
        entries of concurrent callers (:class:`~botmox_supabase.audit_commit.AuditGroupCommit`),
        one ``INSERT`` in autocommit per batch; a lone caller's batch is its own entry."""
        return self._audit.append(entry)

    def _write_audit(self, entries: Sequence[DownloadAuditEntry]) -> list[DownloadAuditEntry]:
        """The group commit's writer: ``entries`` in one committed ``INSERT`` (with a role in
        ``transaction`` pooler mode: ``SET LOCAL ROLE``, the insert, ``COMMIT``)."""
        query, params = audit_insert(entries)
        if self._role_per_transaction:
            with self.unit_of_work() as unit:
                with map_database_errors("download audit"):
                    rows = unit._connection().execute(query, params).fetchall()
                unit.commit()
        else:
            with self._autocommit("download audit") as conn:
                rows = conn.execute(query, params).fetchall()
        return stored_in_order(entries, [row[0] for row in rows])

    def check_health(self) -> HealthReport:
        """One round trip through the pool (within a couple of seconds); never raises.

        Not ok when the database cannot be reached, when the botmox schema is missing, or when
        the role the server acts as does not bypass row-level security (it would see no rows:
        every table forces RLS).
        """
        started = time.perf_counter()
        try:
            with map_database_errors("health check"):
                conn = self._pool.getconn(
                    timeout=min(HEALTH_TIMEOUT_SECONDS, self.options.pool_timeout)
                )
            try:
                self._begin(conn)
                with map_database_errors("health check"):
                    row = conn.execute(_HEALTH_QUERY).fetchone()
                    conn.rollback()
            finally:
                self._checkin(conn)
        except BotmoxError as error:
            return HealthReport(
                name=self.name,
                ok=False,
                detail=f"{error.code}: {error.message}",
                latency_ms=_elapsed_ms(started),
            )
        role, bypasses, migrated = row if row else ("?", False, False)
        if not migrated:
            return HealthReport(
                name=self.name,
                ok=False,
                detail="the botmox schema is missing: run `botmox db migrate`",
                latency_ms=_elapsed_ms(started),
            )
        if not bypasses:
            return HealthReport(
                name=self.name,
                ok=False,
                detail=(
                    f"role {role} does not bypass row-level security; connect as postgres or "
                    "service_role, or set BOTMOX_SUPABASE_ROLE=service_role"
                ),
                latency_ms=_elapsed_ms(started),
            )
        return HealthReport(
            name=self.name, ok=True, detail="postgresql answered", latency_ms=_elapsed_ms(started)
        )

    def close(self) -> None:
        """Close the pool and every connection. Idempotent."""
        if not self._closed:
            self._closed = True
            self._pool.close()
