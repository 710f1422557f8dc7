"""The vault service on the embedded SQLite backend: envelope retention, check-and-set under
concurrent rotations, recipients checked against the tenant's agents, limits, 501 without a
vault."""

from __future__ import annotations

import base64
import threading
import uuid
from pathlib import Path
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.bootstrap import App
from botmox_core.errors import (
    AgentNotFoundError,
    AgentRevokedError,
    BadRequestError,
    DuplicateError,
    ForbiddenError,
    SecretNotFoundError,
    SecretVersionConflictError,
    VaultNotSupportedError,
)
from botmox_core.models import Role
from botmox_core.services import Principal
from botmox_core.services.vault import VaultService
from botmox_core.vault.envelopes import RecipientKey, envelope_document, seal

ADMIN = Principal("t1", Role.ADMIN, user_id="admin-1")
OTHER_ADMIN = Principal("t2", Role.ADMIN)


def _aes(marker: int = 1) -> dict[str, Any]:
    return {
        "alg": "aes-256-gcm",
        "key_id": "k",
        "nonce": base64.b64encode(bytes(12)).decode(),
        "ciphertext": base64.b64encode(bytes([marker]) * 40).decode(),
    }


def _vault(core: App, keep: int) -> VaultService:
    return VaultService(core.backend, keep_old_ciphertexts=keep, clock=core.agents._clock)


def _agent(core: App, principal: Principal = ADMIN) -> tuple[str, RecipientKey]:
    pairing = core.agents.create_pairing(principal, name="a")
    key = X25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    public = base64.b64encode(raw).decode()
    registered = core.agents.register(pairing_code=pairing.code, public_key=public)
    return registered.agent.id, RecipientKey(agent_id=registered.agent.id, public_key=public)


@pytest.mark.parametrize("keep", [0, 1, 2])
def test_rotation_keeps_the_configured_number_of_old_ciphertexts(core: App, keep: int) -> None:
    vault = _vault(core, keep)
    made = vault.create(ADMIN, {"label": "x", **_aes()})
    for marker in range(2, 6):
        vault.rotate(ADMIN, made["id"], _aes(marker))
    versions = vault.meta(ADMIN, made["id"])["versions"]
    assert [v["version"] for v in versions] == [5, 4, 3, 2, 1]
    assert [v["ciphertext_kept"] for v in versions] == [i <= keep for i in range(5)]


def test_the_configured_retention_reaches_the_service(tmp_path: Path) -> None:
    from botmox_core.bootstrap import bootstrap
    from botmox_core.config import load_settings

    settings = load_settings(
        {
            "BOTMOX_DATA_DIR": str(tmp_path),
            "BOTMOX_PLUGINS": "none",
            "BOTMOX_VAULT_KEEP_OLD_CIPHERTEXTS": "0",
        }
    )
    app = bootstrap(settings)
    try:
        made = app.vault.create(ADMIN, {"label": "x", **_aes()})
        app.vault.rotate(ADMIN, made["id"], _aes(2))
        kept = [v["ciphertext_kept"] for v in app.vault.meta(ADMIN, made["id"])["versions"]]
        assert kept == [True, False]
    finally:
        app.close()


