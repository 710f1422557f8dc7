"""The ``botmox`` console entry point as an operator meets it: missing extras and bad URLs give
one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Runs the real console entry point with ``websockets`` unimportable, as on an install without
#: the ``agent`` extra (a ``None`` entry in ``sys.modules`` makes ``import`` fail the same way).
WITHOUT_AGENT_EXTRA = (
    "import sys; sys.modules['websockets'] = None; "
    "from botmox_core.cli import main; sys.argv[0] = 'botmox'; main()"
)


def botmox(
    *args: str, code: str = "from botmox_core.cli import main; main()"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**os.environ, "BOTMOX_AGENT_STATE": os.devnull},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["agent", "pair", "--server", "http://127.0.0.1:9", "--code", "PAIR-CODE"],
        ["agent", "run", "--app", "examples/agent.py:agent"],
    ],
    ids=["pair", "run"],
)
def test_missing_agent_extra_gives_an_install_hint(args: list[str]) -> None:
    done = botmox(*args, code=WITHOUT_AGENT_EXTRA)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "Error: the agent runtime is not installed (websockets is missing); "
        "pip install 'botmox[agent]'"
    )
    assert "Traceback" not in done.stderr


def test_agent_pair_refuses_a_server_url_without_scheme(tmp_path: Path) -> None:
    done = botmox(
        "agent", "pair", "--server", "botmox.example.com:8000", "--code", "PAIR-CODE",
        "--state", str(tmp_path / "agent.json"),
    )  # fmt: skip
    assert done.returncode == 1
    assert "CONFIGURATION_ERROR: server URL 'botmox.example.com:8000' must start with" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "agent.json").exists()


@pytest.mark.parametrize("command", [["serve"], ["admin", "audit", "--tenant", "acme"]])
def test_non_integer_port_in_the_config_file_is_a_clear_error(
    tmp_path: Path, command: list[str]
) -> None:
    config = tmp_path / "botmox.toml"
    config.write_text('port = "8080x"\n')
    done = botmox(*command, "--config", str(config))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"Error: CONFIGURATION_ERROR: port in {config} must be an integer, got '8080x'"
    )
