"""Repository port of the deployment's control entries: small JSON objects every replica of a
deployment shares through its data backend, outside any tenant.

They hold what operators set for a whole deployment and what tools coordinate on:

* ``writes_frozen`` — the cutover's write freeze (:mod:`botmox_server.freeze` reads it; every
  replica sees a change within its poll interval);
* ``migration_lock`` — the one migration writing into this backend (:mod:`botmox_core.migration`);
* ``migration_checkpoint`` — where a stopped migration into this backend goes on.

A backend supports them when its units of work carry ``control``
(:class:`ControlUnitOfWork`) and it declares ``capabilities.control``; :func:`supports_control`
reads that declaration. ``modify`` is atomic for its one entry on every backend (SQLite's write
lock, ``FOR UPDATE`` on PostgreSQL, an RTDB transaction applied at once), so two tools racing
for the lock never both win.

:meth:`ControlRepository.tenants` lists the tenants that hold data: the one read that crosses
tenants, for operators' tools (migration, parity) only; the server never calls it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeGuard, runtime_checkable

from botmox_core.ports.repositories import DataBackend, UnitOfWork

__all__ = [
    "CONTROL_KEY_PATTERN",
    "ControlDataBackend",
    "ControlRepository",
    "ControlUnitOfWork",
    "supports_control",
]

#: Control keys: 1-64 lower-case letters, digits, ``_`` and ``-`` (a key on every backend).
CONTROL_KEY_PATTERN = re.compile(r"[a-z0-9_-]{1,64}", re.ASCII)


class ControlRepository(Protocol):
    """The deployment's control entries (one JSON object per key)."""

    def get(self, key: str) -> Mapping[str, Any] | None:
        """The entry, or ``None``."""

    def modify(
        self, key: str, change: Callable[[Mapping[str, Any] | None], Mapping[str, Any] | None]
    ) -> Mapping[str, Any] | None:
        """Atomically replace the entry with ``change(current)`` (``current`` is ``None`` when
        absent; a ``None`` result deletes the entry) and return the new value. ``change`` may
        raise to abort (nothing written) and must be a pure function of its input (backends
        may call it again on conflict). Written at once, not at the unit's commit, on backends
        whose units buffer writes."""

    def tenants(self, *, after: str | None = None, limit: int = 1000) -> Sequence[str]:
        """Up to ``limit`` ids of tenants holding any record, after ``after``, in code point
        order."""


class ControlUnitOfWork(UnitOfWork, Protocol):
    """A unit of work that also carries the control entries."""

    control: ControlRepository

    def __enter__(self) -> ControlUnitOfWork: ...


@runtime_checkable
class ControlDataBackend(DataBackend, Protocol):
    """A :class:`DataBackend` whose units of work are :class:`ControlUnitOfWork`."""

    def unit_of_work(self) -> ControlUnitOfWork:
        """A new unit of work with the control repository."""


def supports_control(backend: DataBackend) -> TypeGuard[ControlDataBackend]:
    """Whether ``backend`` declares the control entries (``capabilities.control``)."""
    return bool(getattr(backend.capabilities, "control", False))
