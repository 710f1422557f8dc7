"""The ``unixsocket`` agent transport: wake-ups between transports sharing a directory (as the
worker processes of ``botmox serve --workers N`` do), stale sockets removed, clean stop."""

from __future__ import annotations

import asyncio
import socket
import stat
from pathlib import Path

import pytest

from botmox_core.backends.unixsocket_transport import UnixSocketTransport, socket_directory
from botmox_core.config import load_settings
from botmox_core.errors import ConfigurationError


async def _next(iterator: object, timeout: float = 2.0) -> object:
    return await asyncio.wait_for(iterator.__anext__(), timeout)  # type: ignore[attr-defined]


def test_a_publish_reaches_the_subscriber_of_another_transport(tmp_path: Path) -> None:
    async def scenario() -> None:
        a, b = UnixSocketTransport(tmp_path / "bus"), UnixSocketTransport(tmp_path / "bus")
        await a.start()
        await b.start()
        try:
            assert stat.S_IMODE((tmp_path / "bus").stat().st_mode) == 0o700
            assert b.path is not None and stat.S_IMODE(b.path.stat().st_mode) == 0o600
            on_b = b.subscribe("agt_1")
            on_a = a.subscribe("agt_1")
            waiting_b = asyncio.ensure_future(_next(on_b))
            waiting_a = asyncio.ensure_future(_next(on_a))
            await asyncio.sleep(0.05)  # the subscriptions start
            await a.publish("agt_1", {"type": "cancel", "command_id": "cmd_1"})
            assert await waiting_b == {"type": "cancel", "command_id": "cmd_1"}
            assert await waiting_a == {"type": "cancel", "command_id": "cmd_1"}  # local too
            other = asyncio.ensure_future(_next(b.subscribe("agt_2"), timeout=0.3))
            await asyncio.sleep(0.05)
            await a.publish("agt_1", {"type": "wake"})
            assert await _next(on_b) == {"type": "wake"}
            with pytest.raises(asyncio.TimeoutError):
                await other  # another agent's subscriber hears nothing
        finally:
            await a.stop()
            await b.stop()
        assert list((tmp_path / "bus").iterdir()) == []

    asyncio.run(scenario())


def test_a_socket_whose_process_ended_is_removed(tmp_path: Path) -> None:
    async def scenario() -> None:
        (tmp_path / "bus").mkdir()
        dead = tmp_path / "bus" / "999999-abcdef.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(dead))
        sock.close()  # the file stays, nobody reads it
        live = UnixSocketTransport(tmp_path / "bus")
        await live.start()
        try:
            await live.publish("agt_1", {"type": "wake"})
        finally:
            await live.stop()
        assert not dead.exists()

    asyncio.run(scenario())


def test_too_long_a_directory_is_a_configuration_error(tmp_path: Path) -> None:
    transport = UnixSocketTransport(tmp_path / ("d" * 120))
    with pytest.raises(ConfigurationError, match="longer than a Unix socket path"):
        asyncio.run(transport.start())


def test_the_directory_defaults_to_the_data_dir_and_is_configurable(tmp_path: Path) -> None:
    assert socket_directory(load_settings({}, data_dir=tmp_path)) == tmp_path / "agent-bus"
    configured = load_settings({"BOTMOX_UNIXSOCKET_DIR": str(tmp_path / "x")})
    assert socket_directory(configured) == tmp_path / "x"
    path = tmp_path / "botmox.toml"
    path.write_text(f'unixsocket_dir = "{tmp_path / "toml"}"\n')
    assert socket_directory(load_settings({}, config_file=path)) == tmp_path / "toml"
    path.write_text(f'[plugins.unixsocket]\ndir = "{tmp_path / "older"}"\n')  # still read
    assert socket_directory(load_settings({}, config_file=path)) == tmp_path / "older"
    both = load_settings({"BOTMOX_UNIXSOCKET_DIR": str(tmp_path / "x")}, config_file=path)
    assert socket_directory(both) == tmp_path / "x"  # the setting wins over the older option
    home = load_settings({"BOTMOX_UNIXSOCKET_DIR": "~/bus"})
    assert socket_directory(home) == Path.home() / "bus"
