"""The synchronous runner client (httpx.Client, a heartbeat thread)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from botmox_core import __version__
from botmox_core.client import _rules as rules
from botmox_core.client._body import iter_body
from botmox_core.client._download import PartialDownload, PipelinedWrites
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
from botmox_core.errors import BotmoxError, DownloadUrlInvalidError

__all__ = ["LeaseSession", "ProgressCallback", "RunnerClient"]

logger = logging.getLogger("botmox.client")

ProgressCallback = Callable[[int, int], None]
"""``progress(done_bytes, total_bytes)``, called as bytes arrive (and once at the start)."""

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def _shared_ssl_context() -> Any:
    """One TLS context for both clients (httpx would load the CA bundle once per client), made
    the way httpx makes its default one; ``True`` (httpx's default) where httpx cannot."""
    create = getattr(httpx, "create_ssl_context", None)
    return create() if create is not None else True


class RunnerClient:
    """Synchronous client for the runner side of the Bot-Mox v1 contract.

    Args:
        base_url: the server's base URL, e.g. ``https://botmox.example.com``.
        token: API token sent as ``Authorization: Bearer``; never sent to download URLs.
        timeout: httpx timeout for every request.
        retry_policy: when and how long to back off (network errors, 5xx, 429).
        http_client / download_client: bring your own httpx clients (proxies, TLS settings);
            the client closes only the ones it created.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry_policy: RetryPolicy | None = None,
        http_client: httpx.Client | None = None,
        download_client: httpx.Client | None = None,
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
        verify = _shared_ssl_context() if http_client is None and download_client is None else True
        self._api = http_client or httpx.Client(timeout=timeout, verify=verify)
        self._downloads = download_client or httpx.Client(
            timeout=timeout, verify=verify, follow_redirects=True
        )

    def __repr__(self) -> str:
        return f"RunnerClient(base_url={redact_url(self.base_url)!r})"

    def __enter__(self) -> RunnerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the httpx clients this client created."""
        for owned, client in zip(self._owns, (self._api, self._downloads), strict=True):
            if owned:
                client.close()

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    # -- transport -------------------------------------------------------------------------------

    def _send(self, request: ApiRequest, *, max_retries: int | None = None) -> Any:
        """Send a contract call, retrying per :attr:`retry_policy`; the envelope's ``data``."""
        url = rules.api_url(self.base_url, request.path)
        retries = 0
        while True:
            try:
                response = self._api.request(
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
            self._sleep(delay)
            retries += 1

    # -- contract calls ----------------------------------------------------------------------

    def register_vm(
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
        data = self._send(
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

    def take_lease(
        self,
        module: str,
        vm_uuid: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        runner_id: str | None = None,
        version: str | None = None,
    ) -> LeaseGrant:
        """Take a lease without heartbeating it: ``POST /api/v1/license/lease``.

        Prefer :meth:`lease`, which keeps the lease alive while you work.
        """
        request = rules.lease_request(
            module,
            vm_uuid,
            user_id=user_id,
            agent_id=agent_id,
            runner_id=runner_id,
            version=version,
        )
        return LeaseGrant.from_data(self._send(request))

    def heartbeat(self, lease_id: str, lease_token: str | None = None) -> LeaseGrant:
        """Extend a lease: ``POST /api/v1/license/heartbeat``; the answer carries a new token."""
        return LeaseGrant.from_data(self._send(rules.heartbeat_request(lease_id, lease_token)))

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
    ) -> LeaseSession:
        """A context manager holding a :class:`Lease`, heartbeated in a background thread.

        The thread heartbeats at a third of the token's remaining lifetime (or every
        ``heartbeat_interval`` seconds) and swaps in each rotated token. Leaving the block stops
        heartbeating; the lease then simply expires.

        ::

            with client.lease("farm-bot", vm_uuid) as lease:
                client.resolve_download(lease, "windows-x64", "stable")
        """
        request = rules.lease_request(
            module,
            vm_uuid,
            user_id=user_id,
            agent_id=agent_id,
            runner_id=runner_id,
            version=version,
        )
        return LeaseSession(self, request, heartbeat_interval)

    def resolve_download(
        self,
        lease: Lease | str,
        platform: str,
        channel: str = "stable",
        *,
        vm_uuid: str | None = None,
        module: str | None = None,
    ) -> ResolvedDownload:
        """Resolve the assigned release to a short-lived download URL.

        ``lease`` is a held :class:`Lease` (its newest token, VM and module are used) or a bare
        lease token, in which case ``vm_uuid`` and ``module`` are required.
        """
        token, vm, mod = rules.lease_args(lease, vm_uuid, module)
        data = self._send(rules.resolve_download_request(token, vm, mod, platform, channel))
        return ResolvedDownload.from_data(data)

    def public_key(self) -> bytes:
        """The server's raw 32-byte Ed25519 lease-token public key."""
        return rules.public_key_from_data(self._send(rules.public_key_request()))

    # -- download ---------------------------------------------------------------------------------

    def download(
        self,
        source: ResolvedDownload | str,
        dest: str | Path,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> DownloadResult:
        """Download ``source`` to ``dest``, verifying size and sha256; resume an earlier attempt.

        Network errors, 5xx and 429 are retried with backoff, resuming where the bytes stopped.
        A refused or expired URL raises :class:`DownloadUrlInvalidError` (resolve again); a size or
        hash mismatch raises :class:`ArtifactIntegrityError` and leaves ``dest`` untouched.
        """
        url_text, sha256, size, resolved = rules.download_target(
            source, expected_sha256, expected_size
        )
        url = rules.absolute_url(self.base_url, url_text)
        partial = PartialDownload(dest, sha256, size)
        partial.prepare()
        try:
            if progress is not None:
                progress(partial.have, size)
            retries = 0
            while partial.needs_transfer:
                try:
                    self._transfer(url, partial, progress)
                except BotmoxError as error:
                    partial.suspend()
                    delay = rules.download_retry_delay(
                        self.retry_policy, error, retries, resolved, url, partial.have, size
                    )
                    self._sleep(delay)
                    retries += 1
            return partial.finish()
        finally:
            partial.close()

    def _transfer(
        self, url: httpx.URL, partial: PartialDownload, progress: ProgressCallback | None
    ) -> None:
        """One GET of the rest of the file into ``partial``."""
        try:
            with self._downloads.stream("GET", url, headers=partial.request_headers()) as response:
                status = response.status_code
                if status not in (200, 206):
                    body = response.read()
                    if status == 416:
                        partial.discard()
                        raise ServerError("server refused the resume range; restarting from zero")
                    raise rules.download_error(status, response.headers, body)
                partial.begin(status, response.headers)
                with PipelinedWrites(partial) as writes:
                    for chunk in iter_body(response):
                        writes.write(chunk)
                        if progress is not None:
                            progress(writes.received, partial.expected_size)
        except httpx.TransportError as exc:
            raise rules.network_error(exc, url) from exc
        if partial.have < partial.expected_size:
            raise NetworkError(
                f"download stream ended at {partial.have} of {partial.expected_size} bytes"
            )

    # -- the whole runner flow ---------------------------------------------------------------

    def fetch(
        self,
        module: str,
        platform: str,
        channel: str,
        dest: str | Path,
        vm_uuid: str | None = None,
        user_id: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> FetchResult:
        """Register the VM, lease ``module``, resolve and download it to ``dest``, verified.

        Retry rules: a lease that expired or went inactive before the resolve is replaced by a
        new lease once; a refused or expired download URL is resolved again (up to
        ``retry_policy.max_url_refreshes`` times), resuming the bytes already downloaded; network
        errors, 5xx and 429 back off per :attr:`retry_policy`. ``vm_uuid`` defaults to
        :func:`machine_vm_uuid`.
        """
        vm = self.register_vm(vm_uuid or machine_vm_uuid(), user_id=user_id)
        session = self.lease(module, vm.vm_uuid, user_id=user_id)
        with session as lease:
            renewed = False

            def resolve() -> ResolvedDownload:
                nonlocal renewed
                try:
                    return self.resolve_download(lease, platform, channel)
                except BotmoxError as error:
                    if renewed or not rules.is_lease_lost(error):
                        raise
                    logger.info(
                        "lease %s lost (%s); taking a new lease", lease.lease_id, error.code
                    )
                    renewed = True
                    session.renew()
                    return self.resolve_download(lease, platform, channel)

            resolved = resolve()
            refreshes = 0
            while True:
                try:
                    result = self.download(resolved, dest, progress=progress)
                    break
                except DownloadUrlInvalidError as error:
                    refreshes += 1
                    if refreshes > self.retry_policy.max_url_refreshes:
                        raise
                    logger.info("download URL refused (%s); resolving again", error.code)
                    resolved = resolve()
            return FetchResult(
                path=result.path,
                sha256=result.sha256,
                size_bytes=result.size_bytes,
                release_id=resolved.release_id,
                version=resolved.version,
                lease_id=lease.lease_id,
                vm_uuid=vm.vm_uuid,
            )


class LeaseSession:
    """``with client.lease(...) as lease:`` -- takes the lease on entry, heartbeats until exit."""

    def __init__(
        self, client: RunnerClient, request: ApiRequest, heartbeat_interval: float | None
    ) -> None:
        self._client = client
        self._request = request
        self._interval = heartbeat_interval
        self._lease: Lease | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def lease(self) -> Lease:
        """The held lease (available inside the block)."""
        if self._lease is None:
            raise RuntimeError("the lease is taken when the with-block is entered")
        return self._lease

    def __enter__(self) -> Lease:
        self._lease = Lease(LeaseGrant.from_data(self._client._send(self._request)))
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._heartbeat_loop, name="botmox-lease-heartbeat", daemon=True
        )
        self._thread.start()
        return self._lease

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def renew(self) -> Lease:
        """Replace the held lease by a brand-new one (same module and VM); heartbeats follow it."""
        lease = self.lease
        lease._replace_grant(LeaseGrant.from_data(self._client._send(self._request)))
        return lease

    def _heartbeat_loop(self) -> None:
        lease = self.lease
        policy = self._client.retry_policy
        retries = 0
        refused_lease_id: str | None = None
        delay = rules.heartbeat_interval(lease.expires_at, override=self._interval)
        while not self._stop.wait(delay):
            grant = lease.grant
            lease_id = grant.lease_id
            if lease_id == refused_lease_id:
                delay = rules.heartbeat_interval(lease.expires_at, override=self._interval)
                continue
            try:
                data = self._client._send(
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
