"""``botmox runner fetch`` against the scripted loopback server (in-process and as a process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from botmox_core.cli.runner import runner_group
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
    assert [g.headers.get("range") for g in gets] == [None, "bytes=1048576-"]
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
