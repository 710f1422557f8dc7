"""The 16 ``/api/v1/infra`` routes end to end: a real server process (uvicorn), a real agent
process (``botmox agent run --app botmox_proxmox:agent``, the handler pack) whose credentials
are vault secrets it opens itself, a FAKE of the Proxmox VE API served over loopback HTTPS
(:mod:`botmox_proxmox.testing`, shapes from the Proxmox VE API documentation) and a real SSH
server (asyncssh's) on loopback.

Shows: each route's result comes back in its response (``GET .../status/current`` among
them); a slow action answers 202 and completes; ``?wait=`` on vm-ops; non-admin tokens get 403;
no credential appears in the server's or the agent's log (at debug level), in any command's
payload, output or result.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

if not os.environ.get("CI"):  # under CI the pack must be there (nox installs every plugin)
    pytest.importorskip("botmox_proxmox", reason="plugins/botmox-proxmox is not installed")

from botmox_proxmox import agent as pack
from botmox_proxmox.testing import (
    FakeProxmox,
    SshServer,
    self_signed_certificate,
    serve_https,
    serve_ssh,
)

from botmox_core.agent import pair
from botmox_core.client import VaultClient
from botmox_core.testing.agents import AgentProcess, ServerProcess

pytestmark = pytest.mark.e2e

TENANT = "t-infra"
TOKEN_NAME = "botmox"
TOKEN_SECRET = "5f0c2d8e-9a41-4b7e-8c11-pve-token-secret"
SSH_PASSWORD = "ssh-Pa55-for-the-pve-host-77"
CONFIG = "boot: order=scsi0\ncores: 2\nmemory: 4096\nname: farm-bot-01\n"
INFRA = "/api/v1/infra"


@attrs.frozen
class World:
    server: ServerProcess
    runtime: AgentProcess
    fake: FakeProxmox
    sshd: SshServer
    host_root: Path
    agent_id: str
    admin: str
    infra: str
    api: str
    agent_token: str
    secrets: tuple[str, ...]

    def call(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.admin}"}
        return httpx.request(method, self.server.url + path, headers=headers, timeout=90, **kwargs)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("infra")
    cert, key = self_signed_certificate(tmp)
    fake = FakeProxmox(token=(TOKEN_NAME, TOKEN_SECRET))
    host_root = tmp / "pve-host"
    (host_root / "etc/pve/qemu-server").mkdir(parents=True)
    (host_root / "etc/pve/qemu-server/101.conf").write_text(CONFIG)
    with (
        serve_https(fake, cert, key) as pve_address,
        serve_ssh(host_root, password=SSH_PASSWORD) as sshd,
        ServerProcess(
            tmp / "data",
            {"BOTMOX_PLUGINS": "none", "BOTMOX_INFRA_WAIT_SECONDS": "15"},
            log_level="debug",
        ) as server,
    ):
        tokens = {
            role: server.admin("token", "create", "--tenant", TENANT, "--role", role)["token"]
            for role in ("admin", "infra", "api")
        }
        headers = {"Authorization": f"Bearer {tokens['admin']}"}
        pairing = httpx.post(
            server.url + "/api/v1/agents/pairings", json={"name": "pve-agent"}, headers=headers
        )
        state = tmp / "agent.json"
        paired = pair(
            server.url,
            pairing.json()["data"]["pairing_code"],
            state_path=state,
            capabilities=list(pack.capabilities),
        )
        with VaultClient(server.url, tokens["admin"]) as vault:
            for field, plaintext in (
                ("proxmox.token_secret", TOKEN_SECRET),
                ("ssh.password", SSH_PASSWORD),
            ):
                secret = vault.put(plaintext.encode(), label=field, agents=[paired.agent_id])
                vault.bind(secret["id"], "agent", paired.agent_id, field)
        env = {
            "BOTMOX_PROXMOX_HOST": pve_address,
            "BOTMOX_PROXMOX_USER": "root@pam",
            "BOTMOX_PROXMOX_TOKEN_NAME": TOKEN_NAME,
            "BOTMOX_PROXMOX_VERIFY_SSL": str(cert),
            "BOTMOX_PROXMOX_TIMEOUT": "10",
            "BOTMOX_SSH_HOST": "127.0.0.1",
            "BOTMOX_SSH_PORT": str(sshd.port),
            "BOTMOX_SSH_KNOWN_HOSTS": str(sshd.known_hosts),
            "BOTMOX_SSH_TIMEOUT": "10",
        }
        runtime = AgentProcess("botmox_proxmox:agent", state, env, log_level="debug").start()
        try:
            deadline = time.monotonic() + 30
            while not httpx.get(
                f"{server.url}/api/v1/agents/{paired.agent_id}", headers=headers
            ).json()["data"]["connected"]:
                assert time.monotonic() < deadline, runtime.log()[-3000:]
                time.sleep(0.05)
            yield World(
                server=server,
                runtime=runtime,
                fake=fake,
                sshd=sshd,
                host_root=host_root,
                agent_id=paired.agent_id,
                admin=tokens["admin"],
                infra=tokens["infra"],
                api=tokens["api"],
                agent_token=paired.agent_token,
                secrets=(TOKEN_SECRET, SSH_PASSWORD, paired.agent_token, *tokens.values()),
            )
        finally:
            runtime.terminate()


def _ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["meta"]["command_id"].startswith("cmd_")
    return body["data"]


def test_status_current_comes_back_in_the_response(world: World) -> None:
    started = time.monotonic()
    answer = world.call("GET", f"{INFRA}/proxmox/nodes/pve/qemu/101/status/current")
    elapsed = time.monotonic() - started
    data = _ok(answer)
    assert data["vmid"] == 101 and data["status"] == "running" and data["qmpstatus"] == "running"
    assert data["name"] == "farm-bot-01" and data["ha"] == {"managed": 0}
    meta = answer.json()["meta"]
    assert meta["agent_id"] == world.agent_id
    assert meta["command_type"] == "infra.proxmox.status-current"
    # it was the fake Proxmox that answered, asked with the API token the agent opened
    method, path, _params, headers = world.fake.requests[-1]
    assert (method, path) == ("GET", "/nodes/pve/qemu/101/status/current")
    assert headers["Authorization"] == f"PVEAPIToken=root@pam!{TOKEN_NAME}={TOKEN_SECRET}"
    print(f"status/current through the agent: {elapsed * 1000:.0f} ms")
    assert elapsed < 10, elapsed


def test_every_proxmox_route(world: World) -> None:
    assert _ok(world.call("GET", f"{INFRA}/proxmox/status"))["version"] == "8.2.4"
    login = _ok(world.call("POST", f"{INFRA}/proxmox/login", world.infra))
    assert login["username"] == f"root@pam!{TOKEN_NAME}" and "ticket" not in login
    vms = _ok(world.call("GET", f"{INFRA}/proxmox/nodes/pve/qemu"))
    assert [vm["vmid"] for vm in vms][:3] == [100, 101, 102]
    resources = _ok(world.call("GET", f"{INFRA}/proxmox/cluster/resources", params={"type": "vm"}))
    assert {r["type"] for r in resources} == {"qemu"}
    upid = _ok(world.call("POST", f"{INFRA}/proxmox/nodes/pve/qemu/102/status/start", json={}))
    assert upid.startswith("UPID:pve:") and ":qmstart:102:" in upid
    task = _ok(world.call("GET", f"{INFRA}/proxmox/nodes/pve/tasks/{upid}/status"))
    assert task == world.fake.tasks[upid] and task["exitstatus"] == "OK"
    config = _ok(world.call("GET", f"{INFRA}/proxmox/nodes/pve/qemu/101/config"))
    assert config["cores"] == 2 and len(config["digest"]) == 40
    updated = world.call(
        "PUT",
        f"{INFRA}/proxmox/nodes/pve/qemu/101/config",
        json={"cores": 4, "digest": config["digest"]},
    )
    assert _ok(updated) is None and world.fake.vms[101]["config"]["cores"] == "4"
    assert (
        _ok(
            world.call(
                "POST",
                f"{INFRA}/proxmox/nodes/pve/qemu/101/sendkey",
                json={"key": "ctrl-alt-delete"},
            )
        )
        is None
    )
    clone = _ok(
        world.call(
            "POST",
            f"{INFRA}/proxmox/nodes/pve/qemu/100/clone",
            json={"newid": 120, "name": "farm-bot-20", "full": 1},
        )
    )
    assert ":qmclone:100:" in clone and world.fake.vms[120]["config"]["name"] == "farm-bot-20"
    deleted = _ok(world.call("DELETE", f"{INFRA}/proxmox/nodes/pve/qemu/120?purge=true"))
    assert ":qmdestroy:120:" in deleted and 120 not in world.fake.vms


def test_proxmox_refusals_are_502_with_proxmox_s_message(world: World) -> None:
    answer = world.call("GET", f"{INFRA}/proxmox/nodes/pve/qemu/999/status/current")
    assert answer.status_code == 502, answer.text
    error = answer.json()["error"]
    assert error["code"] == "INFRA_COMMAND_FAILED" and error["details"]["status"] == "failed"
    assert "999.conf' does not exist" in error["details"]["error"]
    bad = world.call("POST", f"{INFRA}/proxmox/nodes/pve/qemu/101/status/explode")
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["field"] == "action"
    for path in (
        f"{INFRA}/proxmox/nodes/pve/qemu/5/config",
        f"{INFRA}/proxmox/nodes/pve/tasks/not-a-upid/status",
        f"{INFRA}/proxmox/nodes/bad_node!/qemu",
    ):
        refused = world.call("GET", path)
        assert refused.status_code in (400, 404), (path, refused.text)
        assert refused.json()["success"] is False


def test_every_ssh_route(world: World) -> None:
    probe = _ok(world.call("POST", f"{INFRA}/ssh/test"))
    assert probe["ok"] is True and probe["port"] == world.sshd.port
    ran = _ok(world.call("POST", f"{INFRA}/ssh/exec", json={"command": "uptime"}))
    assert ran["exit_status"] == 0 and "load average" in ran["stdout"]
    refused = world.call("POST", f"{INFRA}/ssh/exec", json={"command": "uptime; id"})
    assert refused.status_code == 502
    assert "allow-list" in refused.json()["error"]["details"]["error"]
    assert "uptime; id" not in world.sshd.commands
    got = _ok(world.call("GET", f"{INFRA}/ssh/vm-config/101"))
    assert got == {"vmid": 101, "path": "/etc/pve/qemu-server/101.conf", "content": CONFIG}
    new = CONFIG.replace("memory: 4096", "memory: 8192")
    put = _ok(world.call("PUT", f"{INFRA}/ssh/vm-config/101", json={"content": new}))
    assert put["bytes"] == len(new)
    assert (world.host_root / "etc/pve/qemu-server/101.conf").read_text() == new


def test_a_slow_action_answers_202_then_completes(world: World) -> None:
    world.fake.slow[r"/clone$"] = 3.0
    try:
        started = time.monotonic()
        answer = world.call(
            "POST", f"{INFRA}/proxmox/nodes/pve/qemu/100/clone?wait=1", json={"newid": 130}
        )
        assert answer.status_code == 202, answer.text
        assert 0.9 < time.monotonic() - started < 3.0
        command = answer.json()["data"]
        assert command["command_type"] == "infra.proxmox.clone"
        assert command["status"] in ("queued", "dispatched", "running")
        deadline = time.monotonic() + 30
        while True:
            current = world.call("GET", f"/api/v1/vm-ops/commands/{command['id']}").json()["data"]
            if current["status"] == "succeeded":
                break
            assert current["status"] in ("queued", "dispatched", "running"), current
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert ":qmclone:100:" in current["result"]["data"] and 130 in world.fake.vms
    finally:
        world.fake.slow.clear()
    # the default wait (BOTMOX_INFRA_WAIT_SECONDS) covers the same action when it is quick
    assert ":qmdestroy:130:" in _ok(world.call("DELETE", f"{INFRA}/proxmox/nodes/pve/qemu/130"))


def test_vm_ops_wait(world: World) -> None:
    # the pack has no handler for proxmox.status: the agent fails it at once, inside the wait
    answer = world.call(
        "POST",
        "/api/v1/vm-ops/proxmox/status?wait=10",
        json={"agent_id": world.agent_id, "params": {"vmid": 101}},
    )
    assert answer.status_code == 200, answer.text
    command = answer.json()["data"]
    assert command["status"] == "failed" and "no handler" in command["error"]
    queued = world.call(
        "POST",
        "/api/v1/vm-ops/proxmox/status",
        json={"agent_id": world.agent_id, "params": {"vmid": 101}},
    )
    assert queued.status_code == 202 and queued.json()["data"]["status"] == "queued"
    for wait in ("61", "-1", "soon", "nan"):
        bad = world.call(
            "POST", f"/api/v1/vm-ops/proxmox/status?wait={wait}", json={"agent_id": world.agent_id}
        )
        assert bad.status_code == 400 and bad.json()["error"]["details"][0]["field"] == "wait"


ROUTES = [
    ("GET", "/proxmox/status"),
    ("POST", "/proxmox/login"),
    ("GET", "/proxmox/nodes/pve/qemu"),
    ("GET", "/proxmox/cluster/resources"),
    ("POST", "/proxmox/nodes/pve/qemu/101/clone"),
    ("GET", "/proxmox/nodes/pve/qemu/101/config"),
    ("PUT", "/proxmox/nodes/pve/qemu/101/config"),
    (
        "GET",
        "/proxmox/nodes/pve/tasks/UPID:pve:00000001:00000001:00000001:qmstart:101:root@pam:/status",
    ),
    ("POST", "/proxmox/nodes/pve/qemu/101/status/stop"),
    ("GET", "/proxmox/nodes/pve/qemu/101/status/current"),
    ("DELETE", "/proxmox/nodes/pve/qemu/101"),
    ("POST", "/proxmox/nodes/pve/qemu/101/sendkey"),
    ("POST", "/ssh/exec"),
    ("POST", "/ssh/test"),
    ("GET", "/ssh/vm-config/101"),
    ("PUT", "/ssh/vm-config/101"),
]


def test_non_admin_tokens_get_403_on_every_route(world: World) -> None:
    assert len(ROUTES) == 16
    before = len(world.fake.requests), len(world.sshd.commands)
    listed = world.call("GET", "/api/v1/vm-ops/commands")
    count = len(listed.json()["data"])
    for method, path in ROUTES:
        for token in (world.api, world.agent_token):
            kwargs = {"json": {"command": "hostname"}} if method in ("POST", "PUT") else {}
            answer = world.call(method, INFRA + path, token, **kwargs)
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json()["error"]["code"] == "FORBIDDEN"
    # nothing was queued, nothing reached Proxmox or the host
    assert len(world.call("GET", "/api/v1/vm-ops/commands").json()["data"]) == count
    assert (len(world.fake.requests), len(world.sshd.commands)) == before


def test_designation_and_secret_refs_from_callers(world: World) -> None:
    injected = world.call(
        "PUT",
        f"{INFRA}/proxmox/nodes/pve/qemu/101/config",
        json={"description": {"secret_ref": "00000000-0000-4000-8000-000000000000"}},
    )
    assert injected.status_code == 400
    assert injected.json()["error"]["code"] == "SECRET_REF_NOT_ALLOWED"
    unknown = world.call("GET", f"{INFRA}/proxmox/status?agent_id=agt_nobody")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "AGENT_NOT_FOUND"
    explicit = world.call("GET", f"{INFRA}/proxmox/status?agent_id={world.agent_id}")
    assert _ok(explicit)["release"] == "8.2"


def test_waiting_requests_hold_no_threads(world: World) -> None:
    """60 requests waiting at once (more than the server's 40 worker threads) on an agent that
    is online but never answers: each gets its 202 after its own 2 s wait, and other requests
    are answered meanwhile."""
    pairing = world.call("POST", "/api/v1/agents/pairings", json={"name": "idle"}).json()["data"]
    idle = httpx.post(
        world.server.url + "/api/v1/agents/register",
        json={"pairing_code": pairing["pairing_code"], "capabilities": ["infra"]},
    ).json()["data"]
    beat = httpx.post(
        world.server.url + "/api/v1/agents/heartbeat",
        json={"agent_id": idle["id"]},
        headers={"Authorization": f"Bearer {idle['agent_token']}"},
    )
    assert beat.status_code == 200, beat.text

    async def burst() -> tuple[list[httpx.Response], float, float]:
        headers = {"Authorization": f"Bearer {world.admin}"}
        async with httpx.AsyncClient(
            base_url=world.server.url, headers=headers, timeout=60
        ) as client:
            started = time.monotonic()
            waits = [
                asyncio.ensure_future(
                    client.get(f"{INFRA}/proxmox/status?agent_id={idle['id']}&wait=2")
                )
                for _ in range(60)
            ]
            await asyncio.sleep(1.0)  # all of them are waiting now
            probe_started = time.monotonic()
            probe = await client.get("/api/v1/agents?limit=5")
            probe_seconds = time.monotonic() - probe_started
            assert probe.status_code == 200
            answers = await asyncio.gather(*waits)
            return answers, time.monotonic() - started, probe_seconds

    answers, total, probe_seconds = asyncio.run(burst())
    print(f"60 waiting requests: {total:.2f} s in all, a request meanwhile {probe_seconds:.3f} s")
    assert [a.status_code for a in answers] == [202] * 60
    assert probe_seconds < 1.0, probe_seconds
    # one 2 s wait each, side by side: a thread per wait (anyio's 40) would need two rounds, 4 s
    assert total < 3.9, total
    for answer in answers:  # queued for an agent that never comes: cancelled at once
        cancelled = world.call(
            "POST", f"/api/v1/vm-ops/commands/{answer.json()['data']['id']}/cancel"
        )
        assert cancelled.json()["data"]["status"] == "cancelled"
    ambiguous = world.call("GET", f"{INFRA}/proxmox/status")
    assert ambiguous.status_code == 409
    assert ambiguous.json()["error"]["code"] == "INFRA_AGENT_AMBIGUOUS"
    assert sorted(ambiguous.json()["error"]["details"]["agent_ids"]) == sorted(
        [world.agent_id, idle["id"]]
    )
    revoked = world.call("POST", f"/api/v1/agents/{idle['id']}/revoke", json={"reason": "test"})
    assert revoked.status_code == 200
    # one infra agent again: no ?agent_id= needed
    assert _ok(world.call("GET", f"{INFRA}/proxmox/status"))["version"] == "8.2.4"


def test_no_credential_in_logs_params_or_output(world: World) -> None:
    _ok(world.call("POST", f"{INFRA}/ssh/test"))  # at least one of each family ran
    _ok(world.call("GET", f"{INFRA}/proxmox/status"))
    commands = world.call("GET", "/api/v1/vm-ops/commands?limit=100").json()["data"]
    infra = [c for c in commands if c["command_type"].startswith("infra.")]
    assert len(infra) >= 16
    texts = [world.server.log(), world.runtime.log()]
    for command in infra:
        full = world.call("GET", f"/api/v1/vm-ops/commands/{command['id']}").json()["data"]
        texts.append(repr(full))
        credentials = full["payload"]["credentials"]
        assert set(credentials) <= {"token_secret", "password"}
        assert all(set(ref) == {"secret_ref"} for ref in credentials.values())
    assert "DEBUG" in world.server.log() and "DEBUG" in world.runtime.log()
    for text in texts:
        for secret in world.secrets:
            assert secret not in text
