"""Where the infra agent finds its Proxmox host: environment variables on the agent's machine.

Only non-secret settings live here. Passwords, API token secrets and SSH keys come with each
command as ``credentials`` (vault secrets the agent opened itself, see ``docs/agents.md``).

| variable | default | meaning |
|---|---|---|
| ``BOTMOX_PROXMOX_HOST`` | (required) | API host, ``name`` or ``name:port`` (port 8006) |
| ``BOTMOX_PROXMOX_USER`` | ``root@pam`` | user (``user@realm``) |
| ``BOTMOX_PROXMOX_TOKEN_NAME`` | — | API token name: token auth with ``proxmox.token_secret`` |
| ``BOTMOX_PROXMOX_VERIFY_SSL`` | ``true`` | ``true``, ``false`` or a CA bundle path |
| ``BOTMOX_PROXMOX_TIMEOUT`` | ``15`` | seconds per API request |
| ``BOTMOX_SSH_HOST`` | the API host's name | SSH host |
| ``BOTMOX_SSH_PORT`` | ``22`` | SSH port |
| ``BOTMOX_SSH_USER`` | ``root`` | SSH user |
| ``BOTMOX_SSH_KNOWN_HOSTS`` | ``~/.ssh/known_hosts`` | host keys the server must match |
| ``BOTMOX_SSH_TIMEOUT`` | ``20`` | seconds for connect + one command |
| ``BOTMOX_SSH_VM_CONFIG_DIR`` | ``/etc/pve/qemu-server`` | where ``{vmid}.conf`` files live |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import attrs

__all__ = ["ProxmoxSettings", "SettingsError", "SshSettings"]


class SettingsError(ValueError):
    """A setting is missing or malformed (the command fails with this message)."""


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds") from None
    if not 0 < value <= 600:
        raise SettingsError(f"{name} must be from 0 to 600 seconds")
    return value


def _host_port(value: str, default_port: int) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or "]" in port:
        return value, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"bad port in {value!r}")
    return host, int(port)


@attrs.frozen
class ProxmoxSettings:
    """The Proxmox VE API the agent talks to.

    Attributes:
        host, port: the API's address.
        user: ``user@realm``.
        token_name: API token name (token auth) or ``None`` (ticket auth with a password).
        verify_ssl: ``True``, ``False`` or a CA bundle path.
        timeout: seconds per request.
    """

    host: str
    port: int = 8006
    user: str = "root@pam"
    token_name: str | None = None
    verify_ssl: bool | str = True
    timeout: float = 15.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ProxmoxSettings:
        env = os.environ if env is None else env
        raw_host = env.get("BOTMOX_PROXMOX_HOST", "").strip()
        if not raw_host:
            raise SettingsError("BOTMOX_PROXMOX_HOST is not set on the agent")
        host, port = _host_port(raw_host, 8006)
        verify_raw = env.get("BOTMOX_PROXMOX_VERIFY_SSL", "true").strip()
        verify: bool | str
        if verify_raw.lower() in ("true", "1", "yes", ""):
            verify = True
        elif verify_raw.lower() in ("false", "0", "no"):
            verify = False
        else:
            if not Path(verify_raw).is_file():
                raise SettingsError("BOTMOX_PROXMOX_VERIFY_SSL names no CA bundle file")
            verify = verify_raw
        return cls(
            host=host,
            port=port,
            user=env.get("BOTMOX_PROXMOX_USER", "root@pam").strip() or "root@pam",
            token_name=env.get("BOTMOX_PROXMOX_TOKEN_NAME", "").strip() or None,
            verify_ssl=verify,
            timeout=_number(env, "BOTMOX_PROXMOX_TIMEOUT", 15.0),
        )


@attrs.frozen
class SshSettings:
    """The SSH endpoint of the Proxmox host.

    Attributes:
        host, port, username: where and as whom.
        known_hosts: the known_hosts file the host key must match.
        timeout: seconds for the connection and for one command.
        vm_config_dir: the directory of the VMs' ``{vmid}.conf`` files.
    """

    host: str
    port: int = 22
    username: str = "root"
    known_hosts: str = "~/.ssh/known_hosts"
    timeout: float = 20.0
    vm_config_dir: str = "/etc/pve/qemu-server"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SshSettings:
        env = os.environ if env is None else env
        host = env.get("BOTMOX_SSH_HOST", "").strip()
        if not host:
            proxmox_host = env.get("BOTMOX_PROXMOX_HOST", "").strip()
            host = _host_port(proxmox_host, 8006)[0] if proxmox_host else ""
        if not host:
            raise SettingsError("BOTMOX_SSH_HOST (or BOTMOX_PROXMOX_HOST) is not set on the agent")
        port_raw = env.get("BOTMOX_SSH_PORT", "22").strip() or "22"
        if not port_raw.isdigit() or not 0 < int(port_raw) < 65536:
            raise SettingsError("BOTMOX_SSH_PORT must be a port number")
        known_hosts = os.path.expanduser(env.get("BOTMOX_SSH_KNOWN_HOSTS", "~/.ssh/known_hosts"))
        if not Path(known_hosts).is_file():
            raise SettingsError(
                "BOTMOX_SSH_KNOWN_HOSTS names no file: the host key must be known in advance"
            )
        return cls(
            host=host,
            port=int(port_raw),
            username=env.get("BOTMOX_SSH_USER", "root").strip() or "root",
            known_hosts=known_hosts,
            timeout=_number(env, "BOTMOX_SSH_TIMEOUT", 20.0),
            vm_config_dir=env.get("BOTMOX_SSH_VM_CONFIG_DIR", "/etc/pve/qemu-server").rstrip("/")
            or "/etc/pve/qemu-server",
        )
