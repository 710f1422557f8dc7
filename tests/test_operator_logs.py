"""Server logs over a real uvicorn (``running_server``): what a client sends cannot forge or
corrupt log lines, one format covers every logger, ``json`` gives one object per line, and no
token, query string or signature is ever written."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from botmox_core.cli.serve import public_url_warning
from botmox_core.client import RunnerClient
from botmox_core.config import load_settings
from botmox_core.testing.server import free_port, provision_tenant, running_server
from botmox_server.logs import JsonFormatter, RequestIdFilter, current_request_id, escape

pytestmark = pytest.mark.e2e

#: ``%0a`` would start a forged line, ``%00`` writes a NUL, ``%1b`` an ANSI escape, ``%e2%80%a8``
#: a Unicode line separator.
HOSTILE_PATH = (
    "/api/v1/health/live%0a2026-01-01T00:00:00.000Z%20INFO%20botmox.access:%20FORGED"
    "%00nul%1b[31mred%e2%80%a8sep"
)


def raw_get(url: str, target: str) -> bytes:
    """Send ``GET target`` byte for byte (no client-side normalisation of the path)."""
    parsed = httpx.URL(url)
    assert parsed.host == "127.0.0.1" and parsed.port is not None
    with socket.create_connection((parsed.host, parsed.port), timeout=10) as conn:
        conn.sendall(
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def wait_for(server_log: Callable[[], str], needle: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = server_log()
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def test_escape_is_one_printable_line_and_idempotent() -> None:
    for text in ["a\nb", "x\x00y", "\x1b[31m", "line\u2028sep", "tab\there", "\r\n"]:
        escaped = escape(text)
        assert escaped.isprintable() and escape(escaped) == escaped
    assert escape("GET /a%0a") == "GET /a%0a"
    assert escape("x" * 10, limit=4) == "xxxx..."


def test_access_log_escapes_the_decoded_path(tmp_path: Path) -> None:
    with running_server(tmp_path / "srv") as server:
        answer = raw_get(server.url, HOSTILE_PATH + "?token=bmx_secret&signature=deadbeef")
        assert answer.startswith(b"HTTP/1.1 404")
        request_id = next(
            line.split(b":", 1)[1].strip().decode()
            for line in answer.split(b"\r\n")
            if line.lower().startswith(b"x-request-id:")
        )
        text = wait_for(server.log, request_id)
        raw = server.log_path.read_bytes()
    assert b"\x00" not in raw and b"\x1b" not in raw and "\u2028".encode() not in raw
    lines = [line for line in text.splitlines() if request_id in line]
    assert len(lines) == 1
    (line,) = lines
    assert "INFO botmox.access: GET /api/v1/health/live\\n2026-01-01T00:00:00.000Z INFO" in line
    assert "FORGED\\x00nul\\x1b[31mred\\u2028sep 404" in line
    assert not any(entry.startswith("2026-01-01T00:00:00.000Z") for entry in text.splitlines())
    assert "bmx_secret" not in text and "deadbeef" not in text and "token=" not in text


def test_json_log_format_is_one_object_per_line_without_secrets(tmp_path: Path) -> None:
    artifact = tmp_path / "farm-bot.bin"
    artifact.write_bytes(os.urandom(300_000))
    env = {"BOTMOX_LOG_FORMAT": "json"}
    with running_server(tmp_path / "srv", env=env) as server:
        tenant = provision_tenant(
            server, artifact, tenant="acme", user="alice", module="farm-bot", platform="win64"
        )
        with RunnerClient(server.url, tenant.user_token) as client:
            fetched = client.fetch("farm-bot", "win64", "stable", tmp_path / "out.bin")
        assert fetched.size_bytes == 300_000
        answer = raw_get(server.url, HOSTILE_PATH)
        assert answer.startswith(b"HTTP/1.1 404")
        text = wait_for(server.log, "FORGED")
    entries = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert entries, text
    for entry in entries:
        assert {"ts", "level", "logger", "message"} <= entry.keys(), entry
    loggers = {entry["logger"] for entry in entries}
    assert {"botmox.server", "botmox.access", "uvicorn.error"} <= loggers
    access = [entry for entry in entries if entry["logger"] == "botmox.access"]
    download = [entry for entry in access if entry["path"].startswith("/api/v1/storage/localfs/")]
    assert download and all(entry["status"] in (200, 206) for entry in download)
    for entry in access:
        assert len(entry["request_id"]) == 16 and entry["method"] in ("GET", "POST")
        assert isinstance(entry["duration_ms"], float)
    forged = next(entry for entry in access if "FORGED" in entry["path"])
    assert forged["path"].endswith("FORGED\\x00nul\\x1b[31mred\\u2028sep")
    assert forged["status"] == 404
    for secret in (tenant.user_token, tenant.admin_token, "signature", "expires=", "bmx_"):
        assert secret not in text


def test_public_url_warning_rules() -> None:
    def warning(**env: str) -> str | None:
        return public_url_warning(load_settings(env))

    assert "BOTMOX_PUBLIC_URL" in (warning(BOTMOX_HOST="0.0.0.0") or "")
    assert warning(BOTMOX_HOST="::") is not None
    assert warning(BOTMOX_HOST="10.1.2.3", BOTMOX_PUBLIC_URL="http://localhost:8000") is not None
    assert warning(BOTMOX_HOST="10.1.2.3") is None  # URLs name the bound address itself
    assert warning(BOTMOX_HOST="0.0.0.0", BOTMOX_PUBLIC_URL="https://botmox.example.com") is None
    assert warning(BOTMOX_HOST="127.0.0.1") is None and warning(BOTMOX_HOST="localhost") is None
    assert warning(BOTMOX_HOST="0.0.0.0", BOTMOX_STORAGE="s3") is None


def test_serve_warns_at_start_up_about_loopback_download_urls(tmp_path: Path) -> None:
    """A real ``botmox serve --log-format json`` on a non-loopback address with a loopback public
    URL. 192.0.2.1 (TEST-NET-1) is never assigned here, so nothing listens beyond loopback: the
    warning comes first, then uvicorn fails to bind and the process ends."""
    env = {
        **os.environ,
        "BOTMOX_DATA_DIR": str(tmp_path / "data"),
        "BOTMOX_PUBLIC_URL": "http://127.0.0.1:8000",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "botmox_core", "serve", "--host", "192.0.2.1",
         "--port", str(free_port()), "--log-format", "json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    entries = [json.loads(line) for line in output.splitlines() if line.strip()]
    warning = entries[0]
    assert (warning["level"], warning["logger"]) == ("WARNING", "botmox.server")
    assert (
        "listening on 192.0.2.1 but download URLs point at http://127.0.0.1:8000"
        in (warning["message"])
    )
    assert "BOTMOX_PUBLIC_URL" in warning["message"]


def test_records_written_while_serving_carry_the_request_id() -> None:
    formatter, request_filter = JsonFormatter(), RequestIdFilter()

    def formatted(message: str) -> dict[str, object]:
        record = logging.LogRecord("botmox.server", logging.WARNING, __file__, 1, message, (), None)
        assert request_filter.filter(record)
        return dict(json.loads(formatter.format(record)))

    assert "request_id" not in formatted("outside a request")
    token = current_request_id.set("0123456789abcdef")
    try:
        entry = formatted("storage failed:\nFORGED")
    finally:
        current_request_id.reset(token)
    assert entry["request_id"] == "0123456789abcdef"
    assert entry["message"] == "storage failed:\\nFORGED"
    assert (entry["level"], entry["logger"]) == ("WARNING", "botmox.server")
