"""Agents open what is theirs: ``GET /api/v1/agents/me/secrets/{id}`` (the vault service's
``agent_envelope``) and the runtime's ``secret_ref`` resolution, on the embedded backend and
the real ASGI app (in process)."""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from litestar.testing import AsyncTestClient, TestClient

from botmox_core.agent.secrets import (
    SecretResolutionError,
    find_secret_refs,
    resolve_secret_refs,
    scrub,
)
from botmox_core.agent.state import AgentState
from botmox_core.bootstrap import App
from botmox_core.errors import ForbiddenError, SecretNotFoundError
from botmox_core.models import Role
from botmox_core.services import Principal
from botmox_core.vault.envelopes import RecipientKey, envelope_document, seal
from botmox_server.app import create_app

TENANT, OTHER = "t1", "t2"
ADMIN = Principal(TENANT, Role.ADMIN, user_id="admin-1")
OTHER_ADMIN = Principal(OTHER, Role.ADMIN)
PLAINTEXT = "pve-r00t-Pa55word-93f1"
SERVER = "http://testserver.local"


@attrs.frozen
class PairedAgent:
    id: str
    tenant_id: str
    key: X25519PrivateKey = attrs.field(repr=False)
    token: str = attrs.field(repr=False)

    @property
    def principal(self) -> Principal:
        return Principal(self.tenant_id, Role.AGENT, subject=self.id)

    @property
    def recipient(self) -> RecipientKey:
        raw = self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return RecipientKey(agent_id=self.id, public_key=base64.b64encode(raw).decode())

    def state(self, private_key: X25519PrivateKey | None = None) -> AgentState:
        key = private_key or self.key
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return AgentState(
            server_url=SERVER,
            agent_id=self.id,
            tenant_id=self.tenant_id,
            agent_token=self.token,
            private_key=base64.b64encode(raw).decode(),
        )


def _pair(core: App, admin: Principal = ADMIN) -> PairedAgent:
    pairing = core.agents.create_pairing(admin, name="a")
    key = X25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    registered = core.agents.register(
        pairing_code=pairing.code, public_key=base64.b64encode(raw).decode()
    )
    return PairedAgent(registered.agent.id, admin.tenant_id, key, registered.token)


def _put(
    core: App,
    recipients: list[PairedAgent],
    *,
    admin: Principal = ADMIN,
    plaintext: str = PLAINTEXT,
    bind: tuple[str, str] | None = ("vm_settings", "vmgenerator"),
) -> str:
    secret_id = str(uuid.uuid4())
    envelope = seal(
        plaintext.encode(),
        [agent.recipient for agent in recipients],
        tenant_id=admin.tenant_id,
        secret_id=secret_id,
        version=1,
    )
    core.vault.create(admin, {"id": secret_id, "label": "l", **envelope_document(envelope)})
    if bind is not None:
        core.vault.bind(
            admin,
            {
                "scope_type": bind[0],
                "scope_id": bind[1],
                "field_name": f"f-{secret_id}",
                "secret_ref": secret_id,
            },
        )
    return secret_id


def test_the_recipient_gets_its_own_copy_and_nothing_else(core: App) -> None:
    one, two = _pair(core), _pair(core)
    secret_id = _put(core, [one, two])
    copy = core.vault.agent_envelope(one.principal, secret_id)
    assert copy["agent_id"] == one.id and copy["version"] == 1 and copy["tenant_id"] == TENANT
    assert set(copy) == {
        "secret_id",
        "tenant_id",
        "version",
        "alg",
        "agent_id",
        "key_id",
        "enc",
        "ciphertext",
    }
    assert core.vault.agent_envelope(two.principal, secret_id)["ciphertext"] != copy["ciphertext"]


