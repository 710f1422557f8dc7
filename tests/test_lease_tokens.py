"""Ed25519 lease tokens: signature, tampering, malformed input, key file handling."""

from __future__ import annotations

import base64
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from botmox_core.errors import ConfigurationError, UnauthorizedError
from botmox_core.security import LeaseTokenSigner, generate_api_token, hash_secret, hashes_match
from botmox_core.security.lease_tokens import peek_lease_id

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LEASE = "lease_" + "ab" * 16


def sign(signer: LeaseTokenSigner) -> str:
    return signer.sign(
        lease_id=LEASE,
        tenant_id="t",
        vm_uuid="vm-00000001",
        module="m",
        issued_at=NOW,
        expires_at=NOW + timedelta(minutes=5),
    )


def test_round_trip_and_offline_verification_with_the_public_key() -> None:
    signer = LeaseTokenSigner.generate()
    token = sign(signer)
    claims = signer.verify(token)
    assert (claims.lease_id, claims.tenant_id, claims.vm_uuid, claims.module) == (
        LEASE,
        "t",
        "vm-00000001",
        "m",
    )
    assert claims.expires_at == NOW + timedelta(minutes=5)
    assert not claims.expired(NOW) and claims.expired(NOW + timedelta(minutes=5))
    raw = base64.urlsafe_b64decode(signer.public_key_b64() + "=")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    prefix, body, signature = token.split(".")
    Ed25519PublicKey.from_public_bytes(raw).verify(
        base64.urlsafe_b64decode(signature + "=="), f"{prefix}.{body}".encode()
    )
    assert sign(signer) != token  # every token is distinct


def test_tampered_payload_and_foreign_key_are_refused() -> None:
    signer = LeaseTokenSigner.generate()
    prefix, body, signature = sign(signer).split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    payload["tid"] = "other-tenant"
    forged_body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    with pytest.raises(UnauthorizedError):
        signer.verify(f"{prefix}.{forged_body}.{signature}")
    with pytest.raises(UnauthorizedError):
        signer.verify(sign(LeaseTokenSigner.generate()))


def test_a_remembered_token_does_not_vouch_for_its_forgeries(monkeypatch) -> None:
    from botmox_core.security import lease_tokens

    monkeypatch.setattr(lease_tokens, "VERIFIED_KEPT", 8)
    signer = LeaseTokenSigner.generate()
    token = sign(signer)
    assert signer.verify(token).lease_id == LEASE  # now remembered
    prefix, body, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for forged in (f"{prefix}.{body}.{flipped}", token + "\n", f"{prefix}.{body}x.{signature}"):
        with pytest.raises(UnauthorizedError):
            signer.verify(forged)
    tokens = [sign(signer) for _ in range(20)]
    for each in tokens:
        signer.verify(each)
    assert len(signer._verified) <= 8  # bounded: the oldest are forgotten
    assert signer.verify(token).lease_id == LEASE  # forgotten, then verified again


@pytest.mark.parametrize(
    "token", ["", "abc", "bml1.x.y", "bml2.a.b", "a.b.c.d", "x" * 5000, "bml1.!!!.???", None, 17]
)
def test_malformed_tokens_are_unauthorized(token: object) -> None:
    with pytest.raises(UnauthorizedError):
        LeaseTokenSigner.generate().verify(token)  # type: ignore[arg-type]


def test_peek_reads_only_well_formed_lease_ids() -> None:
    assert peek_lease_id(sign(LeaseTokenSigner.generate())) == LEASE
    assert peek_lease_id("bml1.e30.x") is None
    assert peek_lease_id("garbage") is None


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "lease.pem"
    first = LeaseTokenSigner.from_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    second = LeaseTokenSigner.from_file(path)
    assert second.verify(sign(first)).lease_id == LEASE
    assert "PRIVATE" not in repr(first)
    path.write_text("not a key")
    with pytest.raises(ConfigurationError):
        LeaseTokenSigner.from_file(path)


def test_api_tokens_are_long_random_and_checked_by_hash() -> None:
    token_id, secret = generate_api_token()
    assert secret.startswith("bmx_") and len(secret) >= 4 + 43  # 256 bits
    assert token_id != generate_api_token()[0]
    assert hashes_match(secret, hash_secret(secret))
    assert not hashes_match(secret + "x", hash_secret(secret))
    assert not hashes_match(secret, None)
