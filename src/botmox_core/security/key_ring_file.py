"""A key ring file on disk: read it (refusing one that others may write) and change it — rotate
in a new active key, retire old ones.

Changes are made under an exclusive lock and land atomically (a complete temporary file renamed
into place), keeping the file's owner, so a replica never reads half a ring. A ring file
writable by other users is refused (anyone could plant a key); one readable by them is used
with a warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Generic, TypeVar

import attrs

from botmox_core.errors import BadRequestError, ConfigurationError
from botmox_core.security.key_ring_format import (
    KeyKind,
    KeyState,
    RingKey,
    check_ring,
    dump_ring,
    iso_time,
    parse_ring,
)

__all__ = ["KeyRingFile"]

log = logging.getLogger("botmox.keys")

T = TypeVar("T")


class KeyRingFile(Generic[T]):
    """A ring file on disk: read it, change it under a lock (see the module docstring)."""

    def __init__(self, path: Path, kind: KeyKind[T]) -> None:
        self.path = path
        self.kind = kind

    def __repr__(self) -> str:
        return f"KeyRingFile({str(self.path)!r}, {self.kind.name!r})"

    def check_permissions(self) -> os.stat_result:
        """The file's status; ``ConfigurationError`` when others may write it."""
        try:
            status = self.path.stat()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read {self.kind.name} key file {self.path}: {exc.strerror}"
            ) from None
        if sys.platform != "win32":
            if status.st_mode & 0o022:
                raise ConfigurationError(
                    f"{self.kind.name} key file {self.path} is writable by other users; "
                    f"restrict it with chmod 600"
                )
            if status.st_mode & 0o044:
                log.warning(
                    "%s key file %s is readable by other users; restrict it with chmod 600",
                    self.kind.name,
                    self.path,
                )
        return status

    def read(self) -> list[RingKey]:
        """The ring's keys; ``ConfigurationError`` when the file is unsafe, unreadable or bad."""
        self.check_permissions()
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeError) as exc:
            raise ConfigurationError(
                f"cannot read {self.kind.name} key file {self.path}: {exc}"
            ) from None
        return parse_ring(text, self.kind, str(self.path))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if sys.platform != "win32":
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def update(self, change: Callable[[list[RingKey]], list[RingKey]]) -> list[RingKey]:
        """Apply ``change`` to the current keys (an empty list when there is no file yet) and
        write the result atomically, keeping the file's owner; returns the new keys."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._locked():
            existing = self.path.exists()
            current = self.read() if existing else []
            keys = change(list(current))
            check_ring(keys, f"{self.kind.name} key ring {self.path}")
            status = self.path.stat() if existing else None
            temp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(dump_ring(keys, self.kind))
                    handle.flush()
                    os.fsync(handle.fileno())
                if status is not None and sys.platform != "win32":
                    os.chmod(temp, (status.st_mode & 0o700) | 0o400)
                    if os.geteuid() == 0:  # keep the owner the server runs as
                        os.chown(temp, status.st_uid, status.st_gid)
                os.replace(temp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    temp.unlink()
                raise
            if sys.platform != "win32":
                dir_fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        return keys

    def rotate(
        self, *, verify_for: timedelta, now: datetime | None = None
    ) -> tuple[RingKey, list[RingKey]]:
        """Add a new active key; the active one becomes ``verifying`` for ``verify_for``.
        Returns the new key and the whole ring."""
        moment = now or datetime.now(UTC)
        if verify_for < timedelta(0):
            raise BadRequestError("verify_for must not be negative")
        new = RingKey(
            kid=self.kind.new_kid(moment),
            state=KeyState.ACTIVE,
            created_at=moment,
            secret=self.kind.generate(),
        )

        def change(keys: list[RingKey]) -> list[RingKey]:
            demoted = [
                attrs.evolve(key, state=KeyState.VERIFYING, verify_until=moment + verify_for)
                if key.state is KeyState.ACTIVE
                else key
                for key in keys
            ]
            return [*demoted, new]

        return new, self.update(change)

    def retire(
        self, kid: str | None = None, *, force: bool = False, now: datetime | None = None
    ) -> tuple[list[RingKey], list[RingKey]]:
        """Retire ``kid``, or every verifying key past its ``verify_until`` when ``kid`` is
        ``None``. A key still verifying is retired only with ``force``; the active key never
        (rotate first). Returns the keys retired and the whole ring."""
        moment = now or datetime.now(UTC)
        retired: list[RingKey] = []

        def change(keys: list[RingKey]) -> list[RingKey]:
            if kid is not None and not any(key.kid == kid for key in keys):
                raise BadRequestError(f"no {self.kind.name} key {kid!r} in {self.path}")
            result = []
            for key in keys:
                chosen = key.kid == kid if kid is not None else key.state is KeyState.VERIFYING
                if not chosen or key.state is KeyState.RETIRED:
                    result.append(key)
                    continue
                if key.state is KeyState.ACTIVE:
                    raise BadRequestError(
                        f"key {key.kid} is the active {self.kind.name} key: rotate first"
                    )
                if key.verifies(moment):
                    if kid is None:
                        result.append(key)
                        continue
                    if not force:
                        raise BadRequestError(
                            f"key {key.kid} still verifies until {iso_time(key.verify_until)}: "
                            f"what it signed may still be in use (--force retires it now)"
                        )
                done = attrs.evolve(key, state=KeyState.RETIRED, retired_at=moment, secret=None)
                retired.append(done)
                result.append(done)
            return result

        keys = self.update(change)
        return retired, keys
