"""Secrets in command payloads: ``{"secret_ref": "<secret id>"}`` values resolved to plaintext
on the agent (``docs/agents.md``, *Secrets in command payloads*).

The runtime finds every object of the payload that is exactly ``{"secret_ref": "<id>"}``,
fetches the envelope copy sealed to this agent (``GET /api/v1/agents/me/secrets/{id}`` with the
agent token), opens it locally with the agent's X25519 private key from its state file, and
hands the handler the payload with each reference replaced by the secret's UTF-8 text. The
context the copy must have been sealed for is built from what the agent itself knows (its
tenant, its id, its key) plus the secret id it asked for and the version the server names, so
a copy moved to another secret, version, tenant or agent does not open.

A reference that cannot be resolved fails the command with :class:`SecretResolutionError`,
whose text is ``CODE: message`` and never carries key or secret material.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from botmox_core.agent.state import AgentState
from botmox_core.vault.envelopes import (
    EnvelopeOpenError,
    SealContext,
    SealedCopy,
    key_id_of,
    open_,
)
from botmox_core.vault.models import canonical_secret_id

__all__ = [
    "MAX_SECRET_REFS",
    "SECRET_REF_KEY",
    "SecretResolutionError",
    "find_secret_refs",
    "replace_secret_refs",
    "resolve_secret_refs",
    "scrub",
]

#: The key of a secret reference object.
SECRET_REF_KEY = "secret_ref"  # noqa: S105 - a field name
#: The most distinct secrets one command may reference.
MAX_SECRET_REFS = 32
#: Seconds one envelope fetch may take.
FETCH_TIMEOUT = 30.0
_MAX_DEPTH = 32


class SecretResolutionError(Exception):
    """A ``secret_ref`` of a command could not be resolved; the command fails with
    ``str(error)`` = ``"<code>: <message>"``.

    Codes: ``SECRET_REF_INVALID`` (not a secret id, or too many), ``SECRET_KEY_MISSING`` (the
    state file has no private key: pair again), ``SECRET_NOT_FOUND`` (the server has no copy
    for this agent: unknown, not sealed to it, not bound to a scope it serves, another
    tenant's), ``SECRET_FETCH_FAILED`` (the server could not be asked), ``SECRET_OPEN_FAILED``
    (the copy did not open: altered, or sealed for another context or key),
    ``SECRET_NOT_TEXT`` (the plaintext is not UTF-8).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _ref_of(value: Any) -> Any:
    if isinstance(value, Mapping) and len(value) == 1 and SECRET_REF_KEY in value:
        return value[SECRET_REF_KEY]
    return None


def find_secret_refs(payload: Any) -> list[str]:
    """The secret ids referenced by ``payload`` (each once, in order of appearance);
    :class:`SecretResolutionError` ``SECRET_REF_INVALID`` for a reference that is not a
    secret id, or more than :data:`MAX_SECRET_REFS` of them."""
    found: dict[str, None] = {}

    def walk(value: Any, depth: int) -> None:
        if depth > _MAX_DEPTH:
            return
        ref = _ref_of(value)
        if ref is not None:
            secret_id = canonical_secret_id(ref)
            if secret_id is None:
                raise SecretResolutionError(
                    "SECRET_REF_INVALID", "a secret_ref must be a secret id (a UUID)"
                )
            found[secret_id] = None
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item, depth + 1)
        elif isinstance(value, list):
            for item in value:
                walk(item, depth + 1)

    walk(payload, 0)
    if len(found) > MAX_SECRET_REFS:
        raise SecretResolutionError(
            "SECRET_REF_INVALID", f"a command references at most {MAX_SECRET_REFS} secrets"
        )
    return list(found)


def replace_secret_refs(payload: Any, plaintexts: Mapping[str, str], depth: int = 0) -> Any:
    """A copy of ``payload`` with each ``{"secret_ref": id}`` replaced by ``plaintexts[id]``."""
    ref = _ref_of(payload)
    if ref is not None:
        return plaintexts[canonical_secret_id(ref) or ""]
    if depth > _MAX_DEPTH:
        return payload
    if isinstance(payload, Mapping):
        return {
            key: replace_secret_refs(item, plaintexts, depth + 1) for key, item in payload.items()
        }
    if isinstance(payload, list):
        return [replace_secret_refs(item, plaintexts, depth + 1) for item in payload]
    return payload


