"""The one logging filter (``botmox_core.logging_redaction``): what it redacts, what it keeps,
and that the server's logging config, the CLI and the agent runtime install it."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import sys
from collections.abc import Iterator

import pytest

from botmox_core.logging_redaction import (
    REDACTED,
    RedactingFilter,
    install_redaction,
    is_secret_field,
    redact_text,
    redact_value,
    registered_secrets,
)
from botmox_server.logs import logging_config

API_TOKEN = "bmx_Zq3xVb8T1cVvJm0c0f4tQd3Ysk2mA9aB"
AGENT_TOKEN = "bma_Yx8bLq1nR3p0Q9uE7wZkSg5aHd2cJf6T"
LEASE_TOKEN = "bml1.eyJsaWQiOiJsXzEiLCJ0aWQiOiJ0In0.c2lnbmF0dXJlLWJ5dGVzLWhlcmU"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEiLCJ0ZW5hbnRfaWQiOiJ0In0.dGhlLXNpZ25hdHVyZQ"
SIGNATURE = "k2.3f9a0c1d2e3f405162738495a6b7c8d9"
CIPHERTEXT = "q1w2e3r4t5y6u7i8o9p0AAAAbbbbCCCCddddEEEE"  # as in a sealed copy
PASSWORD = "pr0xm0x-S3cr3t!"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"Authorization: Bearer {API_TOKEN}", API_TOKEN),
        (f"token {AGENT_TOKEN} refused", AGENT_TOKEN),
        (f"lease {LEASE_TOKEN} expired", LEASE_TOKEN),
        (f"jwt {JWT}", JWT),
        (f"GET /api/v1/storage/localfs/k?expires=1&signature={SIGNATURE}", SIGNATURE),
        (f"https://b.s3/k?X-Amz-Credential=AKIA1234&X-Amz-Signature={SIGNATURE}", SIGNATURE),
        (f"password={PASSWORD} user=me", PASSWORD),
        (f'{{"password": "{PASSWORD}", "node": "pve"}}', PASSWORD),
        (f"{{'tinyFmPassword': '{PASSWORD}'}}", PASSWORD),
        (f"ssh.password: {PASSWORD}", PASSWORD),
        (f"DB_PASSWORD={PASSWORD}", PASSWORD),
        (f'{{"bot_token": "{PASSWORD}", "chat_id": "42"}}', PASSWORD),
        (f'{{"api_key": "{PASSWORD}"}}', PASSWORD),
        (f'{{"enc": "{CIPHERTEXT}", "ciphertext": "{CIPHERTEXT}"}}', CIPHERTEXT),
        (f'{{"nonce": "{CIPHERTEXT}"}}', CIPHERTEXT),
        (f'{{"private_key": "{CIPHERTEXT}"}}', CIPHERTEXT),
        (f"pairing_code={CIPHERTEXT}", CIPHERTEXT),
        (f"postgresql://botmox:{PASSWORD}@db:5432/botmox", PASSWORD),
        (
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI" + PASSWORD + "\n"
            "-----END PRIVATE KEY-----",
            PASSWORD,
        ),
    ],
)
def test_secrets_are_redacted(text: str, secret: str) -> None:
    redacted = redact_text(text)
    assert secret not in redacted
    assert REDACTED in redacted


@pytest.mark.parametrize(
    "text",
    [
        "GET /api/v1/secrets/1b4e28ba-2d11-4b6a-9c1f-7a3d2e6f0b1c/meta 200 1.2ms",
        '{"secret_ref": "1b4e28ba-2d11-4b6a-9c1f-7a3d2e6f0b1c", "key_id": "x25519:ab12"}',
        "SECRET_OPEN_FAILED: secret 1b4e28ba did not open",
        "agent_token_expires_at=2026-01-01T00:00:00Z licence=active sequence: 4",
        "command cmd_0123456789abcdef0123456789abcdef succeeded",
    ],
)
def test_identifiers_and_codes_are_kept(text: str) -> None:
    assert redact_text(text) == text


def test_field_names() -> None:
    for name in ("password", "tinyFmPassword", "bot_token", "api_key", "enc", "ciphertext"):
        assert is_secret_field(name), name
    for name in ("secret_ref", "secret_id", "key_id", "token_expires_at", "licence", "reference"):
        assert not is_secret_field(name), name


def test_redact_value_by_key() -> None:
    value = {
        "proxmox": {"password": PASSWORD, "url": "https://pve"},
        "items": [{"token": AGENT_TOKEN}, f"Bearer {API_TOKEN}"],
        "secret_ref": "abc",
    }
    redacted = redact_value(value)
    assert PASSWORD not in json.dumps(redacted)
    assert AGENT_TOKEN not in json.dumps(redacted) and API_TOKEN not in json.dumps(redacted)
    assert redacted["proxmox"]["url"] == "https://pve" and redacted["secret_ref"] == "abc"


def test_registered_values_are_redacted_only_while_registered() -> None:
    plain = "correct horse battery staple"
    with registered_secrets([plain, "ab"]):
        assert redact_text(f"connecting with {plain}") == f"connecting with {REDACTED}"
        assert redact_text("ab is too short to search for") == "ab is too short to search for"
        with registered_secrets([plain]):  # nested registrations are counted
            pass
        assert plain not in redact_text(plain)
    assert redact_text(plain) == plain


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s %(detail)s"))
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("botmox.test.redaction")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log, stream
    log.removeHandler(handler)


def test_filter_rewrites_arguments_tracebacks_and_extras(
    logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = logger
    log.info("login %s with %r", API_TOKEN, {"password": PASSWORD}, extra={"detail": AGENT_TOKEN})
    try:
        raise ValueError(f"bad lease {LEASE_TOKEN}")
    except ValueError:
        log.exception("failed", extra={"detail": {"ciphertext": CIPHERTEXT}})
    log.info("literal %s kept", "100%", extra={"detail": "-"})
    text = stream.getvalue()
    for secret in (API_TOKEN, PASSWORD, AGENT_TOKEN, LEASE_TOKEN, CIPHERTEXT):
        assert secret not in text
    assert "ValueError: bad lease bml1.[REDACTED]" in text  # the traceback is kept, redacted
    assert "literal 100% kept" in text


def test_server_logging_config_redacts_in_both_formats(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        for log_format in ("text", "json"):
            logging.config.dictConfig(logging_config("debug", log_format))
            log = logging.getLogger("botmox.test.server")
            log.debug("agent %s sealed %s", AGENT_TOKEN, {"enc": CIPHERTEXT})
            try:
                raise RuntimeError(f"password={PASSWORD}")
            except RuntimeError:
                log.exception("boom")
            err = capsys.readouterr().err
            assert "DEBUG" in err and "RuntimeError" in err
            for secret in (AGENT_TOKEN, CIPHERTEXT, PASSWORD):
                assert secret not in err, (log_format, err)
            if log_format == "json":
                lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
                assert any("exc_info" in line for line in lines)
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


def test_install_redaction_covers_existing_handlers_and_is_idempotent() -> None:
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    try:
        install_redaction()
        install_redaction()
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        logging.getLogger("botmox.test.any").warning("token %s", AGENT_TOKEN)
        assert AGENT_TOKEN not in stream.getvalue() and "bma_[REDACTED]" in stream.getvalue()
    finally:
        root.removeHandler(handler)


def test_cli_main_installs_the_filter(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from botmox_core.cli import main

    root = logging.getLogger()
    saved = root.handlers[:]
    for handler in saved:
        root.removeHandler(handler)
    try:
        monkeypatch.setattr(sys, "argv", ["botmox", "--version"])
        with pytest.raises(SystemExit):
            main()
        assert any(
            isinstance(f, RedactingFilter) for handler in root.handlers for f in handler.filters
        )
        logging.getLogger("botmox.test.cli").warning("sent %s", API_TOKEN)
        err = capsys.readouterr().err
        assert API_TOKEN not in err and "bmx_[REDACTED]" in err
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
