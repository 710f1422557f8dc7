"""The ``infra.ssh.*`` handlers: the Proxmox host over SSH (asyncssh).

* ``exec`` runs one command from the allow-list (:data:`ALLOWED_COMMANDS`): the caller's
  ``command`` is split like a shell would (``shlex``), every word is checked against the
  allowed pattern, and the words are sent re-quoted — so ``;``, ``|``, ``$( )``, redirections
  and globs never reach the remote shell as syntax.
* ``test`` connects and authenticates, runs nothing.
* ``vm-config-get`` / ``vm-config-update`` read and replace ``{vm_config_dir}/{vmid}.conf``
  over SFTP (written to ``.{vmid}.conf.botmox-tmp`` first, then renamed over the file).

The host key must be in ``BOTMOX_SSH_KNOWN_HOSTS``; the password or private key come as the
command's ``credentials`` (vault secrets opened by the agent). Every step is bounded by
``BOTMOX_SSH_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import re
import shlex
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncssh

from botmox_core.agent import CommandContext
from botmox_proxmox.settings import SshSettings

__all__ = ["ALLOWED_COMMANDS", "SSH_HANDLERS", "SshActionError", "allowed_argv"]

VMID = r"[1-9][0-9]{2,8}"
#: Allowed commands: each a tuple of full-match patterns, one per word (the seed's list of
#: read-only and VM power commands on a Proxmox host).
ALLOWED_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("hostname",),
    ("uptime",),
    ("pveversion",),
    ("pveversion", "-v"),
    ("df", "-h"),
    ("free", "-m"),
    ("qm", "list"),
    ("qm", "status", VMID),
    ("qm", "config", VMID),
    ("qm", "(start|stop|shutdown|reboot|reset|suspend|resume)", VMID),
    ("qm", "guest", "cmd", VMID, "(ping|info|get-osinfo|network-get-interfaces)"),
    ("pvesh", "get", r"/(version|cluster/resources|nodes(/[A-Za-z0-9.-]{1,63}(/qemu)?)?)"),
    ("ls", "/etc/pve/qemu-server"),
)
MAX_COMMAND_CHARS = 512
#: Output kept per stream (the rest is cut and flagged).
MAX_STREAM_CHARS = 64 * 1024
MAX_CONFIG_BYTES = 256 * 1024


class SshActionError(RuntimeError):
    """The SSH action was refused or failed (the command fails with this text)."""


def allowed_argv(command: Any) -> list[str]:
    """The words of ``command`` if the allow-list has it; :class:`SshActionError` otherwise."""
    if not isinstance(command, str) or not command.strip() or len(command) > MAX_COMMAND_CHARS:
        raise SshActionError(f"command must be text of 1-{MAX_COMMAND_CHARS} characters")
    try:
        argv = shlex.split(command)
    except ValueError:
        raise SshActionError("command is not allowed (unbalanced quotes)") from None
    for patterns in ALLOWED_COMMANDS:
        if len(patterns) == len(argv) and all(
            re.fullmatch(pattern, word, re.ASCII)
            for pattern, word in zip(patterns, argv, strict=True)
        ):
            return argv
    raise SshActionError(f"command is not on the agent's allow-list: {argv[0][:40]!r}")


def _client_keys(credentials: Mapping[str, Any]) -> list[asyncssh.SSHKey] | None:
    key = credentials.get("private_key")
    if not isinstance(key, str) or not key:
        return None
    passphrase = credentials.get("private_key_passphrase")
    try:
        return [asyncssh.import_private_key(key, passphrase if passphrase else None)]
    except (asyncssh.KeyImportError, ValueError):
        raise SshActionError("the bound ssh.private_key cannot be read") from None


async def _connected(
    ctx: CommandContext,
    use: Callable[[asyncssh.SSHClientConnection, SshSettings], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    settings = SshSettings.from_env()
    credentials = ctx.payload.get("credentials") or {}
    keys = _client_keys(credentials)
    password = credentials.get("password")
    if keys is None and not (isinstance(password, str) and password):
        raise SshActionError(
            "no SSH credential: bind a vault secret to field ssh.password or ssh.private_key "
            "of this agent"
        )
    options: dict[str, Any] = {
        "port": settings.port,
        "username": settings.username,
        "known_hosts": settings.known_hosts,
        "client_keys": keys or (),
        "agent_path": None,  # never the agent machine's own ssh-agent
        "connect_timeout": settings.timeout,
        "login_timeout": settings.timeout,
    }
    if isinstance(password, str) and password:
        options["password"] = password
    try:
        async with asyncio.timeout(settings.timeout * 2):
            async with asyncssh.connect(settings.host, **options) as conn:
                return await use(conn, settings)
    except TimeoutError:
        raise SshActionError(f"SSH did not finish within {settings.timeout * 2:g} s") from None
    except asyncssh.HostKeyNotVerifiable:
        raise SshActionError("the SSH host key is not in BOTMOX_SSH_KNOWN_HOSTS") from None
    except asyncssh.PermissionDenied:
        raise SshActionError("SSH authentication failed") from None
    except asyncssh.SFTPError as exc:
        raise SshActionError(f"SFTP: {exc.reason}") from None
    except (OSError, asyncssh.Error) as exc:
        raise SshActionError(f"SSH failed: {type(exc).__name__}") from None


def _cut(text: str | bytes | None) -> tuple[str, bool]:
    value = text.decode("utf-8", "replace") if isinstance(text, bytes) else (text or "")
    return value[:MAX_STREAM_CHARS], len(value) > MAX_STREAM_CHARS


async def ssh_exec(ctx: CommandContext) -> dict[str, Any]:
    """Run one allow-listed command: ``{command, exit_status, stdout, stderr, truncated}``."""
    argv = allowed_argv((ctx.payload.get("params") or {}).get("command"))

    async def run(conn: asyncssh.SSHClientConnection, settings: SshSettings) -> dict[str, Any]:
        done = await conn.run(shlex.join(argv), check=False, timeout=settings.timeout)
        stdout, cut_out = _cut(done.stdout)
        stderr, cut_err = _cut(done.stderr)
        return {
            "data": {
                "command": shlex.join(argv),
                "exit_status": done.exit_status,
                "stdout": stdout,
                "stderr": stderr,
                "truncated": cut_out or cut_err,
            }
        }

    return await _connected(ctx, run)


async def ssh_test(ctx: CommandContext) -> dict[str, Any]:
    """Connect and authenticate: ``{ok, host, port, username, server_version}``."""

    async def probe(conn: asyncssh.SSHClientConnection, settings: SshSettings) -> dict[str, Any]:
        return {
            "data": {
                "ok": True,
                "host": settings.host,
                "port": settings.port,
                "username": settings.username,
                "server_version": conn.get_extra_info("server_version"),
            }
        }

    return await _connected(ctx, probe)


def _config_path(ctx: CommandContext, settings: SshSettings) -> tuple[int, str]:
    vmid = (ctx.payload.get("target") or {}).get("vmid")
    if isinstance(vmid, bool) or not isinstance(vmid, int) or not 100 <= vmid <= 999_999_999:
        raise SshActionError("vmid must be from 100 to 999999999")
    return vmid, f"{settings.vm_config_dir}/{vmid}.conf"


async def vm_config_get(ctx: CommandContext) -> dict[str, Any]:
    """Read ``{vmid}.conf``: ``{vmid, path, content}``."""

    async def read(conn: asyncssh.SSHClientConnection, settings: SshSettings) -> dict[str, Any]:
        vmid, path = _config_path(ctx, settings)
        async with conn.start_sftp_client() as sftp, sftp.open(path, "rb") as handle:
            data: bytes = await handle.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise SshActionError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes")
        return {"data": {"vmid": vmid, "path": path, "content": data.decode("utf-8", "replace")}}

    return await _connected(ctx, read)


async def vm_config_update(ctx: CommandContext) -> dict[str, Any]:
    """Replace ``{vmid}.conf`` with ``content`` (temporary file, then rename):
    ``{vmid, path, bytes}``."""
    content = (ctx.payload.get("params") or {}).get("content")
    if not isinstance(content, str) or not content.strip():
        raise SshActionError("content must be the config file's text")
    data = content.encode()
    if len(data) > MAX_CONFIG_BYTES:
        raise SshActionError(f"content is larger than {MAX_CONFIG_BYTES} bytes")

    async def write(conn: asyncssh.SSHClientConnection, settings: SshSettings) -> dict[str, Any]:
        vmid, path = _config_path(ctx, settings)
        temporary = f"{settings.vm_config_dir}/.{vmid}.conf.botmox-tmp"
        async with conn.start_sftp_client() as sftp:
            if not await sftp.exists(path):
                raise SshActionError(f"{path} does not exist (create VMs through Proxmox)")
            async with sftp.open(temporary, "wb") as handle:
                await handle.write(data)
            await sftp.posix_rename(temporary, path)
        return {"data": {"vmid": vmid, "path": path, "bytes": len(data)}}

    return await _connected(ctx, write)


#: Command type → handler (async: cancelled at their next await).
SSH_HANDLERS: dict[str, Callable[[CommandContext], Awaitable[dict[str, Any]]]] = {
    "infra.ssh.exec": ssh_exec,
    "infra.ssh.test": ssh_test,
    "infra.ssh.vm-config-get": vm_config_get,
    "infra.ssh.vm-config-update": vm_config_update,
}
