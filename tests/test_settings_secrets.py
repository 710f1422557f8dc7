"""C-05 in the settings domain: the VM-settings passwords and the ``api_keys`` values refuse
plaintext (400 ``PLAINTEXT_SECRET_REFUSED``) and read back as "set / not set" from the vault
bindings; plaintext stored before the vault is never served (embedded backend)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from botmox_core.bootstrap import App
from botmox_core.errors import PlaintextSecretRefusedError
from botmox_core.models import Role
from botmox_core.services import Principal
from botmox_core.services.domains.settings import SECRET_FIELDS

ADMIN = Principal("t1", Role.ADMIN, user_id="admin-1")
LEGACY = "legacy-Plaintext-0f3a"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("vmgenerator", {"proxmox": {"url": "https://pve", "password": "x"}}, "proxmox.password"),
        ("vmgenerator/proxmox", {"password": "x"}, "proxmox.password"),
        ("vmgenerator/proxmox/password", "x", "proxmox.password"),
        ("vmgenerator/proxmox/password/deeper", "x", "proxmox.password"),
        ("vmgenerator", {"ssh": {"password": "x", "port": 22}}, "ssh.password"),
        ("vmgenerator/services", {"tinyFmPassword": "x"}, "services.tinyFmPassword"),
        ("vmgenerator", {"services": {"syncThingPassword": ""}}, "services.syncThingPassword"),
        ("", {"vmgenerator": {"proxmox": {"password": "x"}}}, "proxmox.password"),
        ("api_keys", {"ipqs": {"api_key": "k", "enabled": True}}, "ipqs.api_key"),
        ("api_keys/telegram/bot_token", "123:abc", "telegram.bot_token"),
        ("vmgenerator/proxmox", {"password": {"set": True, "secret_ref": "x"}}, "proxmox.password"),
    ],
)
def test_plaintext_writes_are_refused(core: App, path: str, body: Any, field: str) -> None:
    with pytest.raises(PlaintextSecretRefusedError) as caught:
        core.domains.settings.write(ADMIN, path, body)
    error = caught.value
    assert error.status == 400 and error.code == "PLAINTEXT_SECRET_REFUSED"
    assert error.details["binding"]["field_name"] == field
    assert "/api/v1/secrets/bindings" in error.message
    assert core.domains.settings.read(ADMIN) == {}  # nothing was written


def test_other_fields_and_deletions_are_written(core: App) -> None:
    written = core.domains.settings.write(
        ADMIN, "vmgenerator", {"proxmox": {"url": "https://pve", "username": "root"}}
    )
    assert written["proxmox"]["url"] == "https://pve"
    deleted = core.domains.settings.write(ADMIN, "vmgenerator/proxmox", {"password": None})
    assert deleted["username"] == "root"
    # a secret field itself always reads as its marker
    assert core.domains.settings.write(ADMIN, "api_keys/telegram/bot_token", None)["set"] is False
    assert core.domains.settings.write(ADMIN, "api_keys", {"telegram": {"chat_id": "42"}}) == {
        "telegram": {"chat_id": "42"}
    }


def _store_legacy(core: App) -> None:
    """Plaintext written before the vault existed (straight into the repository)."""
    legacy = {
        "vmgenerator": {
            "proxmox": {"url": "https://pve", "password": LEGACY},
            "ssh": {"host": "h", "password": LEGACY},
            "services": {"tinyFmPassword": LEGACY, "syncThingPassword": LEGACY},
        },
        "api_keys": {"ipqs": {"api_key": LEGACY}, "telegram": {"bot_token": LEGACY}},
    }
    with core.backend.unit_of_work() as uow:
        uow.settings.modify(ADMIN.tenant_id, lambda tree: {**tree, **legacy})  # type: ignore[attr-defined]
        uow.commit()


@pytest.mark.parametrize(
    "path",
    [
        "",
        "vmgenerator",
        "vmgenerator/proxmox",
        "vmgenerator/proxmox/password",
        "vmgenerator/services",
        "api_keys",
        "api_keys/telegram/bot_token",
    ],
)
def test_legacy_plaintext_is_never_served(core: App, path: str) -> None:
    _store_legacy(core)
    value = core.domains.settings.read(ADMIN, path)
    assert LEGACY not in json.dumps(value)
    assert "legacy_plaintext" in json.dumps(value)


def test_reads_show_set_or_not_set_from_the_bindings(core: App) -> None:
    _store_legacy(core)
    made = core.vault.create(
        ADMIN,
        {
            "label": "vm_settings.proxmox.password",
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
            "field_name": "proxmox.password",
            "secret_ref": made["id"],
        },
    )
    proxmox = core.domains.settings.read(ADMIN, "vmgenerator/proxmox")
    assert proxmox["url"] == "https://pve"
    assert proxmox["password"] == {
        "set": True,
        "secret_ref": made["id"],
        "binding": {
            "scope_type": "vm_settings",
            "scope_id": "vmgenerator",
            "field_name": "proxmox.password",
        },
        "legacy_plaintext": True,
    }
    ssh = core.domains.settings.read(ADMIN, "vmgenerator/ssh/password")
    assert ssh["set"] is False and ssh["secret_ref"] is None
    # deleting the legacy plaintext (null) is how an operator cleans up; the write's answer
    # never echoes it either
    answer = core.domains.settings.write(ADMIN, "vmgenerator/proxmox", {"password": None})
    assert answer["password"]["set"] is True and "legacy_plaintext" not in answer["password"]
    assert LEGACY not in json.dumps(
        core.domains.settings.write(ADMIN, "vmgenerator", {"ssh": {"port": 22}})
    )


def test_a_binding_shows_even_without_stored_settings(core: App) -> None:
    made = core.vault.create(
        ADMIN,
        {
            "label": "ipqs",
            "alg": "aes-256-gcm",
            "key_id": "k",
            "nonce": base64.b64encode(bytes(12)).decode(),
            "ciphertext": base64.b64encode(bytes(40)).decode(),
        },
    )
    core.vault.bind(
        ADMIN,
        {
            "scope_type": "tenant",
            "scope_id": "api_keys",
            "field_name": "ipqs.api_key",
            "secret_ref": made["id"],
        },
    )
    assert core.domains.settings.read(ADMIN, "api_keys")["ipqs"]["api_key"]["set"] is True
    assert core.domains.settings.read(ADMIN)["api_keys"]["ipqs"]["api_key"]["set"] is True
    assert core.domains.settings.read(ADMIN, "vmgenerator") is None  # nothing bound, nothing stored
    assert core.domains.settings.read(ADMIN, "theme") is None


def test_every_secret_field_has_a_binding() -> None:
    assert {binding[2] for binding in SECRET_FIELDS.values()} == {
        "proxmox.password",
        "ssh.password",
        "services.tinyFmPassword",
        "services.syncThingPassword",
        "ipqs.api_key",
        "telegram.bot_token",
    }


def _secret(core: App, label: str) -> str:
    made = core.vault.create(
        ADMIN,
        {
            "label": label,
            "alg": "aes-256-gcm",
            "key_id": "k",
            "nonce": base64.b64encode(bytes(12)).decode(),
            "ciphertext": base64.b64encode(bytes(40)).decode(),
        },
    )
    return str(made["id"])


def test_a_whole_tree_read_takes_one_bindings_read_per_scope(
    core: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings page re-reads the tree in a tight loop: its secret fields' bindings are
    read one scope at a time (two reads), not field by field (six)."""
    secret = _secret(core, "tg")
    core.vault.bind(
        ADMIN,
        {
            "scope_type": "tenant",
            "scope_id": "api_keys",
            "field_name": "telegram.bot_token",
            "secret_ref": secret,
        },
    )
    calls: list[str] = []
    repository = type(core.backend.unit_of_work().bindings)  # type: ignore[attr-defined]
    for name in ("get", "list"):
        original = getattr(repository, name)
        monkeypatch.setattr(
            repository,
            name,
            lambda self, *a, _name=name, _original=original, **k: (
                calls.append(_name) or _original(self, *a, **k)
            ),
        )
    tree = core.domains.settings.read(ADMIN)
    assert calls == ["list", "list"]
    calls.clear()
    token = core.domains.settings.read(ADMIN, "api_keys/telegram/bot_token")
    assert calls == ["get"] and token["set"] is True  # one field: one point read
    assert tree["api_keys"]["telegram"]["bot_token"]["set"] is True
    assert "ipqs" not in tree["api_keys"] and "vmgenerator" not in tree  # unbound, unstored


def test_a_scope_crowded_with_other_bindings_still_shows_each_secret_field(
    core: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scope with more bindings than one read takes (other fields bound in it after the
    secret field, so listed first): every secret field still reads its own binding."""
    from botmox_core.services.domains import settings as settings_module

    monkeypatch.setattr(settings_module, "SCOPE_BINDINGS_READ", 3)
    secret = _secret(core, "proxmox")
    core.vault.bind(
        ADMIN,
        {
            "scope_type": "vm_settings",
            "scope_id": "vmgenerator",
            "field_name": "proxmox.password",
            "secret_ref": secret,
        },
    )
    for number in range(4):
        core.vault.bind(
            ADMIN,
            {
                "scope_type": "vm_settings",
                "scope_id": "vmgenerator",
                "field_name": f"custom.field{number}",
                "secret_ref": secret,
            },
        )
    tree = core.domains.settings.read(ADMIN)
    assert tree["vmgenerator"]["proxmox"]["password"]["set"] is True
    assert tree["vmgenerator"]["proxmox"]["password"]["secret_ref"] == secret
    assert "ssh" not in tree["vmgenerator"]  # unbound, unstored