def test_who_gets_404(core: App) -> None:
    one, outsider = _pair(core), _pair(core)
    theirs = _pair(core, OTHER_ADMIN)
    secret_id = _put(core, [one])
    for principal in (
        outsider.principal,  # not a recipient
        theirs.principal,  # another tenant's agent
        Principal(OTHER, Role.AGENT, subject=one.id),  # the right id in another tenant
        Principal(TENANT, Role.AGENT, subject="agt_unknown"),
    ):
        with pytest.raises(SecretNotFoundError):
            core.vault.agent_envelope(principal, secret_id)
    for bad in ("not-a-uuid", str(uuid.uuid4()), secret_id.upper() + "x"):
        with pytest.raises(SecretNotFoundError):
            core.vault.agent_envelope(one.principal, bad)
    with pytest.raises(ForbiddenError):
        core.vault.agent_envelope(ADMIN, secret_id)
    # revoked after the token was checked: still 404
    core.agents.revoke(ADMIN, one.id, "gone")
    with pytest.raises(SecretNotFoundError):
        core.vault.agent_envelope(one.principal, secret_id)


def test_the_secret_must_be_bound_to_a_scope_the_agent_serves(core: App) -> None:
    one, two = _pair(core), _pair(core)
    unbound = _put(core, [one], bind=None)
    with pytest.raises(SecretNotFoundError):
        core.vault.agent_envelope(one.principal, unbound)
    for_two = _put(core, [one, two], bind=("agent", two.id))
    with pytest.raises(SecretNotFoundError):
        core.vault.agent_envelope(one.principal, for_two)
    assert core.vault.agent_envelope(two.principal, for_two)["agent_id"] == two.id


def test_rotation_to_other_recipients_ends_access(core: App) -> None:
    one, two = _pair(core), _pair(core)
    secret_id = _put(core, [one])
    envelope = seal(b"next", [two.recipient], tenant_id=TENANT, secret_id=secret_id, version=2)
    core.vault.rotate(ADMIN, secret_id, {**envelope_document(envelope), "expected_version": 1})
    with pytest.raises(SecretNotFoundError):
        core.vault.agent_envelope(one.principal, secret_id)
    assert core.vault.agent_envelope(two.principal, secret_id)["version"] == 2


def test_an_aes_gcm_secret_has_no_agent_copy(core: App) -> None:
    one = _pair(core)
    made = core.vault.create(
        ADMIN,
        {
            "label": "browser",
            "alg": "aes-256-gcm",
            "key_id": "local-browser-key-v1",
            "nonce": base64.b64encode(bytes(12)).decode(),
            "ciphertext": base64.b64encode(bytes(40)).decode(),
        },
    )
    core.vault.bind(
        ADMIN,
        {
            "scope_type": "vm_settings",
            "scope_id": "vmgenerator",
            "field_name": "ssh.password",
            "secret_ref": made["id"],
        },
    )
    with pytest.raises(SecretNotFoundError):
        core.vault.agent_envelope(one.principal, made["id"])


def test_the_route_over_http(core: App) -> None:
    one, outsider = _pair(core), _pair(core)
    secret_id = _put(core, [one])
    admin_token = core.tokens.create(TENANT, "admin").secret
    with TestClient(create_app(core=core)) as client:

        def get(token: str, ident: str = secret_id) -> Any:
            return client.get(
                f"/api/v1/agents/me/secrets/{ident}", headers={"Authorization": f"Bearer {token}"}
            )

        answer = get(one.token)
        assert answer.status_code == 200 and answer.json()["data"]["agent_id"] == one.id
        refused = get(outsider.token)
        assert refused.status_code == 404
        assert refused.json()["error"]["code"] == "SECRET_NOT_FOUND"
        assert get(admin_token).status_code == 403
        assert client.get(f"/api/v1/agents/me/secrets/{secret_id}").status_code == 401
        core.agents.revoke(ADMIN, one.id, "gone")
        assert get(one.token).status_code == 401  # a revoked token is refused everywhere
        # no tenant-facing answer carries the copy
        meta = client.get(
            f"/api/v1/secrets/{secret_id}/meta", headers={"Authorization": f"Bearer {admin_token}"}
        ).json()["data"]
        assert answer.json()["data"]["ciphertext"] not in str(meta)


