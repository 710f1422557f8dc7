"""The vault's envelopes: sealing and opening (context bound, tampering detected), the
documented test vector (opened by the library and by an independent RFC 9180 implementation
written here from the RFC), and the server's validation (400 naming the field)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from botmox_core.errors import BadRequestError
from botmox_core.vault.envelopes import (
    ALG_HPKE,
    MAX_PLAINTEXT_BYTES,
    AesGcmEnvelope,
    EnvelopeOpenError,
    HpkeEnvelope,
    RecipientKey,
    SealContext,
    envelope_document,
    key_id_of,
    open_,
    parse_envelope,
    seal,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "vault.md"

# The test vector of docs/vault.md ("Test vector").
VECTOR_PRIVATE_KEY = bytes.fromhex(
    "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
)
VECTOR_PUBLIC_KEY = "B6N8vBQgk8i3VdwbEOhstCY3StFqqFPtC9/AsrhtHHw="
VECTOR_KEY_ID = "x25519:aaa8fff703b50b2297f4f6e13508f724"
VECTOR_CONTEXT = SealContext(
    tenant_id="tenant-a",
    secret_id="7f3c1a52-3c1e-4d2b-9a8e-0c6d5e4f3a21",
    version=1,
    agent_id="agt_0123456789abcdef",
    key_id=VECTOR_KEY_ID,
)
VECTOR_INFO_HEX = (
    "626f746d6f782d7661756c742f7631000874656e616e742d61002437663363316135322d336331652d346432"
    "622d396138652d30633664356534663361323100013100146167745f303132333435363738396162636465"
    "6600277832353531393a6161613866666637303362353062323239376634663665313335303866373234"
)
VECTOR_ENVELOPE: dict[str, Any] = {
    "alg": ALG_HPKE,
    "recipients": [
        {
            "agent_id": "agt_0123456789abcdef",
            "key_id": VECTOR_KEY_ID,
            "enc": "z8jLdb9WhFljg0VzsQKrjoJtJNEBLj7HUeotE9AWGXc=",
            "ciphertext": "9qcPA1qaF1BgwKJUA6kI8tbgrL7/WmJfKqkh51GTN4yvMBudT4HDZSMiTlc=",
        }
    ],
}
VECTOR_PLAINTEXT = b"correct horse battery staple"


def _keypair() -> tuple[X25519PrivateKey, str]:
    key = X25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key, base64.b64encode(raw).decode()


def _context(key_id: str, **changes: Any) -> SealContext:
    base = SealContext(tenant_id="t1", secret_id="s1", version=3, agent_id="agt_a", key_id=key_id)
    return attrs.evolve(base, **changes)


def _sealed(plaintext: bytes = b"hunter2") -> tuple[HpkeEnvelope, X25519PrivateKey, str]:
    key, public = _keypair()
    envelope = seal(
        plaintext,
        [RecipientKey(agent_id="agt_a", public_key=public)],
        tenant_id="t1",
        secret_id="s1",
        version=3,
    )
    return envelope, key, envelope.copies[0].key_id


def _flip(text: str, index: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


# -- sealing and opening -----------------------------------------------------------------------


def test_a_sealed_secret_opens_with_its_context() -> None:
    envelope, key, key_id = _sealed()
    assert open_(envelope, key, _context(key_id)) == b"hunter2"
    assert key_id == key_id_of(key.public_key())


@pytest.mark.parametrize(
    "changes",
    [
        {"tenant_id": "t2"},
        {"secret_id": "s2"},
        {"version": 4},
        {"version": 2},
    ],
    ids=["other tenant", "other secret", "next version", "previous version"],
)
def test_a_copy_moved_to_another_context_does_not_open(changes: dict[str, Any]) -> None:
    envelope, key, key_id = _sealed()
    with pytest.raises(EnvelopeOpenError) as caught:
        open_(envelope, key, _context(key_id, **changes))
    assert "hunter2" not in str(caught.value)


def test_a_copy_moved_to_another_agent_does_not_open() -> None:
    envelope, key, key_id = _sealed()
    moved = attrs.evolve(envelope.copies[0], agent_id="agt_b")
    with pytest.raises(EnvelopeOpenError):
        open_(moved, key, _context(key_id, agent_id="agt_b"))


def test_another_agents_key_does_not_open() -> None:
    envelope, _, key_id = _sealed()
    other, _ = _keypair()
    with pytest.raises(EnvelopeOpenError):
        open_(envelope, other, _context(key_id))
    with pytest.raises(EnvelopeOpenError):
        open_(envelope, other, _context(key_id_of(other.public_key())))


@pytest.mark.parametrize("field", ["enc", "ciphertext"])
@pytest.mark.parametrize("index", [0, 5, -1])
def test_a_flipped_bit_does_not_open(field: str, index: int) -> None:
    envelope, key, key_id = _sealed()
    copy = envelope.copies[0]
    tampered = attrs.evolve(copy, **{field: _flip(getattr(copy, field), index)})
    with pytest.raises(EnvelopeOpenError):
        open_(tampered, key, _context(key_id))


def test_a_truncated_ciphertext_does_not_open() -> None:
    envelope, key, key_id = _sealed()
    copy = envelope.copies[0]
    raw = base64.b64decode(copy.ciphertext)
    for cut in (1, 16, len(raw)):
        short = base64.b64encode(raw[:-cut]).decode()
        with pytest.raises(EnvelopeOpenError):
            open_(attrs.evolve(copy, ciphertext=short), key, _context(key_id))


def test_every_recipient_opens_its_own_copy_only() -> None:
    keys = [_keypair() for _ in range(3)]
    envelope = seal(
        b"s3cr3t",
        [RecipientKey(agent_id=f"agt_{i}", public_key=pub) for i, (_, pub) in enumerate(keys)],
        tenant_id="t",
        secret_id="s",
        version=1,
    )
    for index, (key, _) in enumerate(keys):
        copy = envelope.copies[index]
        context = SealContext(
            tenant_id="t", secret_id="s", version=1, agent_id=copy.agent_id, key_id=copy.key_id
        )
        assert open_(envelope, key, context) == b"s3cr3t"
        # another agent's copy, presented as this agent's, fails
        other = envelope.copies[(index + 1) % 3]
        swapped = attrs.evolve(other, agent_id=copy.agent_id, key_id=copy.key_id)
        with pytest.raises(EnvelopeOpenError):
            open_(swapped, key, context)


def test_seal_refuses_what_the_server_would_refuse() -> None:
    _, public = _keypair()
    one = [RecipientKey(agent_id="agt_a", public_key=public)]
    with pytest.raises(ValueError, match="at most"):
        seal(b"x" * (MAX_PLAINTEXT_BYTES + 1), one, tenant_id="t", secret_id="s", version=1)
    with pytest.raises(ValueError, match="at least one"):
        seal(b"x", [], tenant_id="t", secret_id="s", version=1)
    with pytest.raises(ValueError, match="once"):
        seal(b"x", one * 2, tenant_id="t", secret_id="s", version=1)
    with pytest.raises(ValueError, match="32 bytes"):
        seal(
            b"x",
            [RecipientKey(agent_id="a", public_key="AAAA")],
            tenant_id="t",
            secret_id="s",
            version=1,
        )


def test_the_largest_secret_seals_and_passes_validation() -> None:
    envelope, key, key_id = _sealed(b"\xff" * MAX_PLAINTEXT_BYTES)
    assert parse_envelope(envelope_document(envelope)) == envelope
    assert open_(envelope, key, _context(key_id)) == b"\xff" * MAX_PLAINTEXT_BYTES


# -- the documented vector ---------------------------------------------------------------------


def test_the_documented_vector_opens() -> None:
    key = X25519PrivateKey.from_private_bytes(VECTOR_PRIVATE_KEY)
    assert key_id_of(key.public_key()) == VECTOR_KEY_ID == key_id_of(VECTOR_PUBLIC_KEY)
    assert VECTOR_CONTEXT.info().hex() == VECTOR_INFO_HEX
    envelope = parse_envelope(VECTOR_ENVELOPE)
    assert open_(envelope, key, VECTOR_CONTEXT) == VECTOR_PLAINTEXT


def test_the_documented_vector_opens_with_an_independent_rfc9180_implementation() -> None:
    copy = VECTOR_ENVELOPE["recipients"][0]
    plaintext = _rfc9180_base_open(
        VECTOR_PRIVATE_KEY,
        base64.b64decode(copy["enc"]),
        bytes.fromhex(VECTOR_INFO_HEX),
        base64.b64decode(copy["ciphertext"]),
    )
    assert plaintext == VECTOR_PLAINTEXT


def test_the_docs_carry_the_vector() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for value in (
        VECTOR_PRIVATE_KEY.hex(),
        VECTOR_PUBLIC_KEY,
        VECTOR_KEY_ID,
        VECTOR_CONTEXT.secret_id,
        VECTOR_ENVELOPE["recipients"][0]["enc"],
        VECTOR_ENVELOPE["recipients"][0]["ciphertext"],
        VECTOR_PLAINTEXT.decode(),
        ALG_HPKE,
    ):
        assert value in text, value
    assert VECTOR_INFO_HEX in text.replace("\n", "").replace(" ", "")


def _labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or bytes(32), b"HPKE-v1" + suite_id + label + ikm, hashlib.sha256).digest()


def _labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, size: int) -> bytes:
    labeled = size.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + info
    return HKDFExpand(hashes.SHA256(), size, labeled).derive(prk)


def _rfc9180_base_open(sk_r: bytes, enc: bytes, info: bytes, ciphertext: bytes) -> bytes:
    """RFC 9180 base mode Open for DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
    ChaCha20-Poly1305 (sections 4.1, 5.1, 5.2), sequence number 0, empty aad."""
    key_r = X25519PrivateKey.from_private_bytes(sk_r)
    pk_rm = key_r.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    dh = key_r.exchange(X25519PublicKey.from_public_bytes(enc))
    kem_suite = b"KEM" + (0x0020).to_bytes(2, "big")
    eae_prk = _labeled_extract(kem_suite, b"", b"eae_prk", dh)
    shared_secret = _labeled_expand(kem_suite, eae_prk, b"shared_secret", enc + pk_rm, 32)
    suite = b"HPKE" + bytes.fromhex("002000010003")
    psk_id_hash = _labeled_extract(suite, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(suite, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = _labeled_extract(suite, shared_secret, b"secret", b"")
    key = _labeled_expand(suite, secret, b"key", context, 32)
    base_nonce = _labeled_expand(suite, secret, b"base_nonce", context, 12)
    return ChaCha20Poly1305(key).decrypt(base_nonce, ciphertext, b"")


# -- validation --------------------------------------------------------------------------------


def _hpke(**copy_changes: Any) -> dict[str, Any]:
    copy = {**VECTOR_ENVELOPE["recipients"][0], **copy_changes}
    return {"alg": ALG_HPKE, "recipients": [{k: v for k, v in copy.items() if v is not None}]}


def _aes(**changes: Any) -> dict[str, Any]:
    body = {
        "alg": "aes-256-gcm",
        "key_id": "local-browser-key-v1",
        "nonce": base64.b64encode(bytes(12)).decode(),
        "ciphertext": base64.b64encode(bytes(40)).decode(),
        **changes,
    }
    return {k: v for k, v in body.items() if v is not None}


B64_33 = base64.b64encode(bytes(33)).decode()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"alg": "rsa-oaep"}, "alg"),
        ({"alg": 5}, "alg"),
        (_hpke(enc=None), "recipients[0].enc"),
        (_hpke(enc=B64_33), "recipients[0].enc"),
        (_hpke(enc=base64.b64encode(bytes(31)).decode()), "recipients[0].enc"),
        (_hpke(enc="z8jLdb9WhFljg0VzsQKrjoJtJNEBLj7HUeotE9AWGXc"), "recipients[0].enc"),
        (_hpke(enc="z8jLdb9WhFljg0VzsQKrjoJtJNEBLj7HUeotE9AWGXd="), "recipients[0].enc"),
        (_hpke(enc="z8jLdb9WhFljg0VzsQKrjoJtJNEBLj7HUeotE9AWGX-="), "recipients[0].enc"),
        (_hpke(ciphertext=base64.b64encode(bytes(16)).decode()), "recipients[0].ciphertext"),
        (
            _hpke(ciphertext=base64.b64encode(bytes(MAX_PLAINTEXT_BYTES + 17)).decode()),
            "recipients[0].ciphertext",
        ),
        (_hpke(ciphertext=" " + B64_33), "recipients[0].ciphertext"),
        (_hpke(key_id="x25519:AAA8fff703b50b2297f4f6e13508f724"), "recipients[0].key_id"),
        (_hpke(agent_id=""), "recipients[0].agent_id"),
        (_hpke(extra=1), "recipients[0].extra"),
        ({"alg": ALG_HPKE, "recipients": []}, "recipients"),
        ({"alg": ALG_HPKE, "recipients": {}}, "recipients"),
        ({"alg": ALG_HPKE, "recipients": ["x"]}, "recipients[0]"),
        (
            {"alg": ALG_HPKE, "recipients": VECTOR_ENVELOPE["recipients"] * 2},
            "recipients[1].agent_id",
        ),
        ({**_hpke(), "nonce": base64.b64encode(bytes(12)).decode()}, "nonce"),
        ({**_hpke(), "ciphertext": B64_33}, "ciphertext"),
        (_aes(nonce=base64.b64encode(bytes(16)).decode()), "nonce"),
        (_aes(nonce=None), "nonce"),
        (_aes(ciphertext=base64.b64encode(bytes(16)).decode()), "ciphertext"),
        (_aes(ciphertext=""), "ciphertext"),
        (_aes(ciphertext="not base64!"), "ciphertext"),
        (_aes(key_id=None), "key_id"),
        (_aes(key_id="k" * 201), "key_id"),
        (_aes(key_id="key\n"), "key_id"),
        (_aes(recipients=[]), "recipients"),
    ],
)
def test_invalid_envelopes_are_400_naming_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse_envelope(body)
    assert caught.value.status == 400
    assert caught.value.details[0]["field"] == field
    assert caught.value.message.startswith(field + ":")


def test_too_many_recipients_are_refused() -> None:
    copy = VECTOR_ENVELOPE["recipients"][0]
    many = [{**copy, "agent_id": f"agt_{i}"} for i in range(33)]
    with pytest.raises(BadRequestError) as caught:
        parse_envelope({"alg": ALG_HPKE, "recipients": many})
    assert caught.value.details[0]["field"] == "recipients"


def test_the_envelope_total_is_bounded() -> None:
    copy = VECTOR_ENVELOPE["recipients"][0]
    big = base64.b64encode(bytes(MAX_PLAINTEXT_BYTES)).decode()
    many = [{**copy, "agent_id": f"agt_{i}", "ciphertext": big} for i in range(11)]
    with pytest.raises(BadRequestError) as caught:
        parse_envelope({"alg": ALG_HPKE, "recipients": many})
    assert caught.value.details[0]["field"] == "recipients"


@pytest.mark.parametrize("alg", ["aes-256-gcm", "AES-256-GCM", "Aes-256-Gcm", None])
def test_the_seed_browser_envelope_is_accepted_opaque(alg: str | None) -> None:
    envelope = parse_envelope(_aes(alg=alg))
    assert isinstance(envelope, AesGcmEnvelope)
    assert envelope.alg == "aes-256-gcm"
    assert envelope_document(envelope)["alg"] == "aes-256-gcm"


def test_a_document_round_trips() -> None:
    envelope = parse_envelope(VECTOR_ENVELOPE)
    assert envelope_document(envelope) == VECTOR_ENVELOPE
    assert parse_envelope(envelope_document(envelope)) == envelope


def test_reprs_never_show_ciphertext() -> None:
    envelope = parse_envelope(VECTOR_ENVELOPE)
    aes = parse_envelope(_aes())
    for text in (repr(envelope), repr(aes)):
        assert VECTOR_ENVELOPE["recipients"][0]["ciphertext"] not in text
        assert "enc=" not in text and "nonce=" not in text and "ciphertext=" not in text
