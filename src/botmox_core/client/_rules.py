"""The client's rules, free of I/O: shared by :class:`RunnerClient` and :class:`AsyncRunnerClient`.

Both clients build requests here, hand the raw answer back here to be turned into data or a typed
error, and ask :class:`RetryPolicy` whether and when to try again. Only the sending and the
sleeping differ between them.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import attrs
import httpx

from botmox_core.client._errors import InvalidResponseError, NetworkError, ServerError
from botmox_core.client._lease import Lease
from botmox_core.client._models import ResolvedDownload
from botmox_core.client._redact import redact_url
from botmox_core.errors import (
    BadRequestError,
    BotmoxError,
    ConfigurationError,
    DownloadUrlInvalidError,
    LeaseExpiredError,
    LeaseInactiveError,
    error_class_for_code,
)

__all__ = [
    "ApiRequest",
    "RetryPolicy",
    "download_error",
    "heartbeat_interval",
    "is_lease_lost",
    "network_error",
    "parse_api_response",
    "parse_retry_after",
]

API_PREFIX = "/api/v1"


@attrs.frozen
class ApiRequest:
    """A contract call to send: method, path below the server's base URL, JSON body."""

    method: str
    path: str
    json: dict[str, Any] | None = None

    @classmethod
    def post(cls, path: str, body: Mapping[str, Any]) -> ApiRequest:
        """A POST with ``None`` values dropped from ``body`` (optional fields stay absent)."""
        return cls("POST", API_PREFIX + path, {k: v for k, v in body.items() if v is not None})

    @classmethod
    def get(cls, path: str) -> ApiRequest:
        """A GET of ``path`` below ``/api/v1``."""
        return cls("GET", API_PREFIX + path)


