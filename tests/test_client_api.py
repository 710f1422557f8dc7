"""Contract calls, error mapping, retry policy, lease heartbeats and the fetch flow, against a
real loopback HTTP server (the scripted server of ``test_client_servers``), sync and async alike.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from botmox_core.client import (
    AsyncRunnerClient,
    FetchResult,
    InvalidResponseError,
    NetworkError,
    RetryPolicy,
    RunnerClient,
    ServerError,
    parse_retry_after,
)
from botmox_core.errors import (
    BotmoxError,
    ConflictError,
    DownloadUrlInvalidError,
    LeaseExpiredError,
    RateLimitedError,
    ServiceUnavailableError,
    UnauthorizedError,
    UpstreamError,
    VmOwnerMismatchError,
)
from tests.test_client_servers import API_TOKEN, FILE_PATH, ScriptedBotmoxServer, botmox_server

__all__ = ["botmox_server"]

FAST = RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.05)
LEASE = "/api/v1/license/lease"
REGISTER = "/api/v1/vm/register"
RESOLVE = "/api/v1/artifacts/resolve-download"
HEARTBEAT = "/api/v1/license/heartbeat"
VM = "vm-0123456789ab"


class Flavour:
    """Runs one client call through the sync or the async client (fresh client per call)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def call(
        self,
        server: ScriptedBotmoxServer,
        method: str,
        *args: Any,
        policy: RetryPolicy = FAST,
        token: str = API_TOKEN,
        **kwargs: Any,
    ) -> Any:
        if self.kind == "sync":
            with RunnerClient(server.url, token, retry_policy=policy) as client:
                return getattr(client, method)(*args, **kwargs)

        async def run() -> Any:
            async with AsyncRunnerClient(server.url, token, retry_policy=policy) as client:
                return await getattr(client, method)(*args, **kwargs)

        return asyncio.run(run())


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> Flavour:
    return Flavour(request.param)


# -- contract calls ----------------------------------------------------------------------------


def test_register_vm_sends_only_given_fields(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour
) -> None:
    vm = flavour.call(botmox_server, "register_vm", "VM-ABCDEF12", vm_name="farm-1")
    assert vm.vm_uuid == "vm-abcdef12"
    assert vm.tenant_id == "tenant-test"
    assert vm.created_at is not None and vm.created_at.tzinfo is not None
    (request,) = botmox_server.requests_to(REGISTER)
    assert request.body == {"vm_uuid": "VM-ABCDEF12", "vm_name": "farm-1"}
    assert request.headers["authorization"] == f"Bearer {API_TOKEN}"


def test_public_key_is_decoded(botmox_server: ScriptedBotmoxServer, flavour: Flavour) -> None:
    assert flavour.call(botmox_server, "public_key") == botmox_server.public_key


def test_base_url_path_prefix_is_kept(botmox_server: ScriptedBotmoxServer) -> None:
    client = RunnerClient(botmox_server.url + "/prefix/", API_TOKEN, retry_policy=FAST)
    with client, pytest.raises(BotmoxError):
        client.register_vm(VM)
    assert botmox_server.requests[-1].path == "/prefix/api/v1/vm/register"


# -- error envelope -> typed exception ---------------------------------------------------------


def test_envelope_maps_to_typed_error_with_request_id(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour
) -> None:
    botmox_server.fail_api(
        LEASE,
        403,
        {
            "success": False,
            "error": {
                "code": "VM_OWNER_MISMATCH",
                "message": "VM belongs to another user",
                "details": {"vm_uuid": VM},
            },
        },
    )
    with pytest.raises(VmOwnerMismatchError) as caught:
        flavour.call(botmox_server, "take_lease", "farm-bot", VM)
    error = caught.value
    assert error.code == "VM_OWNER_MISMATCH"
    assert error.message == "VM belongs to another user"
    assert error.details == {"vm_uuid": VM}
    assert error.request_id is not None and error.request_id.startswith("req-")
    assert error.status == 403
    assert len(botmox_server.requests_to(LEASE)) == 1  # 403 is final: not retried


def test_unknown_code_falls_back_on_status_class(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour
) -> None:
    body = {"success": False, "error": {"code": "SOMETHING_NEW", "message": "new"}}
    botmox_server.fail_api(LEASE, 409, body)
    with pytest.raises(ConflictError) as caught:
        flavour.call(botmox_server, "take_lease", "farm-bot", VM)
    assert caught.value.code == "SOMETHING_NEW"


def test_rate_limit_carries_retry_after(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour
) -> None:
    body = {"success": False, "error": {"code": "RATE_LIMITED", "message": "slow down"}}
    botmox_server.fail_api(LEASE, 429, body, {"Retry-After": "7"})
    with pytest.raises(RateLimitedError) as caught:
        flavour.call(botmox_server, "take_lease", "farm-bot", VM, policy=RetryPolicy(max_retries=0))
    assert caught.value.retry_after == 7.0
    assert caught.value.retryable


