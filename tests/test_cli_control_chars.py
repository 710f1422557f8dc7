"""An id with control characters, echoed in a CLI error, reaches the terminal escaped: no
escape sequence, bell or carriage return from operator input is written raw."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from botmox_core.cli._group import printable


def _botmox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botmox_core", *args], capture_output=True, text=True, timeout=60
    )


def test_printable_escapes_controls_but_keeps_newlines_and_tabs() -> None:
    assert printable("a\x1b[31mb\x07\r\x00\x7f\x9b") == "a\\x1b[31mb\\x07\\x0d\\x00\\x7f\\x9b"
    assert printable("two\nlines\tand ü") == "two\nlines\tand ü"


def test_printable_escapes_format_characters_that_reorder_a_terminal_line() -> None:
    # U+202E (right-to-left override) makes "tok_\u202eabc" display reversed; U+200B hides
    assert printable("tok_\u202eabc\u200b") == "tok_\\u202eabc\\u200b"
    assert printable("\U000e0001") == "\\U000e0001"
    assert printable("\xa0") == "\\xa0"


def test_an_error_naming_a_hostile_id_is_escaped(tmp_path: Path) -> None:
    data = ["admin", "--data-dir", str(tmp_path), "--init"]
    created = _botmox(*data, "token", "create", "--tenant", "acme", "--role", "admin")
    assert created.returncode == 0, created.stderr
    hostile = "tok_\x1b]0;pwned\x07\r"
    answer = _botmox(*data, "token", "revoke", "--tenant", "acme", "--id", hostile)
    assert answer.returncode == 1, answer.stderr
    shown = answer.stdout + answer.stderr
    assert "\x1b" not in shown and "\x07" not in shown and "\r" not in shown
    assert "tok_\\x1b]0;pwned\\x07\\x0d" in answer.stderr


def test_a_malformed_tenant_id_is_refused_not_matched(tmp_path: Path) -> None:
    """``--tenant`` with a trailing newline, a control character or nothing at all is a usage
    error (exit 2) naming the rule, on every command family, never a silent empty answer."""
    data = ["--data-dir", str(tmp_path), "--init"]
    commands = [
        ["admin", *data, "token", "create", "--role", "admin", "--tenant"],
        ["admin", *data, "license", "list", "--tenant"],
        ["data", *data, "export", str(tmp_path / "x.jsonl"), "--tenant"],
        ["migrate", "--from", "sqlite", "--to", "sqlite", "--tenant"],
    ]
    for command in commands:
        for tenant in ("acme\n", "ac\x1bme", ""):
            answer = _botmox(*command, tenant)
            assert answer.returncode == 2, (command, tenant, answer.stdout, answer.stderr)
            assert "a tenant id is 1-128 characters" in answer.stderr, answer.stderr
            assert "\x1b" not in answer.stderr
    accepted = _botmox("admin", *data, "license", "list", "--tenant", "acme")
    assert accepted.returncode == 0, accepted.stderr
