"""Key rings: several signing keys with ids and states, in one file every replica shares.

A ring holds the keys of one kind — ``lease`` (Ed25519, signs lease tokens) or ``url`` (HMAC,
signs the server's download URLs). Each key has an id (``kid``) and a state:

- ``active``: signs, and verifies. Exactly one key of a ring is active.
- ``verifying``: no longer signs; verifies what it signed until ``verify_until`` (set at rotation
  to the longest lifetime of a token or URL it can have signed), then refuses by itself.
- ``retired``: refuses everything; its secret is erased from the file, the entry stays as a record.

The file is JSON (mode 0600)::

    {"botmox_key_ring": 1, "kind": "lease",
     "keys": [{"kid": "lk-20261124-3f9a1c", "state": "active", "created_at": "...",
               "verify_until": null, "retired_at": null, "legacy": false, "secret": "..."}]}

A file that is not JSON is a pre-ring single key — a PEM Ed25519 key (``lease-signing.pem``) or
a hex HMAC key (``localfs-url.key``) — and reads as a ring of that one active key, marked
``legacy``, whose id is derived from the key (so every replica names it alike without writing).
Tokens and URLs that carry no key id are checked against the legacy key only.

Servers re-read the file when it changes (checked at most once a second, and at once when a
token names a key id the ring does not know), so a rotation needs no restart. Changes are made
under an exclusive lock and land atomically (a complete temporary file renamed into place),
keeping the file's owner, so a replica never reads half a ring.

A ring file writable by other users is refused (anyone could plant a key); one readable by
them is used with a warning.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import logging
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

import attrs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from botmox_core.errors import BadRequestError, ConfigurationError, UnauthorizedError

__all__ = [
    "KID_PATTERN",
    "LEASE_KEYS",
    "RING_FORMAT",
    "URL_KEYS",
    "KeyKind",
    "KeyRing",
    "KeyRingFile",
    "KeyState",
    "RingKey",
]

log = logging.getLogger("botmox.keys")

RING_FORMAT = 1
KID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What a key id may look like; anything else in a token or URL is refused as malformed."""

RELOAD_INTERVAL = 1.0
"""Seconds between checks of the ring file for changes."""

MIN_URL_KEY_BYTES = 16

T = TypeVar("T")


class KeyState(enum.Enum):
    ACTIVE = "active"
    VERIFYING = "verifying"
    RETIRED = "retired"


@attrs.frozen
class RingKey:
    """One key of a ring.

    Attributes:
        kid: the key id carried by what it signs.
        state: active / verifying / retired.
        created_at: when the key was made (or first read, for a legacy key: ``None``).
        verify_until: for a verifying key, the moment it stops verifying.
        retired_at: when it was retired.
        legacy: the pre-ring key; what carries no key id is checked against it.
        secret: the PEM (lease) or hex (url) text; ``None`` once retired.
    """

    kid: str
    state: KeyState
    created_at: datetime | None = None
    verify_until: datetime | None = None
    retired_at: datetime | None = None
    legacy: bool = False
    secret: str | None = attrs.field(default=None, repr=False)

    def verifies(self, now: datetime) -> bool:
        if self.secret is None:
            return False
        if self.state is KeyState.ACTIVE:
            return True
        return (
            self.state is KeyState.VERIFYING
            and self.verify_until is not None
            and now < self.verify_until
        )

    def describe(self, now: datetime) -> dict[str, Any]:
        """The key without its secret, for listings (``verifies`` says whether it verifies
        now)."""
        return {
            "kid": self.kid,
            "state": self.state.value,
            "legacy": self.legacy,
            "created_at": _iso(self.created_at),
            "verify_until": _iso(self.verify_until),
            "retired_at": _iso(self.retired_at),
            "verifies": self.verifies(now),
        }


@attrs.frozen
class KeyKind(Generic[T]):
    """How one kind of key is made, parsed and named.

    Attributes:
        name: ``lease`` or ``url``.
        prefix: the prefix of generated key ids.
        generate: a new secret (text as stored).
        load: the usable key from the stored text (``ConfigurationError`` when it is bad).
        fingerprint: bytes a legacy key's id is derived from.
    """

    name: str
    prefix: str
    generate: Callable[[], str]
    load: Callable[[str], T]
    fingerprint: Callable[[T], bytes]

    def legacy_kid(self, material: T) -> str:
        digest = hashlib.sha256(b"botmox-key-id\0" + self.fingerprint(material)).hexdigest()
        return f"{self.prefix}-legacy-{digest[:12]}"

    def new_kid(self, now: datetime) -> str:
        return f"{self.prefix}-{now:%Y%m%d}-{secrets.token_hex(4)}"


