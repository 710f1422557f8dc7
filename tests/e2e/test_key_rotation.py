"""Key rotation end to end over real uvicorn: two replicas sharing one data directory (so one
lease key file and one URL key file), keys rotated and retired by the real ``botmox keys``
command while both run, no restart.

A runner holding a lease from before the rotation keeps downloading (on either replica); a new
lease uses the new key; after retirement the old key's tokens and URLs are refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from botmox_core.testing.server import RunningServer, provision_tenant, running_server

pytestmark = pytest.mark.e2e

TENANT, USER, MODULE, PLATFORM = "tenant-k", "user-k", "farm-bot", "win64"


def keys_cli(server: RunningServer, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "botmox_core", "keys", *args, "--json"],
        env=dict(server.env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


class Replicas:
    def __init__(self, a: RunningServer, b: RunningServer, user_token: str, sha256: str) -> None:
        self.a, self.b, self.user_token, self.sha256 = a, b, user_token, sha256

    def call(self, server: RunningServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.user_token}"}
        return httpx.request(method, server.url + path, headers=headers, timeout=30, **kwargs)

    def lease(self, server: RunningServer, vm: str) -> dict[str, Any]:
        r = self.call(
            server, "POST", "/api/v1/license/lease", json={"vm_uuid": vm, "module": MODULE}
        )
        assert r.status_code == 201, r.text
        return r.json()["data"]

    def resolve(self, server: RunningServer, token: str, vm: str) -> httpx.Response:
        body = {
            "lease_token": token,
            "vm_uuid": vm,
            "module": MODULE,
            "platform": PLATFORM,
            "channel": "stable",
        }
        return self.call(server, "POST", "/api/v1/artifacts/resolve-download", json=body)

    def download(self, server: RunningServer, token: str, vm: str) -> str:
        """Resolve on ``server``, fetch the URL; the URL it returned."""
        r = self.resolve(server, token, vm)
        assert r.status_code == 200, r.text
        url = r.json()["data"]["download_url"]
        got = httpx.get(url, timeout=30)
        assert got.status_code == 200, got.text
        assert hashlib.sha256(got.content).hexdigest() == self.sha256
        return url


def kid_of(token: str) -> str | None:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["kid"]


def url_kid(url: str) -> str | None:
    signature = url.rsplit("signature=", 1)[1]
    return signature.split(".")[0] if "." in signature else None


def on_other(url: str, source: RunningServer, target: RunningServer) -> str:
    return url.replace(source.url, target.url, 1)


def eventually(check: Any, seconds: float = 10.0) -> Any:
    """``check()`` until it returns something truthy (replicas re-read the ring within a
    second); bounded."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    tmp = tmp_path_factory.mktemp("keys")
    data = tmp / "data"
    env = {"DATA_BACKEND": "sqlite", "BOTMOX_STORAGE": "localfs"}
    with ExitStack() as stack:
        a = stack.enter_context(running_server(data, env))
        artifact = tmp / "bot.zip"
        artifact.write_bytes(secrets.token_bytes(300_001))
        tenant = provision_tenant(
            a, artifact, tenant=TENANT, user=USER, module=MODULE, platform=PLATFORM
        )
        b = stack.enter_context(running_server(data, env))
        yield Replicas(a, b, tenant.user_token, tenant.release["sha256"])


