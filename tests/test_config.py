"""Settings: defaults, environment, TOML file, plugin options, bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from botmox_core.config import load_settings
from botmox_core.errors import ConfigurationError


def test_zero_configuration_is_the_embedded_default() -> None:
    settings = load_settings({})
    assert (settings.data_backend, settings.storage) == ("sqlite", "localfs")
    assert settings.data_dir == Path(".botmox")
    assert settings.base_url == "http://127.0.0.1:8000"


def test_environment_and_contract_variable() -> None:
    assert load_settings({"DATA_BACKEND": "supabase"}).data_backend == "supabase"
    both = load_settings({"DATA_BACKEND": "rtdb", "BOTMOX_DATA_BACKEND": "supabase"})
    assert both.data_backend == "supabase"
    assert load_settings({"BOTMOX_PORT": "9001"}).port == 9001


def test_toml_file_with_plugin_tables_and_env_override(tmp_path: Path) -> None:
    path = tmp_path / "botmox.toml"
    path.write_text('storage = "s3"\nport = 9000\n[plugins.s3]\nbucket = "art"\nregion = "eu"\n')
    settings = load_settings({"BOTMOX_CONFIG": str(path), "BOTMOX_S3_BUCKET": "override"})
    assert settings.storage == "s3" and settings.port == 9000
    assert settings.plugin_options("s3") == {"bucket": "override", "region": "eu"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BOTMOX_PORT": "eighty"}, "BOTMOX_PORT"),
        ({"BOTMOX_LEASE_TTL_SECONDS": "30"}, "at least 60"),
        ({"BOTMOX_DOWNLOAD_URL_TTL_SECONDS": "900"}, "between 60 and 300"),
        ({"BOTMOX_CONFIG": "/nonexistent/botmox.toml"}, "cannot read"),
    ],
)
def test_bad_values_are_clear_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings(env)


def test_bad_toml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("storage = [unclosed")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_settings({"BOTMOX_CONFIG": str(path)})
    path.write_text('colour = "blue"')
    with pytest.raises(ConfigurationError, match="unknown setting 'colour'"):
        load_settings({"BOTMOX_CONFIG": str(path)})


def test_secrets_stay_out_of_repr() -> None:
    assert "hunter2" not in repr(load_settings({"BOTMOX_JWT_SECRET": "hunter2"}))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('port = "8080"', "port in .* must be an integer, got '8080'"),
        ("port = 80.5", "port in .* must be an integer, got 80.5"),
        ("port = true", "port in .* must be an integer, got True"),
        ("data_dir = 5", "data_dir in .* must be a path string"),
        ("public_url = 3", "public_url in .* must be a string"),
        ("port = 70000", "port must be between 1 and 65535"),
        ('public_url = "botmox.example.com"', "must start with http:// or https://"),
        ('log_format = "xml"', "log format must be one of text, json"),
    ],
)
def test_mistyped_toml_values_are_refused_when_read(
    tmp_path: Path, body: str, message: str
) -> None:
    path = tmp_path / "botmox.toml"
    path.write_text(body + "\n")
    with pytest.raises(ConfigurationError, match=message):
        load_settings({}, config_file=path)


def test_toml_values_of_the_right_type_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "botmox.toml"
    path.write_text('port = 9000\ndata_dir = "/srv/botmox"\nlog_format = "json"\n')
    settings = load_settings({}, config_file=path)
    assert (settings.port, settings.data_dir, settings.log_format) == (
        9000,
        Path("/srv/botmox"),
        "json",
    )
    assert load_settings({"BOTMOX_LOG_FORMAT": "text"}, config_file=path).log_format == "text"
