"""Issue 12's proof over real processes (embedded stack): ``botmox serve`` at debug level, agents
paired and run with ``botmox agent pair|run`` and a handler module, the ``botmox secret`` CLI.

The CLI seals a secret to an agent and binds it to ``vm_settings``; an admin enqueues a command
whose params reference it; the agent's handler receives the plaintext; then the SQLite files,
the server log, the agent log, the agent journal and every CLI output hold the plaintext zero
times. Around it: who cannot fetch the envelope, a copied ciphertext and a flipped bit that do
not open, a stale ``expected_version``, plaintext settings writes and a cross-tenant binding.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

from botmox_core.testing.agents import AgentProcess, ServerProcess
from botmox_core.vault.envelopes import RecipientKey, envelope_document, seal

pytestmark = pytest.mark.e2e

TENANT, OTHER = "vault-e2e-a", "vault-e2e-b"
PLAINTEXT = "Pve-r00t-7f2c9a41-zz"  # unique; grepped for everywhere at the end
SECOND = "Ssh-pw-b81d55e0-qq"

HANDLERS = """
import hashlib, os
from pathlib import Path
from botmox_core.agent import Agent

agent = Agent(concurrency=2, reconnect_initial=0.05, reconnect_max=0.5)
OUT = Path(os.environ["TEST_OUT"])


@agent.handler("vm.login")
async def login(ctx):
    password = ctx.payload["auth"]["password"]
    with OUT.open("a") as handle:  # a digest, so the test can prove what the handler received
        handle.write(ctx.id + " " + hashlib.sha256(password.encode()).hexdigest() + "\\n")
    ctx.write("logging in with " + password + "\\n")  # a careless handler: the runtime scrubs
    return {"vmid": ctx.payload["vmid"], "echo": password, "type": type(password).__name__}
