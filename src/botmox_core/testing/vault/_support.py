"""Shared pieces of the vault conformance kit: the fixed clock, valid secrets, versions, envelopes
and bindings, and the checks the mixins share."""

from __future__ import annotations

import base64
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import attrs

from botmox_core.ports.vault import VaultUnitOfWork
from botmox_core.vault.envelopes import (
    AesGcmEnvelope,
    Envelope,
    HpkeEnvelope,
    SealedCopy,
    envelope_document,
)
from botmox_core.vault.models import (
    ScopeType,
    Secret,
    SecretBinding,
    SecretRecipient,
    SecretVersion,
)

__all__ = [
    "AAD_META",
    "T0",
    "VAULT_REPOSITORIES",
    "make_aes_envelope",
    "make_binding",
    "make_hpke_envelope",
    "make_secret",
    "make_version",
]

#: What a vault unit of work carries.
VAULT_REPOSITORIES = ("secrets", "bindings")

#: A fixed instant with millisecond precision.
T0 = datetime(2026, 11, 24, 12, 30, 15, 250000, tzinfo=UTC)

AAD_META: dict[str, Any] = {
    "purpose": "proxmox root",
    "nested": {"list": [1, "two", 3.5, True, None], "empty": {}},
    "unicode": "ünïcødé ✓",
}


def _b64(size: int) -> str:
    return base64.b64encode(os.urandom(size)).decode("ascii")


def make_hpke_envelope(*agent_ids: str, size: int = 48) -> HpkeEnvelope:
    """A well-formed HPKE envelope (random bytes of the right sizes) with one copy per agent."""
    return HpkeEnvelope(
        copies=tuple(
            SealedCopy(
                agent_id=agent_id,
                key_id="x25519:" + os.urandom(16).hex(),
                enc=_b64(32),
                ciphertext=_b64(size + 16),
            )
            for agent_id in (agent_ids or ("agt_" + os.urandom(8).hex(),))
        )
    )


def make_aes_envelope(size: int = 40) -> AesGcmEnvelope:
    """A well-formed ``aes-256-gcm`` envelope (random bytes of the right sizes)."""
    return AesGcmEnvelope(key_id="local-browser-key-v1", nonce=_b64(12), ciphertext=_b64(size))


def _recipients(envelope: Envelope) -> tuple[SecretRecipient, ...]:
    if isinstance(envelope, HpkeEnvelope):
        return tuple(SecretRecipient(agent_id=c.agent_id, key_id=c.key_id) for c in envelope.copies)
    return ()


def make_secret(tenant_id: str, envelope: Envelope | None = None, **changes: Any) -> Secret:
    """A version-1 secret whose metadata matches ``envelope`` (default: an HPKE envelope to
    two agents); keyword arguments replace fields."""
    envelope = envelope or make_hpke_envelope("agt_one", "agt_two")
    secret = Secret(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        label="proxmox root ✓",
        alg=envelope.alg,
        version=1,
        key_id=envelope.key_id if isinstance(envelope, AesGcmEnvelope) else None,
        recipients=_recipients(envelope),
        aad_meta=AAD_META,
        created_at=T0,
        updated_at=T0,
        rotated_at=None,
        created_by="user-7",
    )
    return attrs.evolve(secret, **changes)


def make_version(secret: Secret, envelope: Envelope | None = None, **changes: Any) -> SecretVersion:
    """The version ``secret.version`` of ``secret`` holding ``envelope`` (default: a new HPKE
    envelope to the secret's recipients)."""
    if envelope is None:
        agents = [r.agent_id for r in secret.recipients] or ["agt_one"]
        envelope = make_hpke_envelope(*agents)
    version = SecretVersion(
        tenant_id=secret.tenant_id,
        secret_id=secret.id,
        version=secret.version,
        alg=envelope.alg,
        recipients=_recipients(envelope),
        key_id=envelope.key_id if isinstance(envelope, AesGcmEnvelope) else None,
        created_at=secret.rotated_at or secret.created_at,
        created_by=secret.created_by,
        envelope=envelope,
    )
    return attrs.evolve(version, **changes)


def make_binding(tenant_id: str, secret_ref: str, **changes: Any) -> SecretBinding:
    """A ``vm_settings`` binding of ``proxmox.password`` to ``secret_ref``."""
    binding = SecretBinding(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        scope_type=ScopeType.VM_SETTINGS,
        scope_id="vmgenerator",
        field_name="proxmox.password",
        secret_ref=secret_ref,
        created_at=T0,
        updated_at=T0,
    )
    return attrs.evolve(binding, **changes)


def _vault(uow: Any) -> VaultUnitOfWork:
    missing = [name for name in VAULT_REPOSITORIES if not hasattr(uow, name)]
    if missing:
        raise AssertionError(f"the unit of work lacks the vault repositories {missing}")
    unit: VaultUnitOfWork = uow
    return unit


def _same_version(expected: SecretVersion, got: SecretVersion | None) -> None:
    assert got is not None
    assert attrs.evolve(got, envelope=None) == attrs.evolve(expected, envelope=None)
    if expected.envelope is None:
        assert got.envelope is None
    else:
        assert got.envelope is not None
        assert envelope_document(got.envelope) == envelope_document(expected.envelope)