def test_bad_api_token_is_unauthorized(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour
) -> None:
    with pytest.raises(UnauthorizedError) as caught:
        flavour.call(botmox_server, "register_vm", VM, token="wrong")
    assert "wrong" not in repr(caught.value) and "wrong" not in str(caught.value)


def test_non_envelope_answers(botmox_server: ScriptedBotmoxServer, flavour: Flavour) -> None:
    once = RetryPolicy(max_retries=0)
    botmox_server.fail_api(LEASE, 502, b"<html>bad gateway</html>")
    with pytest.raises(UpstreamError):
        flavour.call(botmox_server, "take_lease", "farm-bot", VM, policy=once)
    botmox_server.fail_api(LEASE, 500, b"<html>oops</html>")
    with pytest.raises(ServerError) as caught:
        flavour.call(botmox_server, "take_lease", "farm-bot", VM, policy=once)
    assert caught.value.retryable
    botmox_server.fail_api(LEASE, 200, b"<html>a captive portal</html>")
    with pytest.raises(InvalidResponseError):
        flavour.call(botmox_server, "take_lease", "farm-bot", VM, policy=once)
    botmox_server.fail_api(LEASE, 201, {"success": True, "data": {"lease_id": "x"}})
    with pytest.raises(InvalidResponseError):
        flavour.call(botmox_server, "take_lease", "farm-bot", VM, policy=once)


def test_connection_refused_is_network_error(flavour: Flavour) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nothing_listening = type("Closed", (), {"url": f"http://127.0.0.1:{port}"})()
    with pytest.raises(NetworkError) as caught:
        flavour.call(
            nothing_listening, "register_vm", VM, policy=RetryPolicy(max_retries=1, base_delay=0.01)
        )
    assert isinstance(caught.value, ServiceUnavailableError)
    assert caught.value.code == "NETWORK_ERROR"


# -- retry policy ------------------------------------------------------------------------------


def test_retry_after_is_honoured(botmox_server: ScriptedBotmoxServer, flavour: Flavour) -> None:
    body = {"success": False, "error": {"code": "RATE_LIMITED", "message": "slow down"}}
    botmox_server.fail_api(LEASE, 429, body, {"Retry-After": "1"})
    started = time.monotonic()
    grant = flavour.call(botmox_server, "take_lease", "farm-bot", VM)
    elapsed = time.monotonic() - started
    assert grant.lease_id.startswith("lease_")
    assert 1.0 <= elapsed < 3.0
    assert len(botmox_server.requests_to(LEASE)) == 2


def test_retry_after_beyond_the_bound_is_not_waited_for(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour
) -> None:
    body = {"success": False, "error": {"code": "SERVICE_UNAVAILABLE", "message": "maintenance"}}
    botmox_server.fail_api(LEASE, 503, body, {"Retry-After": "3600"})
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as caught:
        flavour.call(botmox_server, "take_lease", "farm-bot", VM)
    assert time.monotonic() - started < 1.0
    assert caught.value.retry_after == 3600.0
    assert len(botmox_server.requests_to(LEASE)) == 1


def test_retries_are_bounded(botmox_server: ScriptedBotmoxServer, flavour: Flavour) -> None:
    body = {"success": False, "error": {"code": "STORAGE_ERROR", "message": "s3 down"}}
    for _ in range(5):
        botmox_server.fail_api(LEASE, 502, body)
    policy = RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.02)
    with pytest.raises(UpstreamError) as caught:
        flavour.call(botmox_server, "take_lease", "farm-bot", VM, policy=policy)
    assert caught.value.code == "STORAGE_ERROR"
    assert len(botmox_server.requests_to(LEASE)) == 3


