"""Credentials: opaque API tokens (stored hashed) and Ed25519-signed lease tokens."""

from botmox_core.security.api_tokens import generate_api_token, hash_secret, hashes_match
from botmox_core.security.lease_tokens import LeaseClaims, LeaseTokenSigner

__all__ = ["LeaseClaims", "LeaseTokenSigner", "generate_api_token", "hash_secret", "hashes_match"]
