"""The agent's credentials on disk, and pairing (registration with a pairing code).

The state file is JSON, written atomically with mode 0600: server URL, agent id, agent token and
the agent's X25519 private key (kept for the future secret vault; only the public key is sent).
"""

from __future__ import annotations

import base64
import json
import os
import platform as platform_module
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from botmox_core import __version__
from botmox_core.errors import BotmoxError, ConfigurationError, error_class_for_code

__all__ = ["AgentState", "default_state_path", "load_state", "pair", "save_state"]


def default_state_path() -> Path:
    """``$BOTMOX_AGENT_STATE`` or ``~/.config/botmox/agent.json``."""
    env = os.environ.get("BOTMOX_AGENT_STATE")
    return Path(env) if env else Path.home() / ".config" / "botmox" / "agent.json"


@attrs.frozen
class AgentState:
    """What a paired agent needs to connect.

    Attributes:
        server_url: base URL of the botmox server (``http(s)://host:port``).
        agent_id: the agent's id.
        tenant_id: its tenant.
        agent_token: the bearer token (secret; never logged).
        agent_token_expires_at: ISO expiry of the token.
        private_key: base64 raw X25519 private key (secret).
    """

    server_url: str
    agent_id: str
    tenant_id: str
    agent_token: str = attrs.field(repr=False)
    agent_token_expires_at: str | None = None
    private_key: str | None = attrs.field(default=None, repr=False)

    @property
    def websocket_url(self) -> str:
        base = self.server_url.rstrip("/")
        scheme, _, rest = base.partition("://")
        return ("wss" if scheme == "https" else "ws") + "://" + rest + "/ws/v1/agents/connect"


def save_state(state: AgentState, path: Path) -> None:
    """Write the state file atomically with mode 0600 (its directory 0700 when created)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, temporary = tempfile.mkstemp(prefix=".agent-", dir=path.parent)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(attrs.asdict(state), handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_state(path: Path) -> AgentState:
    """Read the state file; :class:`ConfigurationError` when missing, malformed or readable
    by others."""
    try:
        mode = path.stat().st_mode & 0o777
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(
            f"no agent state at {path}; run `botmox agent pair` first"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read agent state {path}: {exc}") from exc
    if mode & 0o077:
        raise ConfigurationError(f"agent state {path} is readable by others; chmod 600 it")
    if not isinstance(data, dict):
        raise ConfigurationError(f"agent state {path} is malformed: not a JSON object")
    values: dict[str, Any] = {f.name: data.get(f.name) for f in attrs.fields(AgentState)}
    for name, value in values.items():
        required = name in ("server_url", "agent_id", "tenant_id", "agent_token")
        if (required and not (isinstance(value, str) and value)) or not (
            value is None or isinstance(value, str)
        ):
            raise ConfigurationError(f"agent state {path} is malformed: bad or missing {name}")
    return AgentState(**values)


def pair(
    server_url: str,
    pairing_code: str,
    *,
    state_path: Path,
    capabilities: Sequence[str] = (),
    platform: str | None = None,
    version: str | None = None,
    client: httpx.Client | None = None,
) -> AgentState:
    """Register with a pairing code and store the agent's credentials in ``state_path``.

    Generates the agent's X25519 key pair (the public key goes to the server). Raises the
    server's error (``PAIRING_NOT_FOUND``, ``PAIRING_EXPIRED`` ...) as a :class:`BotmoxError`.
    """
    key = X25519PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    private = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    body = {
        "pairing_code": pairing_code.strip().lower(),
        "version": version or __version__,
        "platform": platform or f"{platform_module.system().lower()}-{platform_module.machine()}",
        "capabilities": list(capabilities),
        "public_key": base64.b64encode(public).decode("ascii"),
    }
    url = server_url.rstrip("/") + "/api/v1/agents/register"
    http = client or httpx.Client(timeout=30)
    try:
        response = http.post(url, json=body)
    except httpx.HTTPError as exc:
        raise BotmoxError(f"cannot reach {server_url}: {type(exc).__name__}") from exc
    finally:
        if client is None:
            http.close()
    payload = _json(response)
    if response.status_code != 201 or not payload.get("success"):
        error = payload.get("error") or {}
        code = str(error.get("code") or "INTERNAL_ERROR")
        raise error_class_for_code(code, response.status_code)(
            str(error.get("message") or f"registration failed ({response.status_code})"),
            code=code,
        )
    data = payload["data"]
    state = AgentState(
        server_url=server_url.rstrip("/"),
        agent_id=data["id"],
        tenant_id=data["tenant_id"],
        agent_token=data["agent_token"],
        agent_token_expires_at=data.get("agent_token_expires_at"),
        private_key=base64.b64encode(private).decode("ascii"),
    )
    save_state(state, state_path)
    return state


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
