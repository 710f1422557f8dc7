"""One log format for the whole server: botmox's own loggers, uvicorn's and the access log.

``botmox serve`` installs it with :func:`logging_config` (passed to uvicorn as ``log_config``, so
uvicorn's start-up and error lines take the same path). Two formats:

* ``text`` — ``2026-01-02T03:04:05.678Z INFO botmox.access: GET /api/v1/health 200 1.2ms
  request_id=...``, one line per record;
* ``json`` — one JSON object per line with ``ts``, ``level``, ``logger``, ``message``, the
  ``request_id`` when a request is being served, the access log's ``method``, ``path``,
  ``status`` and ``duration_ms``, and ``exc_info`` for tracebacks.

Whatever a client controls (a percent-decoded path may hold ``\\n`` or NUL) is escaped before it
reaches a log: every message is passed through :func:`escape` by both formatters, so one record is
always one line. The access log never carries query strings (where download signatures travel),
and tokens are never logged: the handler carries :class:`~botmox_core.logging_redaction.
RedactingFilter`, which redacts tokens, signatures and secret-like fields in every record.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from botmox_core.config import LOG_FORMATS

__all__ = [
    "LOG_FORMATS",
    "JsonFormatter",
    "RequestIdFilter",
    "TextFormatter",
    "current_request_id",
    "escape",
    "logging_config",
]

#: Longest text kept from one value; the rest is replaced by ``...`` (bounded log lines).
MAX_FIELD_CHARS = 4096

#: The id of the request being served in this context (set by the request-id middleware).
current_request_id: ContextVar[str | None] = ContextVar("botmox_request_id", default=None)

_ACCESS_FIELDS = ("method", "path", "status", "duration_ms")


def escape(text: object, limit: int = MAX_FIELD_CHARS) -> str:
    """``text`` with control characters and other non-printable characters written as
    Python-style escapes (``\\n``, ``\\x00``, ``\\u2028``), cut to ``limit`` characters.

    The result is printable, so escaping it again changes nothing: the middleware escapes what
    it logs and the formatters escape every message, without doubling backslashes.
    """
    value = str(text)
    if len(value) > limit:
        value = value[:limit] + "..."
    if value.isprintable():
        return value
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in value)


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (the request being served, or ``None``) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id.get()
        return True


class TextFormatter(logging.Formatter):
    """``<ts> <LEVEL> <logger>: <message>``, the message escaped to one line; a traceback, if
    any, follows on the next lines as Python prints it."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name}: "
        line += escape(record.getMessage())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record (one line): ``ts``, ``level``, ``logger``, ``message``, and
    ``request_id``, access fields and ``exc_info`` when present."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": escape(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        for field in _ACCESS_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = escape(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:  # the redacting filter leaves the traceback as text
            entry["exc_info"] = record.exc_text
        return json.dumps(entry, ensure_ascii=True, default=str)


def logging_config(level: str = "info", log_format: str = "text") -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` document routing every logger (``botmox.*``,
    ``uvicorn``, ``uvicorn.error``, ``uvicorn.access`` and any other) to one stderr handler in
    ``log_format``. Pass it to ``uvicorn.run(log_config=...)``."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    numeric = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": RequestIdFilter},
            "redact": {"()": "botmox_core.logging_redaction.RedactingFilter"},
        },
        "formatters": {"botmox": {"()": formatter}},
        "handlers": {
            "botmox": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "botmox",
                "filters": ["request_id", "redact"],
            }
        },
        "root": {"handlers": ["botmox"], "level": numeric},
        "loggers": {
            name: {"handlers": [], "propagate": True, "level": numeric}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "botmox")
        },
    }
