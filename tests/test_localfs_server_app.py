"""The real botmox server application (zero configuration: sqlite + localfs) serves the download
URLs its own storage presigns, through its own exception handling."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from botmox_core.backends.localfs import LocalFsStorage
from botmox_core.config import load_settings

if os.environ.get("CI") == "true":
    from litestar.testing import TestClient
else:
    TestClient = pytest.importorskip("litestar.testing", reason="needs [server]").TestClient

from botmox_server.app import create_app

BASE_URL = "http://botmox.test"


def test_default_server_serves_its_localfs_download_urls(tmp_path: Path) -> None:
    settings = load_settings(environ={}, data_dir=tmp_path, public_url=BASE_URL)
    app = create_app(settings)
    storage = app.state.storage
    assert isinstance(storage, LocalFsStorage)
    payload = os.urandom(200_000)
    storage.put("mods/agent/1.0/agent.zip", io.BytesIO(payload), content_type="application/zip")
    url = storage.presign_download("mods/agent/1.0/agent.zip", ttl_seconds=60).url
    assert url.startswith(f"{BASE_URL}/api/v1/storage/localfs/mods/agent/1.0/agent.zip?")
    with TestClient(app, base_url=BASE_URL) as client:
        whole = client.get(url)  # no Authorization header: the signature is the credential
        ranged = client.get(url, headers={"Range": "bytes=100-199"})
        head = client.head(url)
        forged = client.get(url.replace("expires=", "expires=1"))
    assert whole.status_code == 200
    assert whole.content == payload
    assert whole.headers["etag"] == f'"{hashlib.sha256(payload).hexdigest()}"'
    assert ranged.status_code == 206 and ranged.content == payload[100:200]
    assert head.status_code == 200 and head.headers["content-length"] == str(len(payload))
    assert forged.status_code == 403
    body = forged.json()
    assert body["success"] is False
    assert body["error"]["code"] == "DOWNLOAD_URL_INVALID"
