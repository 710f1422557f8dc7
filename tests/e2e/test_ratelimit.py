"""Rate limiting over a real uvicorn server (embedded default), with small limits: 429 with the
contract's body, ``Retry-After`` and the ``RateLimit-*`` headers; one bucket per authenticated
token and one per client address for everything else (forged tokens included); health probes
exempt; an agent's heartbeats, long-polls and command updates never limited, far past the
limit; ``X-Forwarded-For`` ignored by default (a spoofed header from an untrusted peer gains
nothing) and honoured from a trusted proxy, right-most untrusted address first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from botmox_core.testing.server import RunningServer, admin_cli, running_server

TENANT = "tenant-limits"
TOKEN_LIMIT = 20
ADDRESS_LIMIT = 10
LIMITS = {
    "BOTMOX_RATE_LIMIT_REQUESTS": str(TOKEN_LIMIT),
    "BOTMOX_RATE_LIMIT_ADDRESS_REQUESTS": str(ADDRESS_LIMIT),
    "BOTMOX_RATE_LIMIT_WINDOW_SECONDS": "3600",
}
BODY = {
    "success": False,
    "error": {"code": "RATE_LIMITED", "message": "Too many requests. Please try again later."},
}


def _token(server: RunningServer, role: str = "admin") -> str:
    return str(admin_cli(server, "token", "create", "--tenant", TENANT, "--role", role)["token"])


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(tmp_path / "server", LIMITS) as running:
        yield running


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[RunningServer]:
    env = {**LIMITS, "BOTMOX_RATE_LIMIT_TRUSTED_PROXIES": "127.0.0.1"}
    with running_server(tmp_path / "proxied", env) as running:
        yield running


def _codes(client: httpx.Client, n: int, path: str, **kwargs: Any) -> list[int]:
    return [client.get(path, **kwargs).status_code for _ in range(n)]


def test_over_the_limit_gets_429_with_retry_after_and_ratelimit_headers(
    server: RunningServer,
) -> None:
    token = _token(server)
    with httpx.Client(base_url=server.url, headers=_auth(token), timeout=30) as client:
        answers = [client.get("/api/v1/agents") for _ in range(TOKEN_LIMIT + 2)]
        other = client.get("/api/v1/agents", headers=_auth(_token(server)))
    assert [a.status_code for a in answers] == [200] * TOKEN_LIMIT + [429, 429]
    first, refused = answers[0], answers[TOKEN_LIMIT]
    assert first.headers["ratelimit-limit"] == str(TOKEN_LIMIT)
    assert first.headers["ratelimit-remaining"] == str(TOKEN_LIMIT - 1)
    assert 1 <= int(first.headers["ratelimit-reset"]) <= 3600
    assert refused.json() == BODY
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.headers["ratelimit-limit"] == str(TOKEN_LIMIT)
    assert refused.headers["x-request-id"]
    assert other.status_code == 200  # a second token has a bucket of its own


def test_forged_tokens_are_limited_by_address(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        codes = [
            client.get("/api/v1/agents", headers=_auth(f"bmx_garbage-{i}")).status_code
            for i in range(ADDRESS_LIMIT + 3)
        ]
        anonymous = client.get("/api/v1/license/public-key")
        health = _codes(client, 3 * ADDRESS_LIMIT, "/api/v1/health/live")
        valid = client.get("/api/v1/agents", headers=_auth(_token(server)))
    assert codes == [401] * ADDRESS_LIMIT + [429] * 3
    assert anonymous.status_code == 429 and anonymous.json() == BODY
    assert health == [200] * (3 * ADDRESS_LIMIT)  # health probes are exempt
    assert valid.status_code == 200  # a valid token is not held back by its address


def test_an_agent_is_never_limited_on_the_agent_bus(server: RunningServer) -> None:
    admin = _token(server)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        pairing = client.post("/api/v1/agents/pairings", headers=_auth(admin), json={})
        code = pairing.json()["data"]["pairing_code"]
        agent = client.post("/api/v1/agents/register", json={"pairing_code": code}).json()["data"]
        headers = _auth(agent["agent_token"])
        beats, polls, patches = [], [], []
        for _ in range(3 * TOKEN_LIMIT):
            beats.append(
                client.post(
                    "/api/v1/agents/heartbeat", json={"agent_id": agent["id"]}, headers=headers
                ).status_code
            )
            polls.append(
                client.get(
                    "/api/v1/commands/next",
                    params={"agent_id": agent["id"], "timeout_ms": 0},
                    headers=headers,
                ).status_code
            )
            patches.append(
                client.patch(
                    "/api/v1/vm-ops/commands/no-such-command",
                    json={"status": "running"},
                    headers=headers,
                ).status_code
            )
        # one long-poll that waits, past the limit
        waited = client.get(
            "/api/v1/commands/next",
            params={"agent_id": agent["id"], "timeout_ms": 1000},
            headers=headers,
        )
        # the agent's other calls do count against its token
        reads = _codes(client, TOKEN_LIMIT + 1, f"/api/v1/agents/{agent['id']}", headers=headers)
    assert set(beats) == {200}
    assert set(polls) == {204}
    assert 429 not in patches and set(patches) == {404}
    assert waited.status_code == 204
    assert reads == [200] * TOKEN_LIMIT + [429]


def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        codes = [
            client.get(
                "/api/v1/license/public-key", headers={"X-Forwarded-For": f"198.51.100.{i}"}
            ).status_code
            for i in range(ADDRESS_LIMIT + 2)
        ]
    assert codes == [200] * ADDRESS_LIMIT + [429, 429]


def test_a_trusted_proxy_forwards_the_client_address(proxied: RunningServer) -> None:
    def get(forwarded: str) -> int:
        return client.get(
            "/api/v1/license/public-key", headers={"X-Forwarded-For": forwarded}
        ).status_code

    with httpx.Client(base_url=proxied.url, timeout=30) as client:
        first = [get("203.0.113.7") for _ in range(ADDRESS_LIMIT + 1)]
        # the client prepends forged addresses: the proxy's right-most entry still decides
        forged = [get(f"192.0.2.{i}, 203.0.113.7") for i in range(3)]
        other_client = get("203.0.113.8")
        proxy_itself = client.get("/api/v1/license/public-key").status_code
    assert first == [200] * ADDRESS_LIMIT + [429]
    assert forged == [429, 429, 429]
    assert other_client == 200
    assert proxy_itself == 200  # the proxy's own bucket (no header) is separate
