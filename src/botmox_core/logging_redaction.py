"""One logging filter that keeps secrets out of every log line (``docs/vault.md``, *Logs*).

:class:`RedactingFilter` rewrites each record before any handler formats it: the message (after
``%`` formatting), the traceback text, ``stack_info`` and every extra attribute. It replaces

* the tokens botmox issues: API tokens ``bmx_...``, agent tokens ``bma_...``, lease tokens
  ``bml1.<payload>.<signature>``, JWTs (``eyJ...``), ``Bearer``/``Basic`` credentials;
* download URL signatures (``signature=``, ``X-Amz-Signature=``, ``X-Amz-Credential=``,
  ``X-Amz-Security-Token=``) and passwords in URL user-info (``scheme://user:pass@host``);
* the value of every secret-like field written as ``name=value``, ``name: value``,
  ``"name": "value"`` or ``'name': 'value'`` (:data:`SECRET_FIELD_RE`: password, secret,
  token, api key, authorization, cookie, private key, pairing code, signature, and the
  envelope fields ``ciphertext``, ``enc``, ``nonce``), except names ending in ``_ref``,
  ``_id``, ``_ids``, ``_at`` or ``_hash`` (identifiers and times, not secrets);
* PEM private-key blocks;
* every value registered with :func:`registered_secrets` (the agent runtime registers the
  plaintext of the secrets it opened, for as long as the command runs).

:func:`install_redaction` attaches the filter to the handlers of the root logger (and of every
other logger that has handlers), so records that propagate are covered too; the server adds it
to its own handler in :func:`botmox_server.logs.logging_config`, the CLI (``botmox`` main) and
the agent runtime (:meth:`botmox_core.agent.Agent.run`) call :func:`install_redaction`.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "REDACTED",
    "SECRET_FIELD_RE",
    "RedactingFilter",
    "install_redaction",
    "is_secret_field",
    "redact_text",
    "redact_value",
    "registered_secrets",
]

#: What a redacted value is replaced with.
REDACTED = "[REDACTED]"
#: Registered values shorter than this are not searched for (they would match everywhere).
MIN_REGISTERED_LENGTH = 4

_NAME_PART = (
    r"pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|authori[sz]ation|cookie|"
    r"private[_-]?key|pairing[_-]?code|signature|credential|ciphertext|nonce|enc"
)
#: A field name that holds secret material (searched case-insensitively inside the name).
SECRET_FIELD_RE = re.compile(rf"(?:{_NAME_PART})", re.IGNORECASE)
_ENVELOPE_ONLY = frozenset({"enc"})
_NOT_SECRET_SUFFIXES = ("_ref", "_id", "_ids", "_at", "_hash", "_kept", "_count", "_bytes")

# name (optionally quoted) then ':' or '=' then a value (quoted, or up to a delimiter)
_FIELD_IN_TEXT = re.compile(
    r"(?P<key>[A-Za-z0-9_.-]*(?:" + _NAME_PART + r")[A-Za-z0-9_.-]*)"
    r"(?P<kq>[\"']?)(?P<sep>\s*[:=]\s*)"
    r"(?:(?P<q>[\"'])(?P<quoted>(?:\\.|(?!(?P=q)).)*)(?P=q)|(?P<bare>[^\s\"',;&}\])]+))",
    re.IGNORECASE,
)
_TOKEN_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?-----END [A-Z0-9 ]*PRIVATE KEY-----",
            re.DOTALL,
        ),
        "-----" + REDACTED + " PRIVATE KEY-----",
    ),
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{4,}"), r"\1\2" + REDACTED),
    (re.compile(r"\bbmx_[A-Za-z0-9_-]+"), "bmx_" + REDACTED),
    (re.compile(r"\bbma_[A-Za-z0-9_-]+"), "bma_" + REDACTED),
    (re.compile(r"\bbml1\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?"), "bml1." + REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    (
        re.compile(
            r"(?i)([?&;](?:signature|x-amz-signature|x-amz-credential|x-amz-security-token|"
            r"sig|token|access_token)=)[^&\s\"'#]+"
        ),
        r"\1" + REDACTED,
    ),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@:\"']+:[^/\s@\"']*@"), r"\1" + REDACTED + "@"),
)

#: Text in which none of these occurs holds nothing the patterns above would redact (each of
#: them needs one of these markers): such text skips the nine substitutions, which is what
#: almost every access-log field is.
_MAYBE_SECRET = re.compile(
    r"-----BEGIN|bearer|basic|bmx_|bma_|bml1\.|eyj|sig=|://|" + _NAME_PART, re.IGNORECASE
)

_registered: dict[str, int] = {}
_registered_lock = threading.Lock()


def is_secret_field(name: str) -> bool:
    """Whether a field called ``name`` holds secret material (see the module docstring)."""
    lowered = name.lower()
    if lowered.endswith(_NOT_SECRET_SUFFIXES):
        return False
    if lowered in _ENVELOPE_ONLY:
        return True
    stripped = re.sub(r"(?i)enc", "", lowered) if "enc" in lowered else lowered
    return bool(SECRET_FIELD_RE.search(stripped))


def _field(match: re.Match[str]) -> str:
    key = match["key"]
    if not is_secret_field(key) or (key.isupper() and ":" in match["sep"]):
        return match[0]  # an error code such as ``SECRET_NOT_FOUND: ...`` is no field
    if (match["bare"] or "").startswith(REDACTED[:-1]):
        return match[0]  # already redacted by a token pattern
    head = f"{key}{match['kq']}{match['sep']}"
    if match["q"] is not None:
        return f"{head}{match['q']}{REDACTED}{match['q']}"
    return head + REDACTED


def redact_text(text: str) -> str:
    """``text`` with every token, signature, secret-like field value and registered secret
    replaced by :data:`REDACTED`."""
    with _registered_lock:
        values = sorted(_registered, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    if not _MAYBE_SECRET.search(text):
        return text
    for pattern, replacement in _TOKEN_PATTERNS:
        text = pattern.sub(replacement, text)
    return _FIELD_IN_TEXT.sub(_field, text)


def redact_value(value: Any, depth: int = 0) -> Any:
    """A copy of a JSON-like ``value``: secret-like keys' values replaced, strings redacted
    with :func:`redact_text`."""
    if depth > 32:
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            key: (
                REDACTED
                if isinstance(key, str) and is_secret_field(key) and item is not None
                else redact_value(item, depth + 1)
            )
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(item, depth + 1) for item in value)
    return value


@contextmanager
def registered_secrets(values: Iterable[str]) -> Iterator[None]:
    """While the block runs, every log record containing one of ``values`` (each at least
    :data:`MIN_REGISTERED_LENGTH` characters) has it replaced by :data:`REDACTED`."""
    kept = [value for value in values if len(value) >= MIN_REGISTERED_LENGTH]
    with _registered_lock:
        for value in kept:
            _registered[value] = _registered.get(value, 0) + 1
    try:
        yield
    finally:
        with _registered_lock:
            for value in kept:
                count = _registered.get(value, 0) - 1
                if count <= 0:
                    _registered.pop(value, None)
                else:
                    _registered[value] = count


_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "request_id",
}


class RedactingFilter(logging.Filter):
    """Rewrites a record's message, traceback, stack and extra attributes with
    :func:`redact_text` / :func:`redact_value`; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: log its parts, redacted
            message = f"{record.msg!s} {record.args!r}"
        redacted = redact_text(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, ()
        if record.exc_info and record.exc_info[0] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = redact_text(text), None
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        for name, value in list(record.__dict__.items()):
            if name in _STANDARD_ATTRIBUTES or value is None:
                continue
            if isinstance(value, (str, dict, list, tuple)):
                record.__dict__[name] = REDACTED if is_secret_field(name) else redact_value(value)
        return True


def _attach(handler: logging.Handler) -> None:
    if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
        handler.addFilter(RedactingFilter())


def install_redaction(*, fallback_level: int = logging.WARNING) -> None:
    """Attach a :class:`RedactingFilter` to every handler of the root logger and of every
    logger that has handlers (idempotent). When the root logger has no handler, add a stderr
    handler at ``fallback_level`` (what Python's last-resort handler would print, redacted)."""
    root = logging.getLogger()
    if not root.handlers:
        fallback = logging.StreamHandler(sys.stderr)
        fallback.setLevel(fallback_level)
        fallback.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(fallback)
    handlers = list(root.handlers)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            handlers.extend(logger.handlers)
    for handler in handlers:
        _attach(handler)
