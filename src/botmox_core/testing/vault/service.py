"""Vault conformance through the service: :class:`~botmox_core.services.vault.VaultService` on the
backend binds a secret to ``vm_settings``, refuses another tenant's secret (404), refuses a stale
``expected_version`` and lets exactly one of several concurrent rotations from one version win."""

from __future__ import annotations

import base64
import threading
from typing import Any

import pytest

from botmox_core.errors import SecretNotFoundError, SecretVersionConflictError
from botmox_core.models import Role
from botmox_core.services import Principal
from botmox_core.services.vault import VaultService
from botmox_core.testing.vault._base import B, VaultConformanceBase

__all__ = ["VaultServiceConformance"]


def _aes_fields(marker: int) -> dict[str, Any]:
    return {
        "alg": "aes-256-gcm",
        "key_id": "local-browser-key-v1",
        "nonce": base64.b64encode(bytes(12)).decode(),
        "ciphertext": base64.b64encode(bytes([marker]) * 40).decode(),
    }


class VaultServiceConformance(VaultConformanceBase[B]):
    """Pytest mixin: the vault service's rules hold on the backend."""

    def test_the_vault_service_on_this_backend(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        vault = VaultService(backend, keep_old_ciphertexts=1)
        admin, other = Principal(tenant, Role.ADMIN), Principal(other_tenant, Role.ADMIN)
        mine = vault.create(admin, {"label": "vm_settings.proxmox.password", **_aes_fields(1)})
        theirs = vault.create(other, {"label": "theirs", **_aes_fields(9)})
        bound = vault.bind(
            admin,
            {
                "scope_type": "vm_settings",
                "scope_id": "vmgenerator",
                "field_name": "proxmox.password",
                "secret_ref": mine["id"],
            },
        )
        assert bound["secret_ref"] == mine["id"]
        with pytest.raises(SecretNotFoundError):
            vault.bind(
                admin,
                {
                    "scope_type": "vm_settings",
                    "scope_id": "vmgenerator",
                    "field_name": "ssh.password",
                    "secret_ref": theirs["id"],
                },
            )
        assert [b["field_name"] for b in vault.bindings(admin, scope_type="vm_settings")] == [
            "proxmox.password"
        ]

        outcomes: list[str] = []
        lock = threading.Lock()

        def rotate(marker: int) -> None:
            try:
                vault.rotate(admin, mine["id"], {**_aes_fields(marker), "expected_version": 1})
                result = "won"
            except SecretVersionConflictError:
                result = "conflict"
            with lock:
                outcomes.append(result)

        threads = [threading.Thread(target=rotate, args=(m,)) for m in range(2, 6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(outcomes) == ["conflict"] * 3 + ["won"]
        with pytest.raises(SecretVersionConflictError):
            vault.rotate(admin, mine["id"], {**_aes_fields(7), "expected_version": 1})
        meta = vault.meta(admin, mine["id"])
        assert meta["version"] == 2
        assert [v["version"] for v in meta["versions"]] == [2, 1]
        assert vault.meta(other, theirs["id"])["version"] == 1
