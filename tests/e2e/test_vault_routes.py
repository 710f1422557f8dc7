"""The vault routes over a real server process (embedded SQLite), driven by the real
``botmox secret`` CLI and by raw HTTP: roles, tenant isolation, check-and-set, hostile envelopes,
and no plaintext or ciphertext in any answer, log or (plaintext) in the database file."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from botmox_core.client import VaultClient
from botmox_core.testing.server import RunningServer, admin_cli, running_server
from botmox_core.vault.envelopes import (
    ALG_HPKE,
    EnvelopeOpenError,
    SealContext,
    envelope_document,
    key_id_of,
    open_,
    parse_envelope,
)

TENANT = "vault-a"
OTHER = "vault-b"
PLAINTEXT = "pr0xm0x-r00t-pa55w0rd-7c1d"  # unique: grepped for everywhere


@attrs.frozen
class Agent:
    id: str
    key: X25519PrivateKey
    token: str

    @property
    def key_id(self) -> str:
        return key_id_of(self.key.public_key())


@attrs.frozen
class Stack:
    server: RunningServer
    admin: str
    api: str
    other_admin: str
    agent: Agent
    second_agent: Agent
    other_agent: Agent

    def call(self, method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.request(
            method, self.server.url + "/api/v1" + path, headers=headers, timeout=30, **kwargs
        )


def _agent(server: RunningServer, admin: str, name: str) -> Agent:
    pairing = httpx.post(
        server.url + "/api/v1/agents/pairings",
        json={"name": name},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    ).json()["data"]
    key = X25519PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    registered = httpx.post(
        server.url + "/api/v1/agents/register",
        json={
            "pairing_code": pairing["pairing_code"],
            "version": "1.0",
            "platform": "linux",
            "public_key": base64.b64encode(public).decode(),
        },
        timeout=30,
    ).json()["data"]
    return Agent(registered["id"], key, registered["agent_token"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("vault")
    env = {"DATA_BACKEND": "sqlite", "BOTMOX_STORAGE": "localfs"}
    with running_server(tmp / "data", env) as server:

        def token(tenant: str, role: str, *user: str) -> str:
            args = ["token", "create", "--tenant", tenant, "--role", role]
            if user:
                args += ["--user", user[0]]
            return str(admin_cli(server, *args)["token"])

        admin = token(TENANT, "admin")
        other_admin = token(OTHER, "admin")
        yield Stack(
            server,
            admin,
            token(TENANT, "api", "user-1"),
            other_admin,
            _agent(server, admin, "one"),
            _agent(server, admin, "two"),
            _agent(server, other_admin, "theirs"),
        )


def _cli(stack: Stack, *args: str, token: str | None = None, stdin: str | None = None) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "botmox_core", "secret", *args, "--json"],
        env={
            **stack.server.env,
            "BOTMOX_SERVER": stack.server.url,
            "BOTMOX_TOKEN": token or stack.admin,
        },
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert PLAINTEXT not in done.stdout + done.stderr
    if done.returncode != 0:
        raise AssertionError(f"botmox secret {args[0]} failed: {done.stderr}")
    return json.loads(done.stdout)


def _stored(stack: Stack, secret_id: str, version: int) -> dict[str, Any]:
    """The stored envelope, read straight from the SQLite file (what an agent route returns)."""
    import sqlite3
    from contextlib import closing

    path = stack.server.data_dir / "botmox.sqlite3"
    with closing(sqlite3.connect(path)) as db:
        row = db.execute(
            "SELECT envelope FROM vault_secret_versions WHERE tenant_id = ? AND secret_id = ?"
            " AND version = ?",
            (TENANT, secret_id, version),
        ).fetchone()
    assert row is not None and row[0] is not None
    return dict(json.loads(row[0]))


def _open(stack: Stack, agent: Agent, secret_id: str, version: int) -> bytes:
    envelope = parse_envelope(_stored(stack, secret_id, version))
    context = SealContext(
        tenant_id=TENANT,
        secret_id=secret_id,
        version=version,
        agent_id=agent.id,
        key_id=agent.key_id,
    )
    return open_(envelope, agent.key, context)


# -- the flow ----------------------------------------------------------------------------------


def test_cli_seals_binds_rotates_and_the_agents_open_it(stack: Stack) -> None:
    meta = _cli(
        stack,
        "put",
        "--label",
        "proxmox root",
        "--agent",
        stack.agent.id,
        "--agent",
        stack.second_agent.id,
        stdin=PLAINTEXT + "\n",
    )
    assert meta["version"] == 1 and meta["alg"] == ALG_HPKE
    assert [r["agent_id"] for r in meta["recipients"]] == [stack.agent.id, stack.second_agent.id]
    assert _open(stack, stack.agent, meta["id"], 1) == PLAINTEXT.encode()
    assert _open(stack, stack.second_agent, meta["id"], 1) == PLAINTEXT.encode()

    binding = _cli(
        stack,
        "bind",
        meta["id"],
        "--scope-type",
        "vm_settings",
        "--scope-id",
        "vmgenerator",
        "--field",
        "proxmox.password",
    )
    assert binding["secret_ref"] == meta["id"] and binding["scope_type"] == "vm_settings"
    listed = _cli(stack, "bindings", "--scope-type", "vm_settings", token=stack.api)["bindings"]
    assert [b["id"] for b in listed] == [binding["id"]]

    rotated = _cli(stack, "rotate", meta["id"], stdin=PLAINTEXT + "-v2")
    assert rotated["version"] == 2 and rotated["rotated_at"] is not None
    assert _open(stack, stack.agent, meta["id"], 2) == (PLAINTEXT + "-v2").encode()
    shown = _cli(stack, "meta", meta["id"], token=stack.api)
    assert [v["version"] for v in shown["versions"]] == [2, 1]

    # the database file holds no plaintext; the log holds neither plaintext nor ciphertext
    database = (stack.server.data_dir / "botmox.sqlite3").read_bytes()
    for suffix in ("", "-wal"):
        path = stack.server.data_dir / f"botmox.sqlite3{suffix}"
        if path.exists():
            database += path.read_bytes()
    assert PLAINTEXT.encode() not in database
    log = stack.server.log()
    assert PLAINTEXT not in log
    for copy in _stored(stack, meta["id"], 2)["recipients"]:
        assert copy["ciphertext"] not in log and copy["enc"] not in log


def test_python_client_put_and_rotate_with_check_and_set(stack: Stack) -> None:
    with VaultClient(stack.server.url, stack.admin) as vault:
        meta = vault.put(b"py-secret", label="py", agents=[stack.agent.id])
        first = vault.rotate(meta["id"], b"py-secret-2")
        assert first["version"] == 2
        with pytest.raises(Exception) as caught:
            vault.rotate(meta["id"], b"py-secret-3", expected_version=1)
        assert getattr(caught.value, "code", None) == "SECRET_VERSION_CONFLICT"
        assert vault.meta(meta["id"])["version"] == 2
    assert _open(stack, stack.agent, meta["id"], 2) == b"py-secret-2"


# -- roles and tenants -------------------------------------------------------------------------


def _aes_body(**extra: Any) -> dict[str, Any]:
    return {
        "label": "browser",
        "alg": "aes-256-gcm",
        "key_id": "local-browser-key-v1",
        "nonce": base64.b64encode(bytes(12)).decode(),
        "ciphertext": base64.b64encode(b"\x01" * 40).decode(),
        **extra,
    }


def _rotate_body() -> dict[str, Any]:
    body = _aes_body()
    del body["label"]
    return body


def test_the_seed_browser_envelope_is_stored_and_rotated(stack: Stack) -> None:
    created = stack.call("POST", "/secrets", stack.admin, json=_aes_body())
    assert created.status_code == 201, created.text
    data = created.json()["data"]
    assert data["alg"] == "aes-256-gcm" and data["key_id"] == "local-browser-key-v1"
    rotated = stack.call(
        "POST",
        f"/secrets/{data['id']}/rotate",
        stack.admin,
        json={
            "ciphertext": base64.b64encode(b"\x02" * 40).decode(),
            "key_id": "k2",
            "nonce": base64.b64encode(bytes(12)).decode(),
        },
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["data"]["version"] == 2


def test_writes_need_admin_or_infra_reads_need_a_tenant_role(stack: Stack) -> None:
    assert stack.call("POST", "/secrets", stack.api, json=_aes_body()).status_code == 403
    assert stack.call("POST", "/secrets", stack.agent.token, json=_aes_body()).status_code == 403
    made = stack.call("POST", "/secrets", stack.admin, json=_aes_body()).json()["data"]
    bind = {"scope_type": "vm", "scope_id": "vm-1", "field_name": "x", "secret_ref": made["id"]}
    assert stack.call("POST", "/secrets/bindings", stack.api, json=bind).status_code == 403
    assert (
        stack.call("POST", f"/secrets/{made['id']}/rotate", stack.api, json=_aes_body()).status_code
        == 403
    )
    assert stack.call("GET", f"/secrets/{made['id']}/meta", stack.api).status_code == 200
    assert stack.call("GET", f"/secrets/{made['id']}/meta", stack.agent.token).status_code == 403
    assert stack.call("GET", "/secrets/bindings", stack.api).status_code == 200
    assert stack.call("GET", "/secrets/bindings", None).status_code == 401


def test_another_tenants_secret_is_404_everywhere(stack: Stack) -> None:
    theirs = stack.call("POST", "/secrets", stack.other_admin, json=_aes_body()).json()["data"]
    for method, path, body in (
        ("GET", f"/secrets/{theirs['id']}/meta", None),
        ("POST", f"/secrets/{theirs['id']}/rotate", _rotate_body()),
        ("GET", "/secrets/not-a-uuid/meta", None),
        ("GET", f"/secrets/{uuid.uuid4()}/meta", None),
        (
            "POST",
            "/secrets/bindings",
            {
                "scope_type": "vm_settings",
                "scope_id": "vmgenerator",
                "field_name": "ssh.password",
                "secret_ref": theirs["id"],
            },
        ),
        (
            "POST",
            "/secrets/bindings",
            {
                "scope_type": "vm_settings",
                "scope_id": "vmgenerator",
                "field_name": "ssh.password",
                "secret_ref": "nope",
            },
        ),
    ):
        answer = stack.call(method, path, stack.admin, json=body)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["error"]["code"] == "SECRET_NOT_FOUND"
    listed = stack.call("GET", "/secrets/bindings", stack.admin).json()["data"]
    assert theirs["id"] not in {b["secret_ref"] for b in listed}


def test_a_secret_cannot_be_sealed_to_another_tenants_or_a_revoked_agent(stack: Stack) -> None:
    with VaultClient(stack.server.url, stack.admin) as vault:
        # the client refuses to fetch the key of another tenant's agent
        with pytest.raises(Exception) as caught:
            vault.put(b"x", label="x", agents=[stack.other_agent.id])
        assert getattr(caught.value, "code", None) == "AGENT_NOT_FOUND"
    # an envelope sealed by hand to the other tenant's agent is refused by the server
    with VaultClient(stack.server.url, stack.other_admin) as theirs:
        key = theirs.agent_key(stack.other_agent.id)
    from botmox_core.vault.envelopes import seal

    secret_id = str(uuid.uuid4())
    envelope = seal(b"x", [key], tenant_id=TENANT, secret_id=secret_id, version=1)
    body = {"id": secret_id, "label": "x", **envelope_document(envelope)}
    answer = stack.call("POST", "/secrets", stack.admin, json=body)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "AGENT_NOT_FOUND"


# -- hostile envelopes -------------------------------------------------------------------------


def _sealed_body(stack: Stack) -> dict[str, Any]:
    from botmox_core.vault.envelopes import RecipientKey, seal

    with VaultClient(stack.server.url, stack.admin) as vault:
        key: RecipientKey = vault.agent_key(stack.agent.id)
    secret_id = str(uuid.uuid4())
    envelope = seal(b"hostile", [key], tenant_id=TENANT, secret_id=secret_id, version=1)
    return {"id": secret_id, "label": "h", **envelope_document(envelope)}


def _flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[3] ^= 0x80
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (
            lambda b: b["recipients"][0].update(enc=b["recipients"][0]["enc"][:-8] + "="),
            "recipients[0].enc",
        ),
        (
            lambda b: b["recipients"][0].update(enc=base64.b64encode(bytes(33)).decode()),
            "recipients[0].enc",
        ),
        (
            lambda b: b["recipients"][0].update(ciphertext=base64.b64encode(bytes(8)).decode()),
            "recipients[0].ciphertext",
        ),
        (
            lambda b: b["recipients"][0].update(
                ciphertext=base64.b64encode(bytes(70_000)).decode()
            ),
            "recipients[0].ciphertext",
        ),
        (lambda b: b.update(alg="aes-128-cbc"), "alg"),
        (lambda b: b.update(alg="none"), "alg"),
        (lambda b: b["recipients"][0].update(key_id="x25519:" + "0" * 32), "recipients[0].key_id"),
        (lambda b: b.pop("id"), "id"),
        (lambda b: b.update(id="1234"), "id"),
        (lambda b: b.update(nonce="AAAA"), "nonce"),
        (lambda b: b.update(label=""), "label"),
        (lambda b: b.update(aad_meta=[1]), "aad_meta"),
        (lambda b: b.update(plaintext="x"), "plaintext"),
    ],
)
def test_hostile_envelopes_are_400_naming_the_field(stack: Stack, mutate: Any, field: str) -> None:
    body = _sealed_body(stack)
    mutate(body)
    answer = stack.call("POST", "/secrets", stack.admin, json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "BAD_REQUEST"
    assert error["details"][0]["field"] == field
    assert base64.b64encode(bytes(70_000)).decode()[:40] not in answer.text


def test_a_flipped_bit_is_stored_but_does_not_open(stack: Stack) -> None:
    """The server cannot tell a flipped ciphertext bit (it never opens); the agent can."""
    body = _sealed_body(stack)
    body["recipients"][0]["ciphertext"] = _flip(body["recipients"][0]["ciphertext"])
    created = stack.call("POST", "/secrets", stack.admin, json=body)
    assert created.status_code == 201
    with pytest.raises(EnvelopeOpenError):
        _open(stack, stack.agent, body["id"], 1)


def test_a_ciphertext_copied_into_another_secret_by_rotate_does_not_open(stack: Stack) -> None:
    original = _sealed_body(stack)
    assert stack.call("POST", "/secrets", stack.admin, json=original).status_code == 201
    target = _sealed_body(stack)
    assert stack.call("POST", "/secrets", stack.admin, json=target).status_code == 201
    copied = {"expected_version": 1, "alg": ALG_HPKE, "recipients": original["recipients"]}
    answer = stack.call("POST", f"/secrets/{target['id']}/rotate", stack.admin, json=copied)
    assert answer.status_code == 200  # well-formed: the server cannot know
    with pytest.raises(EnvelopeOpenError):
        _open(stack, stack.agent, target["id"], 2)
    assert _open(stack, stack.agent, original["id"], 1) == b"hostile"


def test_stale_expected_version_is_409_and_hpke_rotation_needs_it(stack: Stack) -> None:
    body = _sealed_body(stack)
    stack.call("POST", "/secrets", stack.admin, json=body)
    again = {"alg": ALG_HPKE, "recipients": body["recipients"]}
    missing = stack.call("POST", f"/secrets/{body['id']}/rotate", stack.admin, json=again)
    assert missing.status_code == 400
    assert missing.json()["error"]["details"][0]["field"] == "expected_version"
    ok = stack.call(
        "POST", f"/secrets/{body['id']}/rotate", stack.admin, json={**again, "expected_version": 1}
    )
    assert ok.status_code == 200
    stale = stack.call(
        "POST", f"/secrets/{body['id']}/rotate", stack.admin, json={**again, "expected_version": 1}
    )
    assert stale.status_code == 409
    error = stale.json()["error"]
    assert error["code"] == "SECRET_VERSION_CONFLICT"
    assert error["details"] == {"version": 2, "expected_version": 1}


def test_no_answer_carries_ciphertext(stack: Stack) -> None:
    body = _sealed_body(stack)
    texts = [stack.call("POST", "/secrets", stack.admin, json=body).text]
    texts.append(stack.call("GET", f"/secrets/{body['id']}/meta", stack.admin).text)
    texts.append(
        stack.call(
            "POST",
            f"/secrets/{body['id']}/rotate",
            stack.admin,
            json={"expected_version": 1, "alg": ALG_HPKE, "recipients": body["recipients"]},
        ).text
    )
    texts.append(stack.call("GET", "/secrets/bindings", stack.admin).text)
    copy = body["recipients"][0]
    for text in texts:
        assert copy["ciphertext"] not in text and copy["enc"] not in text
        assert '"nonce"' not in text and '"enc"' not in text and '"ciphertext"' not in text


def test_binding_upserts_on_its_key_and_vm_settings_is_accepted(stack: Stack) -> None:
    first = stack.call("POST", "/secrets", stack.admin, json=_aes_body()).json()["data"]
    second = stack.call("POST", "/secrets", stack.admin, json=_aes_body()).json()["data"]
    key = {"scope_type": "vm_settings", "scope_id": "vmgenerator", "field_name": "ssh.password"}
    one = stack.call(
        "POST", "/secrets/bindings", stack.admin, json={**key, "secret_ref": first["id"]}
    )
    two = stack.call(
        "POST", "/secrets/bindings", stack.admin, json={**key, "secret_ref": second["id"]}
    )
    assert one.status_code == two.status_code == 201
    assert one.json()["data"]["id"] == two.json()["data"]["id"]
    assert two.json()["data"]["secret_ref"] == second["id"]
    bad = stack.call(
        "POST",
        "/secrets/bindings",
        stack.admin,
        json={**key, "scope_type": "planet", "secret_ref": first["id"]},
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["details"][0]["field"] == "scope_type"
    listed = stack.call("GET", "/secrets/bindings?scope_type=planet", stack.admin)
    assert listed.status_code == 400
