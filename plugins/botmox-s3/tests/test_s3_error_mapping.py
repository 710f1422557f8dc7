"""botocore failures surface as botmox errors with stable codes, against real servers."""

from __future__ import annotations

import io
import socket

import pytest
from botmox_s3.options import parse_s3_options
from botmox_s3.plugin import build_s3_storage
from botmox_s3.storage import S3Storage
from botmox_s3.testing import SeaweedFS, running_seaweedfs

from botmox_core.config import load_settings
from botmox_core.errors import StorageError


def _options(env: dict[str, str], **extra: str) -> dict[str, str]:
    raw = {k.removeprefix("BOTMOX_S3_").lower(): v for k, v in env.items() if "_S3_" in k}
    return {**raw, **extra}


def test_missing_bucket_is_a_storage_error(s3_env: dict[str, str]) -> None:
    store = S3Storage(parse_s3_options(_options(s3_env, bucket="no-such-bucket-here")))
    try:
        # (SeaweedFS creates a bucket on a first PUT by an admin, so probe with reads)
        with pytest.raises(StorageError, match="does not exist") as caught:
            store.open("k")
        assert caught.value.status == 502 and caught.value.code == "STORAGE_ERROR"
        report = store.check_health()
        assert not report.ok and "does not exist" in (report.detail or "")
    finally:
        store.close()


def test_read_only_credentials_are_denied_with_a_clear_message(
    seaweedfs: SeaweedFS, s3_env: dict[str, str]
) -> None:
    options = _options(
        s3_env,
        access_key_id=seaweedfs.reader_access_key_id,
        secret_access_key=seaweedfs.reader_secret_access_key,
    )
    store = S3Storage(parse_s3_options(options))
    try:
        with pytest.raises(StorageError, match=r"denied.*credentials") as caught:
            store.put("k", io.BytesIO(b"x"))
        assert seaweedfs.reader_secret_access_key not in caught.value.message
    finally:
        store.close()


def test_wrong_secret_is_denied(s3_env: dict[str, str]) -> None:
    store = S3Storage(parse_s3_options(_options(s3_env, secret_access_key="not-the-secret")))
    try:
        with pytest.raises(StorageError, match="denied"):
            store.head("k")
        assert not store.check_health().ok
    finally:
        store.close()


def test_unreachable_endpoint_is_a_retryable_storage_error(s3_env: dict[str, str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = _options(
        s3_env,
        endpoint_url=f"http://127.0.0.1:{port}",
        max_attempts="1",
        connect_timeout_seconds="1",
    )
    store = S3Storage(parse_s3_options(options))
    try:
        with pytest.raises(StorageError, match="unreachable") as caught:
            store.open("k")
        assert caught.value.retryable
        report = store.check_health()
        assert not report.ok and report.latency_ms is not None
    finally:
        store.close()


def test_health_goes_down_when_the_server_stops() -> None:
    with running_seaweedfs() as server:
        bucket = server.create_bucket()
        env = {**server.storage_env(bucket), "BOTMOX_S3_MAX_ATTEMPTS": "1"}
        store = build_s3_storage(load_settings(environ=env))
        try:
            assert store.check_health().ok
            server.stop()
            report = store.check_health()
            assert not report.ok
            assert "unreachable" in (report.detail or "")
            with pytest.raises(StorageError):
                store.put("k", io.BytesIO(b"x"))
        finally:
            store.close()


def test_closed_storage_refuses_calls(s3_env: dict[str, str]) -> None:
    store = build_s3_storage(load_settings(environ=s3_env))
    store.close()
    with pytest.raises(StorageError, match="closed"):
        store.head("k")
    assert not store.check_health().ok
