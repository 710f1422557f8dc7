"""The asyncio runner client (httpx.AsyncClient, a heartbeat task).

Same rules as :class:`~botmox_core.client.RunnerClient` (shared in ``_rules``/``_download``);
blocking file work (re-hashing, writing, fsync) runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from botmox_core import __version__
from botmox_core.client import _rules as rules
from botmox_core.client._download import CHUNK_SIZE, PartialDownload
from botmox_core.client._errors import NetworkError, ServerError
from botmox_core.client._lease import Lease
from botmox_core.client._machine import machine_vm_uuid
from botmox_core.client._models import (
    DownloadResult,
    FetchResult,
    LeaseGrant,
    RegisteredVm,
    ResolvedDownload,
)
from botmox_core.client._redact import install_httpx_log_redaction, redact_url
from botmox_core.client._rules import ApiRequest, RetryPolicy
from botmox_core.client._sync import DEFAULT_TIMEOUT, ProgressCallback
from botmox_core.errors import BotmoxError, DownloadUrlInvalidError

__all__ = ["AsyncLeaseSession", "AsyncRunnerClient"]

logger = logging.getLogger("botmox.client")


class AsyncRunnerClient:
    """Asyncio client for the runner side of the Bot-Mox v1 contract.

    The same methods as :class:`~botmox_core.client.RunnerClient`, awaited; :meth:`lease` is an
    ``async with`` context manager whose heartbeat runs as an asyncio task.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry_policy: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
        download_client: httpx.AsyncClient | None = None,
    ) -> None:
        install_httpx_log_redaction()
        self.base_url = rules.server_base_url(base_url)
        self.retry_policy = retry_policy or RetryPolicy()
        self._headers = {
            "Authorization": rules.bearer_header(token),
            "Accept": "application/json",
            "User-Agent": f"botmox-runner/{__version__}",
        }
        self._owns = [c is None for c in (http_client, download_client)]
        self._api = http_client or httpx.AsyncClient(timeout=timeout)
        self._downloads = download_client or httpx.AsyncClient(
            timeout=timeout, follow_redirects=True
        )

    def __repr__(self) -> str:
        return f"AsyncRunnerClient(base_url={redact_url(self.base_url)!r})"

    async def __aenter__(self) -> AsyncRunnerClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the httpx clients this client created."""
        for owned, client in zip(self._owns, (self._api, self._downloads), strict=True):
            if owned:
                await client.aclose()

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    # -- transport -------------------------------------------------------------------------------

    async def _send(self, request: ApiRequest, *, max_retries: int | None = None) -> Any:
        """Send a contract call, retrying per :attr:`retry_policy`; the envelope's ``data``."""
        url = rules.api_url(self.base_url, request.path)
        retries = 0
        while True:
            try:
                response = await self._api.request(
                    request.method, url, json=request.json, headers=self._headers
                )
                return rules.parse_api_response(
                    response.status_code, response.headers, response.content
                )
            except httpx.TransportError as exc:
                error: BotmoxError = rules.network_error(exc, url)
                error.__cause__ = exc
            except BotmoxError as exc:
                error = exc
            delay = rules.api_retry_delay(self.retry_policy, error, retries, max_retries, request)
            await self._sleep(delay)
            retries += 1

    # -- contract calls ----------------------------------------------------------------------

    async def register_vm(
        self,
        vm_uuid: str,
        *,
        user_id: str | None = None,
        vm_name: str | None = None,
        project_id: str | None = None,
        status: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> RegisteredVm:
        """Register (or update) a VM: ``POST /api/v1/vm/register``."""
        data = await self._send(
            rules.register_vm_request(
                vm_uuid,
                user_id=user_id,
                vm_name=vm_name,
                project_id=project_id,
                status=status,
                metadata=metadata,
            )
        )
        return RegisteredVm.from_data(data)

    async def take_lease(
        self,
        module: str,
        vm_uuid: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        runner_id: str | None = None,
        version: str | None = None,
    ) -> LeaseGrant:
        """Take a lease without heartbeating it; prefer :meth:`lease`."""
        request = rules.lease_request(
            module,
            vm_uuid,
            user_id=user_id,
            agent_id=agent_id,
            runner_id=runner_id,
            version=version,
        )
        return LeaseGrant.from_data(await self._send(request))

    async def heartbeat(self, lease_id: str, lease_token: str | None = None) -> LeaseGrant:
        """Extend a lease; the answer carries a new token. Send ``lease_token`` when the API
        token is bound to no user (it proves the lease is yours)."""
        return LeaseGrant.from_data(
            await self._send(rules.heartbeat_request(lease_id, lease_token))
        )

    def lease(
        self,
        module: str,
        vm_uuid: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        runner_id: str | None = None,
        version: str | None = None,
        heartbeat_interval: float | None = None,
    ) -> AsyncLeaseSession:
        """``async with client.lease(module, vm_uuid) as lease:`` -- heartbeated by a task."""
        request = rules.lease_request(
            module,
            vm_uuid,
            user_id=user_id,
            agent_id=agent_id,
            runner_id=runner_id,
            version=version,
        )
        return AsyncLeaseSession(self, request, heartbeat_interval)

    async def resolve_download(
        self,
        lease: Lease | str,
        platform: str,
        channel: str = "stable",
        *,
        vm_uuid: str | None = None,
        module: str | None = None,
    ) -> ResolvedDownload:
        """Resolve the assigned release to a short-lived download URL (see the sync client)."""
        token, vm, mod = rules.lease_args(lease, vm_uuid, module)
        data = await self._send(rules.resolve_download_request(token, vm, mod, platform, channel))
        return ResolvedDownload.from_data(data)

    async def public_key(self) -> bytes:
        """The server's raw 32-byte Ed25519 lease-token public key."""
        return rules.public_key_from_data(await self._send(rules.public_key_request()))

    # -- download ---------------------------------------------------------------------------------

    async def download(
        self,
        source: ResolvedDownload | str,
        dest: str | Path,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> DownloadResult:
        """Download, verify and atomically place ``source`` at ``dest`` (see the sync client)."""
        url_text, sha256, size, resolved = rules.download_target(
            source, expected_sha256, expected_size
        )
        url = rules.absolute_url(self.base_url, url_text)
        partial = PartialDownload(dest, sha256, size)
        await asyncio.to_thread(partial.prepare)
        try:
            if progress is not None:
                progress(partial.have, size)
            retries = 0
            while partial.needs_transfer:
                try:
                    await self._transfer(url, partial, progress)
                except BotmoxError as error:
                    partial.suspend()
                    delay = rules.download_retry_delay(
                        self.retry_policy, error, retries, resolved, url, partial.have, size
                    )
                    await self._sleep(delay)
                    retries += 1
            return await asyncio.to_thread(partial.finish)
        finally:
            partial.close()

    async def _transfer(
        self, url: httpx.URL, partial: PartialDownload, progress: ProgressCallback | None
    ) -> None:
        try:
            async with self._downloads.stream(
                "GET", url, headers=partial.request_headers()
            ) as response:
                status = response.status_code
                if status not in (200, 206):
                    body = await response.aread()
                    if status == 416:
                        await asyncio.to_thread(partial.discard)
                        raise ServerError("server refused the resume range; restarting from zero")
                    raise rules.download_error(status, response.headers, body)
                await asyncio.to_thread(partial.begin, status, response.headers)
                async for chunk in response.aiter_bytes(CHUNK_SIZE):
                    await asyncio.to_thread(partial.write, chunk)
                    if progress is not None:
                        progress(partial.have, partial.expected_size)
        except httpx.TransportError as exc:
            raise rules.network_error(exc, url) from exc
        if partial.have < partial.expected_size:
            raise NetworkError(
                f"download stream ended at {partial.have} of {partial.expected_size} bytes"
            )

    # -- the whole runner flow ---------------------------------------------------------------

    async def fetch(
        self,
        module: str,
        platform: str,
        channel: str,
        dest: str | Path,
        vm_uuid: str | None = None,
        user_id: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> FetchResult:
        """Register, lease, resolve, download and verify (same retry rules as the sync client)."""
        if vm_uuid is None:
            vm_uuid = await asyncio.to_thread(machine_vm_uuid)
        vm = await self.register_vm(vm_uuid, user_id=user_id)
        session = self.lease(module, vm.vm_uuid, user_id=user_id)
        async with session as lease:
            renewed = False

            async def resolve() -> ResolvedDownload:
                nonlocal renewed
                try:
                    return await self.resolve_download(lease, platform, channel)
                except BotmoxError as error:
                    if renewed or not rules.is_lease_lost(error):
                        raise
                    logger.info(
                        "lease %s lost (%s); taking a new lease", lease.lease_id, error.code
                    )
                    renewed = True
                    await session.renew()
                    return await self.resolve_download(lease, platform, channel)

            resolved = await resolve()
            refreshes = 0
            while True:
                try:
                    result = await self.download(resolved, dest, progress=progress)
                    break
                except DownloadUrlInvalidError as error:
                    refreshes += 1
                    if refreshes > self.retry_policy.max_url_refreshes:
                        raise
                    logger.info("download URL refused (%s); resolving again", error.code)
                    resolved = await resolve()
            return FetchResult(
                path=result.path,
                sha256=result.sha256,
                size_bytes=result.size_bytes,
                release_id=resolved.release_id,
                version=resolved.version,
                lease_id=lease.lease_id,
                vm_uuid=vm.vm_uuid,
            )


class AsyncLeaseSession:
    """``async with client.lease(...) as lease:`` -- takes the lease, heartbeats until exit."""

    def __init__(
        self, client: AsyncRunnerClient, request: ApiRequest, heartbeat_interval: float | None
    ) -> None:
        self._client = client
        self._request = request
        self._interval = heartbeat_interval
        self._lease: Lease | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def lease(self) -> Lease:
        """The held lease (available inside the block)."""
        if self._lease is None:
            raise RuntimeError("the lease is taken when the async with-block is entered")
        return self._lease

    async def __aenter__(self) -> Lease:
        self._lease = Lease(LeaseGrant.from_data(await self._client._send(self._request)))
        self._task = asyncio.create_task(self._heartbeat_loop(), name="botmox-lease-heartbeat")
        return self._lease

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def renew(self) -> Lease:
        """Replace the held lease by a brand-new one; heartbeats follow it."""
        lease = self.lease
        lease._replace_grant(LeaseGrant.from_data(await self._client._send(self._request)))
        return lease

    async def _heartbeat_loop(self) -> None:
        lease = self.lease
        policy = self._client.retry_policy
        retries = 0
        refused_lease_id: str | None = None
        delay = rules.heartbeat_interval(lease.expires_at, override=self._interval)
        while True:
            await asyncio.sleep(delay)
            grant = lease.grant
            lease_id = grant.lease_id
            if lease_id == refused_lease_id:
                delay = rules.heartbeat_interval(lease.expires_at, override=self._interval)
                continue
            try:
                data = await self._client._send(
                    rules.heartbeat_request(lease_id, grant.token), max_retries=0
                )
            except BotmoxError as error:
                lease._record_heartbeat_failure(lease_id, error)
                logger.warning("heartbeat of lease %s failed: %s", lease_id, error.code)
                if error.retryable:
                    delay = min(policy.retry_delay(error, retries), policy.max_delay)
                    retries += 1
                else:
                    refused_lease_id = lease_id
                    delay = rules.heartbeat_interval(lease.expires_at, override=self._interval)
                continue
            try:
                lease._record_heartbeat(lease_id, data)
            except BotmoxError as error:
                lease._record_heartbeat_failure(lease_id, error)
            retries = 0
            delay = rules.heartbeat_interval(lease.expires_at, override=self._interval)
