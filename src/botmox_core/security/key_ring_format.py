"""The key ring file format: key states, the two kinds of key, and a ring's text read and
written (:mod:`botmox_core.security.key_ring` explains rings, and
:mod:`botmox_core.security.key_ring_file` changes the file).

The file is JSON (mode 0600)::

    {"botmox_key_ring": 1, "kind": "lease",
     "keys": [{"kid": "lk-20261124-3f9a1c", "state": "active", "created_at": "...",
               "verify_until": null, "retired_at": null, "legacy": false, "secret": "..."}]}

A file that is not JSON is a pre-ring single key — a PEM Ed25519 key (``lease-signing.pem``) or
a hex HMAC key (``localfs-url.key``) — and reads as a ring of that one active key, marked
``legacy``, whose id is derived from the key (so every replica names it alike without writing).
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import attrs
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from botmox_core.errors import ConfigurationError

__all__ = [
    "KID_PATTERN",
    "LEASE_KEYS",
    "MIN_URL_KEY_BYTES",
    "RING_FORMAT",
    "URL_KEYS",
    "KeyKind",
    "KeyState",
    "RingKey",
    "check_ring",
    "dump_ring",
    "iso_time",
    "parse_ring",
]

RING_FORMAT = 1
KID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What a key id may look like; anything else in a token or URL is refused as malformed."""

MIN_URL_KEY_BYTES = 16

T = TypeVar("T")


class KeyState(enum.Enum):
    """A key's state in its ring (see :mod:`botmox_core.security.key_ring`)."""

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
            "created_at": iso_time(self.created_at),
            "verify_until": iso_time(self.verify_until),
            "retired_at": iso_time(self.retired_at),
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


def iso_time(value: datetime | None) -> str | None:
    """``value`` as ISO 8601 UTC with a ``Z`` (``None`` stays ``None``)."""
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
    """The ring file's JSON text for ``keys``."""
    return (
        json.dumps(
            {
                "botmox_key_ring": RING_FORMAT,
                "kind": kind.name,
                "keys": [
                    {
                        "kid": key.kid,
                        "state": key.state.value,
                        "created_at": iso_time(key.created_at),
                        "verify_until": iso_time(key.verify_until),
                        "retired_at": iso_time(key.retired_at),
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
