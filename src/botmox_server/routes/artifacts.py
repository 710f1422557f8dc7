"""Artifact routes: releases (publish by key or upload bytes), assignments, resolve-download,
and the download audit log."""

from __future__ import annotations

import asyncio
import tempfile
from functools import partial
from typing import Annotated, Any

import anyio.to_thread
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from botmox_core.errors import PayloadTooLargeError
from botmox_core.models import Role
from botmox_core.services.downloads import DownloadService, ResolveAttempt
from botmox_server.bodies import AssignBody, ReleaseBody
from botmox_server.completions import completions_for
from botmox_server.dependencies import Caller, Core, authenticated_caller, client_ip
from botmox_server.envelope import ok
from botmox_server.resolve_body import ResolveDownloadOperation, decode_resolve_body

SPOOL_IN_MEMORY = 8 * 1024 * 1024
SPOOL_WRITE = 1024 * 1024


@post("/api/v1/artifacts/releases", sync_to_thread=True, tags=["artifacts"])
def publish_release(data: JSONBody[ReleaseBody], core: Core, principal: Caller) -> Response[Any]:
    """Register a release of an object already in storage; the server hashes the stored object
    and refuses a sha256/size mismatch (409 ``ARTIFACT_INTEGRITY_MISMATCH``)."""
    release = core.releases.publish(
        principal,
        module=data.module,
        platform=data.platform,
        channel=data.channel,
        version=data.version,
        object_key=data.object_key,
        sha256=data.sha256,
        size_bytes=data.size_bytes,
        status=data.status,
    )
    return ok(release, 201)


@post(
    "/api/v1/artifacts/releases/upload",
    tags=["artifacts"],
    request_max_body_size=None,
)
async def upload_release(
    request: Request[Any, Any, Any],
    core: Core,
    principal: Caller,
    module: FromQuery[str],
    platform: FromQuery[str],
    version: FromQuery[str],
    channel: FromQuery[str] = "stable",
    filename: FromQuery[str] = "artifact.bin",
    sha256: FromQuery[str | None] = None,
    release_status: Annotated[str | None, QueryParameter(name="status")] = None,
) -> Response[Any]:
    """Upload a release's bytes (request body, ``application/octet-stream``), verify the stored
    object and publish it (admin/infra). **Beyond** the v1 contract."""
    principal.require(Role.ADMIN, Role.INFRA)
    limit = core.settings.max_upload_bytes
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        size = 0
        pending = bytearray()  # ASGI chunks are small: write to the spool once per MiB
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(f"artifact larger than {limit} bytes")
            pending += chunk
            if len(pending) >= SPOOL_WRITE:
                await anyio.to_thread.run_sync(spool.write, bytes(pending))
                pending.clear()
        if pending:
            await anyio.to_thread.run_sync(spool.write, bytes(pending))
        spool.seek(0)
        release = await anyio.to_thread.run_sync(
            partial(
                core.releases.upload_and_publish,
                principal,
                spool,  # type: ignore[arg-type]
                module=module,
                platform=platform,
                channel=channel,
                version=version,
                filename=filename,
                size=size,
                expected_sha256=sha256,
                status=release_status,
            )
        )
    return ok(release, 201)


@get("/api/v1/artifacts/releases/{release_id:int}", sync_to_thread=True, tags=["artifacts"])
def get_release(release_id: FromPath[int], core: Core, principal: Caller) -> Response[Any]:
    """One release of the caller's tenant."""
    return ok(core.releases.get(principal, release_id))


@post("/api/v1/artifacts/assign", sync_to_thread=True, tags=["artifacts"])
def assign(data: JSONBody[AssignBody], core: Core, principal: Caller) -> Response[Any]:
    """Assign a release to a user, or without ``user_id`` as the tenant default (admin/infra)."""
    assignment = core.releases.assign(
        principal,
        module=data.module,
        platform=data.platform,
        channel=data.channel,
        release_id=data.release_id,
        user_id=data.user_id,
    )
    return ok(assignment, 201)


@get("/api/v1/artifacts/assign/{user_id:str}/{module:str}", sync_to_thread=True, tags=["artifacts"])
def get_assignment(
    user_id: FromPath[str],
    module: FromPath[str],
    core: Core,
    principal: Caller,
    platform: FromQuery[str],
    channel: FromQuery[str] = "stable",
) -> Response[Any]:
    """The user's, the default and the effective assignment for a scope."""
    view = core.releases.assignments_for(
        principal, user_id=user_id, module=module, platform=platform, channel=channel
    )
    return ok(
        {
            "user_assignment": view.user_assignment,
            "default_assignment": view.default_assignment,
            "effective_assignment": view.effective_assignment,
        }
    )


@post(
    "/api/v1/artifacts/resolve-download",
    status_code=200,
    tags=["artifacts"],
    operation_class=ResolveDownloadOperation,
)
async def resolve_download(request: Request[Any, Any, Any]) -> Response[Any]:
    """Exchange a valid lease token for a short-lived download URL (audited).

    The hot path of every VM boot. The caller comes from the token cache on the event loop
    (:func:`authenticated_caller`), before the body is read, so a bad bearer token is a 401
    whatever the body holds; the handler then decodes the body itself in one typed pass
    (:mod:`botmox_server.resolve_body`). When the backend and storage read only local files
    (:attr:`DownloadService.runs_locally
    <botmox_core.services.downloads.DownloadService.runs_locally>`: SQLite + localfs), the
    checks run right here on the event loop (tens of microseconds) and the audit entry is
    queued for the backend's group commit, the answer waiting for the commit without holding a
    thread; otherwise the whole resolve runs in one worker thread (one thread hop)."""
    principal = await authenticated_caller(request)
    data = decode_resolve_body(await request.body())
    downloads: DownloadService = request.app.state.core.downloads
    arguments = {
        "lease_token": data.lease_token,
        "vm_uuid": data.vm_uuid,
        "module": data.module,
        "platform": data.platform,
        "channel": data.channel,
        "request_ip": client_ip(request),
    }
    if downloads.runs_locally:
        attempt = downloads.attempt(principal, **arguments)
        resolved = downloads.finish(attempt, await _audited(downloads, attempt))
    else:
        work = partial(downloads.resolve, principal, **arguments)
        resolved = await anyio.to_thread.run_sync(work)
    release = resolved.release
    return ok(
        {
            "download_url": resolved.download_url,
            "url_expires_at": resolved.url_expires_at,
            "release_id": release.id,
            "version": release.version,
            "sha256": release.sha256,
            "size_bytes": release.size_bytes,
        }
    )


async def _audited(downloads: DownloadService, attempt: ResolveAttempt) -> BaseException | None:
    """Queue the attempt's audit entry and wait, without a thread, until it is durable: None,
    or the error that kept it from being written."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[BaseException | None] = loop.create_future()
    completions = completions_for(loop)

    def done(_stored: object, error: BaseException | None) -> None:  # on the writer thread
        completions.settle_soon(future, error)

    downloads.submit_audit(attempt, done)
    # the entry is queued: a client hanging up must not keep the answer from being decided
    return await asyncio.shield(future)


@get("/api/v1/artifacts/audit", sync_to_thread=True, tags=["artifacts"])
def audit_log(
    core: Core,
    principal: Caller,
    lease_id: FromQuery[str | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=200)] = 100,
) -> Response[Any]:
    """Download audit entries of the tenant, newest first (admin/infra). **Beyond** v1."""
    entries = core.downloads.audit_log(principal, lease_id=lease_id, limit=limit)
    return ok(entries, meta={"total": len(entries), "page": 1, "limit": limit})
