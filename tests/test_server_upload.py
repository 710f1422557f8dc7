"""Release upload over HTTP: the stored object is exactly the body, and the size limit holds."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from litestar.testing import TestClient

from botmox_core.bootstrap import bootstrap
from botmox_core.config import load_settings
from botmox_server import create_app


def client_for(tmp_path: Path, **env: str) -> tuple[TestClient, str]:
    settings = load_settings({"BOTMOX_DATA_DIR": str(tmp_path), "BOTMOX_PLUGINS": "none", **env})
    core = bootstrap(settings)
    return TestClient(create_app(core=core)), core.tokens.create("acme", "admin").secret


def test_upload_spanning_several_spool_writes_is_stored_exactly(tmp_path: Path) -> None:
    body = os.urandom(3 * 1024 * 1024 + 12345)
    client, token = client_for(tmp_path)
    with client:
        r = client.post(
            "/api/v1/artifacts/releases/upload?module=farm-bot&platform=win64&version=1.0.0",
            content=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 201, r.text
        release = r.json()["data"]
        assert release["sha256"] == hashlib.sha256(body).hexdigest()
        assert release["size_bytes"] == len(body)


def test_upload_over_the_limit_is_413_and_stores_nothing(tmp_path: Path) -> None:
    client, token = client_for(tmp_path, BOTMOX_MAX_UPLOAD_BYTES="2000000")
    with client:
        r = client.post(
            "/api/v1/artifacts/releases/upload?module=farm-bot&platform=win64&version=1.0.0",
            content=os.urandom(3_000_000),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
        missing = client.get(
            "/api/v1/artifacts/releases/1", headers={"Authorization": f"Bearer {token}"}
        )
        assert missing.status_code == 404