def scrub(value: Any, secrets: list[str], replacement: str = "[REDACTED]") -> Any:
    """``value`` (text or JSON) with every occurrence of a non-empty string of ``secrets``
    replaced (what the runtime applies to a handler's output, result and error)."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            if secret and secret in value:
                value = value.replace(secret, replacement)
        return value
    if isinstance(value, dict):
        return {
            scrub(k, secrets, replacement): scrub(v, secrets, replacement) for k, v in value.items()
        }
    if isinstance(value, list):
        return [scrub(item, secrets, replacement) for item in value]
    return value


def _private_key(state: AgentState) -> X25519PrivateKey:
    if not state.private_key:
        raise SecretResolutionError(
            "SECRET_KEY_MISSING", "the agent state has no private key; pair the agent again"
        )
    try:
        return X25519PrivateKey.from_private_bytes(base64.b64decode(state.private_key))
    except ValueError:
        raise SecretResolutionError(
            "SECRET_KEY_MISSING", "the agent state's private key is malformed; pair again"
        ) from None


async def _fetch(client: httpx.AsyncClient, state: AgentState, secret_id: str) -> dict[str, Any]:
    url = f"{state.server_url.rstrip('/')}/api/v1/agents/me/secrets/{secret_id}"
    try:
        response = await client.get(
            url, headers={"Authorization": f"Bearer {state.agent_token}"}, timeout=FETCH_TIMEOUT
        )
    except httpx.HTTPError as exc:
        raise SecretResolutionError(
            "SECRET_FETCH_FAILED", f"secret {secret_id}: {type(exc).__name__}"
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if response.status_code == 404:
        raise SecretResolutionError(
            "SECRET_NOT_FOUND",
            f"secret {secret_id} has no copy for this agent (unknown, not sealed to it, or not "
            "bound to a scope it serves)",
        )
    if response.status_code != 200 or not isinstance(body, dict) or not body.get("success"):
        code = error.get("code") if isinstance(error, dict) else None
        raise SecretResolutionError(
            "SECRET_FETCH_FAILED",
            f"secret {secret_id}: HTTP {response.status_code}"
            + (f" {code}" if isinstance(code, str) else ""),
        )
    data = body.get("data")
    if not isinstance(data, dict):
        raise SecretResolutionError("SECRET_OPEN_FAILED", f"secret {secret_id}: malformed answer")
    return data


def _open(state: AgentState, key: X25519PrivateKey, secret_id: str, data: Mapping[str, Any]) -> str:
    version = data.get("version")
    try:
        if data.get("secret_id") != secret_id or not isinstance(version, int):
            raise ValueError
        copy = SealedCopy(
            agent_id=state.agent_id,
            key_id=str(data["key_id"]),
            enc=str(data["enc"]),
            ciphertext=str(data["ciphertext"]),
        )
        context = SealContext(
            tenant_id=state.tenant_id,
            secret_id=secret_id,
            version=version,
            agent_id=state.agent_id,
            key_id=key_id_of(key.public_key()),
        )
        plaintext = open_(copy, key, context)
    except (EnvelopeOpenError, KeyError, TypeError, ValueError):
        raise SecretResolutionError(
            "SECRET_OPEN_FAILED",
            f"secret {secret_id} version {version if isinstance(version, int) else '?'} did not "
            "open with this agent's key (altered, or sealed for another secret, version, tenant "
            "or agent)",
        ) from None
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretResolutionError(
            "SECRET_NOT_TEXT", f"secret {secret_id} is not UTF-8 text"
        ) from None


async def resolve_secret_refs(
    payload: Any, state: AgentState, *, client: httpx.AsyncClient | None = None
) -> tuple[Any, list[str]]:
    """``payload`` with its secret references replaced by plaintext, and the plaintexts (for
    scrubbing); ``(payload, [])`` unchanged when it references none."""
    refs = find_secret_refs(payload)
    if not refs:
        return payload, []
    key = _private_key(state)
    plaintexts: dict[str, str] = {}
    http = client or httpx.AsyncClient()
    try:
        for secret_id in refs:
            plaintexts[secret_id] = _open(
                state, key, secret_id, await _fetch(http, state, secret_id)
            )
    finally:
        if client is None:
            await http.aclose()
    return replace_secret_refs(payload, plaintexts), list(plaintexts.values())
