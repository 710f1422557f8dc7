"""MinIO storage: the S3 storage with MinIO's health endpoint and a public presigning host."""

from __future__ import annotations

import time

import httpx
from botmox_s3.error_mapping import map_storage_errors
from botmox_s3.options import S3Options
from botmox_s3.storage import S3Storage

from botmox_core.errors import BotmoxError
from botmox_core.ports.health import HealthReport

__all__ = ["LIVENESS_PATH", "MinioStorage"]

LIVENESS_PATH = "/minio/health/live"


class MinioStorage(S3Storage):
    """:class:`~botmox_s3.storage.S3Storage` for MinIO.

    Presigned URLs are signed for ``public_endpoint_url`` (the host VMs use) while every other
    call goes to the internal ``endpoint_url``. :meth:`check_health` asks MinIO's liveness
    endpoint and then HeadBucket; a server that does not answer the liveness endpoint the way
    MinIO does (another S3 implementation) is checked with HeadBucket alone.
    """

    env_prefix = "BOTMOX_MINIO_"

    def __init__(self, options: S3Options, *, name: str = "minio") -> None:
        super().__init__(options, name=name)
        self._http = httpx.Client(
            timeout=httpx.Timeout(options.read_timeout, connect=options.connect_timeout),
            trust_env=False,
            follow_redirects=False,
        )
        self._is_minio: bool | None = None

    def check_health(self) -> HealthReport:
        """MinIO liveness (``/minio/health/live``) plus HeadBucket. Never raises."""
        started = time.perf_counter()
        notes: list[str] = []
        try:
            self._ensure_open()
            if self._is_minio is not False:
                live, note = self._liveness()
                notes.append(note)
                if live is False:
                    return self._report(False, notes, started)
            with map_storage_errors("health check", bucket=self.bucket):
                self._client.head_bucket(Bucket=self.bucket)
        except BotmoxError as exc:
            notes.append(exc.message)
            return self._report(False, notes, started)
        notes.append(f"bucket {self.bucket!r} reachable")
        return self._report(True, notes, started)

    def close(self) -> None:
        """Close the S3 clients and the health-check HTTP client. Idempotent."""
        super().close()
        self._http.close()

    def _liveness(self) -> tuple[bool | None, str]:
        """(True live / False down / None not MinIO, note) from the liveness endpoint."""
        url = f"{self.options.endpoint_url}{LIVENESS_PATH}"
        try:
            response = self._http.get(url)
        except httpx.HTTPError as exc:
            return False, f"MinIO endpoint unreachable ({type(exc).__name__})"
        server = response.headers.get("server", "")
        if response.status_code == 200:
            self._is_minio = True
            return True, "MinIO live"
        if response.status_code == 503 and (self._is_minio or "minio" in server.lower()):
            return False, "MinIO reports the node is not live (503)"
        # Another S3 implementation reads the path as bucket "minio": fall back to HeadBucket.
        self._is_minio = False
        return None, f"not a MinIO server ({LIVENESS_PATH} answered {response.status_code})"

    def _report(self, ok: bool, notes: list[str], started: float) -> HealthReport:
        return HealthReport(
            name=self.name,
            ok=ok,
            detail="; ".join(notes),
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
        )
