"""The domain side of an RTDB unit of work (:class:`DomainWrites`): reads that see the unit's
writes, and the staging and commit of plain writes, conditional creates and compare-and-set
modifies (with per-location locks when a unit mixes them), as the package docstring
(:mod:`botmox_rtdb.domain_repositories`) describes."""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from botmox_core.domain.records import now_ms
from botmox_core.errors import ConflictError, DuplicateError, ServiceUnavailableError
from botmox_rtdb.domain_codec import LOCK_KEY, equivalent
from botmox_rtdb.domain_repositories.paths import DomainLayout
from botmox_rtdb.layout import check_depth
from botmox_rtdb.queries import query_string_value
from botmox_rtdb.sdk_errors import map_rtdb_errors
from botmox_rtdb.transactions import UNCHANGED
from botmox_rtdb.write_buffer import WriteBuffer, create_if_absent

__all__ = ["LOCK_TTL_MS", "DomainWrites", "as_children", "same_json"]

LOCK_TTL_MS = 15_000
"""How long a commit's lock holds a location; a modify waits at most this long for it."""

_INTEGER_KEY = re.compile(r"-?(0*)\d{1,10}", re.ASCII)


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


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON text (so ``1``, ``1.0`` and ``true`` differ)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _pause(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** min(attempt, 6))))  # noqa: S311


def as_children(found: Any) -> dict[str, Any]:
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
            if path.startswith(prefix) and "/" not in path[len(prefix) :]:
                found[path[len(prefix) :]] = guarded.new
        for path in self._deleted:
            if path.startswith(prefix) and "/" not in path[len(prefix) :]:
                found[path[len(prefix) :]] = None
        return found

    def children(self, parent: str, operation: str) -> dict[str, Any]:
        """Every child of ``parent`` (one read of the whole node), with this unit's writes."""
        with map_rtdb_errors(operation):
            children = as_children(self.buffer.ref(parent).get())
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
        return list(as_children(found))

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
                query = (
                    self.buffer.ref(parent)
                    .order_by_key()
                    .start_at(query_string_value(ordered[0]))
                    .end_at(query_string_value(ordered[-1]))
                )
                for key, value in as_children(query.get()).items():
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

    def replace(self, path: str, value: Any) -> None:
        """Stage ``value`` at ``path`` whatever is there (create or replace): a plain write for
        the unit's multi-path update, superseding a modify or delete this unit staged there. A
        create this unit staged there (an ``add``) now creates ``value`` instead, still refused
        at commit if a racing writer took the location."""
        conditional = self.buffer.pending_conditional(path)
        if conditional is None or self.buffer.has_plain_write(path):
            self.stage_write(path, value)
        if conditional is not None:
            conditional.pending_value = value

    def stage_create(
        self, path: str, value: Any, on_exists: Callable[[], DuplicateError], description: str
    ) -> None:
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

    def _loop(
        self,
        item: _Guarded,
        attempt_write: Callable[[Any, str], tuple[bool, Any, str]],
        operation: str,
    ) -> None:
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
            self._loop(
                attempt_write=attempt,
                operation="unlock",
                item=attrs.evolve(item, base=current, etag=etag),
            )
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
