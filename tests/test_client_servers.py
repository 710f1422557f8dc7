"""Loopback HTTP servers for the runner-client tests, and tests of their fault injection.

``ScriptedBotmoxServer`` is a real HTTP server (``http.server`` on 127.0.0.1, a free port) that
speaks the runner side of the Bot-Mox v1 contract -- register, lease, heartbeat (rotating the
token), resolve-download, public key -- and serves one artifact with ``ETag``, ``Range`` and
``If-Range`` like S3 does. It is *scripted*: tests queue error answers and **fault injection**
(cut the connection after N bytes, flip a byte, ignore ``Range``, refuse the URL) so the client's
recovery paths run against real sockets. It is not the botmox server; the end-to-end test against
``botmox_server`` lives in ``test_client_e2e.py``.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import socket
import threading
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

API_TOKEN = "test-api-token-0123456789abcdef"
FILE_PATH = "/files/artifact.bin"


def make_payload(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RecordedRequest:
    def __init__(self, method: str, path: str, headers: dict[str, str], body: Any) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"RecordedRequest({self.method} {self.path})"


class ScriptedBotmoxServer:
    """See the module docstring. Start with :meth:`start`, stop with :meth:`stop`."""

    def __init__(self, payload: bytes, *, lease_ttl: float = 300.0, url_ttl: float = 120.0) -> None:
        self.payload = payload
        self.sha256 = hashlib.sha256(payload).hexdigest()
        self.etag = '"' + self.sha256[:32] + '"'
        self.lease_ttl = lease_ttl
        self.url_ttl = url_ttl
        self.requests: list[RecordedRequest] = []
        self.api_faults: dict[str, deque[tuple[int, Any, dict[str, str]]]] = {}
        # One entry per artifact GET, consumed in order: {"cut_after": n}, {"flip_at": i},
        # {"status": 403}, {"status": 503, "retry_after": "1"}.
        self.file_faults: deque[dict[str, Any]] = deque()
        self.ignore_range = False
        self.flip_always_at: int | None = None
        self.leases: dict[str, dict[str, Any]] = {}
        self.valid_tokens: dict[str, datetime] = {}
        self.signatures: dict[str, datetime] = {}
        self.public_key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._request_ids = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> ScriptedBotmoxServer:
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = _QuietHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- scripting helpers -------------------------------------------------------------------
    def fail_api(
        self, path: str, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next call of ``path`` (e.g. ``/api/v1/license/lease``) with this instead."""
        self.api_faults.setdefault(path, deque()).append((status, body, headers or {}))

    def expire_all_leases(self) -> None:
        with self._lock:
            past = datetime.now(UTC) - timedelta(seconds=1)
            for lease in self.leases.values():
                lease["expires_at"] = past
            for token in self.valid_tokens:
                self.valid_tokens[token] = past

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    # -- contract behaviour ------------------------------------------------------------------
    def next_request_id(self) -> str:
        with self._lock:
            self._request_ids += 1
            return f"req-{self._request_ids:04d}"

    def issue_token(self, lease_id: str) -> tuple[str, datetime]:
        token = "lt_" + secrets.token_hex(16)
        expires = datetime.now(UTC) + timedelta(seconds=self.lease_ttl)
        self.valid_tokens[token] = expires
        self.leases[lease_id]["expires_at"] = expires
        return token, expires

    def handle_api(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        now = datetime.now(UTC)
        with self._lock:
            if path == "/api/v1/vm/register":
                return 201, {
                    "tenant_id": "tenant-test",
                    "vm_uuid": str(body["vm_uuid"]).lower(),
                    "user_id": body.get("user_id") or "user-1",
                    "status": body.get("status") or "active",
                    "vm_name": body.get("vm_name"),
                    "project_id": body.get("project_id"),
                    "metadata": body.get("metadata") or {},
                    "created_at": iso(now),
                    "updated_at": iso(now),
                }
            if path == "/api/v1/license/lease":
                lease_id = "lease_" + secrets.token_hex(8)
                self.leases[lease_id] = {"vm_uuid": body["vm_uuid"], "module": body["module"]}
                token, expires = self.issue_token(lease_id)
                return 201, {
                    "lease_id": lease_id,
                    "token": token,
                    "expires_at": iso(expires),
                    "tenant_id": "tenant-test",
                    "user_id": body.get("user_id") or "user-1",
                    "vm_uuid": body["vm_uuid"],
                    "module": body["module"],
                }
            if path == "/api/v1/license/heartbeat":
                lease = self.leases.get(body.get("lease_id", ""))
                if lease is None:
                    return 404, _error("LEASE_NOT_FOUND", "no such lease")
                if lease["expires_at"] <= now:
                    return 409, _error("LEASE_EXPIRED", "lease expired")
                token, expires = self.issue_token(body["lease_id"])
                return 200, {
                    "lease_id": body["lease_id"],
                    "token": token,
                    "expires_at": iso(expires),
                    "status": "active",
                }
            if path == "/api/v1/artifacts/resolve-download":
                expires = self.valid_tokens.get(body.get("lease_token", ""))
                if expires is None:
                    return 401, _error("UNAUTHORIZED", "bad lease token")
                if expires <= now:
                    return 409, _error("LEASE_EXPIRED", "lease expired")
                signature = secrets.token_hex(16)
                url_expires = now + timedelta(seconds=self.url_ttl)
                self.signatures[signature] = url_expires
                return 200, {
                    "download_url": f"{self.url}{FILE_PATH}?X-Signature={signature}",
                    "url_expires_at": iso(url_expires),
                    "release_id": 7,
                    "version": "1.2.3",
                    "sha256": self.sha256,
                    "size_bytes": len(self.payload),
                }
            if path == "/api/v1/license/public-key":
                import base64

                key = base64.urlsafe_b64encode(self.public_key).rstrip(b"=").decode()
                return 200, {"algorithm": "Ed25519", "public_key": key}
        return 404, _error("NOT_FOUND", "unknown path")


def _error(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"success": False, "error": error}


class _QuietHTTPServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up mid-body (size checks, aborted tests) are expected here


class _Handler(BaseHTTPRequestHandler):
    owner: ScriptedBotmoxServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _record(self, body: Any) -> str:
        path = urlsplit(self.path).path
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.owner.requests.append(RecordedRequest(self.command, path, headers, body))
        return path

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_api(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        if isinstance(payload, bytes):
            body, ctype = payload, "text/html"
        else:
            if not (isinstance(payload, dict) and "success" in payload):
                payload = {"success": True, "data": payload}
            body, ctype = json.dumps(payload).encode(), "application/json"
        self._send(
            status,
            body,
            {
                "Content-Type": ctype,
                "X-Request-Id": self.owner.next_request_id(),
                **(headers or {}),
            },
        )

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else {}
        path = self._record(body)
        self._answer_api(path, body)

    def do_GET(self) -> None:
        path = self._record(None)
        if path == FILE_PATH:
            self._serve_file()
        else:
            self._answer_api(path, {})

    def _answer_api(self, path: str, body: dict[str, Any]) -> None:
        faults = self.owner.api_faults.get(path)
        if faults:
            status, payload, headers = faults.popleft()
            self._send_api(status, payload, headers)
            return
        if self.headers.get("Authorization") != f"Bearer {API_TOKEN}":
            self._send_api(401, _error("UNAUTHORIZED", "missing or bad API token"))
            return
        status, payload = self.owner.handle_api(path, body)
        self._send_api(status, payload)

    def _serve_file(self) -> None:
        owner = self.owner
        fault = owner.file_faults.popleft() if owner.file_faults else {}
        query = parse_qs(urlsplit(self.path).query)
        signature = (query.get("X-Signature") or [""])[0]
        expires = owner.signatures.get(signature)
        status = fault.get("status")
        if status is None and (expires is None or expires <= datetime.now(UTC)):
            status = 403
        if status is not None:
            headers = {"Content-Type": "application/xml"}
            if "retry_after" in fault:
                headers["Retry-After"] = fault["retry_after"]
            self._send(status, b"<Error><Code>AccessDenied</Code></Error>", headers)
            return
        payload = owner.payload
        start = 0
        range_header = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        use_range = (
            range_header is not None
            and not owner.ignore_range
            and (if_range is None or if_range == owner.etag)
        )
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": owner.etag,
            "Accept-Ranges": "bytes",
            "Last-Modified": "Tue, 24 Nov 2026 20:00:00 GMT",
        }
        if use_range:
            assert range_header is not None
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(payload):
                headers["Content-Range"] = f"bytes */{len(payload)}"
                self._send(416, b"", headers)
                return
            headers["Content-Range"] = f"bytes {start}-{len(payload) - 1}/{len(payload)}"
        body = bytearray(payload[start:])
        flip_at = fault.get("flip_at", owner.flip_always_at)
        if flip_at is not None and start <= flip_at < len(payload):
            body[flip_at - start] ^= 0xFF  # fault injection: corrupt one byte in flight
        self.send_response(206 if use_range else 200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut_after = fault.get("cut_after")
        if cut_after is not None:
            # fault injection: promise the whole body, send part of it, drop the connection
            self.wfile.write(bytes(body[:cut_after]))
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(bytes(body))


@pytest.fixture
def botmox_server() -> Iterator[ScriptedBotmoxServer]:
    server = ScriptedBotmoxServer(make_payload(3 * 1024 * 1024 + 12345)).start()
    try:
        yield server
    finally:
        server.stop()


def _signed_url(server: ScriptedBotmoxServer) -> str:
    signature = secrets.token_hex(8)
    server.signatures[signature] = datetime.now(UTC) + timedelta(minutes=5)
    return f"{server.url}{FILE_PATH}?X-Signature={signature}"


# -- the harness's own fault injection must really happen ----------------------------------


def test_server_serves_ranges_with_if_range(botmox_server: ScriptedBotmoxServer) -> None:
    url = _signed_url(botmox_server)
    response = httpx.get(url, headers={"Range": "bytes=100-", "If-Range": botmox_server.etag})
    assert response.status_code == 206
    assert response.content == botmox_server.payload[100:]
    stale = httpx.get(url, headers={"Range": "bytes=100-", "If-Range": '"other"'})
    assert stale.status_code == 200
    assert stale.content == botmox_server.payload


def test_server_cut_really_truncates(botmox_server: ScriptedBotmoxServer) -> None:
    botmox_server.file_faults.append({"cut_after": 1000})
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(_signed_url(botmox_server))


def test_server_flip_really_corrupts(botmox_server: ScriptedBotmoxServer) -> None:
    botmox_server.file_faults.append({"flip_at": 5})
    body = httpx.get(_signed_url(botmox_server)).content
    assert len(body) == len(botmox_server.payload)
    assert body != botmox_server.payload
    assert body[5] == botmox_server.payload[5] ^ 0xFF


def test_server_refuses_unsigned_download(botmox_server: ScriptedBotmoxServer) -> None:
    assert httpx.get(f"{botmox_server.url}{FILE_PATH}?X-Signature=nope").status_code == 403