def test_concurrent_rotations_from_one_version_one_wins(core: App) -> None:
    vault = core.vault
    made = vault.create(ADMIN, {"label": "x", **_aes()})
    outcomes: list[str] = []
    lock = threading.Lock()

    def rotate(marker: int) -> None:
        try:
            vault.rotate(ADMIN, made["id"], {**_aes(marker), "expected_version": 1})
            result = "won"
        except SecretVersionConflictError:
            result = "conflict"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=rotate, args=(m,)) for m in range(2, 8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["conflict"] * 5 + ["won"]
    assert vault.meta(ADMIN, made["id"])["version"] == 2


def test_hpke_recipients_must_be_live_agents_of_the_tenant_with_their_key(core: App) -> None:
    agent_id, key = _agent(core)
    theirs_id, theirs = _agent(core, OTHER_ADMIN)

    def body(recipient: RecipientKey, **changes: Any) -> dict[str, Any]:
        secret_id = str(uuid.uuid4())
        envelope = seal(b"pw", [recipient], tenant_id="t1", secret_id=secret_id, version=1)
        return {"id": secret_id, "label": "x", **envelope_document(envelope), **changes}

    made = core.vault.create(ADMIN, body(key))
    assert made["recipients"] == [{"agent_id": agent_id, "key_id": made["recipients"][0]["key_id"]}]
    with pytest.raises(AgentNotFoundError):
        core.vault.create(ADMIN, body(theirs))
    with pytest.raises(AgentNotFoundError):
        core.vault.create(ADMIN, body(attrs.evolve(key, agent_id="agt_" + "0" * 24)))
    other_key = _agent(core)[1]
    with pytest.raises(BadRequestError) as caught:  # sealed to a key the agent does not have
        core.vault.create(ADMIN, body(attrs.evolve(other_key, agent_id=agent_id)))
    assert caught.value.details[0]["field"] == "recipients[0].key_id"
    core.agents.revoke(ADMIN, agent_id)
    with pytest.raises(AgentRevokedError):
        core.vault.create(ADMIN, body(key))
    assert theirs_id


def test_a_duplicate_id_and_bad_fields_are_refused(core: App) -> None:
    made = core.vault.create(ADMIN, {"label": "x", **_aes()})
    with pytest.raises(DuplicateError):
        core.vault.create(ADMIN, {"id": made["id"], "label": "y", **_aes()})
    # the same id in another tenant is that tenant's own secret
    assert (
        core.vault.create(OTHER_ADMIN, {"id": made["id"], "label": "z", **_aes()})["id"]
        == made["id"]
    )
    for body, field in (
        ({"label": "x" * 201, **_aes()}, "label"),
        ({"label": "a\nb", **_aes()}, "label"),
        ({"label": "x", "aad_meta": {"k": "v" * 5000}, **_aes()}, "aad_meta"),
        ({"label": "x", "id": made["id"].upper() + "0", **_aes()}, "id"),
        ([], "body"),
    ):
        with pytest.raises(BadRequestError) as caught:
            core.vault.create(ADMIN, body)
        assert caught.value.details[0]["field"] == field
    with pytest.raises(BadRequestError) as caught:
        core.vault.rotate(ADMIN, made["id"], {**_aes(), "expected_version": 0})
    assert caught.value.details[0]["field"] == "expected_version"


def test_roles(core: App) -> None:
    api = Principal("t1", Role.API, user_id="u")
    agent = Principal("t1", Role.AGENT)
    made = core.vault.create(Principal("t1", Role.INFRA), {"label": "x", **_aes()})
    for caller in (api, agent):
        with pytest.raises(ForbiddenError):
            core.vault.create(caller, {"label": "x", **_aes()})
        with pytest.raises(ForbiddenError):
            core.vault.rotate(caller, made["id"], _aes())
    with pytest.raises(ForbiddenError):
        core.vault.meta(agent, made["id"])
    assert core.vault.meta(api, made["id"])["id"] == made["id"]
    with pytest.raises(SecretNotFoundError):
        core.vault.meta(Principal("t2", Role.API), made["id"])


def test_without_a_vault_the_service_answers_501(tmp_path: Path) -> None:
    class NoVault(SqliteBackend):
        capabilities = attrs.evolve(SqliteBackend.capabilities, vault=False)

    backend = NoVault(tmp_path / "db.sqlite3")
    try:
        vault = VaultService(backend)
        assert not vault.supported
        with pytest.raises(VaultNotSupportedError):
            vault.create(ADMIN, {"label": "x", **_aes()})
        with pytest.raises(VaultNotSupportedError):
            vault.bindings(ADMIN)
    finally:
        backend.close()
