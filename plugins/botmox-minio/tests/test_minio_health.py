"""Health checks: MinIO's liveness endpoint, with HeadBucket, and the fallback for other servers.

No MinIO server binary can be installed here. The fallback branch runs against real SeaweedFS.
The MinIO branch runs against a loopback front that answers ``/minio/health/live`` the way
MinIO documents it (200 live, 503 not live, ``Server: MinIO``) and passes every other request
through to SeaweedFS unchanged, so HeadBucket is still signed and checked by a real S3 server.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from botmox_minio.plugin import build_minio_storage
from botmox_s3.testing import SeaweedFS

from botmox_core.config import load_settings


class _MinioFront(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _FrontHandler)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.live_status = 200
        self.liveness_hits = 0


class _FrontHandler(BaseHTTPRequestHandler):
    server: _MinioFront

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _relay(self) -> None:
        if self.command == "GET" and self.path == "/minio/health/live":
            self.server.liveness_hits += 1
            self.send_response(self.server.live_status)
            self.send_header("Server", "MinIO")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=10)
        try:
            # Host is forwarded as received: it is part of what the client signed.
            upstream.request(self.command, self.path, body=body, headers=dict(self.headers))
            response = upstream.getresponse()
            payload = response.read()
        finally:
            upstream.close()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _relay


@pytest.fixture
def minio_front(seaweedfs: SeaweedFS) -> Iterator[_MinioFront]:
    front = _MinioFront(seaweedfs.endpoint_url)
    thread = threading.Thread(target=front.serve_forever, daemon=True)
    thread.start()
    yield front
    front.shutdown()
    front.server_close()
    thread.join(timeout=5)


def _front_env(minio_env: dict[str, str], front: _MinioFront) -> dict[str, str]:
    host, port = front.server_address[:2]
    return {
        **minio_env,
        "BOTMOX_MINIO_ENDPOINT": f"http://{host}:{port}",
        "BOTMOX_MINIO_PRIVACY_CHECK": "off",  # the privacy check is shown on the real server
        "BOTMOX_MINIO_MAX_ATTEMPTS": "1",
    }


def test_non_minio_server_falls_back_to_head_bucket(minio_env: dict[str, str]) -> None:
    store = build_minio_storage(load_settings(environ=minio_env))
    try:
        first = store.check_health()
        assert first.ok, first.detail
        assert "not a MinIO server" in (first.detail or "")
        assert "reachable" in (first.detail or "")
        second = store.check_health()  # remembered: no more liveness probes
        assert second.ok and "not a MinIO server" not in (second.detail or "")
    finally:
        store.close()


def test_minio_liveness_then_bucket(minio_env: dict[str, str], minio_front: _MinioFront) -> None:
    store = build_minio_storage(load_settings(environ=_front_env(minio_env, minio_front)))
    try:
        report = store.check_health()
        assert report.ok, report.detail
        assert report.detail is not None and report.detail.startswith("MinIO live")
        assert minio_front.liveness_hits == 1
        assert report.latency_ms is not None
    finally:
        store.close()


def test_minio_not_live_is_unhealthy(minio_env: dict[str, str], minio_front: _MinioFront) -> None:
    store = build_minio_storage(load_settings(environ=_front_env(minio_env, minio_front)))
    try:
        assert store.check_health().ok
        minio_front.live_status = 503
        report = store.check_health()
        assert not report.ok
        assert "not live" in (report.detail or "")
    finally:
        store.close()


def test_live_minio_with_a_missing_bucket_is_unhealthy(
    minio_env: dict[str, str], minio_front: _MinioFront
) -> None:
    env = {**_front_env(minio_env, minio_front), "BOTMOX_MINIO_BUCKET": "no-such-bucket-here"}
    store = build_minio_storage(load_settings(environ=env))
    try:
        report = store.check_health()
        assert not report.ok
        assert "MinIO live" in (report.detail or "") and "does not exist" in (report.detail or "")
    finally:
        store.close()


def test_unreachable_endpoint_is_unhealthy(minio_env: dict[str, str]) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **minio_env,
        "BOTMOX_MINIO_ENDPOINT": f"http://127.0.0.1:{port}",
        "BOTMOX_MINIO_PRIVACY_CHECK": "off",
        "BOTMOX_MINIO_MAX_ATTEMPTS": "1",
    }
    store = build_minio_storage(load_settings(environ=env))
    try:
        report = store.check_health()
        assert not report.ok
        assert "unreachable" in (report.detail or "")
    finally:
        store.close()