def register_vm_request(
    vm_uuid: str,
    *,
    user_id: str | None = None,
    vm_name: str | None = None,
    project_id: str | None = None,
    status: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ApiRequest:
    return ApiRequest.post(
        "/vm/register",
        {
            "vm_uuid": vm_uuid,
            "user_id": user_id,
            "vm_name": vm_name,
            "project_id": project_id,
            "status": status,
            "metadata": dict(metadata) if metadata is not None else None,
        },
    )


def lease_request(
    module: str,
    vm_uuid: str,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    runner_id: str | None = None,
    version: str | None = None,
) -> ApiRequest:
    return ApiRequest.post(
        "/license/lease",
        {
            "vm_uuid": vm_uuid,
            "user_id": user_id,
            "agent_id": agent_id,
            "runner_id": runner_id,
            "module": module,
            "version": version,
        },
    )


def heartbeat_request(lease_id: str, lease_token: str | None = None) -> ApiRequest:
    """``lease_token`` proves the lease is the caller's when its API token has no user."""
    return ApiRequest.post("/license/heartbeat", {"lease_id": lease_id, "lease_token": lease_token})


def resolve_download_request(
    lease_token: str, vm_uuid: str, module: str, platform: str, channel: str
) -> ApiRequest:
    return ApiRequest.post(
        "/artifacts/resolve-download",
        {
            "lease_token": lease_token,
            "vm_uuid": vm_uuid,
            "module": module,
            "platform": platform,
            "channel": channel,
        },
    )


def public_key_request() -> ApiRequest:
    return ApiRequest.get("/license/public-key")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _decode_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> BotmoxError:
    """The typed error for a failure answer: the envelope's code if present, else the status."""
    request_id = headers.get("x-request-id")
    retry_after = parse_retry_after(headers.get("retry-after"))
    payload = _decode_json(body)
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        code = error["code"]
        return error_class_for_code(code, status)(
            str(error.get("message") or ""),
            code=code,
            details=error.get("details"),
            request_id=request_id,
            retry_after=retry_after,
        )
    cls = error_class_for_code("", status)
    if cls is BotmoxError:
        cls = ServerError if status >= 500 else BotmoxError
    return cls(
        f"HTTP {status} without a botmox error envelope",
        code=None if cls is not BotmoxError else f"HTTP_{status}",
        request_id=request_id,
        retry_after=retry_after,
    )


def parse_api_response(status: int, headers: Mapping[str, str], body: bytes) -> Any:
    """The ``data`` of a success envelope; raise the typed :class:`BotmoxError` otherwise."""
    if not 200 <= status < 300:
        raise error_from_response(status, headers, body)
    payload = _decode_json(body)
    if not (isinstance(payload, dict) and payload.get("success") is True and "data" in payload):
        raise InvalidResponseError(
            f"HTTP {status} answer is not a botmox success envelope",
            request_id=headers.get("x-request-id"),
        )
    return payload["data"]


def download_error(status: int, headers: Mapping[str, str], body: bytes) -> BotmoxError:
    """The typed error for a failed artifact download.

    A refused or expired URL (401/403/410, whatever the storage says) becomes
    :class:`DownloadUrlInvalidError`, which tells :meth:`fetch` to resolve a fresh URL.
    """
    error = error_from_response(status, headers, body)
    if status in (401, 403, 410) and not isinstance(error, DownloadUrlInvalidError):
        return DownloadUrlInvalidError(
            f"download URL refused with HTTP {status}: {error.message}",
            # keep a specific envelope code such as DOWNLOAD_URL_EXPIRED
            code=error.code if error.code.startswith("DOWNLOAD_URL") else None,
            request_id=error.request_id,
        )
    return error


def network_error(exc: httpx.TransportError, url: httpx.URL | str | None = None) -> NetworkError:
    """A :class:`NetworkError` for an httpx transport failure, naming the URL without secrets."""
    message = str(exc) or "connection failed"
    if url is not None:
        message = message.replace(str(url), redact_url(url)) + f" ({redact_url(url)})"
    return NetworkError(f"{type(exc).__name__}: {message}")


def is_lease_lost(error: BotmoxError) -> bool:
    """Whether a resolve failed because the lease ran out (a new lease can fix it)."""
    return isinstance(error, LeaseExpiredError | LeaseInactiveError)


def heartbeat_interval(
    expires_at: datetime, now: datetime | None = None, override: float | None = None
) -> float:
    """Seconds until the next heartbeat: a third of the time the token has left (≥ 1 s)."""
    if override is not None:
        return max(override, 0.05)
    left = (expires_at - (now or datetime.now(UTC))).total_seconds()
    return max(1.0, left / 3)


@attrs.define
class RetryPolicy:
    """When and how long to wait before repeating a failed call.

    Subclass and override :meth:`should_retry` / :meth:`retry_delay` to change the policy.

    Attributes:
        max_retries: retries after the first attempt (0 disables retrying).
        base_delay: backoff scale in seconds; attempt ``n`` waits up to ``base_delay * 2**n``.
        max_delay: cap of the exponential backoff in seconds.
        max_retry_after: longest ``Retry-After`` the client will wait; a longer one is not retried
            and the error (with ``retry_after`` set) reaches the caller.
        max_url_refreshes: how often :meth:`fetch` resolves a fresh download URL after the URL
            was refused or expired.
    """

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_retry_after: float = 60.0
    max_url_refreshes: int = 3

    def should_retry(self, error: BotmoxError, retries_done: int) -> bool:
        """Retry errors that can succeed later (network, 5xx, 429) until the budget is spent."""
        if retries_done >= self.max_retries or not error.retryable:
            return False
        return error.retry_after is None or error.retry_after <= self.max_retry_after

    def retry_delay(self, error: BotmoxError, retries_done: int) -> float:
        """``Retry-After`` when the server sent one, else full-jitter exponential backoff."""
        if error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * (2**retries_done))
        return random.uniform(0.0, ceiling)  # noqa: S311 - jitter, not a secret


logger = logging.getLogger("botmox.client")


def api_retry_delay(
    policy: RetryPolicy,
    error: BotmoxError,
    retries: int,
    max_retries: int | None,
    request: ApiRequest,
) -> float:
    """Seconds to wait before retrying a failed contract call; raises ``error`` when the policy
    (or a call-specific ``max_retries`` budget) says not to retry."""
    budget = policy.max_retries if max_retries is None else max_retries
    if retries >= budget or not policy.should_retry(error, retries):
        raise error
    delay = policy.retry_delay(error, retries)
    logger.info(
        "%s %s failed with %s; retry %d in %.2fs",
        request.method,
        request.path,
        error.code,
        retries + 1,
        delay,
    )
    return delay