def _generate_ed25519() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode("ascii")
    )


def _load_ed25519(text: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeError) as exc:
        raise ConfigurationError(f"not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError("not an Ed25519 key")
    return key


def _ed25519_fingerprint(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _load_hmac(text: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise ConfigurationError("download URL key is not hexadecimal") from None
    if len(key) < MIN_URL_KEY_BYTES:
        raise ConfigurationError(
            f"download URL key is too short: use at least {MIN_URL_KEY_BYTES} bytes "
            f"({2 * MIN_URL_KEY_BYTES} hex characters)"
        )
    return key


LEASE_KEYS: KeyKind[Ed25519PrivateKey] = KeyKind(
    name="lease",
    prefix="lk",
    generate=_generate_ed25519,
    load=_load_ed25519,
    fingerprint=_ed25519_fingerprint,
)
URL_KEYS: KeyKind[bytes] = KeyKind(
    name="url",
    prefix="uk",
    generate=lambda: secrets.token_bytes(32).hex(),
    load=_load_hmac,
    fingerprint=lambda key: key,
)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(value: Any, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{what} is not a time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(f"{what} is not a time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_ring(text: str, kind: KeyKind[Any], source: str) -> list[RingKey]:
    """The keys of a ring file's text (JSON ring or a legacy single key); checks every key."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        try:
            material = kind.load(stripped)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{kind.name} key file {source}: {exc.message}") from None
        return [
            RingKey(
                kid=kind.legacy_kid(material),
                state=KeyState.ACTIVE,
                legacy=True,
                secret=stripped + ("\n" if kind is LEASE_KEYS else ""),
            )
        ]
    try:
        document = json.loads(stripped)
        if document.get("botmox_key_ring") != RING_FORMAT or document.get("kind") != kind.name:
            raise ConfigurationError(f"not a botmox {kind.name} key ring (format {RING_FORMAT})")
        keys = []
        for entry in document["keys"]:
            kid = entry["kid"]
            if not isinstance(kid, str) or not KID_PATTERN.fullmatch(kid):
                raise ConfigurationError(f"bad key id {kid!r}")
            state = KeyState(entry["state"])
            secret = entry.get("secret")
            if secret is not None:
                if not isinstance(secret, str):
                    raise ConfigurationError(f"key {kid}: secret is not text")
                kind.load(secret)
            elif state is not KeyState.RETIRED:
                raise ConfigurationError(f"key {kid} is {state.value} but has no secret")
            keys.append(
                RingKey(
                    kid=kid,
                    state=state,
                    created_at=_parse_time(entry.get("created_at"), f"key {kid} created_at"),
                    verify_until=_parse_time(entry.get("verify_until"), f"key {kid} verify_until"),
                    retired_at=_parse_time(entry.get("retired_at"), f"key {kid} retired_at"),
                    legacy=bool(entry.get("legacy", False)),
                    secret=secret,
                )
            )
    except ConfigurationError as exc:
        raise ConfigurationError(f"{kind.name} key ring {source}: {exc.message}") from None
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise ConfigurationError(
            f"{kind.name} key ring {source} is malformed: {type(exc).__name__}"
        ) from None
    check_ring(keys, f"{kind.name} key ring {source}")
    return keys


def check_ring(keys: list[RingKey], what: str) -> None:
    """Exactly one active key, unique ids, at most one legacy key."""
    if sum(1 for key in keys if key.state is KeyState.ACTIVE) != 1:
        raise ConfigurationError(f"{what} must have exactly one active key")
    if len({key.kid for key in keys}) != len(keys):
        raise ConfigurationError(f"{what} has a key id twice")
    if sum(1 for key in keys if key.legacy) > 1:
        raise ConfigurationError(f"{what} has more than one legacy key")


def dump_ring(keys: list[RingKey], kind: KeyKind[Any]) -> str:
    return (
        json.dumps(
            {
                "botmox_key_ring": RING_FORMAT,
                "kind": kind.name,
                "keys": [
                    {
                        "kid": key.kid,
                        "state": key.state.value,
                        "created_at": _iso(key.created_at),
                        "verify_until": _iso(key.verify_until),
                        "retired_at": _iso(key.retired_at),
                        "legacy": key.legacy,
                        "secret": key.secret,
                    }
                    for key in keys
                ],
            },
            indent=2,
        )
        + "\n"
    )


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
                            f"key {key.kid} still verifies until {_iso(key.verify_until)}: "
                            f"what it signed may still be in use (--force retires it now)"
                        )
                done = attrs.evolve(key, state=KeyState.RETIRED, retired_at=moment, secret=None)
                retired.append(done)
                result.append(done)
            return result

        keys = self.update(change)
        return retired, keys


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
