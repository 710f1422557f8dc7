"""MinIO option names, defaults and validation."""

from __future__ import annotations

import pytest
from botmox_minio.options import parse_minio_options

from botmox_core.config import load_settings
from botmox_core.errors import ConfigurationError
from botmox_core.plugin import load_registry

SECRET = "minio-secret-never-printed"


def test_minio_names_and_defaults() -> None:
    settings = load_settings(
        environ={
            "BOTMOX_MINIO_ENDPOINT": "http://minio:9000",
            "BOTMOX_MINIO_PUBLIC_ENDPOINT": "https://files.example.test/",
            "BOTMOX_MINIO_BUCKET": "artifacts",
            "BOTMOX_MINIO_ACCESS_KEY": "minioadmin",
            "BOTMOX_MINIO_SECRET_KEY": SECRET,
        }
    )
    options = parse_minio_options(settings.plugin_options("minio"))
    assert options.endpoint_url == "http://minio:9000"
    assert options.public_endpoint_url == "https://files.example.test"
    assert options.addressing_style == "path"
    assert options.region == "us-east-1"
    assert options.access_key_id == "minioadmin"
    assert SECRET not in repr(options)


def test_endpoint_is_required() -> None:
    with pytest.raises(ConfigurationError, match="BOTMOX_MINIO_ENDPOINT is required"):
        parse_minio_options({"bucket": "artifacts"})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"endpoint": "http://m:9000"}, "BOTMOX_MINIO_BUCKET is required"),
        ({"endpoint": "minio:9000", "bucket": "artifacts"}, "BOTMOX_MINIO_ENDPOINT='minio:9000'"),
        (
            {"endpoint": "http://m:9000", "bucket": "artifacts", "public_endpoint": "files"},
            "BOTMOX_MINIO_PUBLIC_ENDPOINT",
        ),
        (
            {"endpoint": "http://m:9000", "bucket": "artifacts", "secret_key": SECRET},
            "BOTMOX_MINIO_ACCESS_KEY",
        ),
        ({"endpoint": "http://m:9000", "bucket": "artifacts", "acess_key": "x"}, "unknown option"),
    ],
)
def test_bad_options_name_the_minio_variable(raw: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_minio_options(raw)
    assert message in caught.value.message
    assert SECRET not in caught.value.message


def test_entry_point_registers_minio_beside_s3() -> None:
    storages = load_registry(environ={}).storages.factories
    assert "minio" in storages and "s3" in storages


def test_selected_by_botmox_storage(minio_env: dict[str, str]) -> None:
    settings = load_settings(environ=minio_env)
    storage = load_registry(environ=minio_env).storages.get(settings.storage)(settings)
    try:
        assert storage.name == "minio"
        assert storage.check_health().ok
    finally:
        storage.close()