"""


@attrs.frozen
class Paired:
    id: str
    token: str = attrs.field(repr=False)
    state: Path


@attrs.frozen
class Stack:
    server: ServerProcess
    tmp: Path
    admin: str = attrs.field(repr=False)
    other_admin: str = attrs.field(repr=False)
    cli_outputs: list[str]

    def call(self, method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.request(
            method, self.server.url + "/api/v1" + path, headers=headers, timeout=30, **kwargs
        )

    def cli(
        self, *args: str, token: str | None = None, stdin: str | None = None, ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "botmox_core", *args],
            env={
                **self.server.env,
                "BOTMOX_SERVER": self.server.url,
                "BOTMOX_TOKEN": token or self.admin,
            },
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.cli_outputs.extend([done.stdout, done.stderr])
        if ok:
            assert done.returncode == 0, done.stderr
        return done

    def pair(self, name: str, admin: str | None = None) -> Paired:
        code = self.call("POST", "/agents/pairings", admin or self.admin, json={"name": name})
        state = self.tmp / f"{name}.json"
        self.cli(
            "agent",
            "pair",
            "--server",
            self.server.url,
            "--code",
            code.json()["data"]["pairing_code"],
            "--state",
            str(state),
            "--json",
        )
        data = json.loads(state.read_text())
        assert state.stat().st_mode & 0o777 == 0o600
        return Paired(data["agent_id"], data["agent_token"], state)

    def recipient(self, agent: Paired) -> RecipientKey:
        public = self.call("GET", f"/agents/{agent.id}", self.admin).json()["data"]["public_key"]
        return RecipientKey(agent_id=agent.id, public_key=public)

    def command(self, agent: Paired, secret_id: str) -> dict[str, Any]:
        """Enqueue ``vm.login`` referencing the secret and wait for its final state."""
        queued = self.call(
            "POST",
            "/vm-ops/commands",
            self.admin,
            json={
                "agent_id": agent.id,
                "command_type": "vm.login",
                "payload": {"vmid": 101, "auth": {"password": {"secret_ref": secret_id}}},
            },
        )
        assert queued.status_code in (201, 202), queued.text
        command_id = queued.json()["data"]["id"]
        deadline = time.monotonic() + 30
        while True:
            data = self.call("GET", f"/vm-ops/commands/{command_id}", self.admin).json()["data"]
            if data["status"] in ("succeeded", "failed", "timed_out", "expired", "cancelled"):
                return dict(data)
            assert time.monotonic() < deadline, data
            time.sleep(0.1)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    env = {"DATA_BACKEND": "sqlite", "BOTMOX_STORAGE": "localfs", "BOTMOX_PLUGINS": "none"}
    with ServerProcess(tmp_path / "data", env, log_level="debug") as server:
        admin = server.admin("token", "create", "--tenant", TENANT, "--role", "admin")["token"]
        other = server.admin("token", "create", "--tenant", OTHER, "--role", "admin")["token"]
        yield Stack(server, tmp_path, admin, other, [])


def _wait_connected(stack: Stack, agent: Paired, runtime: AgentProcess) -> None:
    deadline = time.monotonic() + 30
    while not stack.call("GET", f"/agents/{agent.id}", stack.admin).json()["data"]["connected"]:
        assert time.monotonic() < deadline, runtime.log()[-3000:]
        time.sleep(0.1)


def test_secret_ref_end_to_end_and_no_plaintext_anywhere(stack: Stack) -> None:
    one = stack.pair("one")  # the recipient that runs the command
    two = stack.pair("two")  # same tenant, not a recipient
    three = stack.pair("three")  # a recipient, revoked below
    theirs = stack.pair("theirs", stack.other_admin)  # another tenant's agent
    app = stack.tmp / "vault_handlers.py"
    app.write_text(HANDLERS)
    out = stack.tmp / "handler.out"
    runtime = AgentProcess(f"{app}:agent", one.state, {"TEST_OUT": str(out)}, log_level="debug")
    with runtime:
        _wait_connected(stack, one, runtime)

        # the CLI seals to the agents (plaintext on stdin) and binds to vm_settings
        put = stack.cli(
            "secret",
            "put",
            "--label",
            "vm_settings.proxmox.password",
            "--agent",
            one.id,
            "--agent",
            three.id,
            "--json",
            stdin=PLAINTEXT,
        )
        secret_id = json.loads(put.stdout)["id"]
        stack.cli(
            "secret",
            "bind",
            secret_id,
            "--scope-type",
            "vm_settings",
            "--scope-id",
            "vmgenerator",
            "--field",
            "proxmox.password",
            "--json",
        )

        # an admin enqueues a command referencing it; the handler receives the plaintext
        done = stack.command(one, secret_id)
        assert done["status"] == "succeeded", done
        digest = hashlib.sha256(PLAINTEXT.encode()).hexdigest()
        assert out.read_text().split() == [done["id"], digest]
        # ... and what it echoed came back scrubbed
        assert done["result"] == {"vmid": 101, "echo": "[REDACTED]", "type": "str"}
        assert done["output"] == "logging in with [REDACTED]\n"

        # who cannot fetch the envelope
        path = f"/agents/me/secrets/{secret_id}"
        assert stack.call("GET", path, three.token).status_code == 200  # recipient: yes
        for agent in (two, theirs):
            refused = stack.call("GET", path, agent.token)
            assert refused.status_code == 404, refused.text
            assert refused.json()["error"]["code"] == "SECRET_NOT_FOUND"
        assert stack.call("POST", f"/agents/{three.id}/revoke", stack.admin, json={}).is_success
        revoked = stack.call("GET", path, three.token)
        assert revoked.status_code == 401  # a revoked agent's token is refused before anything
        assert "ciphertext" not in revoked.text
        assert stack.call("GET", path, stack.admin).status_code == 403

        # a ciphertext copied into another secret via rotate does not open
        copy = stack.call("GET", path, one.token).json()["data"]
        other = stack.cli(
            "secret", "put", "--label", "ssh", "--agent", one.id, "--json", stdin=SECOND
        )
        other_id = json.loads(other.stdout)["id"]
        stack.cli(
            "secret",
            "bind",
            other_id,
            "--scope-type",
            "vm_settings",
            "--scope-id",
            "vmgenerator",
            "--field",
            "ssh.password",
        )
        moved = {
            "alg": copy["alg"],
            "recipients": [{k: copy[k] for k in ("agent_id", "key_id", "enc", "ciphertext")}],
            "expected_version": 1,
        }
        rotated = stack.call("POST", f"/secrets/{other_id}/rotate", stack.admin, json=moved)
        assert rotated.status_code == 200, rotated.text  # the server cannot tell: it never opens
        failed = stack.command(one, other_id)
        assert failed["status"] == "failed" and failed["error"].startswith("SECRET_OPEN_FAILED")
        assert failed["result"] is None

        # a flipped bit does not open (sealed properly for version 3, then one bit changed)
        sealed = envelope_document(
            seal(
                SECOND.encode(),
                [stack.recipient(one)],
                tenant_id=TENANT,
                secret_id=other_id,
                version=3,
            )
        )
        body = bytearray(base64.b64decode(sealed["recipients"][0]["ciphertext"]))
        body[3] ^= 0x01
        sealed["recipients"][0]["ciphertext"] = base64.b64encode(bytes(body)).decode()
        assert stack.call(
            "POST",
            f"/secrets/{other_id}/rotate",
            stack.admin,
            json={**sealed, "expected_version": 2},
        ).is_success
        flipped = stack.command(one, other_id)
        assert flipped["status"] == "failed" and flipped["error"].startswith("SECRET_OPEN_FAILED")

        # a stale expected_version gets 409 (the CLI, then raw HTTP)
        stale = stack.cli(
            "secret",
            "rotate",
            other_id,
            "--expected-version",
            "1",
            "--agent",
            one.id,
            stdin=SECOND,
            ok=False,
        )
        assert stale.returncode != 0 and "SECRET_VERSION_CONFLICT" in stale.stderr
        conflict = stack.call(
            "POST",
            f"/secrets/{other_id}/rotate",
            stack.admin,
            json={**sealed, "expected_version": 1},
        )
        assert conflict.status_code == 409
        assert conflict.json()["error"]["code"] == "SECRET_VERSION_CONFLICT"

        # an unbound secret is not served either: the command fails with a clear code
        loose = stack.cli(
            "secret", "put", "--label", "loose", "--agent", one.id, "--json", stdin=SECOND
        )
        unbound = stack.command(one, json.loads(loose.stdout)["id"])
        assert unbound["status"] == "failed" and unbound["error"].startswith("SECRET_NOT_FOUND")

        # settings: plaintext refused, "set / not set" from the bindings
        plain = stack.call(
            "PATCH",
            "/settings/vmgenerator",
            stack.admin,
            json={"proxmox": {"url": "https://pve:8006", "password": PLAINTEXT}},
        )
        assert plain.status_code == 400
        assert plain.json()["error"]["code"] == "PLAINTEXT_SECRET_REFUSED"
        assert plain.json()["error"]["details"]["binding"]["field_name"] == "proxmox.password"
        assert stack.call(
            "PATCH", "/settings/vmgenerator", stack.admin, json={"proxmox": {"url": "https://pve"}}
        ).is_success
        settings = stack.call("GET", "/settings/vmgenerator", stack.admin).json()["data"]
        assert settings["proxmox"]["url"] == "https://pve"
        assert settings["proxmox"]["password"]["set"] is True
        assert settings["proxmox"]["password"]["secret_ref"] == secret_id
        assert settings["ssh"]["password"]["secret_ref"] == other_id
        # binding to another tenant's secret: 404
        foreign = stack.call(
            "POST",
            "/secrets/bindings",
            stack.other_admin,
            json={
                "scope_type": "vm_settings",
                "scope_id": "vmgenerator",
                "field_name": "proxmox.password",
                "secret_ref": secret_id,
            },
        )
        assert foreign.status_code == 404
        assert foreign.json()["error"]["code"] == "SECRET_NOT_FOUND"
        assert runtime.terminate() == 0
    stack.server.stop()

    # zero hits: every SQLite file of the server, the server log (debug), the agent log and
    # journal, every CLI output
    needles = [PLAINTEXT.encode(), SECOND.encode()]
    server_files = [p for p in stack.server.data_dir.rglob("*") if p.is_file()]
    assert any(p.suffix in (".sqlite3", ".db", ".sqlite") for p in server_files), server_files
    agent_files = [p for p in stack.tmp.glob("one.json*") if p.is_file()]
    assert any("journal" in p.name for p in agent_files) and runtime.log_path in agent_files
    for path in server_files + agent_files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"{needle!r} found in {path}"
    assert "DEBUG" in stack.server.log() and "DEBUG" in runtime.log()
    for text in stack.cli_outputs:
        assert PLAINTEXT not in text and SECOND not in text
