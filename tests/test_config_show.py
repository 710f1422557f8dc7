"""``botmox config show`` through the real console script: every setting with its value and
source, secrets masked in text and JSON, bad values one clear line, nothing created."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from botmox_core.cli.config import MASK, mask_value
from botmox_core.config import setting_fields

JWT_SECRET = "jwt-Secret-5d1f0a9c"
DB_PASSWORD = "pg-Pass-77e1b3"
LISTEN_PASSWORD = "listen-Pass-0c4d"
SERVICE_ROLE_KEY = "eyJ-service-role-9a8b7c"
ANON_KEY = "eyJ-anon-1f2e3d"
S3_SECRET = "s3-Secret-Key-44aa55bb"
S3_SESSION = "s3-Session-Token-6677"
MINIO_SECRET = "minio-Secret-Key-8899"
URL_KEY = "ab" * 32
SSL_PASSWORD = "ssl-Pass-2233"
FSSPEC_SECRET = "fsspec-Secret-3344"
METRICS_TOKEN = "metrics-Token-5566"
SECRETS = (
    JWT_SECRET,
    DB_PASSWORD,
    LISTEN_PASSWORD,
    SERVICE_ROLE_KEY,
    ANON_KEY,
    S3_SECRET,
    S3_SESSION,
    MINIO_SECRET,
    URL_KEY,
    SSL_PASSWORD,
    FSSPEC_SECRET,
    METRICS_TOKEN,
)


def _console_script() -> list[str]:
    script = Path(sys.executable).with_name("botmox")
    if script.is_file():
        return [str(script)]
    found = shutil.which("botmox")
    assert found, "the botmox console script is not installed"
    return [found]


def botmox(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BOTMOX_", "DATA_BACKEND"))}
    return subprocess.run(
        [*_console_script(), *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def configured(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment and a TOML file that set secrets every way an operator can."""
    config = tmp_path / "botmox.toml"
    config.write_text(
        f'jwt_secret = "{JWT_SECRET}-from-file"\n'
        "agent_offline_seconds = 45\n"
        "command_max_attempts = 3\n"
        "[plugins.s3]\n"
        f'secret_access_key = "{S3_SECRET}"\n'
        'access_key_id = "AKIDEXAMPLE"\n'
        'bucket = "artifacts"\n'
        "[plugins.fsspec]\n"
        f"storage_options = '{json.dumps({'key': 'id', 'secret': FSSPEC_SECRET})}'\n"
        "[plugins.localfs]\n"
        f'url_key = "{URL_KEY}"\n'
    )
    env = {
        "BOTMOX_CONFIG": str(config),
        "BOTMOX_DATA_DIR": str(tmp_path / "data"),
        "DATA_BACKEND": "supabase",
        "BOTMOX_STORAGE": "s3",
        "BOTMOX_JWT_SECRET": JWT_SECRET,
        "BOTMOX_COMMAND_MAX_ATTEMPTS": "4",
        "BOTMOX_SUPABASE_DATABASE_URL": (
            f"postgresql://botmox:{DB_PASSWORD}@db.example.com:5432/postgres"
            f"?sslpassword={SSL_PASSWORD}"
        ),
        "BOTMOX_SUPABASE_LISTEN_DATABASE_URL": (
            f"host=db.example.com user=botmox password={LISTEN_PASSWORD}"
        ),
        "BOTMOX_SUPABASE_SERVICE_ROLE_KEY": SERVICE_ROLE_KEY,
        "BOTMOX_SUPABASE_ANON_KEY": ANON_KEY,
        "BOTMOX_S3_SESSION_TOKEN": S3_SESSION,
        "BOTMOX_MINIO_SECRET_KEY": MINIO_SECRET,
        "BOTMOX_METRICS_TOKEN": METRICS_TOKEN,
        "BOTMOX_UNIXSOCKET_DIR": str(tmp_path / "bus"),
    }
    return env, tmp_path


