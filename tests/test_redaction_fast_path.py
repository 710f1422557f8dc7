"""The redaction fast path (text without any secret marker skips the substitutions, which is
most of the access log's CPU on the resolve-download path) never lets through what the full
substitutions would redact."""

from __future__ import annotations

import random

from botmox_core import logging_redaction as redaction

FRAGMENTS = [
    "POST /api/v1/artifacts/resolve-download 200 3.1ms",
    "Bearer abcdefghijkl",
    "basic dXNlcjpwYXNz",
    "bmx_0123456789abcdef",
    "bma_zyxw9876",
    "bml1.eyJsaWQiOiJ4In0.c2ln",
    "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl",
    "https://u:p@db.example/x",
    "?signature=abc&expires=1",
    "&sig=deadbeef",
    "?X-Amz-Credential=AKIA/2026",
    "password=hunter2",
    "'api_key': 'k-123'",
    "Authorization: Basic Zm9v",
    "pairing_code=0123abcd",
    "ciphertext=AAAA",
    "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----",
    "SECRET_NOT_FOUND: no such secret",
    "token_id=tok_1",
    "enc=Zm9v",
    "127.0.0.1",
    "request_id=0123456789abcdef",
    "vm_uuid=vm-0001 module=farm-bot",
]


def _full(text: str) -> str:
    for pattern, replacement in redaction._TOKEN_PATTERNS:
        text = pattern.sub(replacement, text)
    return redaction._FIELD_IN_TEXT.sub(redaction._field, text)


def test_text_without_a_marker_is_returned_as_it_is() -> None:
    line = "POST /api/v1/artifacts/resolve-download 200 3.1ms 127.0.0.1 req=0123"
    assert redaction._MAYBE_SECRET.search(line) is None
    assert redaction.redact_text(line) == line


def test_the_fast_path_redacts_exactly_what_the_full_substitutions_do() -> None:
    rng = random.Random(20261130)
    for _ in range(3000):
        parts = rng.sample(FRAGMENTS, rng.randint(1, 4))
        text = rng.choice([" ", "; ", "\n", ", "]).join(
            part.upper() if rng.random() < 0.15 else part for part in parts
        )
        assert redaction.redact_text(text) == _full(text), text
