"""The domain repositories (records, bot history, finance aggregates, settings) on RTDB.

Layout — the seed's paths, below a tenant's base (:class:`DomainLayout`)::

    bots/{id}                          resources/{licenses,proxies,subscriptions}/{id}
    workspace/notes_v2/{id}            workspace/calendar_events/{id}
    workspace/kanban_tasks/{id}        finance/operations/{id}
    finance/daily_stats                finance/gold_price_history
    settings                           (the whole settings tree)
    logs/bot_lifecycle/{id}            archive/{id}

The base is the database root for the one configured *legacy tenant* (option ``legacy_tenant``),
so an existing Bot-Mox database is used as it is, and ``tenants/{tenant}`` for every other
tenant (beside the runner paths of :mod:`botmox_rtdb.layout`, which use other names). Values go
through :mod:`botmox_rtdb.domain_codec`, so what RTDB would change (nulls, empty objects and
arrays, big integers, ``1.0``) reads back exactly.

Writes are staged in the unit of work and applied at commit:

* ``add``: a conditional create (ETag transaction) that refuses an existing id;
* ``delete``, ``append_log``, ``append_archive``, ``aggregates.put``: plain writes, applied in
  the unit's one multi-path ``update()`` (atomic);
* ``records.modify`` and ``settings.modify``: read now with the location's ETag, applied at
  commit by compare-and-set. A unit whose only writes are such modifies writes each with
  ``set_if_unchanged``; on a conflict the change runs again on the value that won (no update is
  lost). A unit that also has other writes (a ban: bot, archive entry, log entry) first *locks*
  each modified location by compare-and-set (:data:`~botmox_rtdb.domain_codec.LOCK_KEY`,
  refused with 409 ``CONFLICT`` if the value changed since it was read), then writes the new
  values together with every other write in the one multi-path update — all or nothing — which
  also removes the locks. Modifies wait for a live lock (at most :data:`LOCK_TTL_MS`); a lock
  left by a crashed server expires.

Listing reads the tenant's collection and applies
:func:`~botmox_core.domain.listing.apply_query` in memory (RTDB cannot filter by substring or
order by the type ranks on the server); without ``q`` and ``sort`` only the keys are read
(shallow) and the page's records are fetched by key ranges.
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from botmox_core.domain.listing import ListPage, ListQuery, apply_query
from botmox_core.domain.records import (
    AggregateKey,
    ArchiveEntry,
    Collection,
    DomainRecord,
    LifecycleLogEntry,
    now_ms,
)
from botmox_core.errors import (
    BadRequestError,
    ConflictError,
    DuplicateError,
    ServiceUnavailableError,
)
from botmox_core.ports.modify import checked_change
from botmox_rtdb.domain_codec import LOCK_KEY, decode, encode, equivalent
from botmox_rtdb.layout import TENANTS, check_depth, checked_key
from botmox_rtdb.repositories import query_string_value
from botmox_rtdb.sdk_errors import map_rtdb_errors
from botmox_rtdb.transactions import UNCHANGED
from botmox_rtdb.write_buffer import WriteBuffer, create_if_absent

__all__ = [
    "AGGREGATE_PATHS",
    "ARCHIVE",
    "COLLECTION_PATHS",
    "DOMAIN_ROOTS",
    "LIFECYCLE_LOG",
    "LOCK_TTL_MS",
    "SETTINGS",
    "DomainLayout",
    "DomainWrites",
    "RtdbAggregateRepository",
    "RtdbBotHistoryRepository",
    "RtdbRecordRepository",
    "RtdbSettingsRepository",
]

COLLECTION_PATHS: dict[Collection, str] = {
    Collection.LICENSES: "resources/licenses",
    Collection.PROXIES: "resources/proxies",
    Collection.SUBSCRIPTIONS: "resources/subscriptions",
    Collection.NOTES: "workspace/notes_v2",
    Collection.CALENDAR: "workspace/calendar_events",
    Collection.KANBAN: "workspace/kanban_tasks",
    Collection.BOTS: "bots",
    Collection.FINANCE_OPERATIONS: "finance/operations",
}
AGGREGATE_PATHS: dict[AggregateKey, str] = {
    AggregateKey.DAILY_STATS: "finance/daily_stats",
    AggregateKey.GOLD_PRICE_HISTORY: "finance/gold_price_history",
}
LIFECYCLE_LOG = "logs/bot_lifecycle"
ARCHIVE = "archive"
SETTINGS = "settings"
#: The first keys of every domain path (below a tenant's base).
DOMAIN_ROOTS = frozenset({"bots", "resources", "workspace", "finance", "settings", "logs",
                          "archive"})

LOCK_TTL_MS = 15_000
"""How long a commit's lock holds a location; a modify waits at most this long for it."""

