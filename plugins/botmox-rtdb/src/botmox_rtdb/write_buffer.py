"""The write buffer of an RTDB unit of work: pending writes, reads that see them, the commit.

RTDB has no multi-location transaction, so a :class:`WriteBuffer` keeps two kinds of pending
writes:

* **plain writes** (:meth:`WriteBuffer.stage_write`): applied at commit as **one multi-path
  ``update()``**, which RTDB applies atomically — all or none;
* **conditional writes** (:class:`ConditionalWrite`, made by :func:`create_if_absent` and
  :func:`insert_child`): each applied at commit as its own ETag-conditional transaction, which
  re-checks the condition against the latest data. They run before the plain update, in the
  order they were staged. If one fails, the conditional writes this commit already made are
  undone (each again by a conditional transaction), nothing of the plain update is written, and
  the error is raised.

Before anything is written, every pending value is checked against RTDB's 32-level depth limit,
so a value the database would refuse fails the commit with no write at all. Reads through the
buffer see its pending writes. The repositories of :mod:`botmox_rtdb.repositories` stage their
writes here; :class:`~botmox_rtdb.unit_of_work.RtdbUnitOfWork` composes them over one buffer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import firebase_admin
from firebase_admin import db

from botmox_core.errors import BotmoxError
from botmox_rtdb.layout import check_depth, url_path
from botmox_rtdb.records import children_of
from botmox_rtdb.sdk_errors import map_rtdb_errors
from botmox_rtdb.transactions import UNCHANGED, run_transaction

__all__ = ["ConditionalWrite", "WriteBuffer", "create_if_absent", "insert_child"]


class ConditionalWrite:
    """One pending conditional write: ``apply(current)`` returns the new value at ``path`` (or
    raises, e.g. :class:`~botmox_core.errors.DuplicateError`); ``undo(current)`` returns the
    value that reverses it (``{}`` deletes) or ``UNCHANGED``. ``pending_value`` is what reads in
    the same unit see at ``record_path``."""

    def __init__(
        self,
        path: str,
        apply: Callable[[Any], Any],
        undo: Callable[[Any], Any],
        record_path: str,
        pending_value: Any,
        description: str,
    ) -> None:
        self.path = path
        self.apply = apply
        self.undo = undo
        self.record_path = record_path
        self.pending_value = pending_value
        self.description = description


class WriteBuffer:
    """The pending writes of one unit of work on one firebase-admin app."""

    def __init__(self, app: firebase_admin.App) -> None:
        self.app = app
        self._writes: dict[str, Any] = {}
        self._conditional: list[ConditionalWrite] = []

    def ref(self, path: str) -> db.Reference:
        """A reference to ``path`` (keys as they are) in this backend's database; the keys are
        percent-encoded for the URL (:func:`~botmox_rtdb.layout.url_path`)."""
        return db.reference(url_path(path), app=self.app)

    def read(self, path: str) -> Any:
        """The value at ``path`` as this unit sees it: its pending write, else the database."""
        for conditional in reversed(self._conditional):
            if conditional.record_path == path:
                return conditional.pending_value
        if path in self._writes:
            return self._writes[path]
        with map_rtdb_errors(f"read {_collection(path)}"):
            return self.ref(path).get()

    def pending_children(self, parent: str) -> dict[str, Any]:
        """Pending plain and conditional writes directly below ``parent``, by key."""
        prefix = parent + "/"
        found: dict[str, Any] = {}
        for path, value in self._writes.items():
            if path.startswith(prefix) and "/" not in path[len(prefix):]:
                found[path[len(prefix):]] = value
        for conditional in self._conditional:
            path = conditional.record_path
            if path.startswith(prefix) and "/" not in path[len(prefix):]:
                found[path[len(prefix):]] = conditional.pending_value
        return found

    def stage_write(self, path: str, value: Any) -> None:
        """Buffer a plain write of ``value`` (a record) at ``path`` for the commit
        (:class:`~botmox_core.errors.BadRequestError` now if it is deeper than RTDB allows)."""
        check_depth(path, value, _collection(path))
        self._writes[path] = value

    def has_plain_write(self, path: str) -> bool:
        """Whether a plain write (a value or a delete) is pending at exactly ``path``."""
        return path in self._writes

    def stage_conditional(self, write: ConditionalWrite) -> None:
        """Buffer a conditional write for the commit."""
        self._conditional.append(write)

    def pending_conditional(self, record_path: str) -> ConditionalWrite | None:
        """The latest pending conditional write for ``record_path``, if any."""
        for conditional in reversed(self._conditional):
            if conditional.record_path == record_path:
                return conditional
        return None

    def commit(self) -> None:
        """Apply the conditional writes, then every plain write in one atomic update."""
        conditional, writes = self._conditional, self._writes
        self._conditional, self._writes = [], {}
        for write in conditional:  # values may have changed since staged: check all, write none
            check_depth(write.record_path, write.pending_value, write.description)
        for path, value in writes.items():
            check_depth(path, value, _collection(path))
        done: list[ConditionalWrite] = []
        try:
            for write in conditional:
                run_transaction(self.ref(write.path), write.apply, write.description)
                done.append(write)
            if writes:
                with map_rtdb_errors("commit"):
                    self.ref("/").update(writes)
        except BotmoxError:
            self._undo(done)
            raise

    def _undo(self, done: list[ConditionalWrite]) -> None:
        for write in reversed(done):
            try:
                run_transaction(self.ref(write.path), write.undo, f"undo {write.description}")
            except BotmoxError:
                continue  # best effort: the original error is what the caller needs

    def is_empty(self) -> bool:
        """Whether nothing is pending."""
        return not self._writes and not self._conditional

    def discard(self) -> None:
        """Drop every pending write."""
        self._conditional, self._writes = [], {}


def _collection(path: str) -> str:
    """What a record path holds, for messages: its parent's key (``vm_registry``...)."""
    return path.split("/")[-2] if "/" in path else path


def create_if_absent(record_path: str, value: Any, on_exists: Callable[[], BotmoxError],
                     description: str) -> ConditionalWrite:
    """A conditional write creating a record at ``record_path`` unless something is there.

    The value written is the write's ``pending_value`` at commit time, so changes made to the
    pending record within the unit (a lease modified before commit) are what gets created.
    """
    write = ConditionalWrite(record_path, lambda current: None, lambda current: None,
                             record_path, value, description)

    def apply(current: Any) -> Any:
        if current is not None:
            raise on_exists()
        return write.pending_value

    def undo(current: Any) -> Any:
        return {} if current == write.pending_value else UNCHANGED

    write.apply, write.undo = apply, undo
    return write


def insert_child(parent: str, key: str, value: Any, check: Callable[[dict[str, Any]], None],
                 description: str) -> ConditionalWrite:
    """A conditional write adding child ``key`` to the object at ``parent`` after ``check``
    (which raises to refuse) has seen every existing child."""

    def apply(current: Any) -> Any:
        children = dict(children_of(current))
        check(children)
        children[key] = value
        return children

    def undo(current: Any) -> Any:
        children = dict(children_of(current))
        if children.get(key) != value:
            return UNCHANGED
        del children[key]
        return children

    return ConditionalWrite(parent, apply, undo, f"{parent}/{key}", value, description)
