"""Key rings: several signing keys with ids and states, in one file every replica shares.

A ring holds the keys of one kind — ``lease`` (Ed25519, signs lease tokens) or ``url`` (HMAC,
signs the server's download URLs). Each key has an id (``kid``) and a state:

- ``active``: signs, and verifies. Exactly one key of a ring is active.
- ``verifying``: no longer signs; verifies what it signed until ``verify_until`` (set at rotation
  to the longest lifetime of a token or URL it can have signed), then refuses by itself.
- ``retired``: refuses everything; its secret is erased from the file, the entry stays as a record.

The file format (JSON, or a pre-ring single key read as a ``legacy`` ring of one) is in
:mod:`botmox_core.security.key_ring_format`; reading it safely and changing it (rotate,
retire) under a lock in :mod:`botmox_core.security.key_ring_file`. This module holds the live
ring a server signs and verifies with; it re-exports the names of both.

Tokens and URLs that carry no key id are checked against the legacy key only.

Servers re-read the file when it changes (checked at most once a second, and at once when a
token names a key id the ring does not know), so a rotation needs no restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, TypeVar

from botmox_core.errors import ConfigurationError, UnauthorizedError
from botmox_core.security.key_ring_file import KeyRingFile
from botmox_core.security.key_ring_format import (
    KID_PATTERN,
    LEASE_KEYS,
    MIN_URL_KEY_BYTES,
    RING_FORMAT,
    URL_KEYS,
    KeyKind,
    KeyState,
    RingKey,
    check_ring,
    dump_ring,
    parse_ring,
)

__all__ = [
    "KID_PATTERN",
    "LEASE_KEYS",
    "MIN_URL_KEY_BYTES",
    "RELOAD_INTERVAL",
    "RING_FORMAT",
    "URL_KEYS",
    "KeyKind",
    "KeyRing",
    "KeyRingFile",
    "KeyState",
    "RingKey",
    "check_ring",
    "dump_ring",
    "parse_ring",
]

log = logging.getLogger("botmox.keys")

RELOAD_INTERVAL = 1.0
"""Seconds between checks of the ring file for changes."""

T = TypeVar("T")


class KeyRing(Generic[T]):
    """The live keys of one ring: the active key signs, keys that still verify check.

    Built from a :class:`KeyRingFile` (re-read when the file changes) or from fixed keys.
    Thread-safe.
    """

    def __init__(
        self,
        kind: KeyKind[T],
        keys: list[RingKey],
        *,
        source: KeyRingFile[T] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        check_ring(keys, f"{kind.name} key ring")
        self.kind = kind
        self.source = source
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._checked = time.monotonic()
        self._install(keys)

    def __repr__(self) -> str:
        origin = str(self.source.path) if self.source else "memory"
        return f"KeyRing({self.kind.name!r}, {origin!r}, active={self._active.kid!r})"

    @classmethod
    def single(cls, kind: KeyKind[T], secret: str) -> KeyRing[T]:
        """A ring of one legacy key (what a pre-ring installation has)."""
        return cls(kind, parse_ring(secret, kind, "memory"))

    @classmethod
    def from_file(cls, source: KeyRingFile[T]) -> KeyRing[T]:
        ring = cls(source.kind, source.read(), source=source)
        ring._stamp = ring._file_stamp()
        return ring

    def _install(self, keys: list[RingKey]) -> None:
        materials = {key.kid: self.kind.load(key.secret) for key in keys if key.secret is not None}
        self._keys = {key.kid: key for key in keys}
        self._materials = materials
        self._active = next(key for key in keys if key.state is KeyState.ACTIVE)

    def _file_stamp(self) -> tuple[int, int, int] | None:
        if self.source is None:
            return None
        try:
            status = self.source.path.stat()
        except OSError:
            return None
        return (status.st_mtime_ns, status.st_size, status.st_ino)

    def refresh(self, *, force: bool = False) -> None:
        """Re-read the file if it changed (at most once per :data:`RELOAD_INTERVAL` unless
        ``force``). A file that cannot be read keeps the keys in use, with an error logged."""
        if self.source is None:
            return
        with self._lock:
            if not force and time.monotonic() - self._checked < RELOAD_INTERVAL:
                return
            self._checked = time.monotonic()
            stamp = self._file_stamp()
            if stamp is None or stamp == self._stamp:
                return
            try:
                keys = self.source.read()
                self._install(keys)
            except ConfigurationError as exc:
                log.error("keeping the %s keys in use: %s", self.kind.name, exc.message)
                return
            self._stamp = stamp
            log.info("reloaded the %s key ring %s", self.kind.name, self.source.path)

    def keys(self) -> list[RingKey]:
        self.refresh()
        return list(self._keys.values())

    def active(self) -> tuple[RingKey, T]:
        """The key that signs, with its usable material."""
        self.refresh()
        key = self._active
        return key, self._materials[key.kid]

    def verifier(self, kid: str | None) -> T:
        """The material to check something signed by ``kid`` (``None``: no key id, i.e. the
        legacy key). :class:`UnauthorizedError` when that key is unknown, retired or past its
        ``verify_until``."""
        if kid is not None and (not isinstance(kid, str) or not KID_PATTERN.fullmatch(kid)):
            raise UnauthorizedError(f"{self.kind.name} key id is malformed")
        self.refresh()
        key = self._find(kid)
        if key is None:
            self.refresh(force=True)  # a replica may have rotated a moment ago
            key = self._find(kid)
        if key is None:
            raise UnauthorizedError(f"signed by an unknown {self.kind.name} key")
        if not key.verifies(self._clock()):
            raise UnauthorizedError(f"signed by a retired {self.kind.name} key")
        return self._materials[key.kid]

    def _find(self, kid: str | None) -> RingKey | None:
        if kid is None:
            return next((key for key in self._keys.values() if key.legacy), None)
        return self._keys.get(kid)

    def verifying_keys(self) -> list[tuple[RingKey, T]]:
        """Keys that verify now, the active one first."""
        self.refresh()
        now = self._clock()
        found = [
            (key, self._materials[key.kid]) for key in self._keys.values() if key.verifies(now)
        ]
        return sorted(found, key=lambda pair: pair[0].state is not KeyState.ACTIVE)
