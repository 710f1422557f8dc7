"""Operator-issued API tokens.

A token is ``bmx_`` followed by 256 random bits (URL-safe base64) from the OS CSPRNG. Only its
sha256 is stored; lookups go by hash and the final comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_PREFIX = "bmx_"  # noqa: S105 - a public prefix, not a secret
TOKEN_BYTES = 32


def generate_api_token() -> tuple[str, str]:
    """A new ``(token_id, secret_token)``. Show the secret once; store :func:`hash_secret` of it."""
    return "tok_" + secrets.token_hex(8), TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_secret(secret: str) -> str:
    """Hex sha256 of a secret token (API, lease or agent token)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def hashes_match(secret: str, stored_hash: str | None) -> bool:
    """Constant-time check that ``secret`` hashes to ``stored_hash``."""
    if not stored_hash:
        return False
    return hmac.compare_digest(hash_secret(secret), stored_hash)
