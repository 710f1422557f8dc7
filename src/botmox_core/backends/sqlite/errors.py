"""The one place where :mod:`sqlite3` exceptions become botmox errors.

Every statement the backend runs goes through :func:`translate_sqlite_errors`, so no
``sqlite3`` exception reaches a caller:

* a UNIQUE / PRIMARY KEY violation becomes :class:`DuplicateError`, with a message naming the
  rule (see :data:`UNIQUE_RULES`);
* a CHECK or NOT NULL violation (a value the schema refuses) and an integer too large for
  SQLite become :class:`BadRequestError`;
* a file that cannot be opened becomes :class:`ServiceUnavailableError`;
* everything else (locked or busy database, disk full or I/O error, corrupted file) becomes
  :class:`DatabaseError`.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from botmox_core.errors import (
    BadRequestError,
    BotmoxError,
    DatabaseError,
    DuplicateError,
    ServiceUnavailableError,
)

__all__ = ["UNIQUE_RULES", "error_from_sqlite", "translate_sqlite_errors"]

#: Unique constraints by the column list SQLite reports, with the message shown to callers.
UNIQUE_RULES: dict[str, tuple[str, str]] = {
    "api_tokens.id": ("api_token_id", "an API token with this id already exists"),
    "api_tokens.token_hash": ("api_token_hash", "an API token with this hash already exists"),
    "leases.id": ("lease_id", "a lease with this id already exists"),
    "releases.tenant_id, releases.module, releases.platform, releases.channel, releases.version": (
        "release_version",
        "a release of this module, platform and channel with this version already exists "
        "for the tenant",
    ),
    "releases.tenant_id, releases.object_key": (
        "release_object_key",
        "a release with this object_key already exists for the tenant",
    ),
    "vms.tenant_id, vms.vm_uuid": ("vm_uuid", "a VM with this vm_uuid already exists"),
    "agents.id": ("agent_id", "an agent with this id already exists"),
    "agents.pairing_code_hash": ("agent_pairing_code", "this pairing code is already in use"),
    "agents.token_hash": ("agent_token_hash", "an agent with this token hash already exists"),
    "commands.id": ("command_id", "a command with this id already exists"),
    "commands.tenant_id, commands.agent_id, commands.idempotency_key": (
        "command_idempotency_key",
        "a command with this idempotency key already exists for the agent",
    ),
    "assignments.tenant_id, assignments.user_id, assignments.module, assignments.platform, "
    "assignments.channel": (
        "assignment_scope",
        "an assignment for this user and scope already exists",
    ),
    "assignments.tenant_id, assignments.module, assignments.platform, assignments.channel": (
        "default_assignment_scope",
        "a default assignment for this scope already exists",
    ),
}

_UNIQUE = re.compile(r"^UNIQUE constraint failed: (?P<columns>.+)$")
_CHECK = re.compile(r"^CHECK constraint failed: (?P<name>.+)$")
_NOT_NULL = re.compile(r"^NOT NULL constraint failed: (?P<column>.+)$")
_UNAVAILABLE = ("unable to open database file", "readonly database", "disk i/o error")


def error_from_sqlite(exc: BaseException, *, database: str = "database") -> BotmoxError:
    """The botmox error for a :mod:`sqlite3` exception (or the ``OverflowError`` /
    ``UnicodeEncodeError`` the driver raises when binding a value)."""
    text = str(exc)
    if isinstance(exc, OverflowError):
        return BadRequestError(f"a number is too large for the database: {text}")
    if isinstance(exc, UnicodeEncodeError):
        return BadRequestError("text values must be valid Unicode (no lone surrogates)")
    if (
        isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError)
        and "binding parameter" in text
    ):
        return BadRequestError(f"a value has a type the database cannot store: {text}")
    if isinstance(exc, sqlite3.IntegrityError):
        if match := _UNIQUE.match(text):
            columns = match["columns"]
            name, message = UNIQUE_RULES.get(columns, (columns, f"duplicate record ({columns})"))
            return DuplicateError(message, details={"constraint": name})
        if match := _CHECK.match(text):
            return BadRequestError(
                f"value refused by the database rule {match['name']}",
                details={"constraint": match["name"]},
            )
        if match := _NOT_NULL.match(text):
            return BadRequestError(
                f"missing required value {match['column']}", details={"column": match["column"]}
            )
        return BadRequestError(f"value refused by the database: {text}")
    lowered = text.lower()
    if isinstance(exc, sqlite3.OperationalError):
        if "locked" in lowered or "busy" in lowered:
            return DatabaseError(
                f"the SQLite {database} stayed locked by another writer past the busy timeout"
            )
        if any(marker in lowered for marker in _UNAVAILABLE):
            return ServiceUnavailableError(f"cannot use the SQLite {database}: {text}")
    if "not a database" in lowered or "malformed" in lowered:
        return DatabaseError(f"the SQLite {database} is corrupted or not a database: {text}")
    return DatabaseError(f"SQLite {database} error: {text}")


@contextmanager
def translate_sqlite_errors(database: str = "database") -> Iterator[None]:
    """Run the block, re-raising any :mod:`sqlite3` error as the botmox error for it."""
    try:
        yield
    except (sqlite3.Error, OverflowError, UnicodeEncodeError) as exc:
        raise error_from_sqlite(exc, database=database) from exc