_INTEGER_KEY = re.compile(r"-?(0*)\d{1,10}", re.ASCII)


@attrs.frozen
class DomainLayout:
    """Where a tenant's domain data lives: the root for ``legacy_tenant``, else
    ``tenants/{tenant}``."""

    legacy_tenant: str | None = None

    def base(self, tenant_id: str) -> str:
        """The tenant's base path (``""``: the root)."""
        checked_key(tenant_id, "tenant_id")
        return "" if tenant_id == self.legacy_tenant else f"{TENANTS}/{tenant_id}"

    def path(self, tenant_id: str, relative: str, *keys: str) -> str:
        """``relative`` (and ``keys``, which must already be checked) below the tenant's base."""
        return "/".join(part for part in (self.base(tenant_id), relative, *keys) if part)


@attrs.define
class _Guarded:
    """A modify staged for commit: the value read with its ETag, the new value, and the step
    that computes a new value from any current one (run again after a conflict)."""

    path: str
    etag: str
    base: Any
    new: Any
    step: Callable[[Any], Any]


class _Retry(Exception):
    """Raised inside a compare-and-set loop: the location is locked; read again later."""


def _live_lock(value: Any, token: str | None = None) -> bool:
    lock = value.get(LOCK_KEY) if isinstance(value, dict) else None
    if not isinstance(lock, dict):
        return False
    until = lock.get("until")
    live = isinstance(until, int | float) and until > now_ms()
    return live and (token is None or lock.get("token") != token)


def _same_json(a: Any, b: Any) -> bool:
    """Equal as JSON text (so ``1``, ``1.0`` and ``true`` differ)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _pause(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** min(attempt, 6))))  # noqa: S311


def _as_children(found: Any) -> dict[str, Any]:
    """A collection's children by key: firebase-admin returns an object, or an array when all
    keys are array indexes."""
    if isinstance(found, dict):
        return {str(key): value for key, value in found.items() if value is not None}
    if isinstance(found, list):
        return {str(index): value for index, value in enumerate(found) if value is not None}
    return {}


def _rtdb_key_order(key: str) -> tuple[Any, ...]:
    """RTDB's key order: 32-bit integer keys first, numerically, then the rest in UTF-16 order."""
    if _INTEGER_KEY.fullmatch(key) and -(2**31) <= int(key) < 2**31:
        return (0, int(key), len(key))
    return (1, key.encode("utf-16-be", "surrogatepass"))


