"""Ed25519-signed lease tokens.

Format: ``bml1.<payload>.<signature>``, both parts unpadded URL-safe base64; the payload is JSON
``{"lid", "tid", "vm", "mod", "iat", "exp", "jti"}``. A runner can verify a token offline with the
server's public key (``GET /api/v1/license/public-key``). The server additionally stores only the
token's hash and compares it in constant time, so a token that was rotated away is refused even
though its signature is valid.
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

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from botmox_core.errors import ConfigurationError, UnauthorizedError

PREFIX = "bml1"
MAX_TOKEN_LENGTH = 2048


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
    """Signs and verifies lease tokens with one Ed25519 key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self._public_key = private_key.public_key()

    def __repr__(self) -> str:
        return "LeaseTokenSigner(<key hidden>)"

    @classmethod
    def generate(cls) -> LeaseTokenSigner:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_file(cls, path: Path) -> LeaseTokenSigner:
        """Load the PEM key at ``path``, creating it (mode 0600) on first use."""
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
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot load lease signing key {path}: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigurationError(f"lease signing key {path} is not an Ed25519 key")
        return cls(key)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._public_key

    def public_key_b64(self) -> str:
        """The raw 32-byte public key, URL-safe base64."""
        raw = self._public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return _b64encode(raw)

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
        """A new token for the lease, valid until ``expires_at``."""
        payload = {
            "lid": lease_id,
            "tid": tenant_id,
            "vm": vm_uuid,
            "mod": module,
            "iat": int(issued_at.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": secrets.token_hex(16),
        }
        body = _b64encode(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        signing_input = f"{PREFIX}.{body}".encode("ascii")
        return f"{PREFIX}.{body}.{_b64encode(self._private_key.sign(signing_input))}"

    def verify(self, token: str) -> LeaseClaims:
        """The claims of a token whose signature verifies; :class:`UnauthorizedError` otherwise.

        Expiry is *not* checked here: callers decide (the contract reports ``LEASE_EXPIRED``).
        """
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise UnauthorizedError("lease token is malformed")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            raise UnauthorizedError("lease token is malformed")
        try:
            signature = _b64decode(parts[2])
            self._public_key.verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"))
            payload = json.loads(_b64decode(parts[1]))
            return LeaseClaims(
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
