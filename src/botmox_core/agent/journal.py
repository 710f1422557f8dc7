"""The agent's command journal: which command ids it accepted, finished or handed back.

The journal is what makes delivery at-least-once but execution at-most-once: the server re-sends
unfinished commands after reconnects and restarts, and the agent looks each id up here before
running anything. An id is written (``synchronous=FULL``) *before* the agent acknowledges it,
so an agent killed mid-command knows after a restart that the command was interrupted and
reports it failed instead of running it a second time.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

__all__ = ["CommandJournal", "JournalEntry"]

ACCEPTED, FINISHED, RELEASED = "accepted", "finished", "released"
#: Finished entries whose result the server confirmed are kept this long for de-duplication.
KEEP_SECONDS = 7 * 24 * 3600


@attrs.frozen
class JournalEntry:
    """One command the agent has seen.

    Attributes:
        id, command_type: the command.
        state: ``accepted`` (running or interrupted), ``finished`` or ``released``.
        status, result, error: the outcome once finished.
        result_acked: whether the server confirmed the outcome.
        deliveries: how many times the server delivered it.
    """

    id: str
    command_type: str
    state: str
    deliveries: int
    status: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    result_acked: bool = False


class CommandJournal:
    """A small SQLite file next to the agent's state file."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if not Path(self.path).exists():  # results may be sensitive: owner-only from the start
            Path(self.path).touch(mode=0o600)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS commands (id TEXT PRIMARY KEY, command_type TEXT NOT NULL,"
            " state TEXT NOT NULL, deliveries INTEGER NOT NULL DEFAULT 1, status TEXT,"
            " result TEXT, error TEXT, result_acked INTEGER NOT NULL DEFAULT 0,"
            " updated_at REAL NOT NULL)"
        )

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def get(self, command_id: str) -> JournalEntry | None:
        row = self._db.execute(
            "SELECT id, command_type, state, deliveries, status, result, error, result_acked"
            " FROM commands WHERE id = ?",
            (command_id,),
        ).fetchone()
        return None if row is None else _entry(row)

    def delivered(self, command_id: str, command_type: str) -> JournalEntry | None:
        """Count a delivery; the entry as it was before (``None``: first delivery, not yet
        accepted)."""
        with self._write() as db:
            before = self.get(command_id)
            if before is not None:
                db.execute(
                    "UPDATE commands SET deliveries = deliveries + 1 WHERE id = ?", (command_id,)
                )
        return before

    def accept(self, command_id: str, command_type: str) -> None:
        """Record (durably) that the agent takes the command; call before acknowledging it."""
        with self._write() as db:
            db.execute(
                "INSERT INTO commands (id, command_type, state, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET state = excluded.state, status = NULL,"
                " result = NULL, error = NULL, result_acked = 0, updated_at = excluded.updated_at",
                (command_id, command_type, ACCEPTED, time.time()),
            )

    def finish(
        self,
        command_id: str,
        status: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Record the outcome (to be sent until the server confirms it)."""
        with self._write() as db:
            db.execute(
                "UPDATE commands SET state = ?, status = ?, result = ?, error = ?,"
                " result_acked = 0, updated_at = ? WHERE id = ?",
                (
                    FINISHED,
                    status,
                    None if result is None else json.dumps(result),
                    error,
                    time.time(),
                    command_id,
                ),
            )

    def release(self, command_id: str) -> None:
        """Record that the command was handed back unfinished (it may be delivered again)."""
        with self._write() as db:
            db.execute(
                "UPDATE commands SET state = ?, updated_at = ? WHERE id = ?",
                (RELEASED, time.time(), command_id),
            )

    def result_acked(self, command_id: str) -> None:
        with self._write() as db:
            db.execute("UPDATE commands SET result_acked = 1 WHERE id = ?", (command_id,))

    def unconfirmed(self) -> list[JournalEntry]:
        """Finished commands whose outcome the server has not confirmed."""
        rows = self._db.execute(
            "SELECT id, command_type, state, deliveries, status, result, error, result_acked"
            " FROM commands WHERE state = ? AND result_acked = 0 ORDER BY updated_at",
            (FINISHED,),
        ).fetchall()
        return [_entry(row) for row in rows]

    def mark_interrupted(self) -> list[str]:
        """At start-up: commands still ``accepted`` were interrupted by the previous process's
        end; they are finished as failed (never re-run). Returns their ids."""
        ids = [
            row[0]
            for row in self._db.execute("SELECT id FROM commands WHERE state = ?", (ACCEPTED,))
        ]
        for command_id in ids:
            self.finish(
                command_id,
                "failed",
                error="interrupted: the agent stopped while running the command",
            )
        return ids

    def prune(self, keep_seconds: float = KEEP_SECONDS) -> None:
        with self._write() as db:
            db.execute(
                "DELETE FROM commands WHERE result_acked = 1 AND updated_at < ?",
                (time.time() - keep_seconds,),
            )


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    return JournalEntry(
        id=row[0],
        command_type=row[1],
        state=row[2],
        deliveries=int(row[3]),
        status=row[4],
        result=None if row[5] is None else json.loads(row[5]),
        error=row[6],
        result_acked=bool(row[7]),
    )