class DomainWrites:
    """The domain side of one unit of work: the staged modifies and deletes, over the unit's
    :class:`~botmox_rtdb.write_buffer.WriteBuffer` (which holds every other write)."""

    def __init__(self, buffer: WriteBuffer, layout: DomainLayout) -> None:
        self.buffer = buffer
        self.layout = layout
        self._guarded: dict[str, _Guarded] = {}
        self._deleted: set[str] = set()

    # reads ------------------------------------------------------------------------------

    def read(self, path: str) -> Any:
        """The raw value at ``path`` as this unit sees it."""
        if path in self._deleted:
            return None
        if path in self._guarded:
            return self._guarded[path].new
        return self.buffer.read(path)

    def pending_under(self, parent: str) -> dict[str, Any]:
        """Staged values directly below ``parent`` (``None``: deleted)."""
        found = self.buffer.pending_children(parent)
        prefix = parent + "/"
        for path, guarded in self._guarded.items():
            if path.startswith(prefix) and "/" not in path[len(prefix):]:
                found[path[len(prefix):]] = guarded.new
        for path in self._deleted:
            if path.startswith(prefix) and "/" not in path[len(prefix):]:
                found[path[len(prefix):]] = None
        return found

    def children(self, parent: str, operation: str) -> dict[str, Any]:
        """Every child of ``parent`` (one read of the whole node), with this unit's writes."""
        with map_rtdb_errors(operation):
            children = _as_children(self.buffer.ref(parent).get())
        for key, value in self.pending_under(parent).items():
            if value is None:
                children.pop(key, None)
            else:
                children[key] = value
        return children

    def keys(self, parent: str, operation: str) -> list[str]:
        """The keys below ``parent`` (a shallow read)."""
        with map_rtdb_errors(operation):
            found = self.buffer.ref(parent).get(shallow=True)
        return list(_as_children(found))

    def fetch(self, parent: str, keys: Sequence[str], operation: str) -> dict[str, Any]:
        """The children ``keys`` of ``parent``: one ``orderByKey`` range query for the integer
        keys and one for the others (RTDB's key order), then single reads for any missed."""
        wanted = set(keys)
        found: dict[str, Any] = {}
        integers = [key for key in keys if _rtdb_key_order(key)[0] == 0]
        others = [key for key in keys if _rtdb_key_order(key)[0] == 1]
        with map_rtdb_errors(operation):
            for group in (integers, others):
                if not group:
                    continue
                ordered = sorted(group, key=_rtdb_key_order)
                query = (self.buffer.ref(parent).order_by_key()
                         .start_at(query_string_value(ordered[0]))
                         .end_at(query_string_value(ordered[-1])))
                for key, value in _as_children(query.get()).items():
                    if key in wanted:
                        found[key] = value
            for key in wanted - found.keys():
                value = self.buffer.ref(f"{parent}/{key}").get()
                if value is not None:
                    found[key] = value
        return found

    # writes -----------------------------------------------------------------------------

    def stage_write(self, path: str, value: Any) -> None:
        """A plain write (``None`` deletes) for the unit's multi-path update."""
        self._guarded.pop(path, None)
        if value is None:
            self._deleted.add(path)
        else:
            self._deleted.discard(path)
        self.buffer.stage_write(path, value)

    def stage_create(self, path: str, value: Any, on_exists: Callable[[], DuplicateError],
                     description: str) -> None:
        """A conditional create: refused at commit if something is at ``path`` by then."""
        check_depth(path, value, description)
        self._deleted.discard(path)
        self.buffer.stage_conditional(create_if_absent(path, value, on_exists, description))

    def modify(self, path: str, step: Callable[[Any], Any], what: str) -> Any:
        """Stage ``step(current)`` at ``path`` (see the module docstring); ``step`` returns
        the new raw value or ``UNCHANGED`` and may raise to abort. Returns the raw value the
        unit now sees."""
        if path in self._deleted:
            return None
        guarded = self._guarded.get(path)
        if guarded is not None:
            new = step(guarded.new)
            if new is UNCHANGED:
                return guarded.new
            check_depth(path, new, what)
            guarded.new, guarded.step = new, _chain(guarded.step, step)
            return new
        conditional = self.buffer.pending_conditional(path)
        if conditional is not None:
            new = step(conditional.pending_value)
            if new is not UNCHANGED:
                check_depth(path, new, what)
                conditional.pending_value = new
                return new
            return conditional.pending_value
        parent, _, key = path.rpartition("/")
        if key in self.buffer.pending_children(parent):
            current = self.buffer.read(path)
            new = step(current)
            if new is UNCHANGED:
                return current
            self.stage_write(path, new)
            return new
        with map_rtdb_errors(f"read {what}"):
            current, etag = self.buffer.ref(path).get(etag=True)
        new = step(current)
        if new is UNCHANGED:
            return current
        check_depth(path, new, what)
        self._guarded[path] = _Guarded(path, etag, current, new, step)
        return new

    # commit -----------------------------------------------------------------------------

    def commit(self) -> None:
        """Apply the unit: the buffer's writes, and the staged modifies (module docstring)."""
        guarded = sorted(self._guarded.values(), key=lambda item: item.path)
        self._guarded, self._deleted = {}, set()
        if not guarded:
            self.buffer.commit()
        elif self.buffer.is_empty():
            for item in guarded:
                self._compare_and_set(item)
        else:
            self._commit_locked(guarded)

    def discard(self) -> None:
        """Drop the staged modifies and deletes (the buffer is discarded by the unit)."""
        self._guarded, self._deleted = {}, set()

    def _loop(self, item: _Guarded, attempt_write: Callable[[Any, str], tuple[bool, Any, str]],
              operation: str) -> None:
        """Run compare-and-set attempts on ``item.path`` until one writes (or decides not to):
        ``attempt_write(current, etag)`` returns ``(done, current, etag)`` or raises
        :class:`_Retry` to wait for a lock."""
        ref = self.buffer.ref(item.path)
        current, etag = item.base, item.etag
        deadline = time.monotonic() + LOCK_TTL_MS / 1000 + 5
        attempt = 0
        with map_rtdb_errors(operation):
            while time.monotonic() < deadline:
                try:
                    done, current, etag = attempt_write(current, etag)
                except _Retry:
                    _pause(attempt + 3)
                    current, etag = ref.get(etag=True)
                    done = False
                if done:
                    return
                attempt += 1
                _pause(attempt)
        raise ServiceUnavailableError(f"RTDB {operation} kept conflicting; try again")

    def _compare_and_set(self, item: _Guarded) -> None:
        ref = self.buffer.ref(item.path)
        first = [True]

        def attempt(current: Any, etag: str) -> tuple[bool, Any, str]:
            fresh, first[0] = not first[0], False
            if _live_lock(current):
                raise _Retry
            new = item.step(current) if fresh else item.new
            if new is UNCHANGED:
                return True, current, etag
            check_depth(item.path, new, "modify")
            written, current, etag = ref.set_if_unchanged(etag, new)
            return written, current, etag

        self._loop(item, attempt, f"modify {item.path.rpartition('/')[0] or item.path}")

    def _commit_locked(self, guarded: list[_Guarded]) -> None:
        token = uuid.uuid4().hex
        locked: list[_Guarded] = []
        try:
            for item in guarded:
                self._lock(item, token)
                locked.append(item)
            for item in guarded:
                self.buffer.stage_write(item.path, item.new)
            self.buffer.commit()
        except BaseException:
            self.buffer.discard()
            for item in reversed(locked):
                self._unlock(item, token)
            raise

    def _lock(self, item: _Guarded, token: str) -> None:
        ref = self.buffer.ref(item.path)
        base = _unlocked(item.base)

        def attempt(current: Any, etag: str) -> tuple[bool, Any, str]:
            if _live_lock(current, token):
                raise _Retry
            if not equivalent(_unlocked(current), base):
                raise ConflictError(
                    "the record changed while this request was applied; try again",
                    details={"path": item.path.rpartition("/")[2]},
                )
            fields = dict(current) if isinstance(current, dict) else {"value": current}
            fields[LOCK_KEY] = {"token": token, "until": now_ms() + LOCK_TTL_MS}
            written, current, etag = ref.set_if_unchanged(etag, fields)
            return written, current, etag

        self._loop(item, attempt, "lock")

    def _unlock(self, item: _Guarded, token: str) -> None:
        ref = self.buffer.ref(item.path)
        original = item.base

        def attempt(current: Any, etag: str) -> tuple[bool, Any, str]:
            lock = current.get(LOCK_KEY) if isinstance(current, dict) else None
            if not isinstance(lock, dict) or lock.get("token") != token:
                return True, current, etag
            restored = _unlocked(current) if isinstance(original, dict) else original
            written, current, etag = ref.set_if_unchanged(etag, restored)
            return written, current, etag

        try:
            with map_rtdb_errors("unlock"):
                current, etag = ref.get(etag=True)
            self._loop(attempt_write=attempt, operation="unlock",
                       item=attrs.evolve(item, base=current, etag=etag))
        except Exception:  # best effort: the lock expires anyway
            return