def test_json_shows_every_setting_with_its_source_and_no_secret(
    configured: tuple[dict[str, str], Path],
) -> None:
    env, cwd = configured
    done = botmox("config", "show", "--json", env=env, cwd=cwd)
    assert done.returncode == 0, done.stderr
    for secret in SECRETS:
        assert secret not in done.stdout + done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    settings = report["settings"]
    assert set(settings) == {field.name for field in setting_fields()}
    assert settings["jwt_secret"] == {
        "value": MASK,
        "source": "env",
        "origin": "BOTMOX_JWT_SECRET",
        "secret": True,
        "env": ["BOTMOX_JWT_SECRET"],
        "toml": True,
    }
    config = str(cwd / "botmox.toml")
    assert settings["agent_offline_seconds"]["value"] == 45
    offline = settings["agent_offline_seconds"]
    assert (offline["source"], offline["origin"]) == ("file", config)
    assert settings["command_max_attempts"]["value"] == 4  # the environment wins over the file
    assert settings["command_max_attempts"]["origin"] == "BOTMOX_COMMAND_MAX_ATTEMPTS"
    assert settings["data_backend"]["origin"] == "DATA_BACKEND"
    assert settings["port"] == {
        "value": 8000,
        "source": "default",
        "origin": None,
        "secret": False,
        "env": ["BOTMOX_PORT"],
        "toml": True,
    }
    assert settings["config_file"]["value"] == config
    assert settings["enabled_plugins"]["toml"] is False
    assert settings["metrics_token"] == {
        "value": MASK,
        "source": "env",
        "origin": "BOTMOX_METRICS_TOKEN",
        "secret": True,
        "env": ["BOTMOX_METRICS_TOKEN"],
        "toml": True,
    }
    assert settings["unixsocket_dir"]["value"] == str(cwd / "bus")
    assert settings["unixsocket_dir"]["origin"] == "BOTMOX_UNIXSOCKET_DIR"
    assert "dir" not in report["plugins"].get("unixsocket", {}).get("options", {})
    assert not any("METRICS" in w or "UNIXSOCKET" in w for w in report["warnings"])

    supabase = report["plugins"]["supabase"]
    assert supabase["roles"] == ["data backend"]
    assert supabase["options"]["database_url"]["value"] == (
        f"postgresql://botmox:{MASK}@db.example.com:5432/postgres?sslpassword={MASK}"
    )
    assert supabase["options"]["listen_database_url"]["value"] == (
        f"host=db.example.com user=botmox password={MASK}"
    )
    assert supabase["options"]["service_role_key"] == {
        "value": MASK,
        "source": "env",
        "origin": "BOTMOX_SUPABASE_SERVICE_ROLE_KEY",
    }
    s3 = report["plugins"]["s3"]["options"]
    assert s3["secret_access_key"] == {"value": MASK, "source": "file", "origin": config}
    assert s3["access_key_id"]["value"] == "AKIDEXAMPLE"  # an id, not a secret
    assert s3["session_token"]["value"] == MASK
    assert report["plugins"]["minio"]["options"]["secret_key"]["value"] == MASK
    fsspec = report["plugins"]["fsspec"]["options"]["storage_options"]["value"]
    assert json.loads(fsspec) == {"key": MASK, "secret": MASK}  # fsspec's s3 "key" is masked too
    assert report["keys"]["download_url_key"] == {
        "value": MASK,
        "file": None,
        "source": "file",
        "origin": config,
    }
    lease = report["keys"]["lease_signing_key"]
    assert lease["file"] == str(cwd / "data" / "lease-signing.pem") and lease["exists"] is False
    assert any("BOTMOX_LEASE_SIGNING_KEY_FILE" in warning for warning in report["warnings"])
    assert not (cwd / "data").exists(), "config show must create nothing"


def test_text_lists_every_setting_with_its_source_and_no_secret(
    configured: tuple[dict[str, str], Path],
) -> None:
    env, cwd = configured
    done = botmox("config", "show", env=env, cwd=cwd)
    assert done.returncode == 0, done.stderr
    for secret in SECRETS:
        assert secret not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for field in setting_fields():
        assert any(line.split()[:1] == [field.name] for line in lines), field.name
    row = next(line for line in lines if line.split()[:1] == ["jwt_secret"])
    assert row.split() == ["jwt_secret", MASK, "env", "BOTMOX_JWT_SECRET"]
    row = next(line for line in lines if line.split()[:1] == ["metrics_token"])
    assert row.split() == ["metrics_token", MASK, "env", "BOTMOX_METRICS_TOKEN"]
    row = next(line for line in lines if line.split()[:1] == ["agent_offline_seconds"])
    assert row.split() == ["agent_offline_seconds", "45", "file", str(cwd / "botmox.toml")]
    row = next(line for line in lines if line.split()[:1] == ["port"])
    assert row.split() == ["port", "8000", "default"]
    assert "plugin supabase (data backend):" in lines
    assert f"postgresql://botmox:{MASK}@db.example.com:5432/postgres" in done.stdout
    row = next(line for line in lines if "lease signing key" in line)
    assert str(cwd / "data" / "lease-signing.pem") in row and "created on first start" in row


