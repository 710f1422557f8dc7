"""The image's entrypoint commands, run as the image runs them but without Docker (no engine can
run on these machines): the build stage's script makes the wheels, the runtime stage's script
installs them into a fresh virtual environment, and the Dockerfile's CMD and HEALTHCHECK run
with the runtime stage's ENV as a non-root user (a throwaway one made with useradd when the
tests run as root) on a loopback port; readiness answers and the server is stopped by PID.

What this cannot show: the image's base (python:3.11-slim-bookworm), BuildKit's bind mounts and
Docker's VOLUME/USER handling; hadolint checks the Dockerfile's form (nox -s deploy_lint)."""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from botmox_core.testing.server import free_port
from tests.deploy_support import ROOT

DOCKERFILE = ROOT / "Dockerfile"

# Building every wheel of the image from the index takes minutes on a cold pip cache.
pytestmark = pytest.mark.timeout(900)


def _instructions() -> list[tuple[str, str, str]]:
    """(stage, instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stage, result = "", []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage = rest.split(" AS ")[-1].strip() if " AS " in rest else rest
        result.append((stage, word, rest.strip()))
    return result


def runtime(word: str) -> list[str]:
    return [rest for stage, w, rest in _instructions() if stage == "runtime" and w == word]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in runtime("ENV"):
        for item in shlex.split(rest):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def default_plugins() -> list[str]:
    for _stage, word, rest in _instructions():
        if word == "ARG" and rest.startswith("BOTMOX_PLUGINS="):
            return shlex.split(rest.partition("=")[2])[0].split()
    raise AssertionError("no ARG BOTMOX_PLUGINS in the Dockerfile")


def _runnable_by_others(path: Path) -> bool:
    path = path.resolve()
    return all(part.stat().st_mode & stat.S_IXOTH for part in [path, *path.parents])


def _interpreter() -> str:
    """A Python 3.11+ a throwaway user can run (root's pyenv under /root is not)."""
    candidates = [
        Path(sys._base_executable),
        Path("/usr/local/bin/python3"),
        Path("/usr/bin/python3"),
    ]
    for candidate in candidates:
        if candidate.exists() and (os.geteuid() != 0 or _runnable_by_others(candidate)):
            done = subprocess.run(
                [str(candidate), "-c", "import sys, venv; print(sys.version_info >= (3, 11))"],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.stdout.strip() == "True":
                return str(candidate)
    pytest.fail("no Python 3.11+ that a non-root user can run (checked " + str(candidates) + ")")


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    """The wheels of the image's default plugins installed into a fresh venv, as the image does."""
    top = Path(tempfile.mkdtemp(prefix="botmox-image-"))
    top.chmod(0o755)
    try:
        python_dir = str(Path(sys.executable).parent)
        env = {**os.environ, "PATH": python_dir + os.pathsep + os.environ.get("PATH", "")}
        subprocess.run(
            ["sh", "deploy/image/build-wheels.sh", str(top / "wheels"), *default_plugins()],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=900,
        )
        subprocess.run(
            [
                "sh",
                "deploy/image/install-wheels.sh",
                str(top / "wheels"),
                str(top / "venv"),
                _interpreter(),
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=900,
        )
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def account() -> Iterator[tuple[int, int]]:
    """(uid, gid) to run as: a throwaway system user when root, else ourselves."""
    if os.geteuid() != 0:
        yield os.getuid(), os.getgid()
        return
    name = "bmxtest" + secrets.token_hex(4)
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
    )
    try:
        entry = pwd.getpwnam(name)
        yield entry.pw_uid, entry.pw_gid
    finally:
        subprocess.run(["userdel", name], check=False)


def test_dockerfile_runs_as_non_root_with_healthcheck_and_data_volume() -> None:
    stages = [rest for _stage, word, rest in _instructions() if word == "FROM"]
    assert [s.split(" AS ")[-1] for s in stages] == ["build", "runtime"]
    user = runtime("USER")[-1]
    assert re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", user), user
    assert "/api/v1/health/live" in runtime("HEALTHCHECK")[-1]
    env = image_env()
    assert json.loads(runtime("VOLUME")[-1]) == [env["BOTMOX_DATA_DIR"]]
    # The runtime stage copies nothing from the build context but the install script.
    assert runtime("COPY") == []


def test_entrypoint_as_non_root_user_is_ready(
    installed: Path, account: tuple[int, int], tmp_path: Path
) -> None:
    uid, gid = account
    data_dir = Path(tempfile.mkdtemp(prefix="botmox-data-", dir=installed))
    os.chown(data_dir, uid, gid)
    data_dir.chmod(0o750)
    port = free_port()
    env = image_env()
    env.update(
        PATH=env["PATH"]
        .replace("/opt/botmox", str(installed / "venv"))
        .replace("$PATH", "/usr/bin:/bin"),
        BOTMOX_DATA_DIR=str(data_dir),
        BOTMOX_HOST="127.0.0.1",  # the image listens on 0.0.0.0; here, loopback only
        BOTMOX_PORT=str(port),
        HOME=str(data_dir),
    )
    command = json.loads(runtime("CMD")[-1])
    health = json.loads(runtime("HEALTHCHECK")[-1].split(" CMD ", 1)[1])
    as_user = {"user": uid, "group": gid, "extra_groups": [], "cwd": data_dir, "env": env}

    shown = subprocess.run(
        ["botmox", "config", "show", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        **as_user,
    )
    settings = json.loads(shown.stdout)["settings"]
    assert settings["data_dir"]["origin"] == "BOTMOX_DATA_DIR"
    assert settings["log_format"] == {**settings["log_format"], "value": "json", "source": "env"}

    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **as_user)
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/api/v1/health/ready", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert ready is not None and ready.status_code == 200, log_path.read_text()
        assert ready.json()["data"]["status"] == "ready"
        status = Path(f"/proc/{process.pid}/status").read_text()
        real_uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
        assert real_uid == uid
        assert real_uid != 0
        check = subprocess.run(health, capture_output=True, timeout=30, check=False, **as_user)
        assert check.returncode == 0, check.stderr
    finally:
        process.terminate()
        process.wait(timeout=15)
    # What the server wrote is the user's; the log lines are JSON (BOTMOX_LOG_FORMAT=json).
    assert {path.stat().st_uid for path in data_dir.rglob("*")} == {uid}
    lines = [line for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)
