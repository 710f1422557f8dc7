"""Internal and public endpoints: API calls use the internal one, presigned URLs the public one.

SigV4 signs the Host header, so these tests fetch over real HTTP against SeaweedFS (which
enforces signatures) and show a URL works only through the host it was signed for.
"""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import httpx
from botmox_minio.plugin import build_minio_storage

from botmox_core.config import load_settings


def _get(url: str, **headers: str) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=10) as client:
        return client.get(url, headers=headers)


def test_presigned_url_carries_the_public_host(
    minio_env: dict[str, str], public_endpoint: str
) -> None:
    store = build_minio_storage(load_settings(environ=minio_env))
    try:
        store.put("m/bot.zip", io.BytesIO(b"module bytes"), content_type="application/zip")
        url = store.presign_download("m/bot.zip", ttl_seconds=60).url
        assert urlsplit(url).netloc == urlsplit(public_endpoint).netloc
        assert urlsplit(url).path.startswith(f"/{minio_env['BOTMOX_MINIO_BUCKET']}/")  # path style
        response = _get(url)
        assert response.status_code == 200 and response.content == b"module bytes"
        ranged = _get(url, Range="bytes=0-5")
        assert ranged.status_code == 206 and ranged.content == b"module"
        # the same URL sent to the internal host fails: the signature covers the Host header
        internal = urlsplit(minio_env["BOTMOX_MINIO_ENDPOINT"]).netloc
        assert _get(url.replace(urlsplit(url).netloc, internal, 1)).status_code == 403
    finally:
        store.close()


def test_api_calls_use_the_internal_endpoint(minio_env: dict[str, str]) -> None:
    # A public host that does not resolve: uploads, reads and health still work because only
    # presigning uses it (presigning is local and sends nothing).
    env = {**minio_env, "BOTMOX_MINIO_PUBLIC_ENDPOINT": "https://files.botmox.invalid"}
    store = build_minio_storage(load_settings(environ=env))
    try:
        store.put("k.bin", io.BytesIO(b"internal"))
        with store.open("k.bin") as body:
            assert body.read() == b"internal"
        assert store.check_health().ok
        url = store.presign_download("k.bin", ttl_seconds=60).url
        assert url.startswith("https://files.botmox.invalid/")
    finally:
        store.close()


def test_without_public_endpoint_urls_use_the_internal_one(minio_env: dict[str, str]) -> None:
    env = {k: v for k, v in minio_env.items() if k != "BOTMOX_MINIO_PUBLIC_ENDPOINT"}
    store = build_minio_storage(load_settings(environ=env))
    try:
        store.put("k.bin", io.BytesIO(b"x"))
        url = store.presign_download("k.bin", ttl_seconds=60).url
        assert url.startswith(minio_env["BOTMOX_MINIO_ENDPOINT"] + "/")
        assert _get(url).status_code == 200
    finally:
        store.close()
