"""Rate limiting, in process: settings, client addresses behind trusted proxies, the counters
(in memory and shared through a store, including a failing store), and the gate on a real app
(429 envelope and headers, buckets per token and per address, exemptions)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from botmox_core.bootstrap import bootstrap
from botmox_core.config import load_settings
from botmox_core.errors import ConfigurationError
from botmox_server import create_app
from botmox_server.ratelimit import select_rate_limit_store
from botmox_server.ratelimit.addresses import ClientAddressResolver, address_bucket
from botmox_server.ratelimit.counters import (
    RETRY_AFTER_FAILURE,
    LocalCounter,
    SharedCounter,
    lease_size,
)
from botmox_server.ratelimit.gate import RATE_LIMITED_BODY, is_agent_bus

# -- settings ----------------------------------------------------------------------------------


def test_defaults_are_on_and_generous_per_token_and_trust_no_proxy() -> None:
    settings = load_settings({})
    assert settings.rate_limit_enabled is True
    assert settings.rate_limit_requests == 6000
    assert settings.rate_limit_address_requests == 600
    assert settings.rate_limit_window_seconds == 60
    assert settings.rate_limit_trusted_proxies == ()
    assert settings.rate_limit_store is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("false", False), ("0", False), ("off", False), ("TRUE", True), ("yes", True), ("1", True)],
)
def test_enabled_flag_from_the_environment(raw: str, expected: bool) -> None:
    assert load_settings({"BOTMOX_RATE_LIMIT_ENABLED": raw}).rate_limit_enabled is expected


def test_settings_from_the_environment() -> None:
    settings = load_settings(
        {
            "BOTMOX_RATE_LIMIT_REQUESTS": "50",
            "BOTMOX_RATE_LIMIT_ADDRESS_REQUESTS": "7",
            "BOTMOX_RATE_LIMIT_WINDOW_SECONDS": "10",
            "BOTMOX_RATE_LIMIT_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1,2001:db8::/32",
            "BOTMOX_RATE_LIMIT_STORE": "memory",
        }
    )
    assert (settings.rate_limit_requests, settings.rate_limit_address_requests) == (50, 7)
    assert settings.rate_limit_window_seconds == 10
    assert settings.rate_limit_trusted_proxies == ("10.0.0.0/8", "127.0.0.1/32", "2001:db8::/32")
    assert settings.rate_limit_store == "memory"


def test_settings_from_the_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "botmox.toml"
    path.write_text(
        "rate_limit_enabled = false\nrate_limit_requests = 100\n"
        'rate_limit_trusted_proxies = ["192.168.0.0/16"]\n'
    )
    settings = load_settings({}, config_file=path)
    assert settings.rate_limit_enabled is False
    assert settings.rate_limit_requests == 100
    assert settings.rate_limit_trusted_proxies == ("192.168.0.0/16",)


@pytest.mark.parametrize(
    "env",
    [
        {"BOTMOX_RATE_LIMIT_ENABLED": "maybe"},
        {"BOTMOX_RATE_LIMIT_REQUESTS": "0"},
        {"BOTMOX_RATE_LIMIT_ADDRESS_REQUESTS": "-1"},
        {"BOTMOX_RATE_LIMIT_WINDOW_SECONDS": "0"},
        {"BOTMOX_RATE_LIMIT_REQUESTS": "ten"},
        {"BOTMOX_RATE_LIMIT_TRUSTED_PROXIES": "10.0.0.0/8,not-an-address"},
    ],
)
def test_bad_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        load_settings(env)


# -- client addresses ----------------------------------------------------------------------------


def test_forwarded_for_is_ignored_by_default() -> None:
    resolver = ClientAddressResolver()
    assert str(resolver.resolve("127.0.0.1", ["9.9.9.9"])) == "127.0.0.1"


def test_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    resolver = ClientAddressResolver(["10.0.0.0/8"])
    assert str(resolver.resolve("203.0.113.5", ["9.9.9.9"])) == "203.0.113.5"


def test_right_most_untrusted_address_is_the_client() -> None:
    resolver = ClientAddressResolver(["10.0.0.0/8"])
    # the client forged "6.6.6.6"; the proxy appended the address it saw (1.1.1.1), then an
    # inner trusted proxy (10.0.0.2) appended its own
    assert str(resolver.resolve("10.0.0.1", ["6.6.6.6, 1.1.1.1", "10.0.0.2"])) == "1.1.1.1"


def test_all_trusted_hops_give_the_left_most() -> None:
    resolver = ClientAddressResolver(["10.0.0.0/8"])
    assert str(resolver.resolve("10.0.0.1", ["10.0.0.9, 10.0.0.2"])) == "10.0.0.9"


def test_malformed_entry_stops_at_the_last_good_hop() -> None:
    resolver = ClientAddressResolver(["10.0.0.0/8"])
    assert str(resolver.resolve("10.0.0.1", ["1.1.1.1, garbage, 10.0.0.2"])) == "10.0.0.2"
    assert str(resolver.resolve("10.0.0.1", ["unknown"])) == "10.0.0.1"


def test_address_forms() -> None:
    resolver = ClientAddressResolver(["127.0.0.1"])
    assert str(resolver.resolve("127.0.0.1", ["1.2.3.4:5678"])) == "1.2.3.4"
    assert str(resolver.resolve("127.0.0.1", ["[2001:db8::1]:443"])) == "2001:db8::1"
    assert str(resolver.resolve("::ffff:127.0.0.1", ["8.8.8.8"])) == "8.8.8.8"
    assert resolver.resolve("testclient", ["8.8.8.8"]) == "testclient"
    assert resolver.resolve(None) == "unknown"


def test_ipv6_clients_share_their_64() -> None:
    resolver = ClientAddressResolver()
    a = address_bucket(resolver.resolve("2001:db8:1:2::1"))
    b = address_bucket(resolver.resolve("2001:db8:1:2:ffff::9"))
    c = address_bucket(resolver.resolve("2001:db8:1:3::1"))
    assert a == b == "2001:db8:1:2::/64" and c != a


# -- counters ------------------------------------------------------------------------------------


def test_local_counter_allows_the_limit_per_window_then_resets() -> None:
    counter = LocalCounter(window=60)
    decisions = [counter.hit("b", 3, 120.0 + i) for i in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[0].reset == 60 and decisions[3].reset == 57
    assert counter.hit("other", 3, 130.0).allowed  # buckets are separate
    assert counter.hit("b", 3, 180.0).allowed  # the next window starts afresh
    assert counter.hit("b", 3, 239.9).reset == 1


class MemoryStore:
    """A shared store held in one process (several SharedCounters on it act as replicas)."""

    name = "test-memory"

    def __init__(self) -> None:
        self.totals: dict[tuple[str, int], int] = {}
        self.calls = 0
        self.failing = False
        self.delay = 0.0

    async def start(self) -> None:
        return None

    async def reserve(self, bucket: str, window_start: int, amount: int, expires_at: int) -> int:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failing:
            raise ConnectionError("store down")
        key = (bucket, window_start)
        self.totals[key] = self.totals.get(key, 0) + amount
        return self.totals[key]

    async def close(self) -> None:
        return None


def test_lease_size_is_a_percent_of_the_limit_capped() -> None:
    assert [lease_size(n) for n in (1, 99, 300, 6000, 100_000)] == [1, 1, 3, 50, 50]


def test_replicas_sharing_a_store_allow_the_limit_within_their_leases() -> None:
    async def run() -> tuple[int, int]:
        store = MemoryStore()
        replicas = [SharedCounter(store, window=600) for _ in range(3)]
        allowed = 0
        for i in range(600):  # round robin, twice the limit
            decision = await replicas[i % 3].ahit("t:x", 300, 1200.0)
            allowed += decision.allowed
        return allowed, store.calls

    allowed, calls = asyncio.run(run())
    assert 300 - 3 * lease_size(300) <= allowed <= 300
    assert calls < 200  # one round trip per lease, none once the limit is known reached


def test_concurrent_requests_never_overshoot_the_limit() -> None:
    async def run() -> int:
        store = MemoryStore()
        store.delay = 0.001
        replicas = [SharedCounter(store, window=600) for _ in range(3)]
        decisions = await asyncio.gather(
            *(replicas[i % 3].ahit("t:x", 100, 1200.0) for i in range(400))
        )
        return sum(d.allowed for d in decisions)

    allowed = asyncio.run(run())
    assert 100 - 3 * lease_size(100) <= allowed <= 100


def test_a_failing_store_degrades_to_per_replica_counting_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def run() -> tuple[list[bool], list[bool], list[bool]]:
        store = MemoryStore()
        counter = SharedCounter(store, window=600)
        store.failing = True
        down = [(await counter.ahit("t:x", 5, 1200.0)).allowed for _ in range(7)]
        assert counter.degraded
        calls_while_down = store.calls
        later = [(await counter.ahit("t:y", 5, 1201.0)).allowed for _ in range(2)]
        assert store.calls == calls_while_down  # no retry within the back-off
        store.failing = False
        back = [
            (await counter.ahit("t:z", 5, 1200.0 + RETRY_AFTER_FAILURE + 1)).allowed
            for _ in range(6)
        ]
        assert not counter.degraded
        return down, later, back

    with caplog.at_level(logging.INFO, logger="botmox.ratelimit"):
        down, later, back = asyncio.run(run())
    assert down == [True] * 5 + [False] * 2  # per replica, still the limit
    assert later == [True, True]
    assert back == [True] * 5 + [False]
    messages = [r.getMessage() for r in caplog.records]
    assert any("failed (ConnectionError); counting per replica" in m for m in messages)
    assert any("answers again" in m for m in messages)


def test_a_store_that_hangs_times_out_and_degrades() -> None:
    async def run() -> bool:
        store = MemoryStore()
        store.delay = 5.0
        counter = SharedCounter(store, window=600)
        decision = await asyncio.wait_for(counter.ahit("t:x", 5, 1200.0), 2.0)
        return decision.allowed and counter.degraded

    assert asyncio.run(run())


def test_store_selection() -> None:
    class Backend:
        preferred_rate_limit_store = "postgres"

    assert select_rate_limit_store(None, Backend(), {"postgres"}) == "postgres"
    assert select_rate_limit_store(None, Backend(), set()) == "memory"
    assert select_rate_limit_store(None, object(), {"postgres"}) == "memory"
    assert select_rate_limit_store("memory", Backend(), {"postgres"}) == "memory"


def test_agent_bus_routes() -> None:
    assert is_agent_bus("POST", "/api/v1/agents/heartbeat")
    assert is_agent_bus("GET", "/api/v1/commands/next")
    assert is_agent_bus("PATCH", "/api/v1/vm-ops/commands/abc")
    assert not is_agent_bus("GET", "/api/v1/vm-ops/commands/abc")
    assert not is_agent_bus("PATCH", "/api/v1/vm-ops/commands/abc/cancel")
    assert not is_agent_bus("GET", "/api/v1/agents/heartbeat")


# -- the gate on a real app ------------------------------------------------------------------------


def _client(tmp_path: Path, **env: str) -> Iterator[tuple[TestClient[Any], dict[str, str]]]:
    settings = load_settings(
        {
            "BOTMOX_DATA_DIR": str(tmp_path),
            "BOTMOX_PLUGINS": "none",
            "BOTMOX_RATE_LIMIT_REQUESTS": "5",
            "BOTMOX_RATE_LIMIT_ADDRESS_REQUESTS": "3",
            "BOTMOX_RATE_LIMIT_WINDOW_SECONDS": "3600",
            **env,
        }
    )
    core = bootstrap(settings)
    core.licences.set_licence("acme", "active", None)
    tokens = {
        "admin": core.tokens.create("acme", "admin").secret,
        "other": core.tokens.create("acme", "admin").secret,
    }
    with TestClient(create_app(core=core)) as client:
        yield client, tokens


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[TestClient[Any], dict[str, str]]]:
    yield from _client(tmp_path)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_over_the_limit_answers_429_with_the_contract_body_and_headers(
    gated: tuple[TestClient[Any], dict[str, str]],
) -> None:
    client, tokens = gated
    answers = [
        client.get("/api/v1/artifacts/audit", headers=_auth(tokens["admin"])) for _ in range(6)
    ]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert [a.headers["ratelimit-remaining"] for a in answers[:5]] == ["4", "3", "2", "1", "0"]
    assert all(a.headers["ratelimit-limit"] == "5" for a in answers)
    refused = answers[5]
    assert refused.content == RATE_LIMITED_BODY
    assert refused.json() == {
        "success": False,
        "error": {"code": "RATE_LIMITED", "message": "Too many requests. Please try again later."},
    }
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 3600
    assert int(refused.headers["ratelimit-reset"]) == retry_after
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.headers["ratelimit-policy"] == "5;w=3600"
    assert refused.headers["content-type"] == "application/json"
    assert refused.headers["x-request-id"]


def test_each_token_has_its_own_bucket(gated: tuple[TestClient[Any], dict[str, str]]) -> None:
    client, tokens = gated
    for _ in range(5):
        client.get("/api/v1/artifacts/audit", headers=_auth(tokens["admin"]))
    assert client.get("/api/v1/artifacts/audit", headers=_auth(tokens["admin"])).status_code == 429
    assert client.get("/api/v1/artifacts/audit", headers=_auth(tokens["other"])).status_code == 200


def test_made_up_tokens_share_the_address_bucket(
    gated: tuple[TestClient[Any], dict[str, str]],
) -> None:
    client, tokens = gated
    codes = [
        client.get("/api/v1/artifacts/audit", headers=_auth(f"bmx_forged{i:04d}")).status_code
        for i in range(5)
    ]
    assert codes == [401, 401, 401, 429, 429]
    # and without a token, the same address is over its limit too
    assert client.get("/api/v1/license/public-key").status_code == 429
    # a valid token is not held back by its address
    assert client.get("/api/v1/artifacts/audit", headers=_auth(tokens["admin"])).status_code == 200


def test_unknown_paths_count(gated: tuple[TestClient[Any], dict[str, str]]) -> None:
    client, _ = gated
    codes = [client.get(f"/api/v1/nope/{i}").status_code for i in range(4)]
    assert codes == [404, 404, 404, 429]


def test_health_probes_and_preflights_are_exempt(
    gated: tuple[TestClient[Any], dict[str, str]],
) -> None:
    client, _ = gated
    for _ in range(10):
        for path in ("/api/v1/health", "/api/v1/health/live", "/api/v1/health/ready"):
            answer = client.get(path)
            assert answer.status_code in (200, 503)
            assert "ratelimit-limit" not in answer.headers
        assert client.options("/api/v1/agents").status_code != 429


def test_agent_bus_traffic_of_an_agent_is_exempt(
    gated: tuple[TestClient[Any], dict[str, str]],
) -> None:
    client, tokens = gated
    pairing = client.post("/api/v1/agents/pairings", json={}, headers=_auth(tokens["admin"]))
    registered = client.post(
        "/api/v1/agents/register", json={"pairing_code": pairing.json()["data"]["pairing_code"]}
    )
    agent = registered.json()["data"]
    headers = _auth(agent["agent_token"])
    for _ in range(20):  # four times the token limit
        beat = client.post(
            "/api/v1/agents/heartbeat", json={"agent_id": agent["id"]}, headers=headers
        )
        assert beat.status_code == 200 and "ratelimit-limit" not in beat.headers
        poll = client.get(
            f"/api/v1/commands/next?agent_id={agent['id']}&timeout_ms=0", headers=headers
        )
        assert poll.status_code in (200, 204), poll.text
        patch = client.patch(
            "/api/v1/vm-ops/commands/cmd-none", json={"status": "running"}, headers=headers
        )
        assert patch.status_code != 429
    # the agent's other calls count against its token
    codes = [
        client.get(f"/api/v1/agents/{agent['id']}", headers=headers).status_code for _ in range(6)
    ]
    assert codes == [200] * 5 + [429]


def test_an_operator_token_on_agent_bus_routes_is_counted(
    gated: tuple[TestClient[Any], dict[str, str]],
) -> None:
    client, tokens = gated
    codes = [
        client.post(
            "/api/v1/agents/heartbeat", json={"agent_id": "nope"}, headers=_auth(tokens["admin"])
        ).status_code
        for _ in range(6)
    ]
    assert codes[-1] == 429


def test_disabled_limiter_adds_nothing(tmp_path: Path) -> None:
    for client, tokens in _client(tmp_path, BOTMOX_RATE_LIMIT_ENABLED="false"):
        for _ in range(10):
            answer = client.get("/api/v1/artifacts/audit", headers=_auth(tokens["admin"]))
            assert answer.status_code == 200 and "ratelimit-limit" not in answer.headers
