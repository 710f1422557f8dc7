"""A storage that cannot presign still delivers: the example fsspec plugin on a local directory,
behind a real uvicorn, through the whole download flow (lease → resolve → download → sha256),
and the server-signed URLs it gets hold against tampering, expiry, replay on another object or
storage, another key, path traversal and control characters — 403/404 envelopes, never a 500."""

from __future__ import annotations

import hashlib
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import httpx
import pytest

from botmox_core.backends.signed_urls import DownloadUrlSigner, load_url_key
from botmox_core.testing.server import RunningServer, provision_tenant, running_server

pytestmark = pytest.mark.e2e

pytest.importorskip("botmox_fsspec_storage", reason="needs examples/storage-plugin installed")

MODULE, PLATFORM, CHANNEL, USER = "farm-bot", "win64", "stable", "user-1"


@attrs.frozen
class Setup:
    server: RunningServer
    objects: Path
    user_token: str
    other_user_token: str
    artifact: bytes
    other_artifact: bytes
    release: dict[str, Any]
    other_release: dict[str, Any]

    def call(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, self.server.url + path, headers=headers, timeout=30, **kwargs)

    def signer(self, key: bytes | None = None) -> DownloadUrlSigner:
        """The server's own signer (its key, read from its data directory), or another key."""
        return DownloadUrlSigner(
            base_url=self.server.url, key=key or load_url_key(self.server.data_dir)
        )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("unsigned-storage")
    objects = tmp / "objects"
    env = {
        "DATA_BACKEND": "sqlite",
        "BOTMOX_STORAGE": "fsspec",
        "BOTMOX_FSSPEC_URL": f"file://{objects}",
    }
    with running_server(tmp / "data", env) as server:
        artifacts = []
        for index in range(2):
            path = tmp / f"farm-bot-{index}.zip"
            path.write_bytes(secrets.token_bytes(1024 * 1024 + 12_345 + index))
            artifacts.append(path)
        tenants = [
            provision_tenant(
                server,
                artifact,
                tenant=tenant,
                user=USER,
                module=MODULE,
                platform=PLATFORM,
                channel=CHANNEL,
                version="1.2.0",
            )
            for tenant, artifact in zip(("tenant-a", "tenant-b"), artifacts, strict=True)
        ]
        yield Setup(
            server, objects, tenants[0].user_token, tenants[1].user_token,
            artifacts[0].read_bytes(), artifacts[1].read_bytes(),
            tenants[0].release, tenants[1].release,
        )  # fmt: skip


def _resolve(s: Setup, token: str) -> dict[str, Any]:
    vm = "vm-" + secrets.token_hex(6)
    assert s.call("POST", "/api/v1/vm/register", token, json={"vm_uuid": vm}).status_code == 201
    lease = s.call("POST", "/api/v1/license/lease", token, json={"vm_uuid": vm, "module": MODULE})
    assert lease.status_code == 201, lease.text
    body = {
        "lease_token": lease.json()["data"]["token"],
        "vm_uuid": vm,
        "module": MODULE,
        "platform": PLATFORM,
        "channel": CHANNEL,
    }
    resolved = s.call("POST", "/api/v1/artifacts/resolve-download", token, json=body)
    assert resolved.status_code == 200, resolved.text
    return dict(resolved.json()["data"])


def _refused(response: httpx.Response, status: int, code: str, secret: bytes) -> None:
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == code, body
    assert secret[:64] not in response.content


