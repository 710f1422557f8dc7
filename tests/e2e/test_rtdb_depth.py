"""RTDB over HTTP: VM metadata nested past the limits gets a 400 envelope and nothing is stored
(checked out of band on the emulator's tree); what was accepted is stored within Firebase's 32
levels and reads back exactly; both tenants' records still read 200 afterwards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from botmox_core.testing.server import admin_cli, running_server

pytestmark = pytest.mark.e2e


def nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"k": value}
    return value


def _depth_of_deepest_key(tree: Any, depth: int = 0) -> int:
    if not isinstance(tree, dict) or not tree:
        return depth
    return max(_depth_of_deepest_key(child, depth + 1) for child in tree.values())


def test_vm_metadata_past_the_limit_is_400_and_never_written(tmp_path: Path) -> None:
    from botmox_rtdb.rules import rules_document
    from botmox_rtdb.testing import RtdbEmulator, emulator_environ

    emulator = RtdbEmulator(rules=rules_document())
    emulator.start()
    try:
        env = {**emulator_environ(emulator.host_port, "depth"), "BOTMOX_STORAGE": "localfs"}
        with running_server(tmp_path / "data", env) as server:
            tokens = {
                tenant: admin_cli(server, "token", "create", "--tenant", tenant, "--role", "admin")[
                    "token"
                ]
                for tenant in ("acme", "other")
            }

            def call(
                tenant: str,
                method: str,
                path: str,
                headers_extra: dict[str, str] | None = None,
                **kwargs: Any,
            ) -> httpx.Response:
                headers = {"Authorization": f"Bearer {tokens[tenant]}", **(headers_extra or {})}
                return httpx.request(
                    method, server.url + path, timeout=30, headers=headers, **kwargs
                )

            deepest_accepted = nested(16)
            for tenant in ("acme", "other"):
                created = call(
                    tenant,
                    "POST",
                    "/api/v1/vm/register",
                    json={
                        "vm_uuid": "vm-depth-0001",
                        "user_id": "u1",
                        "metadata": deepest_accepted,
                    },
                )
                assert created.status_code == 201, created.text
            stored = emulator.read("depth", "/")
            assert _depth_of_deepest_key(stored) <= 32
            acme_metadata = stored["tenants"]["acme"]["vm_registry"]["vm-depth-0001"]["metadata"]
            assert acme_metadata == deepest_accepted, "stored as an object, within 32 levels"

            before = json.dumps(emulator.read("depth", "/"), sort_keys=True)
            for levels in (17, 28, 40, 1000):
                for vm_uuid in ("vm-depth-0001", "vm-depth-0002"):
                    # written by hand: json.dumps cannot encode 1000 levels
                    body_text = (
                        f'{{"vm_uuid": "{vm_uuid}", "user_id": "u1", "metadata": '
                        + '{"k": ' * levels
                        + '"leaf"'
                        + "}" * levels
                        + "}"
                    )
                    refused = call(
                        "acme",
                        "POST",
                        "/api/v1/vm/register",
                        content=body_text,
                        headers_extra={"Content-Type": "application/json"},
                    )
                    assert refused.status_code == 400, (levels, refused.text)
                    body = refused.json()
                    assert body["success"] is False
                    assert body["error"]["code"] == "BAD_REQUEST"
                    fields = {detail["field"] for detail in body["error"]["details"]}
                    assert fields & {"metadata", "body"}, body  # the edge names what is wrong
            assert json.dumps(emulator.read("depth", "/"), sort_keys=True) == before

            assert call("acme", "GET", "/api/v1/vm/vm-depth-0002/resolve").status_code == 404
            for tenant in ("acme", "other"):
                resolved = call(tenant, "GET", "/api/v1/vm/vm-depth-0001/resolve")
                assert resolved.status_code == 200, resolved.text
                assert json.dumps(resolved.json()).count('"k"') == 16
                assert call(tenant, "GET", "/api/v1/health/ready").status_code == 200
    finally:
        emulator.stop()
