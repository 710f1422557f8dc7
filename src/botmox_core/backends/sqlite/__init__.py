"""``sqlite``: the embedded repository backend (the zero-configuration default).

Options (``[plugins.sqlite]`` in the TOML file or ``BOTMOX_SQLITE_<KEY>``):

* ``path`` — database file; default ``<data_dir>/botmox.sqlite3`` (the directory is created);
  ``:memory:`` gives a private in-memory database (tests).
* ``busy_timeout_ms`` — how long a unit of work waits for another writer (another thread or
  process) before failing with ``DATABASE_ERROR``; default 15000.
* ``synchronous`` — SQLite ``synchronous`` mode: ``full`` (default, committed units survive a
  power cut), ``normal``, ``extra`` or ``off``.

The server and ``botmox`` admin commands may use the same file at the same time; see
:mod:`botmox_core.backends.sqlite.backend` for how units of work are serialised.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from botmox_core.backends.sqlite.backend import MEMORY, SqliteBackend, SqliteUnitOfWork
from botmox_core.errors import ConfigurationError, ServiceUnavailableError
from botmox_core.plugin.spec import DataBackendFactory, hookimpl

if TYPE_CHECKING:
    from collections.abc import Callable

    from botmox_core.config import Settings

__all__ = [
    "DEFAULT_FILENAME",
    "SqliteBackend",
    "SqliteUnitOfWork",
    "botmox_register_data_backends",
    "create_sqlite_backend",
]

#: File name of the database inside ``data_dir`` when no ``path`` option is given.
DEFAULT_FILENAME = "botmox.sqlite3"
DEFAULT_BUSY_TIMEOUT_MS = 15_000


def create_sqlite_backend(settings: Settings) -> SqliteBackend:
    """Build the backend from ``settings.plugin_options("sqlite")``.

    Raises :class:`ConfigurationError` for malformed options and
    :class:`ServiceUnavailableError` when the database directory cannot be created.
    """
    options = settings.plugin_options("sqlite")
    raw_path = options.get("path", "").strip()
    path: str | Path
    if raw_path == MEMORY:
        path = MEMORY
    elif raw_path:
        path = Path(raw_path).expanduser()
    else:
        path = Path(settings.data_dir) / DEFAULT_FILENAME
    raw_timeout = options.get("busy_timeout_ms", str(DEFAULT_BUSY_TIMEOUT_MS))
    try:
        busy_timeout_ms = int(raw_timeout)
    except ValueError:
        raise ConfigurationError(
            f"sqlite busy_timeout_ms must be an integer number of milliseconds, got {raw_timeout!r}"
        ) from None
    if busy_timeout_ms < 0:
        raise ConfigurationError("sqlite busy_timeout_ms must not be negative")
    if isinstance(path, Path):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ServiceUnavailableError(
                f"cannot create the directory of the SQLite database {path}: {exc.strerror or exc}"
            ) from exc
    return SqliteBackend(
        path,
        busy_timeout=busy_timeout_ms / 1000,
        synchronous=options.get("synchronous", "full"),
    )


@hookimpl
def botmox_register_data_backends(register: Callable[[str, DataBackendFactory], None]) -> None:
    """Register the ``sqlite`` data backend."""
    register("sqlite", create_sqlite_backend)
