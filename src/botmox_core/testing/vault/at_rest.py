"""Vault conformance: what the store holds at rest, read around the backend (a database export, a
dump, a file copy), has a sealed secret's ciphertext but never its plaintext.

Opt-in: a backend adds :class:`VaultAtRestConformance` to its vault test class and provides the
``raw_vault_dump`` fixture, the way an operator (or an attacker with a backup) reads the store::

    class TestMyBackendVault(VaultRepositoryConformance, VaultAtRestConformance):
        ...  # the backend fixture

        @pytest.fixture
        def raw_vault_dump(self, tmp_path):
            # what the store's own export tool writes, not the backend's repositories
            return lambda: [my_store_export(tmp_path / "db")]
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Sequence

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from botmox_core.testing.vault._base import B, VaultConformanceBase
from botmox_core.testing.vault._support import make_binding, make_secret
from botmox_core.vault.envelopes import (
    Envelope,
    RecipientKey,
    SealContext,
    envelope_document,
    key_id_of,
    open_,
    seal,
)

__all__ = ["RawVaultDump", "VaultAtRestConformance", "envelope_texts"]

#: The ``raw_vault_dump`` fixture's value: called after the test's writes are committed, it
#: returns the store read around the backend, as one or more byte strings (say a plain and a
#: custom-format dump).
RawVaultDump = Callable[[], Sequence[bytes]]


def envelope_texts(envelope: Envelope | None) -> list[str]:
    """Every base64 value (``enc``, ``ciphertext``, ``nonce``) of ``envelope``'s wire document:
    what a dump of the store must contain, and an error message must not. Fails on ``None`` (a
    version whose envelope was dropped) or an envelope without any, where a check would be
    vacuous."""
    assert envelope is not None, "no envelope: the checks on its ciphertext would be vacuous"
    document = envelope_document(envelope)
    found = [c[name] for c in document.get("recipients", []) for name in ("enc", "ciphertext")]
    found += [document[name] for name in ("nonce", "ciphertext") if name in document]
    assert found, "an envelope without ciphertext: the checks on it would be vacuous"
    return found


class VaultAtRestConformance(VaultConformanceBase[B]):
    """Pytest mixin: a secret sealed to an agent, stored with a binding, opens for that agent,
    and the raw store holds its id, its tenant and every ciphertext value (so the search is
    real) but neither the plaintext nor its base64.

    Fixture to provide:
        raw_vault_dump: a :data:`RawVaultDump` reading the store of ``backend`` without the
            backend's repositories (required; there is no default).
    """

    @pytest.fixture
    def raw_vault_dump(self) -> RawVaultDump:
        """Override: the store of ``backend`` as bytes, read out of band."""
        raise NotImplementedError(
            f"{type(self).__name__} must define a `raw_vault_dump` fixture returning a callable "
            "that reads the backend's store around its repositories (a database export, a "
            "dump) as a list of byte strings"
        )

    def test_a_raw_dump_holds_the_ciphertext_but_never_the_plaintext(
        self, backend: B, tenant: str, raw_vault_dump: RawVaultDump
    ) -> None:
        plaintext = f"proxmox-root-pw-{secrets.token_hex(12)}".encode()
        private = X25519PrivateKey.generate()
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        secret_id = make_secret(tenant).id
        envelope = seal(
            plaintext,
            [RecipientKey(agent_id="agt_one", public_key=base64.b64encode(public).decode())],
            tenant_id=tenant,
            secret_id=secret_id,
            version=1,
        )
        secret = make_secret(tenant, envelope, id=secret_id)
        self.store(backend, secret, envelope)
        self.write_unit(backend, lambda u: u.bindings.upsert(make_binding(tenant, secret_id)))

        # What was stored opens for its agent (nothing was altered on the way) ...
        stored = self.read_unit(backend, lambda u: u.secrets.get_version(tenant, secret_id, 1))
        assert stored is not None and stored.envelope is not None
        context = SealContext(
            tenant_id=tenant,
            secret_id=secret_id,
            version=1,
            agent_id="agt_one",
            key_id=key_id_of(private.public_key()),
        )
        assert open_(stored.envelope, private, context) == plaintext  # type: ignore[arg-type]

        # ... and every dump of the store has the ciphertext (the search finds what is there)
        # but not the plaintext.
        dumps = list(raw_vault_dump())
        assert dumps, "raw_vault_dump returned nothing to search"
        ciphertexts = envelope_texts(envelope)
        for dump in dumps:
            assert secret_id.encode() in dump and tenant.encode() in dump
            for value in ciphertexts:
                assert value.encode() in dump, "the search must find the ciphertext that is there"
            assert plaintext not in dump
            assert base64.b64encode(plaintext) not in dump
