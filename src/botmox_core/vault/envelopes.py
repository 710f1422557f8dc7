"""Secret envelopes: the two formats the vault stores, their validation, and sealing/opening of
the HPKE envelope (``docs/vault.md`` specifies the bytes).

* :data:`ALG_HPKE` — sealed on the client to one or more agents' X25519 public keys with HPKE
  (RFC 9180) base mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305, from
  ``cryptography``. One :class:`SealedCopy` per recipient agent. The :class:`SealContext`
  (tenant, secret id, version, agent id, recipient key id) is the HPKE ``info``, so a copy moved
  to another tenant, secret, version or agent does not open.
* :data:`ALG_AES_GCM` — the seed browser's envelope: AES-256-GCM under a key only the client
  holds; the server checks its shape (12-byte nonce, ciphertext with its 16-byte tag) and treats
  it as opaque. Nothing in botmox opens it.

The server only ever calls :func:`parse_envelope` (validation: allow-listed ``alg``, strict
canonical base64, exact lengths, size limits; a :class:`~botmox_core.errors.BadRequestError`
naming the field otherwise) and :func:`envelope_document` (what a backend stores). Clients call
:func:`seal`; agents call :func:`open_`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from botmox_core.errors import BadRequestError

__all__ = [
    "ALG_AES_GCM",
    "ALG_HPKE",
    "ALGORITHMS",
    "AES_GCM_NONCE_BYTES",
    "AEAD_TAG_BYTES",
    "HPKE_ENC_BYTES",
    "INFO_LABEL",
    "KEY_ID_PREFIX",
    "MAX_PLAINTEXT_BYTES",
    "MAX_ENVELOPE_BYTES",
    "MAX_RECIPIENTS",
    "AesGcmEnvelope",
    "Envelope",
    "EnvelopeOpenError",
    "HpkeEnvelope",
    "RecipientKey",
    "SealContext",
    "SealedCopy",
    "b64decode_strict",
    "envelope_document",
    "key_id_of",
    "normalise_alg",
    "open_",
    "parse_envelope",
    "seal",
]

#: The HPKE envelope's ``alg`` (RFC 9180 suite 0x0020 / 0x0001 / 0x0003, base mode).
ALG_HPKE = "hpke-x25519-hkdf-sha256-chacha20poly1305"
#: The seed browser's envelope (accepted in any letter case, stored lower-case).
ALG_AES_GCM = "aes-256-gcm"
#: The allow-list of ``alg`` values.
ALGORITHMS = (ALG_HPKE, ALG_AES_GCM)

#: The most plaintext one envelope (one copy) may carry.
MAX_PLAINTEXT_BYTES = 64 * 1024
#: The most recipient agents one HPKE envelope may name.
MAX_RECIPIENTS = 32
#: The most ciphertext (decoded bytes, every copy together) one envelope may hold: requests
#: stay under the server's 1 MiB body limit with room for the base64 and the JSON around it.
MAX_ENVELOPE_BYTES = 640 * 1024
#: Size of the HPKE encapsulated key (``enc``) of DHKEM(X25519): a raw X25519 public key.
HPKE_ENC_BYTES = 32
#: Size of the authentication tag of ChaCha20-Poly1305 and of AES-GCM.
AEAD_TAG_BYTES = 16
#: Size of the AES-GCM nonce the seed's browser uses.
AES_GCM_NONCE_BYTES = 12
#: First bytes of every HPKE ``info`` (the format's version).
INFO_LABEL = b"botmox-vault/v1"
#: Prefix of a recipient key id (see :func:`key_id_of`).
KEY_ID_PREFIX = "x25519:"
#: Length limits of the text fields of an envelope.
MAX_KEY_ID = 200
MAX_AGENT_ID = 128
#: Length limit of one field of the :class:`SealContext` (bytes of UTF-8).
MAX_CONTEXT_FIELD_BYTES = 1024

_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
_AGENT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}", re.ASCII)
_KEY_ID_RE = re.compile(r"[\x21-\x7e]{1,200}", re.ASCII)


class EnvelopeOpenError(Exception):
    """An envelope did not open: wrong key, wrong context, or altered bytes. The message never
    carries key or secret material."""


@attrs.frozen(kw_only=True)
class SealedCopy:
    """The secret sealed to one agent's key.

    Attributes:
        agent_id: the recipient agent.
        key_id: :func:`key_id_of` the agent's X25519 public key the copy is sealed to.
        enc: canonical base64 of the HPKE encapsulated key (32 bytes).
        ciphertext: canonical base64 of the HPKE ciphertext (plaintext length + 16-byte tag).
    """

    agent_id: str
    key_id: str
    enc: str = attrs.field(repr=False)
    ciphertext: str = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class HpkeEnvelope:
    """An :data:`ALG_HPKE` envelope: one sealed copy per recipient agent (agent ids unique).

    Attributes:
        copies: the sealed copies, in the order the client sent them.
    """

    copies: tuple[SealedCopy, ...]

    @property
    def alg(self) -> str:
        return ALG_HPKE

    def copy_for(self, agent_id: str) -> SealedCopy | None:
        """The copy sealed to ``agent_id``, or ``None``."""
        return next((copy for copy in self.copies if copy.agent_id == agent_id), None)


@attrs.frozen(kw_only=True)
class AesGcmEnvelope:
    """An :data:`ALG_AES_GCM` envelope (opaque: the key never leaves the client).

    Attributes:
        key_id: the client's name for its key (e.g. ``local-browser-key-v1``).
        nonce: canonical base64 of the 12-byte nonce.
        ciphertext: canonical base64 of ciphertext ‖ 16-byte tag.
    """

    key_id: str
    nonce: str = attrs.field(repr=False)
    ciphertext: str = attrs.field(repr=False)

    @property
    def alg(self) -> str:
        return ALG_AES_GCM


Envelope = HpkeEnvelope | AesGcmEnvelope


@attrs.frozen(kw_only=True)
class SealContext:
    """What one sealed copy is bound to; its :meth:`info` is the HPKE ``info``.

    Attributes:
        tenant_id: the secret's tenant.
        secret_id: the secret's id.
        version: the secret version the copy belongs to (1 for a new secret, n+1 for a rotation
            from version n).
        agent_id: the recipient agent.
        key_id: :func:`key_id_of` the recipient's public key.
    """

    tenant_id: str
    secret_id: str
    version: int
    agent_id: str
    key_id: str

    def info(self) -> bytes:
        """``INFO_LABEL`` then, for tenant id, secret id, version (decimal ASCII), agent id and
        key id in that order: a 2-byte big-endian length and the UTF-8 bytes."""
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            raise ValueError("version must be an integer")
        if self.version < 1:
            raise ValueError("version must be at least 1")
        parts = [INFO_LABEL]
        for value in (
            self.tenant_id,
            self.secret_id,
            str(self.version),
            self.agent_id,
            self.key_id,
        ):
            raw = value.encode("utf-8")
            if not raw or len(raw) > MAX_CONTEXT_FIELD_BYTES:
                raise ValueError("every context field must be 1-1024 bytes of UTF-8")
            parts.append(len(raw).to_bytes(2, "big"))
            parts.append(raw)
        return b"".join(parts)


@attrs.frozen(kw_only=True)
class RecipientKey:
    """An agent to seal to.

    Attributes:
        agent_id: the agent's id.
        public_key: base64 (standard or URL-safe, padding optional) of its 32-byte X25519
            public key, as ``GET /api/v1/agents/{id}`` returns it.
    """

    agent_id: str
    public_key: str


def key_id_of(public_key: bytes | str | X25519PublicKey) -> str:
    """The id of an X25519 public key: ``"x25519:"`` + the first 16 bytes of SHA-256 over the
    32 raw key bytes, lower-case hex."""
    raw = _public_key_bytes(public_key)
    return KEY_ID_PREFIX + hashlib.sha256(raw).hexdigest()[:32]


def seal(
    plaintext: bytes,
    recipients: Sequence[RecipientKey],
    *,
    tenant_id: str,
    secret_id: str,
    version: int,
) -> HpkeEnvelope:
    """Seal ``plaintext`` to every recipient (one HPKE base-mode single-shot encryption each,
    with the copy's :class:`SealContext` as ``info``)."""
    if len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise ValueError(f"a secret holds at most {MAX_PLAINTEXT_BYTES} bytes")
    if not recipients:
        raise ValueError("seal to at least one agent")
    if len(recipients) > MAX_RECIPIENTS:
        raise ValueError(f"at most {MAX_RECIPIENTS} recipient agents")
    if len({recipient.agent_id for recipient in recipients}) != len(recipients):
        raise ValueError("each recipient agent once")
    if (len(plaintext) + AEAD_TAG_BYTES) * len(recipients) > MAX_ENVELOPE_BYTES:
        raise ValueError(f"the sealed copies would exceed {MAX_ENVELOPE_BYTES} bytes")
    copies = []
    for recipient in recipients:
        key = X25519PublicKey.from_public_bytes(_public_key_bytes(recipient.public_key))
        key_id = key_id_of(key)
        context = SealContext(
            tenant_id=tenant_id,
            secret_id=secret_id,
            version=version,
            agent_id=recipient.agent_id,
            key_id=key_id,
        )
        sealed = _SUITE.encrypt(plaintext, key, info=context.info())
        copies.append(
            SealedCopy(
                agent_id=recipient.agent_id,
                key_id=key_id,
                enc=_b64(sealed[:HPKE_ENC_BYTES]),
                ciphertext=_b64(sealed[HPKE_ENC_BYTES:]),
            )
        )
    return HpkeEnvelope(copies=tuple(copies))


def open_(
    sealed: HpkeEnvelope | SealedCopy, private_key: X25519PrivateKey, context: SealContext
) -> bytes:
    """The plaintext of the copy sealed to ``context.agent_id``; :class:`EnvelopeOpenError`
    when there is none, the key or context differ, or a byte was altered."""
    copy = sealed.copy_for(context.agent_id) if isinstance(sealed, HpkeEnvelope) else sealed
    if copy is None or copy.agent_id != context.agent_id or copy.key_id != context.key_id:
        raise EnvelopeOpenError("the envelope has no copy for this agent and key")
    if key_id_of(private_key.public_key()) != context.key_id:
        raise EnvelopeOpenError("the private key does not match the copy's key id")
    try:
        enc = b64decode_strict(copy.enc)
        body = b64decode_strict(copy.ciphertext)
        if len(enc) != HPKE_ENC_BYTES or len(body) < AEAD_TAG_BYTES:
            raise ValueError("bad lengths")
        return _SUITE.decrypt(enc + body, private_key, info=context.info())
    except (InvalidTag, ValueError):
        raise EnvelopeOpenError(
            "the envelope did not open (altered, or sealed for another "
            "secret, version, tenant or agent)"
        ) from None


# -- validation (what the server does) ------------------------------------------------------


def normalise_alg(value: Any, field: str = "alg") -> str:
    """The allow-listed ``alg`` (``aes-256-gcm`` in any case → lower case); 400 otherwise."""
    if not isinstance(value, str) or value.lower() not in ALGORITHMS:
        raise _invalid(field, "must be one of " + ", ".join(ALGORITHMS))
    return value.lower()


def parse_envelope(body: Mapping[str, Any], *, default_alg: str | None = ALG_AES_GCM) -> Envelope:
    """Validate an envelope in its wire shape (``docs/vault.md``) and return it.

    ``{"alg": ALG_HPKE, "recipients": [{"agent_id", "key_id", "enc", "ciphertext"}, ...]}`` or
    ``{"alg": "aes-256-gcm", "key_id", "nonce", "ciphertext"}`` (``alg`` absent →
    ``default_alg``). Fields of the other format are refused. Each problem is a 400
    ``BAD_REQUEST`` naming the field; base64 must be canonical standard base64 with padding.
    """
    raw_alg = body.get("alg")
    if raw_alg is None and default_alg is not None:
        raw_alg = default_alg
    alg = normalise_alg(raw_alg)
    if alg == ALG_HPKE:
        for field in ("nonce", "key_id", "ciphertext"):
            if body.get(field) is not None:
                raise _invalid(field, f"not part of an {ALG_HPKE} envelope (see recipients)")
        return HpkeEnvelope(copies=_copies(body.get("recipients")))
    if body.get("recipients") is not None:
        raise _invalid("recipients", f"not part of an {ALG_AES_GCM} envelope")
    key_id = body.get("key_id")
    if not isinstance(key_id, str) or not _KEY_ID_RE.fullmatch(key_id):
        raise _invalid("key_id", "must be 1-200 printable ASCII characters")
    nonce = _b64_field(body.get("nonce"), "nonce", exact=AES_GCM_NONCE_BYTES)
    ciphertext = _b64_field(
        body.get("ciphertext"),
        "ciphertext",
        minimum=AEAD_TAG_BYTES + 1,
        maximum=MAX_PLAINTEXT_BYTES + AEAD_TAG_BYTES,
    )
    return AesGcmEnvelope(key_id=key_id, nonce=nonce, ciphertext=ciphertext)


def envelope_document(envelope: Envelope) -> dict[str, Any]:
    """The envelope in its wire shape (what backends store; :func:`parse_envelope` reads it
    back)."""
    if isinstance(envelope, HpkeEnvelope):
        return {
            "alg": ALG_HPKE,
            "recipients": [
                {
                    "agent_id": c.agent_id,
                    "key_id": c.key_id,
                    "enc": c.enc,
                    "ciphertext": c.ciphertext,
                }
                for c in envelope.copies
            ],
        }
    return {
        "alg": ALG_AES_GCM,
        "key_id": envelope.key_id,
        "nonce": envelope.nonce,
        "ciphertext": envelope.ciphertext,
    }


def b64decode_strict(value: str) -> bytes:
    """Decode canonical standard base64 (with padding); ``ValueError`` for anything else."""
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("not base64") from None
    if _b64(raw) != value:
        raise ValueError("not canonical base64")
    return raw


def _copies(value: Any) -> tuple[SealedCopy, ...]:
    if not isinstance(value, list) or not value:
        raise _invalid("recipients", "must be a non-empty list of sealed copies")
    if len(value) > MAX_RECIPIENTS:
        raise _invalid("recipients", f"at most {MAX_RECIPIENTS} recipients")
    copies: list[SealedCopy] = []
    seen: set[str] = set()
    total = 0
    for index, item in enumerate(value):
        where = f"recipients[{index}]"
        if not isinstance(item, Mapping):
            raise _invalid(where, "must be an object")
        unknown = sorted(set(item) - {"agent_id", "key_id", "enc", "ciphertext"})
        if unknown:
            raise _invalid(f"{where}.{unknown[0]}", "unknown field")
        agent_id = item.get("agent_id")
        if not isinstance(agent_id, str) or not _AGENT_ID_RE.fullmatch(agent_id):
            raise _invalid(f"{where}.agent_id", "must be an agent id")
        if agent_id in seen:
            raise _invalid(f"{where}.agent_id", "each agent at most once")
        seen.add(agent_id)
        key_id = item.get("key_id")
        if not isinstance(key_id, str) or not re.fullmatch(
            re.escape(KEY_ID_PREFIX) + "[0-9a-f]{32}", key_id
        ):
            raise _invalid(f"{where}.key_id", "must be x25519: and 32 lower-case hex digits")
        enc = _b64_field(item.get("enc"), f"{where}.enc", exact=HPKE_ENC_BYTES)
        ciphertext = _b64_field(
            item.get("ciphertext"),
            f"{where}.ciphertext",
            minimum=AEAD_TAG_BYTES + 1,
            maximum=MAX_PLAINTEXT_BYTES + AEAD_TAG_BYTES,
        )
        total += len(ciphertext) * 3 // 4 - ciphertext.count("=")
        if total > MAX_ENVELOPE_BYTES:
            raise _invalid("recipients", f"the copies hold at most {MAX_ENVELOPE_BYTES} bytes")
        copies.append(SealedCopy(agent_id=agent_id, key_id=key_id, enc=enc, ciphertext=ciphertext))
    return tuple(copies)


def _b64_field(
    value: Any,
    field: str,
    *,
    exact: int | None = None,
    minimum: int = 1,
    maximum: int | None = None,
) -> str:
    if not isinstance(value, str) or not value:
        raise _invalid(field, "must be a base64 string")
    limit = maximum if maximum is not None else exact
    if limit is not None and len(value) > 4 * ((limit + 2) // 3):
        raise _invalid(field, f"too long: at most {limit} bytes")
    try:
        raw = b64decode_strict(value)
    except ValueError:
        raise _invalid(field, "must be canonical standard base64 with padding") from None
    if exact is not None and len(raw) != exact:
        raise _invalid(field, f"must decode to exactly {exact} bytes, got {len(raw)}")
    if len(raw) < minimum:
        raise _invalid(field, f"must decode to at least {minimum} bytes, got {len(raw)}")
    if maximum is not None and len(raw) > maximum:
        raise _invalid(field, f"too long: at most {maximum} bytes")
    return value


def _public_key_bytes(value: bytes | str | X25519PublicKey) -> bytes:
    if isinstance(value, X25519PublicKey):
        from cryptography.hazmat.primitives import serialization

        return value.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if isinstance(value, str):
        text = value.strip().replace("-", "+").replace("_", "/")
        try:
            value = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except binascii.Error:
            raise ValueError("a public key must be base64 of 32 bytes") from None
    if len(value) != 32:
        raise ValueError("an X25519 public key is 32 bytes")
    return bytes(value)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _invalid(field: str, message: str) -> BadRequestError:
    return BadRequestError(f"{field}: {message}", details=[{"field": field, "message": message}])
