"""Ed25519-signed lease tokens.

Format: ``bml1.<payload>.<signature>``, both parts unpadded URL-safe base64; the payload is JSON
``{"lid", "tid", "vm", "mod", "iat", "exp", "jti", "kid"}``; ``kid`` names the key of the lease key
ring that signed it (tokens from before key rings have none and verify against the ring's legacy
key). A runner can verify a token offline with the server's public keys
(``GET /api/v1/license/public-key``: the active key, and ``keys``, every key that still
verifies). The server additionally stores only the token's hash and compares it in constant
time, so a token that was rotated away is refused even though its signature is valid.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from botmox_core.errors import ConfigurationError, UnauthorizedError
from botmox_core.security.key_ring import LEASE_KEYS, KeyRing, KeyRingFile

PREFIX = "bml1"
MAX_TOKEN_LENGTH = 2048
#: Tokens whose signature verified, remembered per signer (oldest forgotten first). Only
#: validly signed tokens get in, so a caller cannot fill it with forgeries.
VERIFIED_KEPT = 4096


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@attrs.frozen
class LeaseClaims:
    """What a lease token asserts.

    Attributes:
        lease_id, tenant_id, vm_uuid, module: what the lease is bound to.
        issued_at, expires_at: the token's own lifetime.
        nonce: random id making every token distinct.
    """

    lease_id: str
    tenant_id: str
    vm_uuid: str
    module: str
    issued_at: datetime
    expires_at: datetime
    nonce: str

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


class LeaseTokenSigner:
    """Signs lease tokens with the active key of a lease key ring and verifies them with any
    key of the ring that still verifies (see :mod:`botmox_core.security.key_ring`).

    The key id of the signing key is in the payload (``kid``); a token without one (issued
    before key rings) is checked against the ring's legacy key.

    A signature is checked once per token: :meth:`verify` remembers the claims of the last
    :data:`VERIFIED_KEPT` tokens that verified, with the key that verified them, and answers a
    token it remembers after asking the ring whether that key still verifies (so a key retired
    or past its ``verify_until`` refuses remembered tokens at once). This only saves the
    signature check (~0.1 ms): whether the lease is still current is the caller's business.
    """

    def __init__(self, keys: Ed25519PrivateKey | KeyRing[Ed25519PrivateKey]) -> None:
        if isinstance(keys, Ed25519PrivateKey):
            pem = keys.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode("ascii")
            keys = KeyRing.single(LEASE_KEYS, pem)
        self.ring = keys
        # token -> (claims, kid, the key material that verified it)
        self._verified: dict[str, tuple[LeaseClaims, str | None, Ed25519PrivateKey]] = {}

    def __repr__(self) -> str:
        return f"LeaseTokenSigner({self.ring!r})"

    @classmethod
    def generate(cls) -> LeaseTokenSigner:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_file(cls, path: Path) -> LeaseTokenSigner:
        """Load the key ring at ``path`` (a JSON ring, or a single PEM key which is the ring's
        legacy key), creating a PEM key (mode 0600) on first use."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
            try:  # first writer wins, so concurrent processes share one key
                os.link(temp, path)
            except FileExistsError:
                pass
            finally:
                temp.unlink()
        try:
            return cls(KeyRing.from_file(KeyRingFile(path, LEASE_KEYS)))
        except ConfigurationError as exc:
            raise ConfigurationError(f"cannot load lease signing key: {exc.message}") from None

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The active key's public key."""
        return self.ring.active()[1].public_key()

    @property
    def key_id(self) -> str:
        """The id of the active key."""
        return self.ring.active()[0].kid

    def public_key_b64(self) -> str:
        """The active key's raw 32-byte public key, URL-safe base64."""
        return _public_b64(self.public_key)

    def public_keys(self) -> list[dict[str, Any]]:
        """Every key that verifies now, the active one first: ``kid``, ``state``,
        ``verify_until`` and ``public_key`` (raw, URL-safe base64)."""
        return [
            {
                "kid": key.kid,
                "state": key.state.value,
                "verify_until": key.describe(datetime.now(UTC))["verify_until"],
                "public_key": _public_b64(material.public_key()),
            }
            for key, material in self.ring.verifying_keys()
        ]

    def sign(
        self,
        *,
        lease_id: str,
        tenant_id: str,
        vm_uuid: str,
        module: str,
        issued_at: datetime,
        expires_at: datetime,
    ) -> str:
        """A new token for the lease, valid until ``expires_at``, signed by the active key."""
        key, private_key = self.ring.active()
        payload = {
            "lid": lease_id,
            "tid": tenant_id,
            "vm": vm_uuid,
            "mod": module,
            "iat": int(issued_at.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": secrets.token_hex(16),
            "kid": key.kid,
        }
        body = _b64encode(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        signing_input = f"{PREFIX}.{body}".encode("ascii")
        return f"{PREFIX}.{body}.{_b64encode(private_key.sign(signing_input))}"

    def verify(self, token: str) -> LeaseClaims:
        """The claims of a token whose signature verifies; :class:`UnauthorizedError` otherwise
        (also when its key is unknown, retired or past its ``verify_until``).

        Expiry is *not* checked here: callers decide (the contract reports ``LEASE_EXPIRED``).
        """
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise UnauthorizedError("lease token is malformed")
        known = self._verified.get(token)
        if known is not None:
            claims, kid, material = known
            if self.ring.verifier(kid) is material:  # raises when the key no longer verifies
                return claims
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            raise UnauthorizedError("lease token is malformed")
        try:
            payload = json.loads(_b64decode(parts[1]))
            if not isinstance(payload, dict):
                raise UnauthorizedError("lease token is malformed")
            kid = payload.get("kid")
            if kid is not None and not isinstance(kid, str):
                raise UnauthorizedError("lease token key id is malformed")
            material = self.ring.verifier(kid)
            signature = _b64decode(parts[2])
            material.public_key().verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"))
            claims = LeaseClaims(
                lease_id=str(payload["lid"]),
                tenant_id=str(payload["tid"]),
                vm_uuid=str(payload["vm"]),
                module=str(payload["mod"]),
                issued_at=datetime.fromtimestamp(int(payload["iat"]), UTC),
                expires_at=datetime.fromtimestamp(int(payload["exp"]), UTC),
                nonce=str(payload["jti"]),
            )
        except InvalidSignature:
            raise UnauthorizedError("lease token signature is invalid") from None
        except (
            binascii.Error,
            ValueError,
            KeyError,
            TypeError,
            UnicodeError,
            OverflowError,
            RecursionError,
        ):
            raise UnauthorizedError("lease token is malformed") from None
        self._remember(token, claims, kid, material)
        return claims

    def _remember(
        self, token: str, claims: LeaseClaims, kid: str | None, material: Ed25519PrivateKey
    ) -> None:
        verified = self._verified
        while len(verified) >= VERIFIED_KEPT:
            try:  # threads share the dict: another may have evicted the same entry first
                verified.pop(next(iter(verified)), None)
            except (RuntimeError, StopIteration):
                break
        verified[token] = (claims, kid, material)


def _public_b64(key: Ed25519PublicKey) -> str:
    return _b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


_LEASE_ID = re.compile(r"^lease_[0-9a-f]{32}$")


def peek_lease_id(token: object) -> str | None:
    """The lease id a token *claims*, without verifying it (for audit records of refused
    tokens only); ``None`` when there is no well-formed one."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:  # unverified bytes: a forged payload may be nested past the recursion limit
        claimed = json.loads(_b64decode(parts[1])).get("lid")
    except (binascii.Error, ValueError, AttributeError, UnicodeError, RecursionError):
        return None
    return claimed if isinstance(claimed, str) and _LEASE_ID.fullmatch(claimed) else None
