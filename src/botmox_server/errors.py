"""Turning every failure into the contract's error envelope.

Botmox errors keep their code and status; Litestar's own HTTP errors (unknown path, wrong method,
validation, oversized body) get the contract's codes; anything else is logged with its traceback
and answered as a 500 ``INTERNAL_ERROR`` envelope that reveals nothing but the request id.
"""

from __future__ import annotations

import logging
import re
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


#: Litestar's words for a parameter the request lacks (the rest of its text repeats the URL).
_MISSING_PARAMETER = re.compile(r"Missing required (\w+) parameter '([^'\x00-\x1f]{1,64})'")
#: msgspec's words for a body field that is absent.
_MISSING_FIELD = re.compile(r"missing required field `([^`\x00-\x1f]{1,64})`")


def _field_detail(item: dict[str, Any]) -> dict[str, Any]:
    """One of Litestar's validation details (``key``, ``message``, ``source``) in the
    contract's shape: ``{field, message, source?}`` naming the field itself (the body's root is
    reported by Litestar as ``data``; a missing field is named by msgspec in the message)."""
    message = str(item.get("message") or "invalid")
    field = str(item.get("key") or "body")
    missing = _MISSING_FIELD.search(message)
    if missing and field in {"data", "body"}:
        field = missing.group(1)
    elif field == "data":
        field = "body"
    detail: dict[str, Any] = {"field": field, "message": message}
    if source := item.get("source"):  # a ParamType member or a plain string
        detail["source"] = str(getattr(source, "value", source))
    return detail


def handle_validation_error(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[Any]:
    """400 ``BAD_REQUEST`` whose message and ``details`` (``[{field, message, source?}]``) name
    the offending field or parameter."""
    details: list[dict[str, Any]] | None = None
    message = "request validation failed"
    if isinstance(exc.extra, list) and exc.extra:
        details = [_field_detail(item) for item in exc.extra if isinstance(item, dict)] or None
    elif exc.detail and (missing := _MISSING_PARAMETER.search(exc.detail)):
        source, name = missing.groups()
        details = [{"field": name, "message": "required", "source": source}]
    elif exc.detail and "JSON" in exc.detail:
        message = "request body is not valid JSON"
    if details:
        message = f"{details[0]['field']}: {details[0]['message']}"
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
