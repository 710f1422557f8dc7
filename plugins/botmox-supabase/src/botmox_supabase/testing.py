"""A real, throwaway PostgreSQL for tests (this plugin's and anyone's, e.g. end-to-end flows).

::

    from botmox_supabase.testing import running_postgres, migrated_database

    with running_postgres() as admin_dsn:                 # superuser DSN on a loopback port
        with migrated_database(admin_dsn) as dsn:         # a fresh database at the latest schema
            os.environ["BOTMOX_SUPABASE_DATABASE_URL"] = dsn
            ...

Where PostgreSQL comes from, in order:

1. ``BOTMOX_TEST_POSTGRES_DSN``: an existing server; the DSN must be a superuser (tests create
   databases and the Supabase roles);
2. a cluster made with ``initdb`` and run with ``pg_ctl`` found on ``PATH``, through
   ``pg_config --bindir``, or under ``/usr/lib/postgresql/<version>/bin`` (Debian's
   ``postgresql`` package). As root, PostgreSQL is run as the ``postgres`` OS user through
   ``runuser`` (PostgreSQL refuses to run as root). It listens on a free loopback TCP port with
   password (SCRAM) authentication and on a Unix socket in its private temp directory, with
   ``fsync`` off for speed (a commit still reaches the OS before it returns, so a crash of the
   server process loses nothing committed), and is stopped with ``pg_ctl stop -m fast`` (then
   by PID) when the context ends.

When neither is available :class:`PostgresUnavailable` is raised; the pytest helper
:func:`require_postgres` turns it into a skip, or a failure when ``CI=true``.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

__all__ = [
    "DEFAULT_SETTINGS",
    "DSN_ENV",
    "PostgresUnavailable",
    "TemporaryPostgres",
    "create_database",
    "drop_database",
    "make_template",
    "find_postgres_bindir",
    "migrated_database",
    "require_postgres",
    "reset_database",
    "running_postgres",
    "with_database",
]

DSN_ENV = "BOTMOX_TEST_POSTGRES_DSN"
#: Server settings of a :class:`TemporaryPostgres` (override with ``settings=``; benchmarks pass
#: ``{"fsync": "on", "full_page_writes": "on"}`` for production-like durability).
DEFAULT_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "64MB",
}
_START_TIMEOUT = 60


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL can be started or reached; the message says why and how to get one."""


