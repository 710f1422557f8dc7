"""Keeping secrets out of reprs and log lines.

Lease tokens and API tokens are never shown; download URLs are shown without their query string
(presigned URLs carry their signature there) and without user-info.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

import httpx

__all__ = ["install_httpx_log_redaction", "redact_url"]

REDACTED = "<redacted>"


def redact_url(url: str | httpx.URL) -> str:
    """``url`` with credentials in user-info, query and fragment replaced by ``<redacted>``."""
    parts = urlsplit(str(url))
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = REDACTED if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


class _HttpxUrlRedactionFilter(logging.Filter):
    """Rewrites :class:`httpx.URL` arguments of httpx's own log records (``HTTP Request: ...``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(arg, httpx.URL) for arg in record.args
        ):
            record.args = tuple(
                redact_url(arg) if isinstance(arg, httpx.URL) else arg for arg in record.args
            )
        return True


def install_httpx_log_redaction() -> None:
    """Make httpx's INFO request log lines show download URLs without their signature.

    Idempotent; installed when a client is created.
    """
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _HttpxUrlRedactionFilter) for f in logger.filters):
        logger.addFilter(_HttpxUrlRedactionFilter())