def test_rotation_end_to_end_on_two_replicas(replicas: Replicas) -> None:
    r = replicas
    a, b = r.a, r.b
    pem = (a.data_dir / "lease-signing.pem").read_text()
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")  # a pre-ring, single-key installation
    before = keys_cli(a, "list")
    (legacy_lease,) = before["lease"]["keys"]
    (legacy_url,) = before["url"]["keys"]
    assert legacy_lease["legacy"] and legacy_url["legacy"]

    vm = "vm-" + secrets.token_hex(6)
    assert r.call(a, "POST", "/api/v1/vm/register", json={"vm_uuid": vm}).status_code == 201
    old_lease = r.lease(a, vm)
    assert kid_of(old_lease["token"]) == legacy_lease["kid"]
    old_url = r.download(b, old_lease["token"], vm)  # replica B checks what A signed
    assert url_kid(old_url) is None  # the legacy URL key: URLs as they always were
    key_before = httpx.get(a.url + "/api/v1/license/public-key").json()["data"]
    assert key_before["kid"] == legacy_lease["kid"]
    assert [k["kid"] for k in key_before["keys"]] == [legacy_lease["kid"]]

    lease_rotation = keys_cli(a, "rotate", "--lease")
    url_rotation = keys_cli(a, "rotate", "--url")
    new_lease_kid, new_url_kid = lease_rotation["kid"], url_rotation["kid"]

    # the runner holding the old lease keeps downloading, on both replicas, no restart
    assert eventually(lambda: url_kid(r.download(a, old_lease["token"], vm)) == new_url_kid)
    # each replica re-reads the ring on its own clock: B may switch a moment after A
    assert eventually(lambda: url_kid(r.download(b, old_lease["token"], vm)) == new_url_kid)
    url_from_b = r.download(b, old_lease["token"], vm)
    assert url_kid(url_from_b) == new_url_kid
    assert httpx.get(on_other(url_from_b, b, a), timeout=30).status_code == 200
    assert httpx.get(old_url, timeout=30).status_code == 200  # still inside its own TTL

    # a new lease uses the new key; the public key route publishes both
    new_lease = r.lease(b, vm)
    assert kid_of(new_lease["token"]) == new_lease_kid
    r.download(a, new_lease["token"], vm)
    published = httpx.get(b.url + "/api/v1/license/public-key").json()["data"]
    assert published["kid"] == new_lease_kid
    assert [(k["kid"], k["state"]) for k in published["keys"]] == [
        (new_lease_kid, "active"),
        (legacy_lease["kid"], "verifying"),
    ]
    public = Ed25519PublicKey.from_public_bytes(
        base64.urlsafe_b64decode(published["public_key"] + "=")
    )
    head, body, signature = new_lease["token"].split(".")
    public.verify(base64.urlsafe_b64decode(signature + "=="), f"{head}.{body}".encode())
    beat = r.call(a, "POST", "/api/v1/license/heartbeat", json={"lease_id": old_lease["lease_id"]})
    assert beat.status_code == 200, beat.text
    renewed = beat.json()["data"]["token"]
    assert kid_of(renewed) == new_lease_kid

    # retirement: the old key's tokens and URLs are refused on both replicas
    keys_cli(a, "retire", "--lease", legacy_lease["kid"], "--force")
    keys_cli(a, "retire", "--url", legacy_url["kid"], "--force")
    for server in (a, b):
        refused = eventually(
            lambda server=server: (
                (resp := r.resolve(server, old_lease["token"], vm)).status_code == 401 and resp
            )
        )
        assert refused, "the retired key's token was still accepted"
        body = refused.json()
        assert body["success"] is False and body["error"]["code"] == "UNAUTHORIZED"
        assert "retired" in body["error"]["message"]
        gone = eventually(lambda: httpx.get(old_url, timeout=30).status_code == 403)
        assert gone
    for server in (a, b):  # what the new keys signed keeps working
        r.download(server, renewed, vm)
        r.download(server, new_lease["token"], vm)
    final = httpx.get(a.url + "/api/v1/license/public-key").json()["data"]
    assert [k["kid"] for k in final["keys"]] == [new_lease_kid]
    assert "Traceback" not in a.log() + b.log()


def test_forged_key_ids_over_http(replicas: Replicas) -> None:
    r = replicas
    vm = "vm-" + secrets.token_hex(6)
    assert r.call(r.a, "POST", "/api/v1/vm/register", json={"vm_uuid": vm}).status_code == 201
    lease = r.lease(r.a, vm)
    head, body, signature = lease["token"].split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    for kid in ("../../lease-signing.pem", "lk-20990101-00000000", 12, None):
        forged = dict(payload, kid=kid)
        forged_body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
        resp = r.resolve(r.b, f"{head}.{forged_body}.{signature}", vm)
        assert resp.status_code == 401, resp.text
        assert resp.json()["error"]["code"] == "UNAUTHORIZED"
    url = r.download(r.a, lease["token"], vm)
    sig = url.rsplit("signature=", 1)[1]
    for forged_sig in (f"..%2F..%2Fx.{sig.split('.')[-1]}", f"uk-x.{sig.split('.')[-1]}", "."):
        resp = httpx.get(url.replace(sig, forged_sig), timeout=30)
        assert resp.status_code == 403, resp.text
        assert resp.json()["success"] is False