def find_postgres_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None."""
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(  # noqa: S603 - fixed argv
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                candidates.append(Path(out))
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(debian)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited; only its parent can reap it
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TemporaryPostgres:
    """A PostgreSQL cluster in a temp directory, owned by this process: :meth:`start`,
    :meth:`stop` (to simulate an outage) and :meth:`destroy`.

    Attributes:
        dsn: superuser DSN of database ``postgres`` on ``127.0.0.1:port`` (password included).
        port: the TCP port, kept across restarts.
    """

    def __init__(
        self, bindir: Path | None = None, *, settings: Mapping[str, str] | None = None
    ) -> None:
        found = bindir or find_postgres_bindir()
        if found is None:
            raise PostgresUnavailable(
                "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH, via "
                "pg_config --bindir or under /usr/lib/postgresql/*/bin; install Debian's "
                f"'postgresql' package or set {DSN_ENV}"
            )
        self.bindir = found
        self.port = _free_port()
        self._password = secrets.token_hex(16)
        self._root = Path(tempfile.mkdtemp(prefix="botmox-pg-"))
        self._data = self._root / "data"
        self._log = self._root / "postgres.log"
        self._as_postgres: list[str] = []
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            runuser = shutil.which("runuser")
            try:
                import pwd

                entry = pwd.getpwnam("postgres")
            except KeyError:
                entry = None
            if runuser is None or entry is None:
                self._remove_root()
                raise PostgresUnavailable(
                    "running as root, and PostgreSQL refuses root: need the 'postgres' OS user "
                    "and runuser (Debian's postgresql package creates the user)"
                )
            os.chown(self._root, entry.pw_uid, entry.pw_gid)
            self._uid, self._gid = entry.pw_uid, entry.pw_gid
            self._as_postgres = [runuser, "-u", "postgres", "--"]
        self._pid: int | None = None
        self._settings = {**DEFAULT_SETTINGS, **(settings or {})}
        for name, value in self._settings.items():
            if not re.match(r"^[a-z_]+$", name) or not re.match(r"^[A-Za-z0-9_.]+$", value):
                self._remove_root()
                raise ValueError(f"unsupported server setting {name}={value!r}")
        try:
            self._initdb()
        except BaseException:
            self._remove_root()
            raise

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        """Superuser DSN of ``database`` on this cluster."""
        return f"postgresql://postgres:{self._password}@127.0.0.1:{self.port}/{quote(database)}"

    def __repr__(self) -> str:
        return f"TemporaryPostgres(port={self.port}, root={str(self._root)!r})"

    def _run(self, *argv: str, timeout: float = _START_TIMEOUT) -> subprocess.CompletedProcess[str]:
        command = [*self._as_postgres, *argv]
        result = subprocess.run(  # noqa: S603 - argv built from fixed parts
            command, capture_output=True, text=True, timeout=timeout, check=False, cwd=self._root
        )
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"{Path(argv[0]).name} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        return result

    def _initdb(self) -> None:
        pwfile = self._root / "pwfile"
        pwfile.write_text(self._password + "\n", encoding="utf-8")
        if self._as_postgres:
            os.chown(pwfile, self._uid, self._gid)
        pwfile.chmod(0o600)
        try:
            self._run(
                str(self.bindir / "initdb"),
                "-D",
                str(self._data),
                "-U",
                "postgres",
                "--pwfile",
                str(pwfile),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self) -> None:
        """Start the server (again) on the same port; waits until it accepts connections."""
        options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self._root}",
                *(f"-c {name}={value}" for name, value in self._settings.items()),
            ]
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self._data),
            "-l",
            str(self._log),
            "-o",
            options,
            "-w",
            "-t",
            str(_START_TIMEOUT),
            "start",
        )
        self._pid = self._read_pid()
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            try:
                with psycopg.connect(self.dsn, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable(
                        f"PostgreSQL did not accept connections: {self.log_tail()}"
                    ) from None
                time.sleep(0.1)

    @property
    def running(self) -> bool:
        """Whether :meth:`start` was called and :meth:`stop` not since."""
        return self._pid is not None

    def _read_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self._data / "postmaster.pid").read_text().splitlines()[0])
        return None

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``pg_ctl stop -m fast``, then SIGKILL of its PID). Idempotent.

        ``mode="immediate"`` simulates a crash: no shutdown checkpoint, recovery at next start.
        """
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"unknown pg_ctl stop mode {mode!r}")
        pid = self._read_pid() or self._pid
        if pid is None:
            return
        with contextlib.suppress(PostgresUnavailable, subprocess.TimeoutExpired):
            self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self._data),
                "-m",
                mode,
                "-w",
                "stop",
                timeout=30,
            )
        # pg_ctl returns once postmaster.pid is gone; the process may linger a moment longer.
        if not _wait_gone(pid, 10):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 10)
        self._pid = None

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the server log (for failure messages)."""
        try:
            return self._log.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "<no log>"

    def _remove_root(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)

    def destroy(self) -> None:
        """Stop the server and delete its files. Idempotent."""
        self.stop()
        self._remove_root()

    def __enter__(self) -> TemporaryPostgres:
        try:
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()


@contextlib.contextmanager
def running_postgres() -> Iterator[str]:
    """Yield a superuser DSN: ``BOTMOX_TEST_POSTGRES_DSN`` if set, else a throwaway cluster
    (stopped and deleted on exit). Raises :class:`PostgresUnavailable` when neither works."""
    external = os.environ.get(DSN_ENV)
    if external:
        try:
            with psycopg.connect(external, connect_timeout=5):
                pass
        except psycopg.Error as exc:
            raise PostgresUnavailable(
                f"{DSN_ENV} is set but unreachable: {type(exc).__name__}"
            ) from None
        yield external
        return
    with TemporaryPostgres() as cluster:
        yield cluster.dsn


_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def with_database(dsn: str, database: str) -> str:
    """``dsn`` pointing at ``database`` instead."""
    parts = urlsplit(dsn)
    return urlunsplit(
        (parts.scheme, parts.netloc, "/" + quote(database), parts.query, parts.fragment)
    )


def create_database(admin_dsn: str, name: str | None = None, *, template: str | None = None) -> str:
    """Create an empty database (or a copy of ``template``) and return its DSN."""
    name = name or f"botmox_{secrets.token_hex(6)}"
    if not _DB_NAME.match(name):
        raise ValueError(f"bad database name {name!r}")
    statement = sql.SQL("create database {}").format(sql.Identifier(name))
    if template:
        statement = sql.SQL("create database {} template {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(statement)
    return with_database(admin_dsn, name)


def drop_database(admin_dsn: str, name: str) -> None:
    """Drop a database, disconnecting its sessions. Idempotent."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


@contextlib.contextmanager
def migrated_database(admin_dsn: str, *, template: str | None = None) -> Iterator[str]:
    """Yield the DSN of a fresh database at the latest botmox schema, dropped on exit.

    With ``template`` (a database already migrated, e.g. made by :func:`make_template`) the copy is
    made by ``CREATE DATABASE ... TEMPLATE``, which is much faster than migrating.
    """
    from botmox_supabase.migrations import apply_migrations

    dsn = create_database(admin_dsn, template=template)
    name = urlsplit(dsn).path.lstrip("/")
    try:
        if template is None:
            apply_migrations(dsn)
        yield dsn
    finally:
        drop_database(admin_dsn, name)


def reset_database(dsn: str) -> None:
    """Empty every botmox table (identities restarted), keeping the schema: a fast "fresh
    database" between tests that share one migrated database."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = [
            sql.Identifier("botmox", name)
            for (name,) in conn.execute(
                "select tablename from pg_tables where schemaname = 'botmox'"
                " and tablename <> 'schema_migrations' order by tablename"
            ).fetchall()
        ]
        if tables:
            conn.execute(sql.SQL("truncate {} restart identity").format(sql.SQL(", ").join(tables)))


def make_template(admin_dsn: str, name: str = "botmox_template") -> str:
    """Create (or re-create) a migrated template database ``name`` and return its name."""
    from botmox_supabase.migrations import apply_migrations

    drop_database(admin_dsn, name)
    apply_migrations(create_database(admin_dsn, name))
    return name


def require_postgres(reason: str) -> NoReturn:
    """Skip the current test with ``reason`` (fail instead when ``CI=true``)."""
    import pytest

    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and PostgreSQL is required: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not available: {reason}")