def _unlocked(value: Any) -> Any:
    if isinstance(value, dict) and LOCK_KEY in value:
        return {key: member for key, member in value.items() if key != LOCK_KEY}
    return value


def _chain(first: Callable[[Any], Any], second: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def both(current: Any) -> Any:
        middle = first(current)
        out = second(current if middle is UNCHANGED else middle)
        return middle if out is UNCHANGED else out

    return both


class RtdbRecordRepository:
    """The record collections at the seed's paths (:data:`COLLECTION_PATHS`)."""

    def __init__(self, writes: DomainWrites) -> None:
        self._writes = writes

    def _parent(self, tenant_id: str, collection: Collection) -> str:
        return self._writes.layout.path(tenant_id, COLLECTION_PATHS[Collection(collection)])

    def _path(self, tenant_id: str, collection: Collection, record_id: str) -> str:
        return f"{self._parent(tenant_id, collection)}/{checked_key(record_id, 'id')}"

    def get(self, tenant_id: str, collection: Collection, record_id: str) -> DomainRecord | None:
        """The record, or ``None``."""
        raw = self._writes.read(self._path(tenant_id, collection, record_id))
        if raw is None:
            return None
        return DomainRecord(tenant_id, Collection(collection), record_id, decode(raw))

    def add(self, record: DomainRecord) -> DomainRecord:
        """Stage a new record; :class:`DuplicateError` now, or at commit if a racing writer
        took the id first."""
        path = self._path(record.tenant_id, record.collection, record.id)

        def exists() -> DuplicateError:
            return DuplicateError(f"record {record.id!r} exists", details={"id": record.id})

        if self._writes.read(path) is not None:
            raise exists()
        self._writes.stage_create(path, encode(record.data, "record"), exists, "add record")
        return record

    def modify(
        self,
        tenant_id: str,
        collection: Collection,
        record_id: str,
        change: Callable[[DomainRecord], DomainRecord],
    ) -> DomainRecord | None:
        """Stage ``change(current)``, applied at commit by compare-and-set (module docstring);
        ``None`` when absent. An unchanged record is not written."""
        path = self._path(tenant_id, collection, record_id)
        collection = Collection(collection)
        result: list[DomainRecord] = []

        def step(raw: Any) -> Any:
            result.clear()
            if raw is None:
                return UNCHANGED
            current = DomainRecord(tenant_id, collection, record_id, decode(raw))
            changed = checked_change(current, change)
            if changed.collection != current.collection:
                raise BadRequestError("a domain record change must not alter its collection")
            result.append(changed)
            if _same_json(dict(changed.data), dict(current.data)):
                return UNCHANGED
            return encode(changed.data, "record")

        self._writes.modify(path, step, "record")
        return result[0] if result else None

    def delete(self, tenant_id: str, collection: Collection, record_id: str) -> bool:
        """Stage the removal; whether the record existed."""
        path = self._path(tenant_id, collection, record_id)
        if self._writes.read(path) is None:
            return False
        self._writes.stage_write(path, None)
        return True

    def _records(self, tenant_id: str, collection: Collection,
                 raw: Mapping[str, Any]) -> list[DomainRecord]:
        return [DomainRecord(tenant_id, collection, key, decode(value))
                for key, value in raw.items()]

    def list(self, tenant_id: str, collection: Collection, query: ListQuery) -> ListPage:
        """One page, as :func:`apply_query` defines it. With ``q`` or ``sort`` (other than
        ``id``) the whole collection is read and filtered and ordered in memory; otherwise
        only its keys are read and the page's records fetched."""
        collection = Collection(collection)
        parent = self._parent(tenant_id, collection)
        by_id = query.q is None and query.sort in (None, "id")
        if not by_id or self._writes.pending_under(parent):
            children = self._writes.children(parent, "list records")
            return apply_query(self._records(tenant_id, collection, children), query)
        keys = sorted(self._writes.keys(parent, "list records"), reverse=query.descending)
        page = keys[query.offset: query.offset + query.limit]
        fetched = self._writes.fetch(parent, page, "list records") if page else {}
        records = [DomainRecord(tenant_id, collection, key, decode(fetched[key]))
                   for key in page if key in fetched]
        return ListPage(records, len(keys))

    def scan(
        self, tenant_id: str, collection: Collection, *, after: str | None = None, limit: int = 500
    ) -> Sequence[DomainRecord]:
        """Up to ``limit`` records after ``after`` in id (code point) order: a shallow read of
        the keys, then the page fetched by key ranges."""
        collection = Collection(collection)
        if limit <= 0:
            return []
        parent = self._parent(tenant_id, collection)
        if self._writes.pending_under(parent):
            children = self._writes.children(parent, "scan records")
            ids = sorted(key for key in children if after is None or key > after)[:limit]
            return [DomainRecord(tenant_id, collection, key, decode(children[key])) for key in ids]
        keys = sorted(key for key in self._writes.keys(parent, "scan records")
                      if after is None or key > after)[:limit]
        fetched = self._writes.fetch(parent, keys, "scan records") if keys else {}
        return [DomainRecord(tenant_id, collection, key, decode(fetched[key]))
                for key in keys if key in fetched]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _millis(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value and abs(value) < 2**63:
        return int(value)
    return 0


def _object(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


class RtdbBotHistoryRepository:
    """The lifecycle log at ``logs/bot_lifecycle/{id}`` and the ban archive at
    ``archive/{id}`` (indexed on ``bot_id``)."""

    def __init__(self, writes: DomainWrites) -> None:
        self._writes = writes

    def append_log(self, entry: LifecycleLogEntry) -> None:
        """Stage the entry for the unit's multi-path update."""
        path = self._writes.layout.path(entry.tenant_id, LIFECYCLE_LOG,
                                        checked_key(entry.id, "log entry id"))
        value = {"id": entry.id, "bot_id": entry.bot_id, "type": entry.type,
                 "message": entry.message, "details": dict(entry.details),
                 "timestamp": entry.timestamp}
        self._writes.stage_write(path, encode(value, "lifecycle log entry"))

    def append_archive(self, entry: ArchiveEntry) -> None:
        """Stage the entry for the unit's multi-path update."""
        path = self._writes.layout.path(entry.tenant_id, ARCHIVE,
                                        checked_key(entry.id, "archive entry id"))
        value = {"id": entry.id, "bot_id": entry.bot_id, "reason": entry.reason,
                 "archived_at": entry.archived_at, "ban_details": dict(entry.ban_details),
                 "snapshot": dict(entry.snapshot)}
        self._writes.stage_write(path, encode(value, "archive entry"))

    def _entries(self, tenant_id: str, relative: str, bot_id: str | None,
                 operation: str) -> dict[str, dict[str, Any]]:
        parent = self._writes.layout.path(tenant_id, relative)
        if bot_id is None:
            raw = self._writes.children(parent, operation)
        else:
            with map_rtdb_errors(operation):
                raw = _as_children(self._writes.buffer.ref(parent).order_by_child("bot_id")
                                   .equal_to(query_string_value(bot_id)).get())
            for key, value in self._writes.pending_under(parent).items():
                if value is None:
                    raw.pop(key, None)
                else:
                    raw[key] = value
        entries = {key: decode(value) for key, value in raw.items()}
        return {key: entry for key, entry in entries.items()
                if bot_id is None or entry.get("bot_id") == bot_id}

    def log(
        self,
        tenant_id: str,
        bot_id: str | None = None,
        *,
        limit: int = 500,
        after: tuple[int, str] | None = None,
    ) -> Sequence[LifecycleLogEntry]:
        """Entries of the tenant (of one bot: an ``orderByChild`` query), oldest first."""
        found = [
            LifecycleLogEntry(tenant_id, key, _text(entry.get("bot_id")), _text(entry.get("type")),
                              _text(entry.get("message")), _millis(entry.get("timestamp")),
                              _object(entry.get("details")))
            for key, entry in self._entries(tenant_id, LIFECYCLE_LOG, bot_id, "read lifecycle log")
            .items()
        ]
        found.sort(key=lambda entry: (entry.timestamp, entry.id))
        if after is not None:
            found = [entry for entry in found if (entry.timestamp, entry.id) > after]
        return found[:max(limit, 0)]

    def archive(
        self,
        tenant_id: str,
        bot_id: str | None = None,
        *,
        limit: int = 500,
        after: tuple[int, str] | None = None,
    ) -> Sequence[ArchiveEntry]:
        """Archive entries of the tenant (of one bot), oldest first."""
        found = [
            ArchiveEntry(tenant_id, key, _text(entry.get("bot_id")),
                         _text(entry.get("reason")), _millis(entry.get("archived_at")),
                         _object(entry.get("ban_details")), _object(entry.get("snapshot")))
            for key, entry in self._entries(tenant_id, ARCHIVE, bot_id, "read archive").items()
        ]
        found.sort(key=lambda entry: (entry.archived_at, entry.id))
        if after is not None:
            found = [entry for entry in found if (entry.archived_at, entry.id) > after]
        return found[:max(limit, 0)]


class RtdbAggregateRepository:
    """Finance aggregates at ``finance/daily_stats`` and ``finance/gold_price_history``."""

    def __init__(self, writes: DomainWrites) -> None:
        self._writes = writes

    def _path(self, tenant_id: str, key: AggregateKey) -> str:
        return self._writes.layout.path(tenant_id, AGGREGATE_PATHS[AggregateKey(key)])

    def get(self, tenant_id: str, key: AggregateKey) -> Mapping[str, Any] | None:
        """The stored object, or ``None``."""
        raw = self._writes.read(self._path(tenant_id, key))
        return None if raw is None else decode(raw)

    def put(self, tenant_id: str, key: AggregateKey, value: Mapping[str, Any]) -> None:
        """Stage the object (replacing the stored one) for the unit's multi-path update."""
        self._writes.stage_write(self._path(tenant_id, key), encode(value, "aggregate"))


class RtdbSettingsRepository:
    """The settings tree at ``settings``, modified by compare-and-set on that node."""

    def __init__(self, writes: DomainWrites) -> None:
        self._writes = writes

    def get(self, tenant_id: str) -> Mapping[str, Any] | None:
        """The whole tree, or ``None``."""
        raw = self._writes.read(self._writes.layout.path(tenant_id, SETTINGS))
        return None if raw is None else decode(raw)

    def modify(
        self, tenant_id: str, change: Callable[[Mapping[str, Any]], Mapping[str, Any]]
    ) -> Mapping[str, Any]:
        """Stage ``change(current)`` (``{}`` when absent), applied at commit by
        compare-and-set on the settings node; returns the new tree."""
        path = self._writes.layout.path(tenant_id, SETTINGS)
        result: list[dict[str, Any]] = []

        def step(raw: Any) -> Any:
            current = {} if raw is None else decode(raw)
            new = change(current)
            if not isinstance(new, Mapping):
                raise BadRequestError("a settings change must return an object")
            result[:] = [dict(new)]
            if raw is not None and _same_json(dict(new), current):
                return UNCHANGED
            return encode(new, "settings")

        self._writes.modify(path, step, "settings")
        return result[0]

