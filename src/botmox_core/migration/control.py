"""The control entries a migration and a cutover use (:mod:`botmox_core.ports.control`):

* ``migration_lock``: ``{"owner", "host", "pid", "source", "acquired_at", "expires_at"}``
  (epoch ms). A migration takes it before its first write and renews it with every batch; a
  second migration into the same backend refuses (or waits with ``--wait``) until it is
  released or expired. A lock whose holder is a dead process on this host is taken over at
  once (a migration killed with SIGKILL is re-run without waiting for the expiry).
* ``migration_checkpoint``: ``{"state": "<JSON text>"}`` — the run's source fingerprint,
  options and, per (tenant, stream), the key after which it goes on and whether it is done.
  Written after each committed batch; deleted when a run finishes.
* ``writes_frozen``: ``{"frozen_at", "retry_after", "reason", "by"}`` — the cutover's write
  freeze (:mod:`botmox_server.freeze`).
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from botmox_core.errors import BotmoxError, ConfigurationError
from botmox_core.ports import DataBackend
from botmox_core.ports.control import ControlDataBackend, supports_control

__all__ = [
    "CHECKPOINT_KEY",
    "FREEZE_KEY",
    "LOCK_KEY",
    "FreezeState",
    "MigrationLock",
    "MigrationLockedError",
    "clear_checkpoint",
    "control_backend",
    "freeze",
    "freeze_state",
    "read_checkpoint",
    "unfreeze",
    "write_checkpoint",
]

LOCK_KEY = "migration_lock"
CHECKPOINT_KEY = "migration_checkpoint"
FREEZE_KEY = "writes_frozen"
#: How long a lock lives without renewal (a migration renews it with every batch).
LOCK_TTL_MS = 120_000


class MigrationLockedError(BotmoxError):
    """Another migration holds the target's lock (409 ``MIGRATION_LOCKED``)."""

    default_code = "MIGRATION_LOCKED"
    status = 409


def control_backend(backend: DataBackend, role: str) -> ControlDataBackend:
    """``backend`` when it declares the control entries, else :class:`ConfigurationError`."""
    if not supports_control(backend):
        raise ConfigurationError(
            f"the {role} data backend {backend.name!r} has no control entries "
            "(capabilities.control): it cannot hold a migration's lock and checkpoints or a "
            "write freeze"
        )
    return backend


def _now_ms() -> int:
    return int(time.time() * 1000)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@attrs.define
