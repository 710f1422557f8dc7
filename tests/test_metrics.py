"""``/metrics``: off without the ``metrics_token`` setting (``BOTMOX_METRICS_TOKEN``), behind the
token with it; latency per route template (never the raw path), resolve outcomes by reason code,
429s, commands by state and queue depth from the data backend."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest

if os.environ.get("CI") == "true":
    from litestar.testing import TestClient
else:
    TestClient = pytest.importorskip("litestar.testing", reason="needs [server]").TestClient

from botmox_core.config import load_settings
from botmox_core.models import Command, CommandStatus
from botmox_core.services.principal import utcnow
from botmox_server.app import create_app

BASE_URL = "http://botmox.test"
TOKEN = "metrics-" + "a1" * 16
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _client(tmp_path: Path, **environ: str) -> TestClient:  # type: ignore[type-arg]
    settings = load_settings(environ=environ, data_dir=tmp_path, public_url=BASE_URL)
    return TestClient(create_app(settings), base_url=BASE_URL)


def _samples(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def test_metrics_are_off_without_a_token(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        answer = client.get("/metrics")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "NOT_FOUND"


def test_a_blank_token_leaves_metrics_off(tmp_path: Path) -> None:
    with _client(tmp_path, BOTMOX_METRICS_TOKEN="  ") as client:
        assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


def test_the_token_is_the_metrics_token_setting(tmp_path: Path) -> None:
    """The token comes from Settings: the TOML file's ``metrics_token`` turns metrics on too,
    and the variable (trimmed) wins over the file."""
    config = tmp_path / "botmox.toml"
    config.write_text(f'metrics_token = "{TOKEN}"\n')
    settings = load_settings(
        environ={}, config_file=config, data_dir=tmp_path / "a", public_url=BASE_URL
    )
    with TestClient(create_app(settings), base_url=BASE_URL) as client:
        assert client.get("/metrics", headers=AUTH).status_code == 200
        assert client.get("/metrics").status_code == 401
    other = "other-" + "b2" * 16
    settings = load_settings(
        environ={"BOTMOX_METRICS_TOKEN": f" {other} "},
        config_file=config,
        data_dir=tmp_path / "b",
        public_url=BASE_URL,
    )
    with TestClient(create_app(settings), base_url=BASE_URL) as client:
        assert client.get("/metrics", headers=AUTH).status_code == 401
        answer = client.get("/metrics", headers={"Authorization": f"Bearer {other}"})
        assert answer.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic x"}],
)
def test_a_scrape_needs_the_metrics_token(tmp_path: Path, headers: dict[str, str]) -> None:
    with _client(tmp_path, BOTMOX_METRICS_TOKEN=TOKEN) as client:
        answer = client.get("/metrics", headers=headers)
        wrong_method = client.post("/metrics", headers=AUTH)
    assert answer.status_code == 401
    assert answer.json() == {
        "success": False,
        "error": {"code": "UNAUTHORIZED", "message": "metrics token required"},
    }
    assert wrong_method.status_code == 405


def test_latency_by_route_template_resolve_outcomes_and_rate_limited(tmp_path: Path) -> None:
    with _client(
        tmp_path, BOTMOX_METRICS_TOKEN=TOKEN, BOTMOX_RATE_LIMIT_ADDRESS_REQUESTS="4"
    ) as client:
        client.get("/api/v1/vm/secret-vm-0001/resolve")
        client.get("/api/v1/vm/secret-vm-0002/resolve")
        denied = client.post(
            "/api/v1/artifacts/resolve-download",
            json={"lease_token": "x", "vm_uuid": "abcdefgh", "module": "m", "platform": "p"},
        )
        client.get("/no/such/path")
        client.request("BREW", "/api/v1/health/live")
        limited = client.get("/api/v1/vm/secret-vm-0003/resolve")
        scraped = client.get("/metrics", headers=AUTH)
    assert denied.status_code == 401 and limited.status_code == 429
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = scraped.text
    assert "secret-vm" not in text and "/no/such/path" not in text  # templates, never paths
    samples = _samples(text)
    route = 'method="GET",route="/api/v1/vm/{vm_uuid}/resolve",status="401"'
    assert samples[f"botmox_http_request_duration_seconds_count{{{route}}}"] == 2
    assert samples[f'botmox_http_request_duration_seconds_bucket{{le="+Inf",{route}}}'] == 2
    assert samples['botmox_resolve_download_total{reason="UNAUTHORIZED",result="denied"}'] == 1
    assert samples["botmox_rate_limited_requests_total"] == 1
    unmatched = 'method="GET",route="<unmatched>"'
    assert samples[f'botmox_http_request_duration_seconds_count{{{unmatched},status="404"}}'] == 1
    assert samples[f'botmox_http_request_duration_seconds_count{{{unmatched},status="429"}}'] == 1
    assert samples["botmox_agents_connected"] == 0
    assert "BREW" not in text  # methods a client makes up are not labels
    assert any(
        name.startswith('botmox_http_request_duration_seconds_count{method="OTHER"')
        for name in samples
    )


def test_a_granted_resolve_counts_as_allowed(tmp_path: Path) -> None:
    from botmox_server.metrics import Metrics

    with _client(tmp_path, BOTMOX_METRICS_TOKEN=TOKEN) as client:
        metrics: Metrics = client.app.state["metrics"]
        metrics.observe_resolve(200, b'{"success": true}')
        metrics.observe_resolve(409, b'{"success":false,"error":{"code":"LEASE_EXPIRED"}}')
        metrics.observe_resolve(502, b'{"success":false,"error":{"code":"STORAGE_ERROR"}}')
        metrics.observe_resolve(403, b"not json")
        metrics.observe_resolve(403, b'{"success":false,"error":{"code":"a\\nb"}}')
        samples = _samples(client.get("/metrics", headers=AUTH).text)
    assert samples['botmox_resolve_download_total{reason="OK",result="allowed"}'] == 1
    assert samples['botmox_resolve_download_total{reason="LEASE_EXPIRED",result="denied"}'] == 1
    assert samples['botmox_resolve_download_total{reason="STORAGE_ERROR",result="error"}'] == 1
    assert samples['botmox_resolve_download_total{reason="UNKNOWN",result="denied"}'] == 2


def test_commands_by_state_and_queue_depth_come_from_the_backend(tmp_path: Path) -> None:
    with _client(tmp_path, BOTMOX_METRICS_TOKEN=TOKEN) as client:
        backend = client.app.state["core"].backend
        now = utcnow()
        states = [CommandStatus.QUEUED] * 3 + [CommandStatus.RUNNING, CommandStatus.SUCCEEDED]
        with backend.unit_of_work() as uow:
            for n, status in enumerate(states):
                uow.commands.add(
                    Command(
                        id=f"cmd_{n:032x}",
                        tenant_id=f"tenant-{n % 2}",
                        agent_id="agt_" + "0" * 32,
                        command_type="proxmox.status",
                        status=status,
                        queued_at=now,
                        expires_at=now + timedelta(minutes=5),
                        updated_at=now,
                    )
                )
            uow.commit()
        text = client.get("/metrics", headers=AUTH).text
    samples = _samples(text)
    assert samples["botmox_command_queue_depth"] == 3
    assert samples['botmox_commands{state="queued"}'] == 3
    assert samples['botmox_commands{state="running"}'] == 1
    assert samples['botmox_commands{state="succeeded"}'] == 1
    assert samples['botmox_commands{state="failed"}'] == 0
    assert re.search(r"^# TYPE botmox_commands gauge$", text, re.MULTILINE)
