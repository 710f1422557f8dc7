"""The ciphertext-only secret vault (``docs/vault.md``).

* :mod:`~botmox_core.vault.envelopes` — the envelope formats: validation (server), sealing
  (clients) and opening (agents).
* :mod:`~botmox_core.vault.models` — secrets, versions and bindings as the repositories store
  them.

The repository ports are in :mod:`botmox_core.ports.vault`, the rules in
:mod:`botmox_core.services.vault`.
"""

from botmox_core.vault.envelopes import (
    ALG_AES_GCM,
    ALG_HPKE,
    AesGcmEnvelope,
    Envelope,
    EnvelopeOpenError,
    HpkeEnvelope,
    RecipientKey,
    SealContext,
    SealedCopy,
    key_id_of,
    open_,
    seal,
)
from botmox_core.vault.models import (
    ScopeType,
    Secret,
    SecretBinding,
    SecretRecipient,
    SecretVersion,
)

__all__ = [
    "ALG_AES_GCM",
    "ALG_HPKE",
    "AesGcmEnvelope",
    "Envelope",
    "EnvelopeOpenError",
    "HpkeEnvelope",
    "RecipientKey",
    "ScopeType",
    "SealContext",
    "SealedCopy",
    "Secret",
    "SecretBinding",
    "SecretRecipient",
    "SecretVersion",
    "key_id_of",
    "open_",
    "seal",
]