class MigrationLock:
    """The target's migration lock held by this process (a context manager)."""

    backend: ControlDataBackend
    source: str
    wait_seconds: float = 0.0
    owner: str = attrs.field(factory=lambda: uuid.uuid4().hex)
    held: bool = False

    def _entry(self, now: int) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "source": self.source,
            "acquired_at": now,
            "expires_at": now + LOCK_TTL_MS,
        }

    def _free(self, current: Mapping[str, Any] | None, now: int) -> bool:
        if current is None or current.get("owner") == self.owner:
            return True
        if int(current.get("expires_at", 0)) <= now:
            return True
        same_host = current.get("host") == socket.gethostname()
        pid = current.get("pid")
        return same_host and isinstance(pid, int) and pid != os.getpid() and not _pid_alive(pid)

    def _taker(
        self, now: int, holder: list[Mapping[str, Any]]
    ) -> Callable[[Mapping[str, Any] | None], Mapping[str, Any] | None]:
        def take(current: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
            holder.clear()
            if not self._free(current, now):
                assert current is not None
                holder.append(current)
                return current
            return self._entry(now)

        return take

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            holder: list[Mapping[str, Any]] = []
            with self.backend.unit_of_work() as uow:
                uow.control.modify(LOCK_KEY, self._taker(_now_ms(), holder))
                uow.commit()
            if not holder:
                self.held = True
                return
            if time.monotonic() >= deadline:
                other = holder[0]
                raise MigrationLockedError(
                    "another migration is writing into this backend (host "
                    f"{other.get('host')!r}, pid {other.get('pid')}, source "
                    f"{other.get('source')!r}); wait for it, or pass --wait SECONDS",
                    details={"holder": dict(other)},
                )
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))

    def renew(self, checkpoint: Mapping[str, Any] | None = None) -> None:
        """Move the expiry forward; :class:`MigrationLockedError` if the lock was taken. With
        ``checkpoint``, store it in the same unit of work (only while the lock is held)."""
        now = _now_ms()
        lost: list[bool] = []

        def renew(current: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
            lost.clear()
            if current is not None and current.get("owner") != self.owner:
                lost.append(True)
                return current
            return {**(current or self._entry(now)), "expires_at": now + LOCK_TTL_MS}

        with self.backend.unit_of_work() as uow:
            uow.control.modify(LOCK_KEY, renew)
            if checkpoint is not None and not lost:
                text = _checkpoint_text(checkpoint)
                uow.control.modify(CHECKPOINT_KEY, lambda current: {"state": text})
            uow.commit()
        if lost:
            self.held = False
            raise MigrationLockedError("this migration's lock was taken over by another one")

    def release(self) -> None:
        if not self.held:
            return
        with self.backend.unit_of_work() as uow:
            uow.control.modify(
                LOCK_KEY,
                lambda current: (
                    None if current is None or current.get("owner") == self.owner else current
                ),
            )
            uow.commit()
        self.held = False

    def __enter__(self) -> MigrationLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_checkpoint(backend: ControlDataBackend) -> dict[str, Any] | None:
    """The stored checkpoint state, or ``None``."""
    with backend.unit_of_work() as uow:
        entry = uow.control.get(CHECKPOINT_KEY)
    if entry is None or not isinstance(entry.get("state"), str):
        return None
    state = json.loads(entry["state"])
    return state if isinstance(state, dict) else None


def _checkpoint_text(state: Mapping[str, Any]) -> str:
    return json.dumps(state, separators=(",", ":"), ensure_ascii=True)


def write_checkpoint(backend: ControlDataBackend, state: Mapping[str, Any]) -> None:
    text = _checkpoint_text(state)
    with backend.unit_of_work() as uow:
        uow.control.modify(CHECKPOINT_KEY, lambda current: {"state": text})
        uow.commit()


def clear_checkpoint(backend: ControlDataBackend) -> None:
    with backend.unit_of_work() as uow:
        uow.control.modify(CHECKPOINT_KEY, lambda current: None)
        uow.commit()


@attrs.frozen
class FreezeState:
    """The write freeze of a deployment."""

    frozen: bool
    frozen_at: int | None = None
    retry_after: int = 60
    reason: str | None = None
    by: str | None = None


def freeze_state(backend: ControlDataBackend) -> FreezeState:
    with backend.unit_of_work() as uow:
        entry = uow.control.get(FREEZE_KEY)
    if entry is None:
        return FreezeState(frozen=False)
    retry = entry.get("retry_after")
    return FreezeState(
        frozen=True,
        frozen_at=entry.get("frozen_at") if isinstance(entry.get("frozen_at"), int) else None,
        retry_after=retry if isinstance(retry, int) and retry > 0 else 60,
        reason=entry.get("reason") if isinstance(entry.get("reason"), str) else None,
        by=entry.get("by") if isinstance(entry.get("by"), str) else None,
    )


def freeze(
    backend: ControlDataBackend, *, retry_after: int = 60, reason: str | None = None
) -> FreezeState:
    """Put the deployment in write freeze (kept as it is when already frozen)."""
    if retry_after < 1 or retry_after > 86_400:
        raise BotmoxError("retry_after must be 1-86400 seconds", code="BAD_REQUEST")
    entry = {
        "frozen_at": _now_ms(),
        "retry_after": retry_after,
        "reason": reason or "cutover",
        "by": f"{socket.gethostname()}:{os.getpid()}",
    }
    with backend.unit_of_work() as uow:
        uow.control.modify(FREEZE_KEY, lambda current: current if current is not None else entry)
        uow.commit()
    return freeze_state(backend)


def unfreeze(backend: ControlDataBackend) -> FreezeState:
    with backend.unit_of_work() as uow:
        uow.control.modify(FREEZE_KEY, lambda current: None)
        uow.commit()
    return freeze_state(backend)