# -- the runtime's resolution ------------------------------------------------------------------


def test_find_secret_refs() -> None:
    ref = str(uuid.uuid4())
    payload = {"a": {"secret_ref": ref}, "b": [{"secret_ref": ref.upper()}], "c": {"x": 1}}
    assert find_secret_refs(payload) == [ref]
    assert find_secret_refs({"secret_ref": ref, "other": 1}) == []  # not a reference object
    with pytest.raises(SecretResolutionError) as caught:
        find_secret_refs({"p": {"secret_ref": "../../etc"}})
    assert caught.value.code == "SECRET_REF_INVALID"
    many = {str(i): {"secret_ref": str(uuid.uuid4())} for i in range(33)}
    with pytest.raises(SecretResolutionError):
        find_secret_refs(many)


def test_scrub() -> None:
    assert scrub({"k": f"x{PLAINTEXT}y", "n": [PLAINTEXT]}, [PLAINTEXT]) == {
        "k": "x[REDACTED]y",
        "n": ["[REDACTED]"],
    }


def test_resolution_hands_plaintext_and_fails_with_codes(
    core: App, caplog: pytest.LogCaptureFixture
) -> None:
    one, outsider = _pair(core), _pair(core)
    secret_id = _put(core, [one])
    binary = _put(core, [one], plaintext="x")  # rotated below to bytes that are not UTF-8
    envelope = seal(b"\xff\xfe\x00", [one.recipient], tenant_id=TENANT, secret_id=binary, version=2)
    core.vault.rotate(ADMIN, binary, {**envelope_document(envelope), "expected_version": 1})
    payload = {"vmid": 100, "auth": {"password": {"secret_ref": secret_id}}, "list": [1]}

    async def scenario() -> None:
        async with AsyncTestClient(create_app(core=core), base_url=SERVER) as client:

            async def failure(state: AgentState, refs: Any = payload) -> str:
                with pytest.raises(SecretResolutionError) as caught:
                    await resolve_secret_refs(refs, state, client=client)
                assert PLAINTEXT not in str(caught.value)
                return caught.value.code

            with caplog.at_level(logging.DEBUG):
                resolved, plaintexts = await resolve_secret_refs(
                    payload, one.state(), client=client
                )
            assert PLAINTEXT not in caplog.text
            assert resolved == {"vmid": 100, "auth": {"password": PLAINTEXT}, "list": [1]}
            assert plaintexts == [PLAINTEXT]
            assert payload["auth"] == {"password": {"secret_ref": secret_id}}  # input untouched
            assert await resolve_secret_refs({"x": 1}, one.state(), client=client) == ({"x": 1}, [])
            assert await failure(outsider.state()) == "SECRET_NOT_FOUND"
            # the right copy opened with another key: the key id does not match
            assert await failure(one.state(X25519PrivateKey.generate())) == "SECRET_OPEN_FAILED"
            # the copy opened as another tenant's (the context is the HPKE info)
            assert await failure(attrs.evolve(one.state(), tenant_id=OTHER)) == "SECRET_OPEN_FAILED"
            no_key = attrs.evolve(one.state(), private_key=None)
            assert await failure(no_key) == "SECRET_KEY_MISSING"
            not_text = {"p": {"secret_ref": binary}}
            assert await failure(one.state(), not_text) == "SECRET_NOT_TEXT"
        unreachable = attrs.evolve(one.state(), server_url="http://127.0.0.1:9")
        with pytest.raises(SecretResolutionError) as caught:
            await resolve_secret_refs(payload, unreachable)
        assert caught.value.code == "SECRET_FETCH_FAILED"

    asyncio.run(scenario())
