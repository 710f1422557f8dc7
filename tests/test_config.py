"""Settings: defaults, environment, TOML file, plugin options, bad values."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path

import attrs
import pytest

from botmox_core.config import ENVIRONMENT_ONLY, Origin, Settings, load_settings, setting_fields
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
    assert "hunter3" not in repr(load_settings({"BOTMOX_METRICS_TOKEN": "hunter3"}))


def test_the_metrics_token_and_the_socket_directory_are_trimmed_and_blank_is_unset(
    tmp_path: Path,
) -> None:
    settings = load_settings({"BOTMOX_METRICS_TOKEN": " tok \n", "BOTMOX_UNIXSOCKET_DIR": " /x "})
    assert (settings.metrics_token, settings.unixsocket_dir) == ("tok", Path("/x"))
    blank = load_settings({"BOTMOX_METRICS_TOKEN": "  ", "BOTMOX_UNIXSOCKET_DIR": " "})
    assert (blank.metrics_token, blank.unixsocket_dir) == (None, None)
    path = tmp_path / "botmox.toml"
    path.write_text("metrics_token = 5\n")
    with pytest.raises(ConfigurationError, match=r"metrics_token in .* must be a string"):
        load_settings({}, config_file=path)


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


# -- every setting, from the environment and the file ------------------------------------------

#: For every Settings field: a valid non-default value as the environment spells it, as the TOML
#: file spells it, and the value the field then holds. A new field without an entry here fails
#: ``test_every_setting_has_a_sample`` (and so must say how it is set).
SAMPLES: dict[str, tuple[str, str, object]] = {
    "data_dir": ("/srv/botmox", '"/srv/botmox"', Path("/srv/botmox")),
    "data_backend": ("supabase", '"supabase"', "supabase"),
    "storage": ("s3", '"s3"', "s3"),
    "host": ("0.0.0.0", '"0.0.0.0"', "0.0.0.0"),
    "port": ("9001", "9001", 9001),
    "public_url": ("https://botmox.example.com", '"https://botmox.example.com"', None),
    "lease_ttl_seconds": ("600", "600", 600),
    "download_url_ttl_seconds": ("120", "120", 120),
    "jwt_secret": ("s3cr3t-jwt", '"s3cr3t-jwt"', "s3cr3t-jwt"),
    "jwks_url": ("https://auth.example.com/jwks", '"https://auth.example.com/jwks"', None),
    "jwt_issuer": ("me", '"me"', "me"),
    "jwt_audience": ("them", '"them"', "them"),
    "max_upload_bytes": ("1024", "1024", 1024),
    "log_format": ("json", '"json"', "json"),
    "rate_limit_enabled": ("false", "false", False),
    "rate_limit_requests": ("10", "10", 10),
    "rate_limit_address_requests": ("11", "11", 11),
    "rate_limit_window_seconds": ("12", "12", 12),
    "rate_limit_trusted_proxies": ("10.0.0.0/8", '["10.0.0.0/8"]', ("10.0.0.0/8",)),
    "rate_limit_store": ("postgres", '"postgres"', "postgres"),
    "lease_signing_key_file": ("/keys/lease.pem", '"/keys/lease.pem"', Path("/keys/lease.pem")),
    "agent_transport": ("postgres", '"postgres"', "postgres"),
    "agent_offline_seconds": ("45", "45", 45),
    "agent_token_ttl_days": ("30", "30", 30),
    "command_ack_timeout_seconds": ("7", "7", 7),
    "command_max_attempts": ("2", "2", 2),
    "command_sweep_interval_seconds": ("0.25", "0.25", 0.25),
    "vault_keep_old_ciphertexts": ("0", "0", 0),
    "infra_wait_seconds": ("3", "3", 3),
    "metrics_token": ("m3trics-t0ken", '"m3trics-t0ken"', "m3trics-t0ken"),
    "unixsocket_dir": ("/run/botmox-bus", '"/run/botmox-bus"', Path("/run/botmox-bus")),
    "enabled_plugins": ("s3, minio", "", ("s3", "minio")),
    "disabled_plugins": ("rtdb", "", ("rtdb",)),
    "config_file": ("", "", None),  # BOTMOX_CONFIG names the file itself: tested below
}


def _expected(name: str, raw: str, value: object) -> object:
    return raw if value is None else value


def test_every_setting_has_a_sample() -> None:
    names = {field.name for field in setting_fields()}
    assert names == set(SAMPLES), "give the new setting an environment variable and a sample"
    for field in setting_fields():
        assert field.metadata["env"], f"{field.name} has no environment variable"


@pytest.mark.parametrize("name", sorted(set(SAMPLES) - {"config_file"}))
def test_every_setting_is_set_by_its_environment_variables(name: str) -> None:
    raw, _, value = SAMPLES[name]
    field = attrs.fields_dict(Settings)[name]
    for variable in field.metadata["env"]:
        settings = load_settings({variable: raw})
        assert getattr(settings, name) == _expected(name, raw, value), variable
        assert settings.origin(name) == Origin("env", variable)
    assert load_settings({}).origin(name) == Origin("default")


@pytest.mark.parametrize("name", sorted(set(SAMPLES) - ENVIRONMENT_ONLY))
def test_every_setting_is_set_by_the_toml_file(tmp_path: Path, name: str) -> None:
    raw, toml, value = SAMPLES[name]
    path = tmp_path / "botmox.toml"
    path.write_text(f"{name} = {toml}\n")
    settings = load_settings({}, config_file=path)
    assert getattr(settings, name) == _expected(name, raw, value)
    assert settings.origin(name) == Origin("file", str(path))
    # the same under a [botmox] table
    path.write_text(f"[botmox]\n{name} = {toml}\n")
    assert getattr(load_settings({}, config_file=path), name) == _expected(name, raw, value)


@pytest.mark.parametrize("name", sorted(ENVIRONMENT_ONLY - {"config_file"}))
def test_environment_only_settings_are_refused_in_the_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / "botmox.toml"
    path.write_text(f'{name} = "s3"\n')
    variable = attrs.fields_dict(Settings)[name].metadata["env"][0]
    with pytest.raises(ConfigurationError, match=f"{name} in .* cannot be set in the config file"):
        load_settings({}, config_file=path)
    with pytest.raises(ConfigurationError, match=variable):
        load_settings({}, config_file=path)


def test_config_file_origin_names_the_variable_or_the_option(tmp_path: Path) -> None:
    path = tmp_path / "botmox.toml"
    path.write_text("port = 9000\n")
    from_env = load_settings({"BOTMOX_CONFIG": str(path)})
    assert from_env.config_file == path and from_env.origin("config_file") == Origin(
        "env", "BOTMOX_CONFIG"
    )
    from_option = load_settings({"BOTMOX_CONFIG": "/nonexistent.toml"}, config_file=path)
    assert from_option.config_file == path
    assert from_option.origin("config_file") == Origin("option")


@pytest.mark.parametrize("name", sorted(set(SAMPLES) - ENVIRONMENT_ONLY))
def test_environment_wins_over_the_file_which_wins_over_the_default(
    tmp_path: Path, name: str
) -> None:
    raw, _, value = SAMPLES[name]
    default = attrs.fields_dict(Settings)[name].default
    path = tmp_path / "botmox.toml"
    path.write_text(f"{name} = {_OTHER[name]}\n")
    variable = attrs.fields_dict(Settings)[name].metadata["env"][-1]
    settings = load_settings({variable: raw}, config_file=path)
    assert getattr(settings, name) == _expected(name, raw, value)
    assert settings.origin(name) == Origin("env", variable)
    from_file = load_settings({}, config_file=path)
    assert getattr(from_file, name) != getattr(settings, name)
    assert from_file.origin(name) == Origin("file", str(path))
    assert getattr(load_settings({}), name) == default


#: A second valid value (as the TOML file spells it) per setting, different from SAMPLES.
_OTHER: dict[str, str] = {
    "data_dir": '"/b"',
    "data_backend": '"rtdb"',
    "storage": '"minio"',
    "host": '"::1"',
    "port": "9002",
    "public_url": '"http://b"',
    "lease_ttl_seconds": "61",
    "download_url_ttl_seconds": "61",
    "jwt_secret": '"b"',
    "jwks_url": '"http://b"',
    "jwt_issuer": '"b"',
    "jwt_audience": '"b"',
    "max_upload_bytes": "2",
    "log_format": '"text"',
    "rate_limit_enabled": "true",
    "rate_limit_requests": "2",
    "rate_limit_address_requests": "2",
    "rate_limit_window_seconds": "2",
    "rate_limit_trusted_proxies": '["::1"]',
    "rate_limit_store": '"memory"',
    "lease_signing_key_file": '"/b.pem"',
    "agent_transport": '"inprocess"',
    "agent_offline_seconds": "2",
    "agent_token_ttl_days": "2",
    "command_ack_timeout_seconds": "2",
    "command_max_attempts": "9",
    "vault_keep_old_ciphertexts": "5",
    "infra_wait_seconds": "4",
    "command_sweep_interval_seconds": "2.5",
    "metrics_token": '"b"',
    "unixsocket_dir": '"/b-bus"',
}


def test_command_line_options_win_over_the_environment() -> None:
    settings = load_settings({"BOTMOX_PORT": "9001"}, port=9100)
    assert settings.port == 9100 and settings.origin("port") == Origin("option")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"BOTMOX_AGENT_OFFLINE_SECONDS": "0"},
            r"agent_offline_seconds must be at least 1, got 0 \(from the environment variable "
            r"BOTMOX_AGENT_OFFLINE_SECONDS\)",
        ),
        ({"BOTMOX_AGENT_TOKEN_TTL_DAYS": "soon"}, "BOTMOX_AGENT_TOKEN_TTL_DAYS='soon' is not an"),
        ({"BOTMOX_COMMAND_ACK_TIMEOUT_SECONDS": "-5"}, "command_ack_timeout_seconds must be at"),
        ({"BOTMOX_COMMAND_MAX_ATTEMPTS": "2.5"}, "BOTMOX_COMMAND_MAX_ATTEMPTS='2.5' is not an"),
        (
            {"BOTMOX_COMMAND_SWEEP_INTERVAL_SECONDS": "0.001"},
            "between 0.05 and 3600 seconds .*BOTMOX_COMMAND_SWEEP_INTERVAL_SECONDS",
        ),
        ({"BOTMOX_COMMAND_SWEEP_INTERVAL_SECONDS": "fast"}, "'fast' is not a number"),
        ({"BOTMOX_PORT": "70000"}, r"port must be between 1 and 65535.*BOTMOX_PORT"),
        ({"BOTMOX_MAX_UPLOAD_BYTES": "0"}, "max_upload_bytes must be at least 1"),
        ({"BOTMOX_RATE_LIMIT_ENABLED": "maybe"}, "boolean.*BOTMOX_RATE_LIMIT_ENABLED"),
        ({"BOTMOX_RATE_LIMIT_TRUSTED_PROXIES": "10.0.0.x"}, "not an IP address.*TRUSTED_PROXIES"),
    ],
)
def test_bad_values_name_the_setting_and_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        load_settings(env)
    if "must be" in caught.value.message:
        assert caught.value.details["source"] == "env"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("agent_offline_seconds = 0", r"agent_offline_seconds must be at least 1, got 0 \(from "
         r"agent_offline_seconds in .*botmox.toml\)"),
        ('command_max_attempts = "5"', "command_max_attempts in .* must be an integer, got '5'"),
        ("command_sweep_interval_seconds = 7200", "between 0.05 and 3600 seconds"),
        ("lease_signing_key_file = 5", "lease_signing_key_file in .* must be a path string"),
        ("rate_limit_requests = 0", r"rate_limit_requests must be at least 1.*\(from "
         r"rate_limit_requests in"),
    ],
)  # fmt: skip
def test_bad_file_values_name_the_key_and_the_file(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "botmox.toml"
    path.write_text(body + "\n")
    with pytest.raises(ConfigurationError, match=message):
        load_settings({}, config_file=path)


def test_a_secret_is_never_echoed_in_an_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({"BOTMOX_JWT_SECRET": "hunter2", "BOTMOX_PORT": "x"})
    assert "hunter2" not in str(caught.value)


# -- plugin options and the variables other tools set ---------------------------------------


def test_plugin_options_fall_back_to_the_services_own_variables(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql://a/b", "SUPABASE_DB_URL": "postgresql://c/d"}
    options = load_settings(env).plugin_option_origins("supabase")
    assert options["database_url"] == ("postgresql://c/d", Origin("env", "SUPABASE_DB_URL"))
    env["BOTMOX_SUPABASE_DATABASE_URL"] = "postgresql://e/f"
    assert load_settings(env).plugin_options("supabase")["database_url"] == "postgresql://e/f"
    path = tmp_path / "botmox.toml"
    path.write_text('[plugins.supabase]\ndatabase_url = "postgresql://g/h"\n')
    from_file = load_settings({"DATABASE_URL": "postgresql://a/b"}, config_file=path)
    assert from_file.plugin_option_origins("supabase")["database_url"] == (
        "postgresql://g/h",
        Origin("file", str(path)),
    )
    rtdb = load_settings({"FIREBASE_DATABASE_EMULATOR_HOST": "127.0.0.1:9000"})
    assert rtdb.plugin_options("rtdb") == {"emulator_host": "127.0.0.1:9000"}


def test_a_setting_variable_under_a_plugin_prefix_is_not_a_plugin_option(tmp_path: Path) -> None:
    path = tmp_path / "botmox.toml"
    path.write_text('[plugins.unixsocket]\ndir = "/from/file"\nmode = "x"\n')
    env = {"BOTMOX_UNIXSOCKET_DIR": "/from/env", "BOTMOX_UNIXSOCKET_OTHER": "y"}
    settings = load_settings(env, config_file=path)
    assert settings.unixsocket_dir == Path("/from/env")
    assert settings.origin("unixsocket_dir") == Origin("env", "BOTMOX_UNIXSOCKET_DIR")
    assert settings.plugin_options("unixsocket") == {"dir": "/from/file", "mode": "x", "other": "y"}


# -- the composition root runs with what Settings says -------------------------------------------


def test_bootstrap_takes_agent_and_command_settings_from_the_file(tmp_path: Path) -> None:
    from botmox_core.bootstrap import bootstrap

    path = tmp_path / "botmox.toml"
    key = tmp_path / "keys" / "lease.pem"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\nlease_signing_key_file = "{key}"\n'
        "agent_offline_seconds = 45\ncommand_ack_timeout_seconds = 7\n"
        "command_max_attempts = 2\ncommand_sweep_interval_seconds = 0.25\n"
        'agent_transport = "inprocess"\n'
    )
    app = bootstrap(load_settings({"BOTMOX_PLUGINS": "none"}, config_file=path))
    try:
        assert app.agents.offline_after == timedelta(seconds=45)
        assert app.commands.ack_timeout == timedelta(seconds=7)
        assert app.commands.max_attempts == 2
        assert app.command_sweep_interval == 0.25
        assert key.is_file()
        assert not (tmp_path / "data" / "lease-signing.pem").exists()
    finally:
        app.close()


def test_a_fresh_lease_key_on_a_shared_backend_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from botmox_core.bootstrap import load_signer

    caplog.set_level(logging.WARNING, logger="botmox.config")
    shared = load_settings({"BOTMOX_DATA_DIR": str(tmp_path / "a"), "DATA_BACKEND": "supabase"})
    load_signer(shared)
    assert "BOTMOX_LEASE_SIGNING_KEY_FILE" in caplog.text
    assert str(shared.lease_signing_key_path) in caplog.text
    caplog.clear()
    load_signer(shared)  # the key exists now: replicas given this file share it
    load_signer(load_settings({"BOTMOX_DATA_DIR": str(tmp_path / "b")}))  # embedded SQLite
    assert caplog.text == ""


# -- the documented table is the code's --------------------------------------------------------


def test_the_quickstart_table_documents_every_setting() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "quickstart.md").read_text()
    section = page[page.index("## Configuration") : page.index("## Logs")]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    variables = {v for row in rows for v in re.findall(r"`([A-Z_]+)`", row.split("|")[1])}
    keys = {k for row in rows for k in re.findall(r"`([a-z_]+)`", row.split("|")[2])}
    for field in setting_fields():
        assert set(field.metadata["env"]) <= variables, f"{field.name}'s variable is undocumented"
        if field.name not in ENVIRONMENT_ONLY:
            assert field.name in keys, f"TOML key {field.name} is undocumented"
    documented = {v for field in setting_fields() for v in field.metadata["env"]}
    assert variables == documented, "the table names a variable that is no setting"
    assert keys == {f.name for f in setting_fields()} - ENVIRONMENT_ONLY


def test_a_fresh_url_key_for_a_storage_that_cannot_presign_on_a_shared_backend_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from botmox_core.backends.localfs import LocalFsStorage
    from botmox_core.bootstrap import deliverable_storage
    from botmox_core.ports import StorageCapabilities

    class Plain(LocalFsStorage):
        capabilities = StorageCapabilities(presign=False)

    def storage() -> Plain:
        return Plain(tmp_path / "o", base_url="http://127.0.0.1:9", url_key=b"k" * 32)

    caplog.set_level(logging.WARNING, logger="botmox.config")
    shared = load_settings({"BOTMOX_DATA_DIR": str(tmp_path / "a"), "DATA_BACKEND": "supabase"})
    deliverable_storage(storage(), shared).close()
    assert "BOTMOX_LOCALFS_URL_KEY" in caplog.text and "localfs-url.key" in caplog.text
    caplog.clear()
    deliverable_storage(storage(), shared).close()  # the file exists now
    given = load_settings({**shared.environ, "BOTMOX_LOCALFS_URL_KEY": "cd" * 32})
    deliverable_storage(storage(), given).close()
    embedded = load_settings({"BOTMOX_DATA_DIR": str(tmp_path / "b")})
    deliverable_storage(storage(), embedded).close()
    assert caplog.text == ""