def _raw_get(server: RunningServer, target: str) -> tuple[int, bytes]:
    """GET ``target`` byte for byte (no client-side normalisation of ``..`` or escapes)."""
    host, port = urlsplit(server.url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_ready_and_the_whole_download_flow(setup: Setup) -> None:
    s = setup
    ready = httpx.get(s.server.url + "/api/v1/health/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    data = _resolve(s, s.user_token)
    url = data["download_url"]
    assert url.startswith(f"{s.server.url}/api/v1/storage/fsspec/")
    expected = hashlib.sha256(s.artifact).hexdigest()
    assert data["sha256"] == expected == s.release["sha256"]
    whole = httpx.get(url, timeout=30)
    assert whole.status_code == 200, whole.text[:300]
    assert hashlib.sha256(whole.content).hexdigest() == expected
    assert whole.headers["etag"] == f'"{expected}"'
    assert whole.headers["content-length"] == str(len(s.artifact))
    ranged = httpx.get(url, headers={"Range": "bytes=1000-1999"}, timeout=30)
    assert ranged.status_code == 206 and ranged.content == s.artifact[1000:2000]
    assert ranged.headers["content-range"] == f"bytes 1000-1999/{len(s.artifact)}"
    resumed = httpx.get(
        url, headers={"Range": "bytes=-10", "If-Range": f'"{expected}"'}, timeout=30
    )
    assert resumed.status_code == 206 and resumed.content == s.artifact[-10:]
    stale = httpx.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'}, timeout=30)
    assert stale.status_code == 200 and stale.content == s.artifact
    head = httpx.head(url, timeout=30)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(s.artifact))
    beyond = httpx.get(url, headers={"Range": f"bytes={len(s.artifact)}-"}, timeout=30)
    assert beyond.status_code == 416
    assert beyond.json()["error"]["code"] == "RANGE_NOT_SATISFIABLE"
    assert (s.objects / "index").is_dir()  # really the fsspec plugin's layout on disk


def test_each_tenant_gets_only_its_own_object(setup: Setup) -> None:
    s = setup
    mine, theirs = _resolve(s, s.user_token), _resolve(s, s.other_user_token)
    assert httpx.get(mine["download_url"], timeout=30).content == s.artifact
    assert httpx.get(theirs["download_url"], timeout=30).content == s.other_artifact
    # one object's signature on the other object's path: refused, nothing of it sent
    mine_url, theirs_url = urlsplit(mine["download_url"]), urlsplit(theirs["download_url"])
    swapped = theirs_url._replace(query=mine_url.query).geturl()
    _refused(httpx.get(swapped, timeout=30), 403, "DOWNLOAD_URL_INVALID", s.other_artifact)


def _parts(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    query = dict(pair.split("=", 1) for pair in parts.query.split("&"))
    return parts.path, query["expires"], query["signature"]


def test_tampered_expired_and_foreign_urls_are_403(setup: Setup) -> None:
    s = setup
    url = _resolve(s, s.user_token)["download_url"]
    path, expires, signature = _parts(url)
    base = s.server.url + path
    flipped = signature[:10] + ("0" if signature[10] != "0" else "1") + signature[11:]
    for changed in (
        f"{base}?expires={expires}&signature={flipped}",  # tampered signature
        f"{base}?expires={int(expires) + 3600}&signature={signature}",  # expiry pushed back
        f"{base}?expires={expires}&signature={signature.upper()}",
        f"{base}?expires={expires}&signature=",
        f"{base}?expires=&signature={signature}",
        f"{base}?expires=-1&signature={signature}",
        f"{base}?expires={'9' * 40}&signature={signature}",
        f"{base}?expires={expires}&signature=%C3%A9%00",
        f"{base}?signature={signature}",
        base,
    ):
        _refused(httpx.get(changed, timeout=30), 403, "DOWNLOAD_URL_INVALID", s.artifact)
    key = path.removeprefix("/api/v1/storage/fsspec/")
    past = s.signer().sign("fsspec", key, ttl_seconds=60, now=time.time() - 3600).url
    _refused(httpx.get(past, timeout=30), 403, "DOWNLOAD_URL_EXPIRED", s.artifact)
    other_key = s.signer(secrets.token_bytes(32)).sign("fsspec", key, ttl_seconds=600).url
    _refused(httpx.get(other_key, timeout=30), 403, "DOWNLOAD_URL_INVALID", s.artifact)
    # the server's key, but signed for another storage name, replayed on this one
    localfs_signed = s.signer().sign("localfs", key, ttl_seconds=600).url
    replayed = url.split("?")[0] + "?" + localfs_signed.split("?")[1]
    _refused(httpx.get(replayed, timeout=30), 403, "DOWNLOAD_URL_INVALID", s.artifact)
    # this URL replayed on another storage's path: no such storage here
    elsewhere = url.replace("/api/v1/storage/fsspec/", "/api/v1/storage/localfs/")
    _refused(httpx.get(elsewhere, timeout=30), 404, "NOT_FOUND", s.artifact)
    # the genuine URL still works after all that
    assert httpx.get(url, timeout=30).content == s.artifact


@pytest.mark.parametrize(
    "key",
    [
        "../../data/localfs-url.key",
        "%2e%2e/%2e%2e/data/localfs-url.key",
        "a/%2e%2e/%2e%2e/index",
        "..%2f..%2fdata%2flocalfs-url.key",
        "/etc/passwd",
        "%2fetc%2fpasswd",
        "a%00b.zip",
        "a%0ab.zip",
        "a%0d%0aSet-Cookie:%20x=1",
        "a%7fb.zip",
        "a%1bb.zip",
        "%c3%a9t%c3%a9.zip",
        "%ff%fe.zip",
        "a//b.zip",
        "a/./b.zip",
        "x" * 1100,
    ],
)
def test_hostile_keys_are_refused_with_an_envelope(setup: Setup, key: str) -> None:
    s = setup
    query = f"expires={int(time.time()) + 600}&signature={'0' * 64}"
    status, body = _raw_get(s.server, f"/api/v1/storage/fsspec/{key}?{query}")
    assert status == 403, (status, body[:300])
    assert b'"success":false' in body.replace(b" ", b"")
    assert b"DOWNLOAD_URL_INVALID" in body
    key_file = (s.server.data_dir / "localfs-url.key").read_bytes().strip()
    assert key_file not in body  # nothing of the server's files leaks
