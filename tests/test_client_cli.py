"""``botmox runner fetch`` against the scripted loopback server (in-process and as a process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from botmox_core.cli.runner import runner_group
from botmox_core.client import AsyncRunnerClient, RunnerClient
from botmox_core.errors import ConfigurationError
from tests.test_client_servers import API_TOKEN, FILE_PATH, ScriptedBotmoxServer, botmox_server

__all__ = ["botmox_server"]

VM = "vm-cli-0123456789"


def test_fetch_json_output_has_no_secrets(
    botmox_server: ScriptedBotmoxServer, tmp_path: Path
) -> None:
    dest = tmp_path / "farm-bot.bin"
    result = CliRunner().invoke(
        runner_group,
        [
            "fetch",
            "--server",
            botmox_server.url,
            "--module",
            "farm-bot",
            "--platform",
            "win64",
            "--dest",
            str(dest),
            "--vm-uuid",
            VM,
            "--json",
        ],
        env={"BOTMOX_TOKEN": API_TOKEN},
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed == {
        "path": str(dest),
        "sha256": botmox_server.sha256,
        "size_bytes": len(botmox_server.payload),
        "release_id": 7,
        "version": "1.2.3",
        "lease_id": printed["lease_id"],
        "vm_uuid": VM,
        "up_to_date": False,
    }
    assert printed["lease_id"].startswith("lease_")
    assert dest.read_bytes() == botmox_server.payload
    for token in botmox_server.valid_tokens:
        assert token not in result.output
    assert botmox_server.requests_to("/api/v1/license/lease")[0].body["vm_uuid"] == VM


def test_fetch_error_is_one_line_with_code(
    botmox_server: ScriptedBotmoxServer, tmp_path: Path
) -> None:
    botmox_server.fail_api(
        "/api/v1/license/lease",
        403,
        {"success": False, "error": {"code": "ENTITLEMENT_REQUIRED", "message": "no entitlement"}},
    )
    result = CliRunner().invoke(
        runner_group,
        [
            "fetch",
            "--server",
            botmox_server.url,
            "--token",
            API_TOKEN,
            "--module",
            "farm-bot",
            "--platform",
            "win64",
            "--dest",
            str(tmp_path / "x"),
            "--vm-uuid",
            VM,
        ],
    )
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: ENTITLEMENT_REQUIRED: no entitlement"
    assert result.stdout == ""
    assert not (tmp_path / "x").exists()


def test_fetch_as_a_process_resumes_after_a_cut(
    botmox_server: ScriptedBotmoxServer, tmp_path: Path
) -> None:
    """The installed console entry point, with fault injection: the first transfer is cut."""
    botmox_server.file_faults.append({"cut_after": 1024 * 1024 + 1})
    dest = tmp_path / "farm-bot.bin"
    env = {**os.environ, "BOTMOX_TOKEN": API_TOKEN, "BOTMOX_VM_UUID": VM}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from botmox_core.cli import main; main()",
            "runner",
            "fetch",
            "--server",
            botmox_server.url,
            "--module",
            "farm-bot",
            "--platform",
            "win64",
            "--dest",
            str(dest),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"{dest}: farm-bot 1.2.3 (release 7)" in done.stdout
    assert dest.read_bytes() == botmox_server.payload
    gets = botmox_server.requests_to(FILE_PATH)
    # the second run resumes from every byte the cut transfer delivered
    assert [g.headers.get("range") for g in gets] == [None, "bytes=1048577-"]
    assert API_TOKEN not in done.stdout + done.stderr


def test_fetch_unreachable_server_exits_non_zero(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = CliRunner().invoke(
        runner_group,
        [
            "fetch",
            "--server",
            f"http://127.0.0.1:{port}",
            "--token",
            API_TOKEN,
            "--module",
            "m",
            "--platform",
            "p",
            "--dest",
            str(tmp_path / "x"),
            "--vm-uuid",
            VM,
            "--retries",
            "0",
        ],
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: NETWORK_ERROR: ")


def test_progress_bar_is_drawn_on_a_terminal(
    botmox_server: ScriptedBotmoxServer, tmp_path: Path
) -> None:
    """stderr is a real pseudo-terminal here, so the rich bar is drawn there (not on stdout)."""
    import pty

    dest = tmp_path / "farm-bot.bin"
    main_fd, terminal_fd = pty.openpty()
    env = {**os.environ, "BOTMOX_TOKEN": API_TOKEN, "BOTMOX_VM_UUID": VM, "COLUMNS": "100"}
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "botmox_core",
                "runner",
                "fetch",
                "--server",
                botmox_server.url,
                "--module",
                "farm-bot",
                "--platform",
                "win64",
                "--dest",
                str(dest),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=terminal_fd,
            timeout=120,
            check=False,
        )
        os.close(terminal_fd)
        drawn = b""
        while True:
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(main_fd)
    assert done.returncode == 0
    assert b"farm-bot" in drawn and b"MB" in drawn  # the bar with its byte counter
    assert b"\x1b[" not in done.stdout  # stdout stays plain
    assert dest.read_bytes() == botmox_server.payload


def fetch_args(server_url: str, dest: Path, *extra: str) -> list[str]:
    return [
        "fetch",
        "--server",
        server_url,
        "--module",
        "farm-bot",
        "--platform",
        "win64",
        "--dest",
        str(dest),
        "--vm-uuid",
        VM,
        *extra,
    ]


def test_fetch_skips_a_destination_that_already_holds_the_release(
    botmox_server: ScriptedBotmoxServer, tmp_path: Path
) -> None:
    dest = tmp_path / "farm-bot.bin"
    env = {"BOTMOX_TOKEN": API_TOKEN}
    first = CliRunner().invoke(runner_group, fetch_args(botmox_server.url, dest), env=env)
    assert first.exit_code == 0, first.output
    assert "already up to date" not in first.stdout
    assert len(botmox_server.requests_to(FILE_PATH)) == 1
    again = CliRunner().invoke(runner_group, fetch_args(botmox_server.url, dest), env=env)
    assert again.exit_code == 0, again.output
    assert f"{dest}: already up to date, farm-bot 1.2.3 (release 7)" in again.stdout
    as_json = CliRunner().invoke(
        runner_group, fetch_args(botmox_server.url, dest, "--json"), env=env
    )
    assert json.loads(as_json.stdout)["up_to_date"] is True
    # Still leased and resolved every time (the licence gate holds), but no second transfer.
    assert len(botmox_server.requests_to("/api/v1/license/lease")) == 3
    assert len(botmox_server.requests_to("/api/v1/artifacts/resolve-download")) == 3
    assert len(botmox_server.requests_to(FILE_PATH)) == 1
    # A destination with other bytes of the same size is replaced by the verified release.
    dest.write_bytes(b"x" * len(botmox_server.payload))
    replaced = CliRunner().invoke(
        runner_group, fetch_args(botmox_server.url, dest, "--json"), env=env
    )
    assert json.loads(replaced.stdout)["up_to_date"] is False
    assert dest.read_bytes() == botmox_server.payload
    assert len(botmox_server.requests_to(FILE_PATH)) == 2


@pytest.mark.parametrize(
    ("server", "token", "message"),
    [
        ("127.0.0.1:8000", API_TOKEN, "server URL '127.0.0.1:8000' must start with http://"),
        ("botmox.example.com", API_TOKEN, "must start with http:// or https://"),
        ("ftp://botmox.example.com", API_TOKEN, "must start with http:// or https://"),
        ("http://", API_TOKEN, "name a host"),
        ("http://127.0.0.1:9", "", "the API token is empty"),
        ("http://127.0.0.1:9", "   ", "the API token is empty"),
        ("http://127.0.0.1:9", "bmx_abc\n", "control or non-ASCII"),
        ("http://127.0.0.1:9", "bmx_\u00e9t\u00e9", "control or non-ASCII"),
    ],
)
def test_bad_server_url_or_token_is_a_clear_error_without_retries(
    tmp_path: Path, server: str, token: str, message: str
) -> None:
    started = time.monotonic()
    result = CliRunner().invoke(
        runner_group,
        ["fetch", "--server", server, "--token", token, "--module", "m", "--platform", "p",
         "--dest", str(tmp_path / "x"), "--vm-uuid", VM],
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.startswith("error: CONFIGURATION_ERROR: ")
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert time.monotonic() - started < 5  # refused up front, not retried as a network error


def test_client_constructors_check_url_and_token() -> None:
    for client_class in (RunnerClient, AsyncRunnerClient):
        with pytest.raises(ConfigurationError, match="http:// or https://"):
            client_class("localhost:8000", API_TOKEN)
        with pytest.raises(ConfigurationError, match="empty"):
            client_class("http://127.0.0.1:8000", "")
