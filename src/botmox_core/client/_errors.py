"""Errors only the client can raise: the server never sends these codes.

They join the :mod:`botmox_core.errors` tree, so ``except BotmoxError`` still catches everything::

    BotmoxError
    ├── ServiceUnavailableError
    │   └── NetworkError        connect/read failure, timeout, connection cut mid-stream
    ├── ServerError             5xx answer without a botmox error envelope (retryable)
    ├── InvalidResponseError    a 2xx answer that is not a botmox success envelope
    └── LocalFileError          the destination or its temp file cannot be read or written
"""

from __future__ import annotations

from botmox_core.errors import BotmoxError, ServiceUnavailableError

__all__ = ["InvalidResponseError", "LocalFileError", "NetworkError", "ServerError"]


class NetworkError(ServiceUnavailableError):
    """The request did not complete at the transport level (retryable)."""

    default_code = "NETWORK_ERROR"


class ServerError(BotmoxError):
    """A 5xx answer without a botmox envelope, e.g. from a proxy in front of the server."""

    default_code = "SERVER_ERROR"
    status = 500
    retryable = True


class InvalidResponseError(BotmoxError):
    """A success status whose body is not the contract's ``{"success": true, "data": ...}``."""

    default_code = "INVALID_RESPONSE"
    status = 502


class LocalFileError(BotmoxError):
    """Reading or writing the download destination (or its ``.part`` file) failed."""

    default_code = "LOCAL_FILE_ERROR"
    status = 500
