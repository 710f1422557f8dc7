"""deploy/deploy.sh: health-gated deploy, the record of the replaced tag, rollback by itself
when health fails, rollback to the recorded tag. Docker is a FAKE here (a script named
``docker`` first on PATH that records each call and pretends to run the stack: no Docker engine
can run on these machines); the health URL is a real loopback HTTP server whose answer follows
the fake stack's running tag, and curl, flock and bash are the real ones."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy_support import DEPLOY

IMAGE = "ghcr.io/acme/botmox"

FAKE_DOCKER = '''#!{python}
"""FAKE docker for tests/test_deploy_script.py: records calls, pretends to run the stack."""
import json, os, sys

path = os.environ["FAKE_DOCKER_STATE"]
with open(path) as f:
    state = json.load(f)
args = sys.argv[1:]
state["calls"].append({{"argv": args, "tag": os.environ.get("BOTMOX_TAG"),
                       "image": os.environ.get("BOTMOX_IMAGE")}})
rc = 0
if args[:1] == ["compose"]:
    rest, i = args[1:], 0
    while i < len(rest) and rest[i] in ("--project-directory", "-f"):
        i += 2
    sub = rest[i] if i < len(rest) else ""
    tag = os.environ.get("BOTMOX_TAG")
    if sub == "pull" and tag in state["missing"]:
        print(f"manifest for {{os.environ.get('BOTMOX_IMAGE')}}:{{tag}} not found", file=sys.stderr)
        rc = 1
    elif sub == "up":
        state["running"] = tag
        state["image"] = os.environ.get("BOTMOX_IMAGE")
    elif sub == "ps" and state["running"]:
        print("fake-botmox-1")
        print("fake-botmox-2")
    elif sub == "logs":
        print("fake botmox log line")
elif args[:1] == ["inspect"]:
    health = "unhealthy" if state["running"] in state["unhealthy"] else "healthy"
    print(f"{{health}} {{state['image']}}:{{state['running']}}")
with open(path, "w") as f:
    json.dump(state, f)
sys.exit(rc)
'''


class Host:
    """A deploy directory with .env, the fake docker and the health server."""

    def __init__(self, root: Path, health_url: str) -> None:
        self.root = root
        self.state_path = root / "fake-docker.json"
        self.health_url = health_url
        (root / "bin").mkdir()
        docker = root / "bin" / "docker"
        docker.write_text(FAKE_DOCKER.format(python=sys.executable))
        docker.chmod(0o755)
        (root / "deploy").mkdir()
        (root / "deploy" / ".env").write_text(f"BOTMOX_IMAGE={IMAGE}\nBOTMOX_DOMAIN=api.example\n")
        self.save({"calls": [], "running": None, "image": None, "missing": [], "unhealthy": []})

    def load(self) -> dict[str, Any]:
        return json.loads(self.state_path.read_text())

    def save(self, state: dict[str, Any]) -> None:
        self.state_path.write_text(json.dumps(state))

    def set(self, **changes: Any) -> None:
        self.save({**self.load(), **changes})

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        full_env = {
            "PATH": f"{self.root / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "FAKE_DOCKER_STATE": str(self.state_path),
            "BOTMOX_DEPLOY_DIR": str(self.root / "deploy"),
            "BOTMOX_HEALTH_URL": self.health_url,
            "BOTMOX_HEALTH_TIMEOUT": "3",
            **env,
        }
        return subprocess.run(
            ["bash", str(DEPLOY / "deploy.sh"), *args],
            env=full_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def recorded(self, name: str) -> str | None:
        path = self.root / "deploy" / ".deploy" / name
        return path.read_text().strip() if path.exists() else None

    def ups(self) -> list[str | None]:
        return [call["tag"] for call in self.load()["calls"] if "up" in call["argv"]]


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    state_path = tmp_path / "fake-docker.json"

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state = json.loads(state_path.read_text())
            ok = state["running"] is not None and state["running"] not in state["unhealthy"]
            self.send_response(200 if ok else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/api/v1/health/ready"
        yield Host(tmp_path, url)
    finally:
        server.shutdown()
        server.server_close()


def test_deploys_record_the_tag_they_replaced(host: Host) -> None:
    first = host.run("deploy", "sha-aaaaaaa")
    assert first.returncode == 0, first.stderr
    assert host.recorded("current-tag") == "sha-aaaaaaa"
    assert host.recorded("previous-tag") is None
    second = host.run("deploy", "sha-bbbbbbb")
    assert second.returncode == 0, second.stderr
    assert host.recorded("current-tag") == "sha-bbbbbbb"
    assert host.recorded("previous-tag") == "sha-aaaaaaa"
    calls = host.load()["calls"]
    # The image repository reaches compose (the seed's workflow never passed it).
    assert {call["image"] for call in calls if call["argv"][0] == "compose"} == {IMAGE}
    pulls = [call for call in calls if "pull" in call["argv"]]
    assert [call["tag"] for call in pulls] == ["sha-aaaaaaa", "sha-bbbbbbb"]
    assert host.ups() == ["sha-aaaaaaa", "sha-bbbbbbb"]
    history = (host.root / "deploy" / ".deploy" / "history.log").read_text()
    assert "deploy none -> sha-aaaaaaa ok" in history
    assert "deploy sha-aaaaaaa -> sha-bbbbbbb ok" in history


def test_failed_health_rolls_back_by_itself(host: Host) -> None:
    assert host.run("deploy", "sha-aaaaaaa").returncode == 0
    assert host.run("deploy", "sha-bbbbbbb").returncode == 0
    host.set(unhealthy=["sha-ccccccc"])
    failed = host.run("deploy", "sha-ccccccc")
    assert failed.returncode == 1
    assert "rolled back to sha-bbbbbbb, which is healthy" in failed.stderr
    assert "fake botmox log line" in failed.stderr  # the logs are shown
    assert host.ups()[-2:] == ["sha-ccccccc", "sha-bbbbbbb"]
    assert host.load()["running"] == "sha-bbbbbbb"
    # The record is unchanged: the failed tag never became current or previous.
    assert host.recorded("current-tag") == "sha-bbbbbbb"
    assert host.recorded("previous-tag") == "sha-aaaaaaa"
    history = (host.root / "deploy" / ".deploy" / "history.log").read_text()
    assert "deploy sha-bbbbbbb -> sha-ccccccc failed health" in history
    assert "auto-rollback sha-ccccccc -> sha-bbbbbbb ok" in history


def test_a_tag_that_cannot_be_pulled_rolls_back_too(host: Host) -> None:
    assert host.run("deploy", "sha-aaaaaaa").returncode == 0
    host.set(missing=["sha-9999999"])
    failed = host.run("deploy", "sha-9999999")
    assert failed.returncode == 1
    assert host.load()["running"] == "sha-aaaaaaa"
    assert host.recorded("current-tag") == "sha-aaaaaaa"


def test_rollback_goes_to_the_recorded_previous_tag(host: Host) -> None:
    assert host.run("deploy", "sha-aaaaaaa").returncode == 0
    assert host.run("deploy", "sha-bbbbbbb").returncode == 0
    back = host.run("rollback")
    assert back.returncode == 0, back.stderr
    assert host.load()["running"] == "sha-aaaaaaa"
    assert host.recorded("current-tag") == "sha-aaaaaaa"
    assert host.recorded("previous-tag") == "sha-bbbbbbb"
    status = host.run("status")
    assert "current:  sha-aaaaaaa" in status.stdout
    assert "rollback sha-bbbbbbb -> sha-aaaaaaa ok" in status.stdout


def test_rollback_to_a_given_tag(host: Host) -> None:
    assert host.run("deploy", "sha-bbbbbbb").returncode == 0
    back = host.run("rollback", "main-latest")
    assert back.returncode == 0, back.stderr
    assert host.recorded("current-tag") == "main-latest"
    assert host.recorded("previous-tag") == "sha-bbbbbbb"


def test_rollback_without_a_record_says_what_to_do(host: Host) -> None:
    refused = host.run("rollback")
    assert refused.returncode == 1
    assert "no previous tag recorded" in refused.stderr
    assert "deploy.sh rollback TAG" in refused.stderr
    assert host.load()["calls"] == []


def test_first_deploy_that_fails_health_has_nothing_to_go_back_to(host: Host) -> None:
    host.set(unhealthy=["sha-aaaaaaa"])
    failed = host.run("deploy", "sha-aaaaaaa")
    assert failed.returncode == 1
    assert "no other tag recorded to go back to" in failed.stderr
    assert host.recorded("current-tag") is None


def test_both_tags_unhealthy_is_reported_as_down(host: Host) -> None:
    assert host.run("deploy", "sha-aaaaaaa").returncode == 0
    host.set(unhealthy=["sha-aaaaaaa", "sha-bbbbbbb"])
    failed = host.run("deploy", "sha-bbbbbbb")
    assert failed.returncode == 2
    assert "the stack is DOWN" in failed.stderr


def test_without_an_image_repository_nothing_runs(host: Host) -> None:
    (host.root / "deploy" / ".env").write_text("BOTMOX_DOMAIN=api.example\n")
    refused = host.run("deploy", "sha-aaaaaaa")
    assert refused.returncode == 1
    assert "BOTMOX_IMAGE is not set" in refused.stderr
    assert host.load()["calls"] == []
    # The environment (as the workflow passes it) is enough.
    assert host.run("deploy", "sha-aaaaaaa", BOTMOX_IMAGE=IMAGE).returncode == 0


@pytest.mark.parametrize("tag", ["", "sha-aaa;rm -rf /", "-x", "a" * 129, "tag with space"])
def test_bad_tags_are_refused_before_docker_runs(host: Host, tag: str) -> None:
    refused = host.run("deploy", tag)
    assert refused.returncode == 1
    assert host.load()["calls"] == []


def test_health_url_defaults_to_the_domain_through_caddy(host: Host) -> None:
    # No BOTMOX_HEALTH_URL: https://api.example/... cannot answer here, so health fails.
    state = host.run("deploy", "sha-aaaaaaa", BOTMOX_HEALTH_URL="")
    assert state.returncode == 1
    assert "https://api.example/api/v1/health/ready" in state.stdout


def test_one_deploy_at_a_time(host: Host) -> None:
    lock = host.root / "deploy" / ".deploy" / "lock"
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(["flock", str(lock), "sleep", "30"])  # another deploy, running
    try:
        for _ in range(100):
            if subprocess.run(["flock", "--nonblock", str(lock), "true"], check=False).returncode:
                break
            time.sleep(0.05)
        refused = host.run("deploy", "sha-aaaaaaa")
    finally:
        holder.terminate()
        holder.wait(timeout=10)
    assert refused.returncode == 1
    assert "another deploy or rollback is running" in refused.stderr
    assert host.load()["calls"] == []
