"""RTDB over HTTP: user input that would become a key with a character Firebase forbids
(``. # $ [ ] /``) is refused with a 400 envelope and nothing is written (checked out of band on
the emulator's tree)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from botmox_core.testing.server import admin_cli, running_server

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("user_id", ["bad.user", "a:b.c", "x.y@z"])
def test_forbidden_key_characters_are_400_and_never_written(tmp_path: Path, user_id: str) -> None:
    from botmox_rtdb.rules import rules_document
    from botmox_rtdb.testing import RtdbEmulator, emulator_environ

    emulator = RtdbEmulator(rules=rules_document())
    emulator.start()
    try:
        env = {**emulator_environ(emulator.host_port, "keys"), "BOTMOX_STORAGE": "localfs"}
        with running_server(tmp_path / "data", env) as server:
            token = admin_cli(server, "token", "create", "--tenant", "acme", "--role", "admin")
            before = json.dumps(emulator.read("keys"), sort_keys=True)
            response = httpx.post(
                server.url + "/api/v1/vm/register",
                json={"vm_uuid": "vm-keys-0001", "user_id": user_id},
                headers={"Authorization": f"Bearer {token['token']}"},
                timeout=30,
            )
            assert response.status_code == 400, response.text
            body = response.json()
            assert body["success"] is False and body["error"]["code"] == "INVALID_KEY"
            assert json.dumps(emulator.read("keys"), sort_keys=True) == before
            resolved = httpx.get(
                server.url + "/api/v1/vm/vm-keys-0001/resolve",
                headers={"Authorization": f"Bearer {token['token']}"},
                timeout=30,
            )
            assert resolved.status_code == 404
    finally:
        emulator.stop()
