"""Revocation on every replica, over real server processes sharing one backend (the embedded
SQLite file with the ``unixsocket`` agent transport, and PostgreSQL with ``LISTEN/NOTIFY``):

* an API token revoked with ``botmox admin token revoke`` is refused by every replica within
  the documented bound (:data:`~botmox_core.services.tokens.TOKEN_CACHE_SECONDS`), also when
  the announcement on the agent transport does not reach them;
* a lease revoked through one replica is refused by the other on the very next request.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from botmox_core.bootstrap import bootstrap
from botmox_core.config import load_settings
from botmox_core.services.tokens import TOKEN_CACHE_SECONDS
from botmox_core.testing.server import RunningServer, admin_cli, provision_tenant, running_server
from tests.e2e.conftest import stack_env

TENANT, USER, MODULE, PLATFORM = "tenant-r", "user-r", "farm-bot", "win64"
VM = "vm-revocation-01"
#: What a loaded 2-core machine adds to the bound: scheduling of the polling client and servers.
SLACK_SECONDS = 1.0


def _resolve(server: RunningServer, token: str, lease: str) -> httpx.Response:
    return httpx.post(
        server.url + "/api/v1/artifacts/resolve-download",
        json={
            "lease_token": lease,
            "vm_uuid": VM,
            "module": MODULE,
            "platform": PLATFORM,
            "channel": "stable",
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


@pytest.fixture(scope="module", params=["embedded", "supabase"])
def replicas(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningServer, str]]:
    """Two server processes on one backend (the same data directory: keys, socket directory);
    the tenant's admin token."""
    tmp = tmp_path_factory.mktemp(f"replicas-{request.param}")
    with ExitStack() as stack:
        env = stack_env(request.param, stack, tmp)
        if request.param == "embedded":
            env["BOTMOX_AGENT_TRANSPORT"] = "unixsocket"
        first = stack.enter_context(running_server(tmp / "data", env))
        second = stack.enter_context(running_server(tmp / "data", env))
        artifact = tmp / "farm-bot.zip"
        artifact.write_bytes(b"farm-bot module " * 4096)
        tenant = provision_tenant(
            first, artifact, tenant=TENANT, user=USER, module=MODULE, platform=PLATFORM
        )
        yield first, second, tenant.admin_token


def _user_token(server: RunningServer) -> tuple[str, str]:
    created = admin_cli(
        server, "token", "create", "--tenant", TENANT, "--role", "api", "--user", USER
    )
    return created["id"], created["token"]


def _lease(server: RunningServer, token: str) -> str:
    headers = {"Authorization": f"Bearer {token}"}
    registered = httpx.post(
        server.url + "/api/v1/vm/register", json={"vm_uuid": VM}, headers=headers, timeout=30
    )
    assert registered.status_code in (200, 201), registered.text
    leased = httpx.post(
        server.url + "/api/v1/license/lease",
        json={"vm_uuid": VM, "module": MODULE},
        headers=headers,
        timeout=30,
    )
    assert leased.status_code == 201, leased.text
    return str(leased.json()["data"]["token"])


def _seconds_until_refused(server: RunningServer, token: str, lease: str, since: float) -> float:
    while True:
        answer = _resolve(server, token, lease)
        if answer.status_code == 401:
            assert answer.json()["error"]["code"] == "UNAUTHORIZED"
            return time.monotonic() - since
        assert answer.status_code == 200, answer.text
        assert time.monotonic() - since < 30, "never refused"
        time.sleep(0.02)


def _refused_from_now_on(server: RunningServer, token: str, lease: str) -> None:
    for _ in range(5):
        assert _resolve(server, token, lease).status_code == 401


def test_api_token_revoked_with_the_cli_is_refused_on_every_replica_within_the_bound(
    replicas: tuple[RunningServer, RunningServer, str],
) -> None:
    first, second, _ = replicas
    token_id, token = _user_token(first)
    lease = _lease(first, token)
    for server in (first, second):  # both replicas now hold the token in their caches
        assert _resolve(server, token, lease).status_code == 200
    admin_cli(first, "token", "revoke", "--tenant", TENANT, "--id", token_id)
    revoked = time.monotonic()
    for server in (first, second):
        assert _seconds_until_refused(server, token, lease, revoked) <= (
            TOKEN_CACHE_SECONDS + SLACK_SECONDS
        )
        _refused_from_now_on(server, token, lease)


def test_api_token_revoked_without_announcement_is_refused_within_the_bound(
    replicas: tuple[RunningServer, RunningServer, str],
) -> None:
    """A revocation written straight to the database (another tool, a restore, a replica whose
    announcement was lost): the cache bound alone makes every replica refuse the token."""
    first, second, _ = replicas
    token_id, token = _user_token(first)
    lease = _lease(first, token)
    core = bootstrap(load_settings(dict(first.env)))
    try:
        for server in (first, second):
            assert _resolve(server, token, lease).status_code == 200
        assert core.tokens.revoke(TENANT, token_id)  # no transport started: nobody hears it
        revoked = time.monotonic()
    finally:
        core.close()
    waits = [_seconds_until_refused(s, token, lease, revoked) for s in (first, second)]
    assert max(waits) <= TOKEN_CACHE_SECONDS + SLACK_SECONDS, waits
    for server in (first, second):
        _refused_from_now_on(server, token, lease)


def test_lease_revoked_on_one_replica_is_refused_at_once_on_the_other(
    replicas: tuple[RunningServer, RunningServer, str],
) -> None:
    first, second, admin_token = replicas
    _, token = _user_token(first)
    lease = _lease(first, token)
    assert _resolve(second, token, lease).status_code == 200
    lease_id = httpx.get(
        first.url + "/api/v1/artifacts/audit",
        headers={"Authorization": f"Bearer {admin_token}"},
        params={"limit": 1},
        timeout=30,
    ).json()["data"][0]["lease_id"]
    revoked = httpx.post(
        first.url + "/api/v1/license/revoke",
        json={"lease_id": lease_id, "reason": "stolen VM"},
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=30,
    )
    assert revoked.status_code == 200, revoked.text
    refused = _resolve(second, token, lease)  # the very next request, on the other replica
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "LEASE_INACTIVE"
