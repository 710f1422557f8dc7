"""``botmox admin``: the data directory is never created by accident, location options work after
the subcommand, and bad operator input (past expiries, unknown modules) is refused or warned about
without a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from botmox_core.bootstrap import bootstrap
from botmox_core.cli.admin import admin_group, missing_data
from botmox_core.config import load_settings

TOKEN_CREATE = ["token", "create", "--tenant", "acme", "--role", "api", "--user", "alice"]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("BOTMOX_DATA_DIR", "BOTMOX_CONFIG", "DATA_BACKEND", "BOTMOX_DATA_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTMOX_PLUGINS", "none")
    return tmp_path


def run(*args: str) -> Result:
    return CliRunner().invoke(admin_group, list(args))


def assert_clean_failure(result: Result, *needles: str) -> None:
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output


def test_absent_default_data_dir_is_refused_and_not_created(workdir: Path) -> None:
    result = run(*TOKEN_CREATE)
    assert_clean_failure(result, "no botmox database", str(workdir / ".botmox"), "--init")
    assert not (workdir / ".botmox").exists()


def test_misspelt_data_dir_after_the_subcommand_is_refused(workdir: Path) -> None:
    assert run("--init", *TOKEN_CREATE).exit_code == 0
    result = run(*TOKEN_CREATE, "--data-dir", ".botmxo")
    assert_clean_failure(result, str(workdir / ".botmxo"))
    assert not (workdir / ".botmxo").exists()


def test_init_creates_and_data_dir_after_subcommand_is_used(workdir: Path) -> None:
    (workdir / "elsewhere").mkdir()
    target = workdir / "srv"
    created = run(*TOKEN_CREATE, "--json", "--data-dir", str(target), "--init")
    assert created.exit_code == 0, created.output
    token = json.loads(created.stdout)["token"]
    assert not (workdir / ".botmox").exists()
    # The token lives in the directory named after the subcommand, where a server would look.
    core = bootstrap(load_settings({"BOTMOX_DATA_DIR": str(target), "BOTMOX_PLUGINS": "none"}))
    try:
        assert core.tokens.authenticate(token).user_id == "alice"
    finally:
        core.close()
    # Before the subcommand works the same, and an existing directory needs no --init.
    again = run("--data-dir", str(target), *TOKEN_CREATE)
    assert again.exit_code == 0, again.output
    # After the subcommand wins over before it.
    both = run("--data-dir", str(workdir / "nope"), *TOKEN_CREATE, "--data-dir", str(target))
    assert both.exit_code == 0, both.output


def test_data_dir_check_applies_only_where_data_lives(tmp_path: Path) -> None:
    absent = str(tmp_path / "absent")
    embedded = load_settings({"BOTMOX_DATA_DIR": absent})
    assert missing_data(embedded) is not None
    remote = {"BOTMOX_DATA_DIR": absent, "DATA_BACKEND": "supabase", "BOTMOX_STORAGE": "s3"}
    assert missing_data(load_settings(remote)) is None
    assert missing_data(load_settings({**remote, "DATA_BACKEND": "rtdb"})) is None
    # Local objects and their URL key live in the data dir even with a remote database.
    assert missing_data(load_settings({**remote, "BOTMOX_STORAGE": "localfs"})) is not None
    # An explicit SQLite path is what counts, wherever the data dir points.
    database = tmp_path / "db" / "botmox.sqlite3"
    explicit = {**remote, "DATA_BACKEND": "sqlite", "BOTMOX_SQLITE_PATH": str(database)}
    assert "no botmox database" in (missing_data(load_settings(explicit)) or "")
    database.parent.mkdir()
    database.write_bytes(b"")
    assert missing_data(load_settings(explicit)) is None


@pytest.mark.parametrize(
    "args",
    [
        [*TOKEN_CREATE, "--expires-at", "2020-01-01T00:00:00Z"],
        ["license", "set", "--tenant", "acme", "--status", "active", "--expires-at", "2020-01-01"],
    ],
    ids=["token", "licence"],
)
def test_expiry_in_the_past_is_refused(workdir: Path, args: list[str]) -> None:
    assert run("--init", "audit", "--tenant", "acme").exit_code == 0
    result = run(*args, "--json")
    assert_clean_failure(result, "BAD_REQUEST", "--expires-at", "is not in the future")
    assert result.stdout == ""


def test_entitlement_for_a_module_without_release_warns(workdir: Path, tmp_path: Path) -> None:
    entitle = ["entitlement", "set", "--tenant", "acme", "--user", "alice"]
    warned = run("--init", *entitle, "--module", "farm-btо", "--json")  # Cyrillic о: refused
    assert_clean_failure(warned, "BAD_REQUEST")
    warned = run(*entitle, "--module", "farm-bto", "--module", "*", "--json")
    assert warned.exit_code == 0, warned.output
    assert sorted(json.loads(warned.stdout)["modules"]) == ["*", "farm-bto"]
    assert "warning: tenant acme has no release of farm-bto" in warned.stderr
    artifact = tmp_path / "farm-bot.bin"
    artifact.write_bytes(b"bot" * 100)
    published = run(
        "release", "publish", str(artifact), "--tenant", "acme", "--module", "farm-bot",
        "--platform", "win64", "--version", "1.0.0", "--json",
    )  # fmt: skip
    assert published.exit_code == 0, published.output
    quiet = run(*entitle, "--module", "farm-bot")
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr
