"""Serving server-signed download URLs: ``GET|HEAD /api/v1/storage/{storage}/{key}``.

Every storage whose URLs the server signs goes through this one route: the embedded ``localfs``
and any storage declaring ``capabilities.presign = False`` (which the composition root wraps in
:class:`~botmox_core.backends.signed_urls.ServerSignedStorage`). The URL's ``expires`` and
``signature`` query parameters are the only credential: the handler checks them with the
storage's :class:`~botmox_core.backends.signed_urls.DownloadUrlSigner` (403
``DOWNLOAD_URL_INVALID`` / ``DOWNLOAD_URL_EXPIRED``, whatever is wrong with the key, the expiry
or the signature), then streams the object with ``Content-Length``, ``ETag`` (the quoted
sha256) and ``Accept-Ranges: bytes``. A single ``Range`` (``bytes=a-b``, ``a-``, ``-n``) gives
206 with ``Content-Range``; an unsatisfiable one gives 416 with ``Content-Range: bytes */size``;
an ``If-Range`` that does not match the ETag, several ranges or a malformed header give the whole
object (200). Reads run in worker threads, never on the event loop. ``localfs`` objects are read
with :meth:`LocalFsStorage.open_with_info`, so headers and bytes always describe one version;
other storages are read with ``head`` then ``open(start, end)``.

The storage comes from ``app.state.storage``; when it does not serve signed downloads
(:class:`~botmox_core.backends.signed_urls.ServesSignedDownloads`) or the URL names another
storage, the route answers 404 ``NOT_FOUND``. Errors are raised as
:class:`~botmox_core.errors.BotmoxError` for the application's exception handler to turn into
the contract's envelope. The route needs no bearer token (``opt={"exclude_from_auth": True}``).

Access logs print request paths with their query string; attach :class:`SignatureRedactingFilter`
to them (``logging.getLogger("uvicorn.access").addFilter(SignatureRedactingFilter())``) or turn
them off, so download signatures never reach a log.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from litestar import Request, Response, route
from litestar.enums import HttpMethod
from litestar.params import FromPath, FromQuery
from litestar.response import Stream

from botmox_core.backends.localfs import CHUNK_SIZE, LocalFsStorage
from botmox_core.backends.signed_urls import DOWNLOAD_ROUTE_PREFIX, ServesSignedDownloads
from botmox_core.errors import ArtifactObjectNotFoundError, NotFoundError
from botmox_core.models import ObjectInfo

__all__ = [
    "RangeNotSatisfiableError",
    "SignatureRedactingFilter",
    "localfs_download_routes",
    "parse_byte_range",
    "serve_localfs_download",
    "signed_download_routes",
]

_RANGE_SPEC = re.compile(r"\s*(\d{0,19})\s*-\s*(\d{0,19})\s*")
_SIGNATURE_IN_TEXT = re.compile(r"(signature=)[^&\s\"']+", re.IGNORECASE)


class RangeNotSatisfiableError(Exception):
    """The ``Range`` header is well formed but selects no byte of the object."""


def parse_byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte positions a ``Range`` header asks for.

    ``None`` means "send the whole object": no header, another unit, several ranges or a
    malformed header (which HTTP says to ignore). Raises :class:`RangeNotSatisfiableError` when a
    single well-formed range starts at or past ``size`` or is an empty suffix.
    """
    if header is None:
        return None
    unit, separator, spec = header.strip().partition("=")
    if not separator or unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = _RANGE_SPEC.fullmatch(spec)
    if match is None or not (match[1] or match[2]):
        return None
    if match[1]:
        first = int(match[1])
        last = int(match[2]) if match[2] else None
        if last is not None and last < first:
            return None
        if first >= size:
            raise RangeNotSatisfiableError
        return first, size - 1 if last is None else min(last, size - 1)
    suffix = int(match[2])
    if suffix == 0 or size == 0:
        raise RangeNotSatisfiableError
    return max(0, size - suffix), size - 1


class SignatureRedactingFilter(logging.Filter):
    """A logging filter that replaces ``signature=...`` values in messages and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _SIGNATURE_IN_TEXT.sub(r"\1[redacted]", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SIGNATURE_IN_TEXT.sub(r"\1[redacted]", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True


async def _file_chunks(file: io.FileIO, first: int, length: int) -> AsyncIterator[bytes]:
    """Read ``length`` bytes from ``first`` in worker threads; closes the file at the end."""
    try:
        await anyio.to_thread.run_sync(file.seek, first)
        remaining = length
        while remaining > 0:
            chunk = await anyio.to_thread.run_sync(file.read, min(CHUNK_SIZE, remaining))
            if not chunk:  # blob versions are immutable, so this means outside interference
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        file.close()


async def _storage_chunks(
    storage: ServesSignedDownloads, key: str, first: int, length: int
) -> AsyncIterator[bytes]:
    """Read ``length`` bytes from ``first`` with ``storage.open`` in worker threads."""
    if length <= 0:
        return
    stream = await anyio.to_thread.run_sync(
        lambda: storage.open(key, start=first, end=first + length - 1)
    )
    try:
        remaining = length
        while remaining > 0:
            chunk = await anyio.to_thread.run_sync(stream.read, min(CHUNK_SIZE, remaining))
            if not chunk:  # the object shrank since head(): end the response short
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        await anyio.to_thread.run_sync(stream.close)


def _object_headers(info: ObjectInfo, etag: str | None) -> dict[str, str]:
    filename = info.key.rsplit("/", 1)[-1]
    headers = {
        "accept-ranges": "bytes",
        "cache-control": "private, no-store",
        "content-disposition": f'attachment; filename="{filename}"',
    }
    if etag is not None:
        headers["etag"] = etag
    return headers


def _etag(info: ObjectInfo) -> str | None:
    tag = info.sha256 or info.etag
    return f'"{tag}"' if tag else None


@route(
    f"{DOWNLOAD_ROUTE_PREFIX}{{storage_name:str}}/{{key:path}}",
    http_method=[HttpMethod.GET, HttpMethod.HEAD],
    name="signed_download",
    opt={"exclude_from_auth": True},
    summary="Download an object through a server-signed URL",
)
async def serve_localfs_download(
    request: Request[Any, Any, Any],
    storage_name: FromPath[str],
    key: FromPath[str],
    expires: FromQuery[str | None] = None,
    signature: FromQuery[str | None] = None,
) -> Response[Any]:
    """Verify the signed URL, then send the object (or the requested byte range)."""
    storage = getattr(request.app.state, "storage", None)
    if not isinstance(storage, ServesSignedDownloads) or storage_name != storage.name:
        raise NotFoundError("this server's object storage does not serve this download URL")
    object_key = storage.url_signer.verify(
        storage.name, key[1:] if key.startswith("/") else key, expires, signature
    )
    file: io.FileIO | None = None
    if isinstance(storage, LocalFsStorage):  # metadata and bytes of one version
        info, file = await anyio.to_thread.run_sync(storage.open_with_info, object_key)
    else:
        found = await anyio.to_thread.run_sync(storage.head, object_key)
        if found is None:
            raise ArtifactObjectNotFoundError(f"object {object_key!r} does not exist")
        info = found
    is_head = request.method == HttpMethod.HEAD
    try:
        size = info.size_bytes
        etag = _etag(info)
        headers = _object_headers(info, etag)
        range_header = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if range_header is not None and if_range is not None and if_range.strip() != etag:
            range_header = None  # the client's copy is stale: send the whole current object
        try:
            selected = parse_byte_range(range_header, size)
        except RangeNotSatisfiableError:
            if file is not None:
                file.close()
            headers["content-range"] = f"bytes */{size}"
            envelope = {
                "success": False,
                "error": {
                    "code": "RANGE_NOT_SATISFIABLE",
                    "message": f"the requested range is outside the object's {size} bytes",
                },
            }
            return Response(
                content=b"" if is_head else envelope,
                status_code=416,
                headers=headers,
                media_type="application/json",
            )
        first, last = (0, size - 1) if selected is None else selected
        length = last - first + 1
        status = 200
        if selected is not None:
            status = 206
            headers["content-range"] = f"bytes {first}-{last}/{size}"
        headers["content-length"] = str(length)
        media_type = info.content_type or "application/octet-stream"
        if is_head:
            if file is not None:
                file.close()
            return Response(content=b"", status_code=status, headers=headers, media_type=media_type)
    except BaseException:
        if file is not None:
            file.close()
        raise
    chunks = (
        _file_chunks(file, first, length)
        if file is not None
        else _storage_chunks(storage, object_key, first, length)
    )
    return Stream(chunks, status_code=status, headers=headers, media_type=media_type)


signed_download_routes = [serve_localfs_download]
"""Route handlers to mount on the botmox server application."""

localfs_download_routes = signed_download_routes
"""The same routes under their first name (``localfs`` was their first user)."""
