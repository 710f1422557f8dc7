"""The vault's records: a secret (metadata only), its versions (the stored envelopes) and the
bindings that reference a secret from a scope (``secret_ref``).

Only what the server may know is here: labels, algorithms, recipients, versions, times. The
envelopes in :class:`SecretVersion` are ciphertext the server never opens and no tenant-facing
route returns.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from botmox_core.vault.envelopes import Envelope

__all__ = [
    "BINDING_TEXT_RE",
    "ScopeType",
    "Secret",
    "SecretBinding",
    "SecretRecipient",
    "SecretVersion",
    "canonical_secret_id",
    "new_binding_id",
    "new_secret_id",
]

#: Scope ids and field names: 1-200 printable characters without control characters.
BINDING_TEXT_RE = re.compile(r"[^\x00-\x1f\x7f]{1,200}")


class ScopeType(enum.StrEnum):
    """What a binding attaches a secret to (the seed's set, with ``vm_settings`` accepted)."""

    BOT = "bot"
    VM = "vm"
    VM_SETTINGS = "vm_settings"
    AGENT = "agent"
    TENANT = "tenant"


@attrs.frozen(kw_only=True)
class SecretRecipient:
    """An agent a version is sealed to.

    Attributes:
        agent_id: the agent.
        key_id: the id of the agent's public key the copy is sealed to.
    """

    agent_id: str
    key_id: str


@attrs.frozen(kw_only=True)
class Secret:
    """A secret's metadata: what ``GET /secrets/{id}/meta`` shows (its current version's
    algorithm and recipients, never ciphertext).

    Attributes:
        id: a UUID (lower-case canonical text), unique per tenant.
        tenant_id: the owning tenant.
        label: the operator's label (1-200 characters).
        alg: the current version's algorithm (an allow-listed ``alg``).
        version: the current version, 1 at creation, +1 per rotation.
        key_id: the client's key id of an ``aes-256-gcm`` envelope; ``None`` for HPKE.
        recipients: the agents the current version is sealed to (empty for ``aes-256-gcm``).
        aad_meta: the client's JSON object of non-secret metadata.
        created_at, updated_at: creation and last change.
        rotated_at: the last rotation, ``None`` before the first.
        created_by: who created it (user id or token subject), if known.
    """

    id: str
    tenant_id: str
    label: str
    alg: str
    version: int
    created_at: datetime
    updated_at: datetime
    key_id: str | None = None
    recipients: tuple[SecretRecipient, ...] = ()
    aad_meta: Mapping[str, Any] = attrs.Factory(dict)
    rotated_at: datetime | None = None
    created_by: str | None = None


@attrs.frozen(kw_only=True)
class SecretVersion:
    """One version of a secret: its envelope (until dropped by retention) and metadata.

    Attributes:
        tenant_id, secret_id, version: which version of which secret.
        alg: the envelope's algorithm.
        recipients: the agents this version is sealed to (empty for ``aes-256-gcm``).
        key_id: the client's key id (``aes-256-gcm`` only).
        created_at: when this version was stored.
        created_by: who stored it, if known.
        envelope: the stored envelope; ``None`` once retention dropped it (its metadata stays).
    """

    tenant_id: str
    secret_id: str
    version: int
    alg: str
    created_at: datetime
    recipients: tuple[SecretRecipient, ...] = ()
    key_id: str | None = None
    created_by: str | None = None
    envelope: Envelope | None = attrs.field(default=None, repr=False)


@attrs.frozen(kw_only=True)
class SecretBinding:
    """A reference from a scope's field to a secret (``secret_ref``). One binding per
    (tenant, scope_type, scope_id, field_name).

    Attributes:
        id: binding id (a UUID).
        tenant_id: the owning tenant (the secret's tenant too).
        scope_type: what the secret is attached to.
        scope_id: which one (e.g. ``vmgenerator`` for ``vm_settings``).
        field_name: the field it fills (e.g. ``proxmox.password``).
        secret_ref: the secret's id.
        created_at, updated_at: creation and last re-binding.
    """

    id: str
    tenant_id: str
    scope_type: ScopeType
    scope_id: str
    field_name: str
    secret_ref: str
    created_at: datetime
    updated_at: datetime


def new_secret_id() -> str:
    """A new secret id (UUID 4, canonical lower-case text)."""
    return str(uuid.uuid4())


def new_binding_id() -> str:
    """A new binding id (UUID 4)."""
    return str(uuid.uuid4())


def canonical_secret_id(value: Any) -> str | None:
    """``value`` as canonical secret id text (lower-case hyphenated UUID), or ``None`` when it
    is not exactly that (in any letter case)."""
    if not isinstance(value, str) or len(value) != 36:
        return None
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    text = str(parsed)
    return text if text == value.lower() else None