def test_the_embedded_default_without_any_configuration(tmp_path: Path) -> None:
    done = botmox("config", "show", "--json", env={}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {row["source"] for row in report["settings"].values()} == {"default"}
    assert report["settings"]["public_url"]["unset"] == "http://127.0.0.1:8000"
    assert report["plugins"]["sqlite"]["roles"] == ["data backend"]
    assert report["plugins"]["localfs"]["options"] == {}
    url_key = report["keys"]["download_url_key"]
    assert url_key["file"] == str(tmp_path / ".botmox" / "localfs-url.key")
    assert report["warnings"] == []
    assert not (tmp_path / ".botmox").exists()


def test_command_line_options_and_a_misspelt_variable(tmp_path: Path) -> None:
    config = tmp_path / "other.toml"
    config.write_text("port = 9001\n")
    done = botmox(
        "config", "show", "--json", "--config", str(config), "--data-dir", str(tmp_path / "d"),
        env={"BOTMOX_PROT": "9000", "BOTMOX_S3_BUCKET": "x", "BOTMOX_TOKEN": "client-side"},
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["settings"]["config_file"]["source"] == "option"
    assert report["settings"]["data_dir"]["source"] == "option"
    assert (report["settings"]["port"]["value"], report["settings"]["port"]["source"]) == (
        9001,
        "file",
    )
    assert report["warnings"] == ["BOTMOX_PROT is set but is not a botmox setting (misspelt?)"]
    assert "client-side" not in done.stdout


@pytest.mark.parametrize(
    ("env", "body", "message"),
    [
        (
            {"BOTMOX_AGENT_OFFLINE_SECONDS": "0"},
            "",
            "CONFIGURATION_ERROR: agent_offline_seconds must be at least 1, got 0 (from the "
            "environment variable BOTMOX_AGENT_OFFLINE_SECONDS)",
        ),
        (
            {"BOTMOX_COMMAND_MAX_ATTEMPTS": "many"},
            "",
            "CONFIGURATION_ERROR: BOTMOX_COMMAND_MAX_ATTEMPTS='many' is not an integer",
        ),
        (
            {},
            "command_sweep_interval_seconds = 0\n",
            "CONFIGURATION_ERROR: command_sweep_interval_seconds must be between 0.05 and 3600 "
            "seconds (from command_sweep_interval_seconds in {config})",
        ),
        ({}, 'colour = "blue"\n', "CONFIGURATION_ERROR: unknown setting 'colour' in {config}"),
        (
            {},
            'enabled_plugins = "s3"\n',
            "CONFIGURATION_ERROR: enabled_plugins in {config} cannot be set in the config "
            "file: set BOTMOX_PLUGINS in the environment instead",
        ),
    ],
    ids=["range-env", "type-env", "range-file", "unknown-key", "environment-only"],
)
def test_bad_values_are_one_clear_line(
    tmp_path: Path, env: dict[str, str], body: str, message: str
) -> None:
    config = tmp_path / "botmox.toml"
    config.write_text(body)
    env = {"BOTMOX_JWT_SECRET": JWT_SECRET, **env, "BOTMOX_CONFIG": str(config)}
    done = botmox("config", "show", env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == f"Error: {message.format(config=config)}"
    assert JWT_SECRET not in done.stderr


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("postgresql://u:p4ss@h:5432/db", f"postgresql://u:{MASK}@h:5432/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("https://h/jwks?token=abc&x=1", f"https://h/jwks?token={MASK}&x=1"),
        ("https://db.firebaseio.com/?auth=abc", f"https://db.firebaseio.com/?auth={MASK}"),
        ("dbname=x password='a b' host=h", f"dbname=x password={MASK} host=h"),
        ("http://u:p@[::1", MASK),  # unparseable, with credentials: nothing shown
        ("/srv/botmox", "/srv/botmox"),
    ],
)
def test_mask_value(value: str, shown: str) -> None:
    assert mask_value(value) == shown
    assert mask_value(value, secret=True) == MASK