def test_full_jitter_backoff_bounds() -> None:
    random.seed(1234)
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    error = ServiceUnavailableError("down")
    for attempt in range(8):
        ceiling = min(4.0, 0.5 * 2**attempt)
        delays = [policy.retry_delay(error, attempt) for _ in range(300)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # spread over the whole window, not fixed
    assert policy.retry_delay(RateLimitedError("x", retry_after=2.5), 0) == 2.5
    assert policy.should_retry(error, 2) and not policy.should_retry(error, 3)
    assert not policy.should_retry(RateLimitedError("x", retry_after=61), 0)
    assert not policy.should_retry(ConflictError("x"), 0)


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after("Tue, 24 Nov 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Tue, 24 Nov 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


# -- lease context manager ---------------------------------------------------------------------


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_sync_lease_heartbeats_and_rotates_token(botmox_server: ScriptedBotmoxServer) -> None:
    botmox_server.lease_ttl = 1.5  # heartbeat every ~0.5 s
    with RunnerClient(botmox_server.url, API_TOKEN, retry_policy=FAST) as client:
        with client.lease("farm-bot", VM) as lease:
            first_token, first_expiry = lease.token, lease.expires_at
            assert _wait_for(lambda: lease.heartbeats >= 2, timeout=5)
            assert lease.token != first_token
            assert lease.expires_at > first_expiry
            assert lease.active and lease.heartbeat_error is None
            assert first_token not in repr(lease) and lease.token not in repr(lease)
            resolved = client.resolve_download(lease, "linux-x64", "stable")
            assert resolved.release_id == 7
            assert botmox_server.requests_to(RESOLVE)[-1].body["lease_token"] == lease.token
        beats = len(botmox_server.requests_to(HEARTBEAT))
        time.sleep(1.2)
        assert len(botmox_server.requests_to(HEARTBEAT)) == beats  # stopped on exit


def test_async_lease_heartbeats_and_rotates_token(botmox_server: ScriptedBotmoxServer) -> None:
    botmox_server.lease_ttl = 1.5

    async def scenario() -> None:
        async with AsyncRunnerClient(botmox_server.url, API_TOKEN, retry_policy=FAST) as client:
            async with client.lease("farm-bot", VM) as lease:
                first_token = lease.token
                for _ in range(100):
                    if lease.heartbeats >= 2:
                        break
                    await asyncio.sleep(0.05)
                assert lease.heartbeats >= 2
                assert lease.token != first_token
                resolved = await client.resolve_download(lease, "linux-x64", "stable")
                assert resolved.version == "1.2.3"
            beats = len(botmox_server.requests_to(HEARTBEAT))
            await asyncio.sleep(1.2)
            assert len(botmox_server.requests_to(HEARTBEAT)) == beats

    asyncio.run(scenario())


def test_lease_heartbeat_refusal_is_recorded(botmox_server: ScriptedBotmoxServer) -> None:
    client = RunnerClient(botmox_server.url, API_TOKEN, retry_policy=FAST)
    with client, client.lease("farm-bot", VM, heartbeat_interval=0.2) as lease:
        botmox_server.expire_all_leases()
        assert _wait_for(lambda: lease.heartbeat_error is not None, timeout=3)
        assert isinstance(lease.heartbeat_error, LeaseExpiredError)
        assert not lease.active
        refused = len(botmox_server.requests_to(HEARTBEAT))
        time.sleep(0.6)
        assert len(botmox_server.requests_to(HEARTBEAT)) == refused  # no hammering


# -- fetch: register + lease + resolve + download + verify -------------------------------------


def test_fetch_happy_path(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour, tmp_path: Path
) -> None:
    dest = tmp_path / "modules" / "farm-bot.bin"
    result: FetchResult = flavour.call(
        botmox_server, "fetch", "farm-bot", "linux-x64", "stable", dest, vm_uuid=VM
    )
    assert dest.read_bytes() == botmox_server.payload
    assert result.to_json() == {
        "path": str(dest),
        "sha256": botmox_server.sha256,
        "size_bytes": len(botmox_server.payload),
        "release_id": 7,
        "version": "1.2.3",
        "lease_id": result.lease_id,
        "vm_uuid": VM,
    }
    paths = [r.path for r in botmox_server.requests]
    assert paths == [REGISTER, LEASE, RESOLVE, FILE_PATH]
    resolve = botmox_server.requests_to(RESOLVE)[0].body
    assert resolve["module"] == "farm-bot" and resolve["platform"] == "linux-x64"


def test_fetch_takes_a_new_lease_once_when_the_lease_expired(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour, tmp_path: Path
) -> None:
    expired = {"success": False, "error": {"code": "LEASE_EXPIRED", "message": "expired"}}
    botmox_server.fail_api(RESOLVE, 409, expired)
    result = flavour.call(
        botmox_server, "fetch", "farm-bot", "linux-x64", "stable", tmp_path / "a", vm_uuid=VM
    )
    assert len(botmox_server.requests_to(LEASE)) == 2
    assert len(botmox_server.requests_to(RESOLVE)) == 2
    leases = list(botmox_server.leases)
    assert result.lease_id == leases[1]

    botmox_server.fail_api(RESOLVE, 409, expired)
    inactive = {"success": False, "error": {"code": "LEASE_INACTIVE", "message": "revoked"}}
    botmox_server.fail_api(RESOLVE, 409, inactive)
    with pytest.raises(ConflictError) as caught:
        flavour.call(
            botmox_server, "fetch", "farm-bot", "linux-x64", "stable", tmp_path / "b", vm_uuid=VM
        )
    assert caught.value.code == "LEASE_INACTIVE"  # only one renewal per fetch


def test_fetch_resolves_again_when_the_url_is_refused_and_resumes(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour, tmp_path: Path
) -> None:
    # fault injection: cut the first transfer, then refuse the (still signed) URL once
    botmox_server.file_faults.extend([{"cut_after": 1024 * 1024 + 3}, {"status": 403}])
    dest = tmp_path / "bot.bin"
    flavour.call(botmox_server, "fetch", "farm-bot", "linux-x64", "stable", dest, vm_uuid=VM)
    assert dest.read_bytes() == botmox_server.payload
    assert len(botmox_server.requests_to(RESOLVE)) == 2
    gets = botmox_server.requests_to(FILE_PATH)
    assert len(gets) == 3
    # resumed on the fresh URL from what the cut transfer kept: every byte received (sync client)
    # or its whole 1 MiB chunks (async client)
    kept = 1024 * 1024 + 3 if flavour.kind == "sync" else 1024 * 1024
    assert gets[2].headers["range"] == f"bytes={kept}-"


def test_fetch_gives_up_after_bounded_url_refreshes(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour, tmp_path: Path
) -> None:
    botmox_server.file_faults.extend([{"status": 403}] * 10)
    policy = RetryPolicy(max_retries=1, base_delay=0.01, max_url_refreshes=2)
    with pytest.raises(DownloadUrlInvalidError):
        flavour.call(
            botmox_server,
            "fetch",
            "farm-bot",
            "linux-x64",
            "stable",
            tmp_path / "x",
            vm_uuid=VM,
            policy=policy,
        )
    assert len(botmox_server.requests_to(RESOLVE)) == 3
    assert not (tmp_path / "x").exists()


def test_fetch_re_resolves_when_the_url_expired(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour, tmp_path: Path
) -> None:
    botmox_server.url_ttl = -1  # fault injection: the server issues URLs that are already expired
    resolves = botmox_server.requests_to

    def fix_ttl_after_first_resolve() -> None:
        while not resolves(RESOLVE):
            time.sleep(0.01)
        botmox_server.url_ttl = 120

    import threading

    fixer = threading.Thread(target=fix_ttl_after_first_resolve)
    fixer.start()
    dest = tmp_path / "bot.bin"
    flavour.call(botmox_server, "fetch", "farm-bot", "linux-x64", "stable", dest, vm_uuid=VM)
    fixer.join()
    assert dest.read_bytes() == botmox_server.payload
    assert len(resolves(RESOLVE)) == 2


def test_secrets_stay_out_of_logs_and_reprs(
    botmox_server: ScriptedBotmoxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    botmox_server.file_faults.extend([{"cut_after": 100}, {"status": 403}])
    caplog.set_level(logging.DEBUG)
    with RunnerClient(botmox_server.url, API_TOKEN, retry_policy=FAST) as client:
        assert API_TOKEN not in repr(client)
        result = client.fetch("farm-bot", "linux-x64", "stable", tmp_path / "b", vm_uuid=VM)
        with client.lease("farm-bot", VM) as lease:
            resolved = client.resolve_download(lease, "linux-x64", "stable")
            assert "X-Signature" not in repr(resolved)
            assert lease.token not in repr(lease)
    assert result.path.exists()
    signatures = list(botmox_server.signatures)
    tokens = list(botmox_server.valid_tokens)
    text = caplog.text
    assert "httpx" in {r.name for r in caplog.records}  # httpx's request lines were captured
    for secret in [API_TOKEN, *signatures, *tokens]:
        assert secret not in text


def test_heartbeat_expiry_is_in_the_future_after_rotation() -> None:
    from botmox_core.client import LeaseGrant

    grant = LeaseGrant(lease_id="l1", token="t1", expires_at=datetime.now(UTC))
    later = datetime.now(UTC) + timedelta(seconds=90)
    rotated = grant.rotated({"token": "t2", "expires_at": later.isoformat()})
    assert rotated.token == "t2" and rotated.lease_id == "l1"
    assert rotated.expires_at == later
    assert "t2" not in repr(rotated)


def test_sync_and_async_clients_offer_the_same_methods() -> None:
    import inspect

    def public(cls: type) -> dict[str, list[str]]:
        return {
            name: list(inspect.signature(member).parameters)
            for name, member in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_") and name not in {"close", "aclose"}
        }

    sync, async_ = public(RunnerClient), public(AsyncRunnerClient)
    assert sync == async_
    assert {"register_vm", "lease", "resolve_download", "download", "fetch"} <= set(sync)
    for name in set(sync) - {"lease"}:
        assert inspect.iscoroutinefunction(getattr(AsyncRunnerClient, name)), name
