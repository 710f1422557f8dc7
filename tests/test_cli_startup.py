"""The CLI starts fast: a runner command imports neither the server nor any data-backend plugin
(``botmox runner fetch --help`` within 150 ms of CPU with every plugin installed), while
plugin commands (``botmox db``) and ``botmox --help`` still see every plugin."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from importlib.metadata import entry_points

import pytest

#: Modules a runner command must not import: the server, the composition root and backends,
#: and every plugin with the SDK it wraps.
HEAVY = (
    "botmox_server",
    "botmox_core.bootstrap",
    "botmox_core.backends",
    "botmox_supabase",
    "botmox_rtdb",
    "botmox_s3",
    "botmox_minio",
    "psycopg",
    "firebase_admin",
    "boto3",
    "litestar",
    "uvicorn",
)
STARTUP_CPU_SECONDS = 0.150

PROBE = """
import json, sys
from botmox_core.cli import main
try:
    main({args!r})
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("\\n@@" + json.dumps({{"code": code, "modules": sorted(sys.modules)}}))
"""


def _probe(*args: str) -> tuple[int, list[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=list(args))],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BOTMOX_PLUGINS": "", "BOTMOX_DISABLE_PLUGINS": ""},
    )
    output, _, report = done.stdout.rpartition("\n@@")
    found = json.loads(report)
    return found["code"], found["modules"], output


def _installed_plugins() -> set[str]:
    return {ep.name for ep in entry_points(group="botmox")}


def test_every_plugin_is_installed_here() -> None:
    """The figures below mean something only with the plugins present."""
    if os.environ.get("CI") != "true" and not {"supabase", "rtdb", "s3"} <= _installed_plugins():
        pytest.skip("the plugins are not installed in this environment")
    assert {"supabase", "rtdb", "s3", "minio"} <= _installed_plugins()


@pytest.mark.parametrize(
    "args",
    [("runner", "fetch", "--help"), ("runner", "--help"), ("runner", "fetch")],
)
def test_a_runner_command_imports_no_server_and_no_plugin(args: tuple[str, ...]) -> None:
    code, modules, output = _probe(*args)
    assert code in (0, 2), output  # help, or click's usage error for missing options
    loaded = [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert loaded == []
    assert "httpx" not in modules  # the client is imported when a fetch runs
    if "--help" in args:
        assert "Usage: botmox runner" in output


def test_runner_fetch_help_starts_within_150_ms_of_cpu() -> None:
    """CPU time (user + system) of the whole process, median of five runs: wall time on a
    shared 2-core machine measures the neighbours, CPU time measures the start-up."""
    spent, walls = [], []
    for _ in range(5):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "botmox_core", "runner", "fetch", "--help"],
            capture_output=True,
            check=True,
            timeout=120,
        )
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        spent.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    cpu = statistics.median(spent)
    print(
        f"botmox runner fetch --help: {cpu * 1000:.0f} ms CPU, "
        f"{statistics.median(walls) * 1000:.0f} ms wall (median of 5)"
    )
    assert cpu < STARTUP_CPU_SECONDS


def test_plugin_commands_still_work() -> None:
    if "supabase" not in _installed_plugins():
        pytest.skip("botmox-supabase is not installed")
    code, modules, output = _probe("db", "--help")
    assert code == 0, output
    assert "migrate" in output
    assert "botmox_supabase" in modules


def test_top_level_help_lists_builtin_and_plugin_commands() -> None:
    code, _, output = _probe("--help")
    assert code == 0, output
    for name in ("serve", "admin", "runner", "agent", "cutover"):
        assert name in output
    if "supabase" in _installed_plugins():
        assert " db " in output or "\n  db" in output


def test_an_unknown_command_is_a_usage_error_after_the_plugins_were_asked() -> None:
    code, modules, _ = _probe("no-such-command")
    assert code == 2
    assert "botmox_core.plugin.manager" in modules
