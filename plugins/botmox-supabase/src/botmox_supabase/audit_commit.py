"""Group commit of download audit entries on PostgreSQL: one ``INSERT`` of every entry that
arrived while the previous one ran, every caller answered only after the commit that holds its
entry.

Resolve-download appends one audit entry per attempt, durable before the answer. One ``INSERT``
per entry costs PostgreSQL a statement's parse, plan, execution and commit, and the server a pool
checkout and a round trip, each time; under load those are most of the database's share of a
resolve. :class:`AuditGroupCommit` batches them without a thread of its own (leader and
followers, as in a database's own group commit):

* a caller that finds no write under way becomes the *leader*: it writes every entry queued so
  far (its own first) in one statement, in autocommit (so the statement is its own transaction,
  committed -- durable as ``synchronous_commit`` makes any commit -- when it returns), settles
  each entry's caller with its stored entry, and hands the lead to the first caller queued
  meanwhile, if any;
* a caller that finds a write under way queues its entry and waits until a leader has settled
  it (or handed it the lead).

A lone request is its own leader and pays exactly one ``INSERT`` as before; under load the
entries of the requests that arrived during one commit share the next. Nobody is answered
before the commit that holds their entry returned; a batch that fails for a reason that is not
an outage (a refused value, a trigger) is written again one entry at a time, so one bad entry
fails only its own caller; an outage (:class:`~botmox_core.errors.ServiceUnavailableError`)
fails the whole batch at once rather than waiting out the pool timeout once per entry.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from botmox_core.errors import ServiceUnavailableError
from botmox_core.models import DownloadAuditEntry
from botmox_supabase.repositories import CODEC, insert_sql

__all__ = [
    "INSERT_AUDIT_BATCH_SQL",
    "INSERT_AUDIT_ONE_SQL",
    "MAX_BATCH",
    "AuditGroupCommit",
    "AuditWriter",
    "audit_insert",
    "stored_in_order",
]

log = logging.getLogger(__name__)

#: The most entries one statement carries (a larger queue is written in several, in turn).
MAX_BATCH = 256

AuditWriter = Callable[[Sequence[DownloadAuditEntry]], list[DownloadAuditEntry]]
"""Writes entries in one committed statement and returns them stored (with ids), in order;
raises a :class:`~botmox_core.errors.BotmoxError` when nothing of them was stored."""

_WAITING, _LEAD, _SETTLED = 0, 1, 2

#: The SQL type of each column an entry fills (``id`` is the table's identity).
_COLUMN_TYPES = {
    "tenant_id": "text",
    "event": "text",
    "result": "text",
    "created_at": "timestamptz",
    "reason_code": "text",
    "lease_id": "text",
    "user_id": "text",
    "vm_uuid": "text",
    "module": "text",
    "platform": "text",
    "channel": "text",
    "release_id": "bigint",
    "request_ip": "text",
    "url_expires_at": "timestamptz",
    "metadata": "jsonb",
}
_COLUMNS = tuple(name for name in CODEC.fields(DownloadAuditEntry) if name != "id")

#: Every entry of a batch in one statement of one shape whatever the batch's size (one array per
#: column), so it is parsed cheaply and, in ``session`` pooler mode, prepared once. The identity
#: is drawn row by row in the arrays' order, so the ids returned, sorted, are the entries' ids in
#: order (:func:`stored_in_order`).
INSERT_AUDIT_BATCH_SQL = (
    f"insert into botmox.download_audit ({', '.join(_COLUMNS)}) select * from unnest("  # noqa: S608 - fixed names
    + ", ".join(f"%s::{_COLUMN_TYPES[name]}[]" for name in _COLUMNS)
    + ") returning id"
)
#: A lone entry (no load: the common case) in a plain ``VALUES`` insert, which costs both sides
#: about half of a one-row :data:`INSERT_AUDIT_BATCH_SQL` (no arrays to build, send and unpack).
INSERT_AUDIT_ONE_SQL = f"{insert_sql('botmox.download_audit', _COLUMNS)} returning id"


def audit_insert(entries: Sequence[DownloadAuditEntry]) -> tuple[str, Any]:
    """The statement that inserts ``entries`` (returning their ids) and its parameters."""
    if len(entries) == 1:
        return INSERT_AUDIT_ONE_SQL, CODEC.record(entries[0])
    records = [CODEC.record(entry) for entry in entries]
    return INSERT_AUDIT_BATCH_SQL, [[record[name] for record in records] for name in _COLUMNS]


def stored_in_order(
    entries: Sequence[DownloadAuditEntry], ids: Sequence[int]
) -> list[DownloadAuditEntry]:
    """The entries as stored: each with the id the statement drew for it."""
    if len(ids) != len(entries):
        raise ServiceUnavailableError("the audit write returned the wrong number of rows")
    return [attrs.evolve(entry, id=id_) for entry, id_ in zip(entries, sorted(ids), strict=True)]


class _Slot:
    """One caller's entry and, once settled, its outcome."""

    __slots__ = ("entry", "error", "gate", "state", "stored")

    def __init__(self, entry: DownloadAuditEntry) -> None:
        self.entry = entry
        self.stored: DownloadAuditEntry | None = None
        self.error: BaseException | None = None
        self.state = _WAITING
        self.gate = threading.Lock()  # held until the caller may go on (settled or leading)
        self.gate.acquire()

    def settle(self, stored: DownloadAuditEntry | None, error: BaseException | None) -> None:
        self.stored, self.error, self.state = stored, error, _SETTLED


