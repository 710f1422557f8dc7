"""Object storage going down behind a running server (MinIO plugin on SeaweedFS): readiness
turns 503, resolve-download answers a 502 storage envelope, and the attempt is still audited."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from botmox_core.testing.server import provision_tenant, running_server

from .conftest import CHANNEL, MODULE, PLATFORM, TENANT, USER

pytestmark = pytest.mark.e2e


def test_storage_outage_is_reported_and_audited(tmp_path: Path) -> None:
    from botmox_s3.testing import seaweedfs_or_skip

    with seaweedfs_or_skip() as seaweed:
        env = {
            "DATA_BACKEND": "sqlite",
            **seaweed.minio_env(seaweed.create_bucket()),
            "BOTMOX_MINIO_MAX_ATTEMPTS": "1",
        }
        with running_server(tmp_path / "data", env) as server:
            artifact = tmp_path / "bot.bin"
            artifact.write_bytes(b"bot" * 100_000)
            tenant = provision_tenant(
                server,
                artifact,
                tenant=TENANT,
                user=USER,
                module=MODULE,
                platform=PLATFORM,
                channel=CHANNEL,
            )
            user = {"Authorization": f"Bearer {tenant.user_token}"}
            operator = {"Authorization": f"Bearer {tenant.admin_token}"}
            with httpx.Client(base_url=server.url, timeout=30) as http:
                health = http.get("/api/v1/health").json()["data"]
                assert health["s3_ready"] is True and health["storage"] == "minio"
                assert (
                    http.post(
                        "/api/v1/vm/register", json={"vm_uuid": "vm-outage-01"}, headers=user
                    ).status_code
                    == 201
                )
                lease = http.post(
                    "/api/v1/license/lease",
                    json={"vm_uuid": "vm-outage-01", "module": MODULE},
                    headers=user,
                ).json()["data"]
                body = {
                    "lease_token": lease["token"],
                    "vm_uuid": "vm-outage-01",
                    "module": MODULE,
                    "platform": PLATFORM,
                    "channel": CHANNEL,
                }
                assert (
                    http.post(
                        "/api/v1/artifacts/resolve-download", json=body, headers=user
                    ).status_code
                    == 200
                )

                seaweed.stop()

                ready = http.get("/api/v1/health/ready")
                assert ready.status_code == 503
                assert ready.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
                assert http.get("/api/v1/health").json()["data"]["s3_ready"] is False
                failed = http.post("/api/v1/artifacts/resolve-download", json=body, headers=user)
                assert failed.status_code == 502, failed.text
                assert failed.json()["error"]["code"] == "STORAGE_ERROR"
                entries = http.get(
                    "/api/v1/artifacts/audit",
                    params={"lease_id": lease["lease_id"]},
                    headers=operator,
                ).json()["data"]
                assert [(e["result"], e["reason_code"]) for e in entries] == [
                    ("error", "STORAGE_ERROR"),
                    ("allowed", None),
                ]
