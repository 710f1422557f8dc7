"""The ``infra.proxmox.*`` handlers through proxmoxer against a FAKE of the Proxmox VE API
(:mod:`botmox_proxmox.testing`, served in-process by ``responses``): requests, auth and the
answers' shapes as the Proxmox VE API documents them."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from botmox_proxmox import agent, proxmox
from botmox_proxmox.proxmox import ProxmoxActionError
from botmox_proxmox.testing import FakeProxmox, self_signed_certificate, serve_https

from botmox_core.agent import CommandContext

HOST = "pve.test"
BASE = f"https://{HOST}:8006/api2/json"
TOKEN_SECRET = "0b9f7a3e-5c1d-4e8a-9f00-c0ffee000001"
PASSWORD = "correct horse battery staple"
UPID = re.compile(r"UPID:pve:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:\w+:\d+:root@pam:")


def context(
    command_type: str, target: dict[str, Any] | None = None, params: Any = None, **credentials: Any
) -> CommandContext:
    """The context the runtime hands a handler (credentials already opened)."""
    loop = asyncio.new_event_loop()
    loop.close()
    payload = {"target": target or {}, "params": params or {}, "credentials": credentials}
    return CommandContext(
        None,  # type: ignore[arg-type]  # the handlers never touch the runtime
        {"id": "cmd_test", "command_type": command_type, "payload": payload},
        loop,
    )


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProxmox]:
    monkeypatch.setenv("BOTMOX_PROXMOX_HOST", HOST)
    monkeypatch.setenv("BOTMOX_PROXMOX_TOKEN_NAME", "agent")
    monkeypatch.setenv("BOTMOX_PROXMOX_TIMEOUT", "5")
    cluster = FakeProxmox(password=PASSWORD, token=("agent", TOKEN_SECRET))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        cluster.install(mocked, BASE)
        yield cluster


def run(
    command_type: str, target: dict[str, Any] | None = None, params: Any = None, **cred: Any
) -> Any:
    handler = agent.handlers[command_type]
    result = handler(
        context(command_type, target, params, **(cred or {"token_secret": TOKEN_SECRET}))
    )
    assert set(result) == {"data"}
    return result["data"]


def test_the_pack_registers_every_infra_command_with_the_infra_capability() -> None:
    assert "infra" in agent.capabilities
    assert len([t for t in agent.handlers if t.startswith("infra.proxmox.")]) == 12
    assert len([t for t in agent.handlers if t.startswith("infra.ssh.")]) == 4


def test_status_is_the_version_and_sends_the_api_token(fake: FakeProxmox) -> None:
    data = run("infra.proxmox.status")
    assert data == {"version": "8.2.4", "release": "8.2", "repoid": "faa83925c9641325"}
    method, path, _params, headers = fake.requests[-1]
    assert (method, path) == ("GET", "/version")
    assert headers["Authorization"] == f"PVEAPIToken=root@pam!agent={TOKEN_SECRET}"


def test_a_wrong_token_fails_without_echoing_it(fake: FakeProxmox) -> None:
    with pytest.raises(ProxmoxActionError) as caught:
        run("infra.proxmox.status", token_secret="wrong-secret-value")
    assert "401" in str(caught.value) and "wrong-secret-value" not in str(caught.value)


def test_no_credential_is_a_clear_failure(fake: FakeProxmox) -> None:
    with pytest.raises(ProxmoxActionError, match=r"proxmox\.token_secret"):
        agent.handlers["infra.proxmox.status"](context("infra.proxmox.status"))
    assert fake.requests == []


def test_password_login_keeps_the_ticket_on_the_agent(
    fake: FakeProxmox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOTMOX_PROXMOX_TOKEN_NAME")
    data = run("infra.proxmox.login", password=PASSWORD)
    assert data["username"] == "root@pam" and data["clustername"] == "farm"
    assert data["cap"]["vms"]["VM.PowerMgmt"] == 1
    assert "ticket" not in data and "CSRFPreventionToken" not in data
    with pytest.raises(ProxmoxActionError, match="refused the credentials"):
        run("infra.proxmox.login", password="not it")


def test_token_login_reports_the_token_identity(fake: FakeProxmox) -> None:
    data = run("infra.proxmox.login")
    assert data["username"] == "root@pam!agent" and data["cap"]["/"]["Sys.Audit"] == 1


def test_ticket_auth_sends_the_csrf_token_on_writes(
    fake: FakeProxmox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOTMOX_PROXMOX_TOKEN_NAME")
    upid = run(
        "infra.proxmox.vm-action",
        {"node": "pve", "vmid": 102, "action": "start"},
        password=PASSWORD,
    )
    assert UPID.fullmatch(upid)
    post = next(r for r in fake.requests if r[0] == "POST" and r[1].endswith("/status/start"))
    assert "PVEAuthCookie=" in post[3]["Cookie"] and post[3]["CSRFPreventionToken"]


def test_vm_list_and_cluster_resources_have_the_documented_fields(fake: FakeProxmox) -> None:
    vms = run("infra.proxmox.vm-list", {"node": "pve"})
    assert [vm["vmid"] for vm in vms] == [100, 101, 102]
    running = vms[1]
    for field in ("name", "status", "cpus", "cpu", "maxmem", "mem", "maxdisk", "uptime", "pid"):
        assert field in running, field
    assert running["status"] == "running" and vms[0]["template"] == 1
    resources = run("infra.proxmox.cluster-resources", params={"type": "vm"})
    assert {r["id"] for r in resources} == {"qemu/100", "qemu/101", "qemu/102"}
    assert all(r["type"] == "qemu" and r["node"] == "pve" for r in resources)
    assert fake.requests[-1][2] == {"type": "vm"}
    everything = run("infra.proxmox.cluster-resources")
    assert {r["type"] for r in everything} == {"node", "qemu", "storage"}


def test_status_current_of_a_running_vm(fake: FakeProxmox) -> None:
    data = run("infra.proxmox.status-current", {"node": "pve", "vmid": 101})
    assert data["vmid"] == 101 and data["status"] == "running" and data["qmpstatus"] == "running"
    assert data["ha"] == {"managed": 0} and data["running-qemu"]
    assert isinstance(data["maxmem"], int) and data["uptime"] >= 3600


def test_power_action_task_and_state(fake: FakeProxmox) -> None:
    upid = run("infra.proxmox.vm-action", {"node": "pve", "vmid": 102, "action": "start"})
    assert UPID.fullmatch(upid) and ":qmstart:102:" in upid
    task = run("infra.proxmox.task-status", {"node": "pve", "upid": upid})
    assert task["status"] == "stopped" and task["exitstatus"] == "OK" and task["upid"] == upid
    assert run("infra.proxmox.status-current", {"node": "pve", "vmid": 102})["status"] == "running"
    with pytest.raises(ProxmoxActionError, match="unknown VM action"):
        run("infra.proxmox.vm-action", {"node": "pve", "vmid": 102, "action": "explode"})


def test_clone_creates_a_stopped_copy(fake: FakeProxmox) -> None:
    upid = run(
        "infra.proxmox.clone",
        {"node": "pve", "vmid": 100},
        {"newid": 150, "name": "farm-bot-50", "full": 1},
    )
    assert ":qmclone:100:" in upid
    clone = next(vm for vm in run("infra.proxmox.vm-list", {"node": "pve"}) if vm["vmid"] == 150)
    assert clone["name"] == "farm-bot-50" and clone["status"] == "stopped"
    with pytest.raises(ProxmoxActionError, match="newid"):
        run("infra.proxmox.clone", {"node": "pve", "vmid": 100}, {"name": "x"})
    with pytest.raises(ProxmoxActionError, match="500"):
        run("infra.proxmox.clone", {"node": "pve", "vmid": 100}, {"newid": 150})


def test_config_read_and_update(fake: FakeProxmox) -> None:
    config = run("infra.proxmox.config-get", {"node": "pve", "vmid": 101})
    assert config["cores"] == 2 and config["name"] == "farm-bot-01" and len(config["digest"]) == 40
    assert (
        run(
            "infra.proxmox.config-update",
            {"node": "pve", "vmid": 101},
            {"cores": 4, "digest": config["digest"]},
        )
        is None
    )
    assert run("infra.proxmox.config-get", {"node": "pve", "vmid": 101})["cores"] == 4
    with pytest.raises(ProxmoxActionError, match=r"400 .*bogus"):
        run("infra.proxmox.config-update", {"node": "pve", "vmid": 101}, {"bogus": 1})
    with pytest.raises(ProxmoxActionError, match="parameter name"):
        run("infra.proxmox.config-update", {"node": "pve", "vmid": 101}, {"Bad Name": 1})


def test_delete_and_sendkey(fake: FakeProxmox) -> None:
    with pytest.raises(ProxmoxActionError, match="500"):
        run("infra.proxmox.delete", {"node": "pve", "vmid": 101})
    assert (
        run("infra.proxmox.sendkey", {"node": "pve", "vmid": 101}, {"key": "ctrl-alt-delete"})
        is None
    )
    assert fake.requests[-1][:3] == (
        "PUT",
        "/nodes/pve/qemu/101/sendkey",
        {"key": "ctrl-alt-delete"},
    )
    upid = run("infra.proxmox.delete", {"node": "pve", "vmid": 102}, {"purge": True})
    assert ":qmdestroy:102:" in upid and fake.requests[-1][2] == {"purge": "1"}
    assert 102 not in fake.vms


def test_missing_vm_and_node_carry_proxmox_s_message(fake: FakeProxmox) -> None:
    # responses cannot set a reason phrase: the code arrives here, the message over HTTPS below
    with pytest.raises(ProxmoxActionError, match="500"):
        run("infra.proxmox.status-current", {"node": "pve", "vmid": 999})
    with pytest.raises(ProxmoxActionError, match="595"):
        run("infra.proxmox.vm-list", {"node": "elsewhere"})


def test_over_https_the_reason_phrase_carries_proxmox_s_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loopback HTTPS form of the fake (the e2e run's): TLS verified against its own
    certificate, Proxmox's message in the status line."""
    cert, key = self_signed_certificate(tmp_path)
    cluster = FakeProxmox(token=("agent", TOKEN_SECRET))
    with serve_https(cluster, cert, key) as address:
        monkeypatch.setenv("BOTMOX_PROXMOX_HOST", address)
        monkeypatch.setenv("BOTMOX_PROXMOX_TOKEN_NAME", "agent")
        monkeypatch.setenv("BOTMOX_PROXMOX_VERIFY_SSL", str(cert))
        assert run("infra.proxmox.status")["version"] == "8.2.4"
        with pytest.raises(
            ProxmoxActionError,
            match=r"500 Configuration file 'nodes/pve/qemu-server/999\.conf' does not exist",
        ):
            run("infra.proxmox.status-current", {"node": "pve", "vmid": 999})
        monkeypatch.setenv("BOTMOX_PROXMOX_VERIFY_SSL", "true")  # system CAs: refused
        with pytest.raises(ProxmoxActionError, match="unreachable: SSLError"):
            run("infra.proxmox.status")


def test_timeout_and_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTMOX_PROXMOX_HOST", HOST)
    monkeypatch.setenv("BOTMOX_PROXMOX_TOKEN_NAME", "agent")
    monkeypatch.setenv("BOTMOX_PROXMOX_TIMEOUT", "2")
    with responses.RequestsMock() as mocked:
        mocked.add(responses.GET, f"{BASE}/version", body=requests.ReadTimeout("slow"))
        with pytest.raises(ProxmoxActionError, match="within 2 s"):
            run("infra.proxmox.status")
        mocked.add(responses.GET, f"{BASE}/nodes/pve/qemu", body=requests.ConnectionError("no"))
        with pytest.raises(ProxmoxActionError, match="unreachable"):
            run("infra.proxmox.vm-list", {"node": "pve"})


def test_missing_settings_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOTMOX_PROXMOX_HOST", raising=False)
    with pytest.raises(ValueError, match="BOTMOX_PROXMOX_HOST"):
        run("infra.proxmox.status")


def test_handler_module_maps_every_type() -> None:
    assert set(proxmox.PROXMOX_HANDLERS) == {
        t for t in agent.handlers if t.startswith("infra.proxmox.")
    }