class AuditGroupCommit:
    """Appends download audit entries through ``write``, one statement for every entry that
    arrived while the previous statement ran (see the module's docstring).

    Args:
        write: the :data:`AuditWriter` (one committed ``INSERT`` of the entries given).
        max_batch: the most entries per statement.
    """

    def __init__(self, write: AuditWriter, *, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write = write
        self._max = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Slot] = []
        self._writing = False
        #: Entries per statement of the latest batches (for tests and benchmarks).
        self.batch_sizes: collections.deque[int] = collections.deque(maxlen=256)

    @property
    def queued(self) -> int:
        """How many entries wait for a leader to write them (the batch under way excluded)."""
        with self._lock:
            return len(self._queue)

    def append(self, entry: DownloadAuditEntry) -> DownloadAuditEntry:
        """Append ``entry`` and return it stored (with its id) once the commit holding it has
        returned; raise what kept it from being written (then it was not stored)."""
        slot = _Slot(entry)
        with self._lock:
            self._queue.append(slot)
            if not self._writing:
                self._writing = True
                slot.state = _LEAD
        if slot.state != _LEAD:
            slot.gate.acquire()  # until a leader settled the entry or handed over the lead
        if slot.state == _LEAD:
            self._lead(slot)
        if slot.error is not None:
            raise slot.error
        assert slot.stored is not None  # every batch settles each of its slots
        return slot.stored

    def _lead(self, own: _Slot) -> None:
        """Write the queue's first entries (``own`` among them: the leader is the queue's first
        when it takes the lead), settle each, wake their callers, hand the lead on."""
        with self._lock:
            batch = self._queue[: self._max]
            del self._queue[: self._max]
        try:
            self._commit(batch)
        finally:
            for slot in batch:  # interrupted (KeyboardInterrupt...): nothing known of the commit
                if slot.state != _SETTLED:
                    slot.settle(None, ServiceUnavailableError("the audit write was interrupted"))
            with self._lock:
                successor = self._queue[0] if self._queue else None
                if successor is None:
                    self._writing = False
                else:
                    successor.state = _LEAD
            for slot in batch:
                if slot is not own:  # a follower's gate is held until now (the leader's may not)
                    slot.gate.release()
            if successor is not None:
                successor.gate.release()

    def _commit(self, batch: list[_Slot]) -> None:
        self.batch_sizes.append(len(batch))
        try:
            stored = self._write([slot.entry for slot in batch])
        except Exception as exc:
            if len(batch) == 1 or isinstance(exc, ServiceUnavailableError):
                for slot in batch:
                    slot.settle(None, exc)
                return
            log.debug("an audit batch of %d failed (%s); writing each alone", len(batch), exc)
            for slot in batch:
                self._alone(slot)
            return
        for slot, entry in zip(batch, stored, strict=True):
            slot.settle(entry, None)

    def _alone(self, slot: _Slot) -> None:
        self.batch_sizes.append(1)
        try:
            (stored,) = self._write([slot.entry])
        except Exception as exc:
            slot.settle(None, exc)
        else:
            slot.settle(stored, None)
