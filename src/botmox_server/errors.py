"""Turning every failure into the contract's error envelope.

Botmox errors keep their code and status; Litestar's own HTTP errors (unknown path, wrong method,
validation, oversized body) get the contract's codes; anything else is logged with its traceback
and answered as a 500 ``INTERNAL_ERROR`` envelope that reveals nothing but the request id.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from botmox_core.errors import BotmoxError

log = logging.getLogger("botmox.server")

_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


def _request_id(request: Request[Any, Any, Any]) -> str | None:
    request_id = request.scope.get("state", {}).get("request_id")
    return request_id if isinstance(request_id, str) else None


def _envelope(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response[Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return Response({"success": False, "error": error}, status_code=status, headers=headers)


def handle_botmox_error(request: Request[Any, Any, Any], exc: BotmoxError) -> Response[Any]:
    if exc.status >= 500:
        log.warning(
            "%s %s failed: %s (%s) request_id=%s",
            request.method,
            request.url.path,
            exc.code,
            exc.message,
            _request_id(request),
        )
    headers = {"Retry-After": str(int(exc.retry_after))} if exc.retry_after else None
    return _envelope(exc.status, exc.code, exc.message, exc.details, headers)


def handle_validation_error(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[Any]:
    details = exc.extra if isinstance(exc.extra, list) else None
    message = "request validation failed"
    if details:
        first = details[0]
        if isinstance(first, dict) and first.get("key"):
            message = f"{first['key']}: {first.get('message', 'invalid')}"
        elif isinstance(first, dict) and first.get("message"):
            message = str(first["message"])
    elif exc.detail and "JSON" in exc.detail:
        message = "request body is not valid JSON"
    return _envelope(400, "BAD_REQUEST", message, details)


def handle_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500:
        log.error("%s %s: HTTP %s %s", request.method, request.url.path, status, exc.detail)
    code = _HTTP_CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR")
    message = exc.detail if status < 500 else "internal error"
    if status == 404:
        message = f"no route for {request.method} {request.url.path}"
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "allow"} or None
    return _envelope(status, code, message, headers=headers)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception(
        "unhandled error on %s %s request_id=%s",
        request.method,
        request.url.path,
        _request_id(request),
    )
    return _envelope(
        500, "INTERNAL_ERROR", "internal error; see the server log for this request id"
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    BotmoxError: handle_botmox_error,
    ValidationException: handle_validation_error,
    HTTPException: handle_http_error,
    Exception: handle_unexpected,
}
