"""Configuration of the ``supabase`` backend and its plugin registration (no database needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from botmox_supabase.options import SupabaseOptions, redact_database_url

from botmox_core.config import load_settings
from botmox_core.errors import ConfigurationError
from botmox_core.plugin import load_registry

URL = "postgresql://postgres.abcd:s3cr3t-pw@aws-0-eu-central-1.pooler.supabase.com:6543/postgres"


def options(environ: dict[str, str]) -> SupabaseOptions:
    return SupabaseOptions.from_settings(load_settings(environ=environ))


def test_reads_the_plugin_options() -> None:
    got = options(
        {
            "BOTMOX_SUPABASE_DATABASE_URL": URL,
            "BOTMOX_SUPABASE_POOL_MIN_SIZE": "0",
            "BOTMOX_SUPABASE_POOL_MAX_SIZE": "20",
            "BOTMOX_SUPABASE_POOL_TIMEOUT": "2.5",
            "BOTMOX_SUPABASE_ROLE": "service_role",
            "BOTMOX_SUPABASE_URL": "https://abcd.supabase.co",
            "BOTMOX_SUPABASE_ANON_KEY": "anon-key-value",
            "BOTMOX_SUPABASE_SERVICE_ROLE_KEY": "service-key-value",
        }
    )
    assert (got.database_url, got.pool_min_size, got.pool_max_size) == (URL, 0, 20)
    assert (got.pool_timeout, got.role, got.url) == (
        2.5,
        "service_role",
        "https://abcd.supabase.co",
    )
    assert (got.anon_key, got.service_role_key) == ("anon-key-value", "service-key-value")


def test_reads_the_toml_table(tmp_path: Path) -> None:
    config = tmp_path / "botmox.toml"
    config.write_text(f'[plugins.supabase]\ndatabase_url = "{URL}"\npool_max_size = 3\n')
    got = SupabaseOptions.from_settings(load_settings(environ={}, config_file=config))
    assert (got.database_url, got.pool_max_size) == (URL, 3)


@pytest.mark.parametrize("name", ["SUPABASE_DB_URL", "DATABASE_URL"])
def test_falls_back_on_common_variables(name: str) -> None:
    assert options({name: URL}).database_url == URL


def test_plugin_variable_wins_over_fallbacks() -> None:
    other = URL.replace("6543", "5432")
    got = options({"BOTMOX_SUPABASE_DATABASE_URL": URL, "DATABASE_URL": other})
    assert got.database_url == URL


def test_missing_url_is_a_clear_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="BOTMOX_SUPABASE_DATABASE_URL"):
        options({})


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root:s3cr3t-pw@localhost/db",
        "postgresql://user:s3cr3t-pw@:5432/db",
        "postgresql://user:s3cr3t-pw@host:99999/db",
        "s3cr3t-pw",
    ],
)
def test_malformed_url_is_refused_without_echoing_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        options({"BOTMOX_SUPABASE_DATABASE_URL": url})
    assert "s3cr3t-pw" not in caught.value.message
    assert "s3cr3t-pw" not in repr(caught.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("POOL_MAX_SIZE", "0"),
        ("POOL_MAX_SIZE", "many"),
        ("POOL_MIN_SIZE", "-1"),
        ("POOL_TIMEOUT", "0"),
        ("CONNECT_TIMEOUT", "soon"),
        ("ROLE", "service_role; drop table x"),
        ("POOLER_MODE", "statement"),
    ],
)
def test_bad_numbers_and_roles_are_refused(key: str, value: str) -> None:
    with pytest.raises(ConfigurationError):
        options({"BOTMOX_SUPABASE_DATABASE_URL": URL, f"BOTMOX_SUPABASE_{key}": value})


@pytest.mark.parametrize(
    ("value", "mode", "keeps_session"),
    [
        (None, "transaction", False),
        ("transaction", "transaction", False),
        ("Session", "session", True),
    ],
)
def test_pooler_mode(value: str | None, mode: str, keeps_session: bool) -> None:
    """``transaction`` unless told: safe behind any pooler (no server-side prepared
    statements); ``session`` for a direct connection or a session-mode pooler."""
    environ = {"BOTMOX_SUPABASE_DATABASE_URL": URL}
    if value is not None:
        environ["BOTMOX_SUPABASE_POOLER_MODE"] = value
    got = options(environ)
    assert (got.pooler_mode, got.keeps_session) == (mode, keeps_session)


def test_min_above_max_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="exceeds"):
        options(
            {
                "BOTMOX_SUPABASE_DATABASE_URL": URL,
                "BOTMOX_SUPABASE_POOL_MIN_SIZE": "5",
                "BOTMOX_SUPABASE_POOL_MAX_SIZE": "2",
            }
        )


def test_secrets_never_appear_in_repr() -> None:
    got = options(
        {
            "BOTMOX_SUPABASE_DATABASE_URL": URL,
            "BOTMOX_SUPABASE_ANON_KEY": "anon-key-value",
            "BOTMOX_SUPABASE_SERVICE_ROLE_KEY": "service-key-value",
        }
    )
    text = repr(got)
    assert "s3cr3t-pw" not in text and "key-value" not in text
    assert "postgres.abcd:***@aws-0-eu-central-1.pooler.supabase.com:6543" in text


def test_redaction() -> None:
    assert redact_database_url(URL).count("***") == 1
    assert redact_database_url("postgresql://host/db") == "postgresql://host/db"


def test_plugin_registers_backend_and_commands() -> None:
    registry = load_registry({})
    assert "supabase" in registry.data_backends.factories
    import click

    from botmox_core.plugin.manager import register_commands

    group = click.Group()
    register_commands(registry.manager, group)
    assert "migrate" in group.commands["db"].commands  # type: ignore[attr-defined]


def test_factory_builds_the_backend_without_connecting() -> None:
    """The pool opens in the background: building with an unreachable database works, and
    health then says why (no password in it)."""
    registry = load_registry({})
    settings = load_settings(
        environ={
            "DATA_BACKEND": "supabase",
            "BOTMOX_SUPABASE_DATABASE_URL": "postgresql://u:s3cr3t-pw@127.0.0.1:1/db",
            "BOTMOX_SUPABASE_POOL_TIMEOUT": "0.5",
            "BOTMOX_SUPABASE_CONNECT_TIMEOUT": "1",
        }
    )
    backend = registry.data_backends.get("supabase")(settings)
    try:
        assert backend.name == "supabase"
        report = backend.check_health()
        assert not report.ok and report.detail is not None
        assert "s3cr3t-pw" not in report.detail
        assert report.detail.startswith("SERVICE_UNAVAILABLE")
    finally:
        backend.close()
        backend.close()
