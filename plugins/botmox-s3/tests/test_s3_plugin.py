"""The s3 plugin is found through the ``botmox`` entry-point group and built from settings."""

from __future__ import annotations

import pytest
from botmox_s3.storage import S3Storage

from botmox_core.config import load_settings
from botmox_core.errors import ConfigurationError
from botmox_core.plugin import load_registry


def test_entry_point_registers_s3() -> None:
    registry = load_registry(environ={})
    assert "s3" in registry.storages.factories


def test_selected_by_botmox_storage(s3_env: dict[str, str]) -> None:
    settings = load_settings(environ=s3_env)
    assert settings.storage == "s3"
    factory = load_registry(environ=s3_env).storages.get(settings.storage)
    storage = factory(settings)
    try:
        assert isinstance(storage, S3Storage)
        assert storage.name == "s3"
        assert storage.check_health().ok
    finally:
        storage.close()


def test_factory_without_bucket_is_a_configuration_error() -> None:
    settings = load_settings(environ={"BOTMOX_STORAGE": "s3"})
    factory = load_registry(environ={}).storages.get("s3")
    with pytest.raises(ConfigurationError, match="BOTMOX_S3_BUCKET is required"):
        factory(settings)


def test_toml_plugin_table(tmp_path, s3_env: dict[str, str]) -> None:
    table = "\n".join(
        f'{key.removeprefix("BOTMOX_S3_").lower()} = "{value}"'
        for key, value in s3_env.items()
        if key.startswith("BOTMOX_S3_")
    )
    config = tmp_path / "botmox.toml"
    config.write_text(f'storage = "s3"\n\n[plugins.s3]\n{table}\n', encoding="utf-8")
    settings = load_settings(environ={}, config_file=config)
    storage = load_registry(environ={}).storages.get(settings.storage)(settings)
    try:
        assert storage.check_health().ok
    finally:
        storage.close()
