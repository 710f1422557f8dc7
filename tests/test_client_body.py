"""How the sync client reads a download's body (:mod:`botmox_core.client._body`) and how the
``.part`` reaches the disk (:mod:`botmox_core.client._download`), against a real loopback server:
bodies framed or encoded otherwise than a plain ``Content-Length`` still verify, a stalled body
times out with the bytes so far kept, the connection read past h11 is not reused, and the file
is fsynced once before it replaces ``dest``."""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from botmox_core.client import NetworkError, PartialDownload, RetryPolicy, RunnerClient
from botmox_core.client._body import DIRECT_READ_MIN
from botmox_core.client._download import WRITEBACK_STEP
from tests.test_client_servers import make_payload

PAYLOAD = make_payload(3 * 1024 * 1024 + 777)
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
NO_RETRY = RetryPolicy(max_retries=0)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        if self.path == "/plain":
            self._head(200, {"Content-Length": str(len(PAYLOAD))})
            self.wfile.write(PAYLOAD)
        elif self.path == "/chunked":  # no length: framed by Transfer-Encoding
            self._head(200, {"Transfer-Encoding": "chunked"})
            for start in range(0, len(PAYLOAD), 300_001):
                piece = PAYLOAD[start : start + 300_001]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/gzip":  # compressed although the client asked for identity
            body = gzip.compress(PAYLOAD, compresslevel=1)
            self._head(200, {"Content-Encoding": "gzip", "Content-Length": str(len(body))})
            self.wfile.write(body)
        elif self.path == "/stall":  # promises everything, sends 2 MiB, then goes quiet
            self._head(200, {"Content-Length": str(len(PAYLOAD))})
            self.wfile.write(PAYLOAD[: 2 * 1024 * 1024])
            self.wfile.flush()
            time.sleep(3)
        else:
            self._head(404, {"Content-Length": "0"})

    def _head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()


@pytest.fixture
def file_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.paths = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url_of(server: ThreadingHTTPServer, path: str) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}{path}"


def test_the_test_payload_is_read_from_the_network_stream() -> None:
    assert len(PAYLOAD) >= DIRECT_READ_MIN


@pytest.mark.parametrize("path", ["/plain", "/chunked", "/gzip"])
def test_every_framing_and_encoding_downloads_verified(
    file_server: ThreadingHTTPServer, tmp_path: Path, path: str
) -> None:
    """Reading a chunked or compressed body from the network stream would write the framing or
    the compressed bytes and fail verification: those go through httpx's decoding instead."""
    dest = tmp_path / "bot.bin"
    with RunnerClient("http://127.0.0.1:1", "t", retry_policy=NO_RETRY) as client:
        result = client.download(url_of(file_server, path), dest, SHA256, len(PAYLOAD))
    assert result.sha256 == SHA256
    assert dest.read_bytes() == PAYLOAD


def test_one_client_downloads_again_after_reading_past_h11(
    file_server: ThreadingHTTPServer, tmp_path: Path
) -> None:
    """The connection whose body was read from the network stream is closed, not pooled in a
    state h11 does not know: the next downloads on the same client work."""
    with RunnerClient("http://127.0.0.1:1", "t", retry_policy=NO_RETRY) as client:
        for round_ in range(3):
            dest = tmp_path / f"bot-{round_}.bin"
            client.download(url_of(file_server, "/plain"), dest, SHA256, len(PAYLOAD))
            assert dest.read_bytes() == PAYLOAD
            assert client._downloads._transport._pool.connections == []  # type: ignore[attr-defined]


def test_a_stalled_body_times_out_keeping_the_bytes_received(
    file_server: ThreadingHTTPServer, tmp_path: Path
) -> None:
    dest = tmp_path / "bot.bin"
    with (
        RunnerClient(
            "http://127.0.0.1:1", "t", retry_policy=NO_RETRY, timeout=httpx.Timeout(0.5)
        ) as client,
        pytest.raises(NetworkError) as caught,
    ):
        client.download(url_of(file_server, "/stall"), dest, SHA256, len(PAYLOAD))
    assert "ReadTimeout" in caught.value.message
    assert (tmp_path / "bot.bin.part").stat().st_size == 2 * 1024 * 1024
    assert not dest.exists()


def _counting_fsync(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real: Callable[[int], None] = os.fsync

    def fsync(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def test_finish_fsyncs_the_file_once_then_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(3 * WRITEBACK_STEP // 2)
    partial = PartialDownload(tmp_path / "a.bin", hashlib.sha256(data).hexdigest(), len(data))
    partial.prepare()
    partial.begin(200, {"content-length": str(len(data))})
    for start in range(0, len(data), 1 << 20):
        partial.write(data[start : start + (1 << 20)])
    if sys.platform.startswith("linux"):  # writeback of the first WRITEBACK_STEP was started
        assert partial._writeback_from == WRITEBACK_STEP
    calls = _counting_fsync(monkeypatch)
    result = partial.finish()
    assert len(calls) == 2  # the .part, then the directory holding dest
    assert result.path.read_bytes() == data


def test_a_complete_part_from_an_earlier_run_is_fsynced_before_it_lands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"all of it, written by an earlier run that may not have synced"
    sha = hashlib.sha256(data).hexdigest()
    first = PartialDownload(tmp_path / "a.bin", sha, len(data))
    first.prepare()
    first.begin(200, {"content-length": str(len(data))})
    first.write(data)
    first.suspend()
    second = PartialDownload(tmp_path / "a.bin", sha, len(data))
    second.prepare()
    assert not second.needs_transfer
    calls = _counting_fsync(monkeypatch)
    assert second.finish().path.read_bytes() == data
    assert len(calls) == 2