def download_retry_delay(
    policy: RetryPolicy,
    error: BotmoxError,
    retries: int,
    resolved: ResolvedDownload | None,
    url: httpx.URL,
    have: int,
    size: int,
) -> float:
    """Seconds to wait before resuming a failed download; raises when it must not be retried
    (a refused URL, a spent budget, or a URL that expired meanwhile: resolve again)."""
    if isinstance(error, DownloadUrlInvalidError) or not policy.should_retry(error, retries):
        raise error
    if resolved is not None and resolved.url_expired():
        raise DownloadUrlInvalidError("download URL expired while retrying") from error
    delay = policy.retry_delay(error, retries)
    logger.info(
        "download of %s failed with %s at %d/%d bytes; retry %d in %.2fs",
        redact_url(url),
        error.code,
        have,
        size,
        retries + 1,
        delay,
    )
    return delay


def download_target(
    source: ResolvedDownload | str,
    expected_sha256: str | None,
    expected_size: int | None,
) -> tuple[str, str, int, ResolvedDownload | None]:
    """URL, expected sha256 and size of a download, from a resolve answer or explicit values."""
    if isinstance(source, ResolvedDownload):
        return (
            source.download_url,
            expected_sha256 or source.sha256,
            source.size_bytes if expected_size is None else expected_size,
            source,
        )
    if expected_sha256 is None or expected_size is None:
        raise BadRequestError("downloading a bare URL needs expected_sha256 and expected_size")
    return source, expected_sha256, expected_size, None


def server_base_url(base_url: str | httpx.URL) -> httpx.URL:
    """The server's base URL, checked once up front: ``http://`` or ``https://`` with a host.

    A URL without a scheme (``botmox.example.com:8000``) would otherwise fail on every request and
    be retried as a network error; :class:`ConfigurationError` says what is wrong instead.
    """
    shown = redact_url(str(base_url))[:200]
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError):
        raise ConfigurationError(f"server URL {shown!r} is not a valid URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(
            f"server URL {shown!r} must start with http:// or https:// and name a host, "
            "e.g. http://127.0.0.1:8000"
        )
    return url


def bearer_header(token: str) -> str:
    """The ``Authorization`` value for an API token; :class:`ConfigurationError` for an empty
    token or one that cannot travel in a header (instead of a transport-level failure)."""
    if not isinstance(token, str) or not token.strip():
        raise ConfigurationError("the API token is empty (pass a token, e.g. BOTMOX_TOKEN)")
    if token != token.strip() or not token.isascii() or not token.isprintable() or " " in token:
        raise ConfigurationError(
            "the API token contains spaces, control or non-ASCII characters (check how it was "
            "copied)"
        )
    return f"Bearer {token}"


def api_url(base_url: httpx.URL, path: str) -> httpx.URL:
    """``path`` (``/api/v1/...``) below the base URL, keeping any path prefix the base URL has."""
    return base_url.copy_with(path=base_url.path.rstrip("/") + path, query=None, fragment=None)


def absolute_url(base_url: httpx.URL, url: str) -> httpx.URL:
    """``url`` made absolute against the server's base URL (servers may answer a relative path)."""
    parsed = httpx.URL(url)
    return parsed if parsed.is_absolute_url else base_url.join(url)


def lease_args(lease: Lease | str, vm_uuid: str | None, module: str | None) -> tuple[str, str, str]:
    """Token, vm_uuid and module for a resolve call, taken from a held :class:`Lease` if given."""
    if isinstance(lease, Lease):
        token = lease.token
        vm_uuid = vm_uuid or lease.vm_uuid
        module = module or lease.module
    else:
        token = lease
    if not vm_uuid or not module:
        raise BadRequestError("resolve_download needs vm_uuid and module with a bare lease token")
    return token, vm_uuid, module


def public_key_from_data(data: Any) -> bytes:
    """The raw 32-byte Ed25519 key from a ``license/public-key`` answer."""
    if not isinstance(data, dict) or data.get("algorithm") != "Ed25519":
        raise InvalidResponseError("public key answer is not an Ed25519 key")
    encoded = str(data.get("public_key") or "")
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (ValueError, binascii.Error) as exc:
        raise InvalidResponseError("public key is not base64url") from exc
    if len(raw) != 32:
        raise InvalidResponseError("Ed25519 public key must be 32 bytes")
    return raw
