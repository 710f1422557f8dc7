"""``unixsocket`` agent transport: wake-ups between server processes on one host.

``botmox serve --workers N`` on the embedded default picks it (the ``inprocess`` transport only
reaches subscribers in its own process). Each process binds a Unix datagram socket
``<directory>/<pid>-<random>.sock`` (mode 0600, directory 0700); a publish hands the message to this
process's subscribers and sends one datagram to every other socket in the directory. A socket
nobody reads any more (its process ended) is removed by the first publish that finds it dead.
Delivery is at most once and best effort, which is what the port asks: the command queue in the
repository is the source of truth, and the sweeper re-sends what a lost wake-up delays.

The directory defaults to ``<data dir>/agent-bus`` (the ``unixsocket_dir`` setting,
``BOTMOX_UNIXSOCKET_DIR``, moves it; the older ``[plugins.unixsocket] dir`` option still does);
every process that shares the SQLite database on this host should share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botmox_core.backends.inprocess_transport import InProcessTransport
from botmox_core.errors import ConfigurationError
from botmox_core.plugin.spec import hookimpl

if TYPE_CHECKING:
    from botmox_core.config import Settings

__all__ = ["UnixSocketTransport"]

log = logging.getLogger(__name__)

#: Longest wake-up datagram (messages are a type, an agent id and at most a command id).
MAX_DATAGRAM = 4096
#: A Unix socket path must fit ``sockaddr_un.sun_path`` (108 bytes on Linux, with the NUL).
MAX_SOCKET_PATH = 107


class UnixSocketTransport:
    """Agent transport for the processes of one host that share a socket directory."""

    name = "unixsocket"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._local = InProcessTransport()
        self._socket: socket.socket | None = None
        self._path: Path | None = None

    @property
    def path(self) -> Path | None:
        """This process's socket, once started."""
        return self._path

    async def start(self) -> None:
        path = (self.directory / f"{os.getpid()}-{secrets.token_hex(3)}.sock").absolute()
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise ConfigurationError(
                f"unixsocket transport: {path} is longer than a Unix socket path may be "
                f"({MAX_SOCKET_PATH} bytes); set unixsocket_dir "
                "(BOTMOX_UNIXSOCKET_DIR) to a shorter directory"
            )
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        previous = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(previous)
        self._socket, self._path = sock, path
        asyncio.get_running_loop().add_reader(sock.fileno(), self._receive)

    def _receive(self) -> None:
        sock = self._socket
        while sock is not None:
            try:
                data = sock.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                log.warning("unixsocket transport: receive failed", exc_info=True)
                return
            try:
                frame = json.loads(data)
                agent_id, message = frame["agent_id"], frame["message"]
            except (ValueError, KeyError, TypeError):
                continue  # not ours: the directory is 0700, so this is a bug, never input
            if isinstance(agent_id, str) and isinstance(message, dict):
                self._local.deliver(agent_id, message)

    async def publish(self, agent_id: str, message: Mapping[str, Any]) -> None:
        self._local.deliver(agent_id, message)
        sock, own = self._socket, self._path
        if sock is None:
            return
        data = json.dumps({"agent_id": agent_id, "message": dict(message)}).encode()
        for peer in self.directory.glob("*.sock"):
            if peer.absolute() == own:
                continue
            try:
                sock.sendto(data, str(peer))
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):
                    peer.unlink()  # its process ended
            except (BlockingIOError, InterruptedError):
                log.debug("unixsocket transport: %s is not reading; wake-up dropped", peer)
            except OSError:
                log.warning("unixsocket transport: send to %s failed", peer, exc_info=True)

    def subscribe(self, agent_id: str) -> AsyncIterator[Mapping[str, Any]]:
        return self._local.subscribe(agent_id)

    async def stop(self) -> None:
        sock, path = self._socket, self._path
        self._socket = self._path = None
        if sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()
        if path is not None:
            path.unlink(missing_ok=True)
        await self._local.stop()


def socket_directory(settings: Settings) -> Path:
    """Where the processes sharing ``settings``' data put their sockets: the
    ``unixsocket_dir`` setting, else the older ``[plugins.unixsocket] dir`` option, else
    ``<data_dir>/agent-bus``."""
    if settings.unixsocket_dir is not None:
        return settings.unixsocket_dir.expanduser()
    configured = settings.plugin_options("unixsocket").get("dir", "").strip()
    return Path(configured).expanduser() if configured else settings.data_dir / "agent-bus"


@hookimpl
def botmox_register_agent_transports(register: Any) -> None:
    register("unixsocket", lambda settings: UnixSocketTransport(socket_directory(settings)))
