"""The vault client: seals secrets locally to agents' public keys and sends only envelopes.

::

    from botmox_core.client import VaultClient

    with VaultClient("https://botmox.example.com", admin_token) as vault:
        meta = vault.put(b"s3cr3t", label="proxmox root", agents=["agt_..."])
        vault.bind(meta["id"], "vm_settings", "vmgenerator", "proxmox.password")
        vault.rotate(meta["id"], b"n3w s3cr3t")

The plaintext never leaves this process: :meth:`VaultClient.put` and :meth:`VaultClient.rotate`
fetch each agent's X25519 public key (``GET /api/v1/agents/{id}``) and the tenant
(``GET /api/v1/auth/whoami``), seal with :func:`~botmox_core.vault.envelopes.seal` (HPKE, the
context bound: tenant, secret id, version, agent, key id) and send the envelope.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from botmox_core.client import _rules as rules
from botmox_core.client._errors import InvalidResponseError
from botmox_core.client._rules import ApiRequest
from botmox_core.client._sync import RunnerClient
from botmox_core.errors import AgentNotActiveError, AgentRevokedError, BadRequestError
from botmox_core.vault.envelopes import RecipientKey, envelope_document, seal
from botmox_core.vault.models import new_secret_id

__all__ = ["VaultClient"]


class VaultClient:
    """Secrets from Python (admin or infra token for writes; see ``docs/vault.md``).

    Args:
        base_url: the server's base URL.
        token: an API token of the tenant.
        client: an existing :class:`RunnerClient` to send through (then ``base_url`` and
            ``token`` are ignored and the client is not closed here).
        **options: passed to :class:`RunnerClient` (``retry_policy``, ``timeout``, ...).
    """

    def __init__(
        self,
        base_url: str = "",
        token: str = "",
        *,
        client: RunnerClient | None = None,
        **options: Any,
    ) -> None:
        self._owned = client is None
        self._client = client or RunnerClient(base_url, token, **options)
        self._tenant: str | None = None

    def __enter__(self) -> VaultClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            self._client.close()

    def _send(self, request: ApiRequest) -> Any:
        return self._client._send(request)

    def _get_with_query(self, path: str, params: Mapping[str, str]) -> Any:
        client = self._client
        url = rules.api_url(client.base_url, ApiRequest.get(path).path)
        try:
            response = client._api.request("GET", url, params=dict(params), headers=client._headers)
        except httpx.TransportError as exc:
            raise rules.network_error(exc, url) from exc
        return rules.parse_api_response(response.status_code, response.headers, response.content)

    # -- reads -----------------------------------------------------------------------------

    def tenant_id(self) -> str:
        """The caller's tenant (``GET /auth/whoami``), cached."""
        if self._tenant is None:
            data = self._send(ApiRequest.get("/auth/whoami"))
            tenant = data.get("tenant_id") if isinstance(data, Mapping) else None
            if not isinstance(tenant, str) or not tenant:
                raise InvalidResponseError("whoami answered no tenant_id")
            self._tenant = tenant
        return self._tenant

    def agent_key(self, agent_id: str) -> RecipientKey:
        """The agent's registered X25519 public key; :class:`AgentRevokedError` /
        :class:`AgentNotActiveError` when it cannot receive secrets."""
        data = self._send(ApiRequest.get(f"/agents/{_segment(agent_id)}"))
        if not isinstance(data, Mapping):
            raise InvalidResponseError("the agent answer is not an object")
        if data.get("status") == "revoked":
            raise AgentRevokedError(f"agent {agent_id} is revoked")
        key = data.get("public_key")
        if data.get("status") == "pending" or not isinstance(key, str) or not key:
            raise AgentNotActiveError(f"agent {agent_id} has not registered an X25519 public key")
        return RecipientKey(agent_id=str(data.get("id", agent_id)), public_key=key)

    def meta(self, secret_id: str) -> dict[str, Any]:
        """The secret's metadata and version history."""
        return _object(self._send(ApiRequest.get(f"/secrets/{_segment(secret_id)}/meta")))

    def bindings(
        self, scope_type: str | None = None, scope_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The tenant's bindings (optionally of one scope), newest first."""
        params = {
            name: value
            for name, value in (("scope_type", scope_type), ("scope_id", scope_id))
            if value is not None
        }
        data = self._get_with_query("/secrets/bindings", params)
        if not isinstance(data, list):
            raise InvalidResponseError("the bindings answer is not a list")
        return [_object(item) for item in data]

    # -- writes ----------------------------------------------------------------------------

    def put(
        self,
        plaintext: bytes,
        *,
        label: str,
        agents: Sequence[str],
        aad_meta: Mapping[str, Any] | None = None,
        secret_id: str | None = None,
    ) -> dict[str, Any]:
        """Seal ``plaintext`` to ``agents`` and store it as a new secret (version 1)."""
        secret_id = secret_id or new_secret_id()
        envelope = seal(
            plaintext,
            self._recipients(agents),
            tenant_id=self.tenant_id(),
            secret_id=secret_id,
            version=1,
        )
        body = {"id": secret_id, "label": label, **envelope_document(envelope)}
        if aad_meta is not None:
            body["aad_meta"] = dict(aad_meta)
        return _object(self._send(ApiRequest.post("/secrets", body)))

    def rotate(
        self,
        secret_id: str,
        plaintext: bytes,
        *,
        agents: Sequence[str] | None = None,
        expected_version: int | None = None,
        aad_meta: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Seal ``plaintext`` as version ``expected_version + 1`` (default: the current
        version, read first) to ``agents`` (default: the current recipients) and store it;
        409 ``SECRET_VERSION_CONFLICT`` when another rotation came first."""
        if expected_version is None or agents is None:
            current = self.meta(secret_id)
            if expected_version is None:
                expected_version = int(current["version"])
            if agents is None:
                agents = [r["agent_id"] for r in current.get("recipients") or []]
        if not agents:
            raise BadRequestError("agents: name at least one agent to seal the secret to")
        envelope = seal(
            plaintext,
            self._recipients(agents),
            tenant_id=self.tenant_id(),
            secret_id=secret_id,
            version=expected_version + 1,
        )
        body: dict[str, Any] = {"expected_version": expected_version, **envelope_document(envelope)}
        if aad_meta is not None:
            body["aad_meta"] = dict(aad_meta)
        return _object(self._send(ApiRequest.post(f"/secrets/{_segment(secret_id)}/rotate", body)))

    def bind(
        self, secret_ref: str, scope_type: str, scope_id: str, field_name: str
    ) -> dict[str, Any]:
        """Bind the secret to a scope's field (upsert)."""
        body = {
            "secret_ref": secret_ref,
            "scope_type": scope_type,
            "scope_id": scope_id,
            "field_name": field_name,
        }
        return _object(self._send(ApiRequest.post("/secrets/bindings", body)))

    def _recipients(self, agents: Sequence[str]) -> list[RecipientKey]:
        if not agents:
            raise BadRequestError("agents: name at least one agent to seal the secret to")
        return [self.agent_key(agent_id) for agent_id in dict.fromkeys(agents)]


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidResponseError("the answer is not an object")
    return dict(data)


def _segment(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
