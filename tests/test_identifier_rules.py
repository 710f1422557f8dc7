"""Every identifier rule matches the whole value: a trailing newline, a carriage return, a NUL or
a Unicode look-alike never passes (``re.match`` with ``$`` let ``"name\\n"`` through)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from botmox_core import errors
from botmox_core.ports.storage import validate_object_key
from botmox_core.security.lease_tokens import peek_lease_id
from botmox_core.services import validation as check
from botmox_core.services.agents import CAPABILITY_RE, PAIRING_CODE_RE
from botmox_core.services.commands import COMMAND_TYPE_RE, IDEMPOTENCY_KEY_RE
from botmox_server.middleware import _INBOUND_ID
from botmox_server.routes.infra import NODE_RE, UPID_RE

# One valid value per rule, and the function that applies the rule (raising on refusal).


def _regex(pattern: Any) -> Callable[[str], object]:
    def apply(value: str) -> object:
        if not pattern.fullmatch(value):
            raise errors.BadRequestError("refused")
        return value

    return apply


RULES: dict[str, tuple[Callable[[str], object], str]] = {
    "vm_uuid": (check.vm_uuid, "vm-alice-0001"),
    "name": (lambda v: check.name(v, "module"), "farm-bot"),
    "identifier": (lambda v: check.identifier(v, "user_id"), "alice@example"),
    "sha256": (check.sha256_hex, "a" * 64),
    "object_key": (validate_object_key, "tenant-a/farm-bot/x.zip"),
    "command_type": (_regex(COMMAND_TYPE_RE), "proxmox.start"),
    "idempotency_key": (_regex(IDEMPOTENCY_KEY_RE), "job-42"),
    "capability": (_regex(CAPABILITY_RE), "proxmox.start"),
    "pairing_code": (_regex(PAIRING_CODE_RE), "0123456789abcdef0123456789abcdef"),
    "proxmox_node": (_regex(NODE_RE), "pve-1"),
    "proxmox_upid": (_regex(UPID_RE), "UPID:pve:000A1B2C:0034F5E6:65A1B2C3:qmstart:100:root@pam:"),
    "request_id": (_regex(_INBOUND_ID), "req-1"),
}

# Suffixes and substitutions an attacker uses to make a look-alike of a valid value.
TAMPERS = {
    "trailing newline": lambda v: v + "\n",
    "trailing carriage return": lambda v: v + "\r",
    "trailing CRLF": lambda v: v + "\r\n",
    "NUL inside": lambda v: v[:2] + "\x00" + v[2:],
    "leading newline": lambda v: "\n" + v,
    "Cyrillic a": lambda v: v.replace("a", "\u0430", 1) if "a" in v else "\u0430" + v,
    "fullwidth digit": lambda v: v + "\uff11",
    "Arabic-Indic digit": lambda v: v + "\u0661",
    "zero-width space": lambda v: v + "\u200b",
}


@pytest.mark.parametrize("rule", list(RULES))
def test_the_valid_value_passes(rule: str) -> None:
    apply, valid = RULES[rule]
    apply(valid)


@pytest.mark.parametrize("tamper", list(TAMPERS))
@pytest.mark.parametrize("rule", list(RULES))
def test_look_alikes_are_refused(rule: str, tamper: str) -> None:
    apply, valid = RULES[rule]
    with pytest.raises(errors.BotmoxError):
        apply(TAMPERS[tamper](valid))


def test_a_lease_id_claim_with_a_newline_is_not_peeked() -> None:
    import base64
    import json

    body = base64.urlsafe_b64encode(json.dumps({"lid": "lease_" + "0" * 32 + "\n"}).encode())
    assert peek_lease_id(f"bml1.{body.decode().rstrip('=')}.sig") is None


def test_a_forged_token_nested_past_the_recursion_limit_is_just_malformed() -> None:
    import base64

    # 690 levels fit in the 2,048-character token limit; under a server's call stack (hundreds
    # of frames deep already) decoding them overflows the interpreter's recursion limit.
    deep = ("[" * 690 + "]" * 690).encode()
    token = "bml1." + base64.urlsafe_b64encode(deep).decode().rstrip("=") + ".sig"
    assert len(token) <= 2048

    def at_depth(frames: int) -> object:
        return peek_lease_id(token) if frames == 0 else at_depth(frames - 1)

    assert at_depth(400) is None


def test_json_values_are_bounded_in_depth_without_recursion() -> None:
    deep: Any = {}
    node = deep
    for _ in range(50_000):  # far past the interpreter's recursion limit
        node["a"] = {}
        node = node["a"]
    with pytest.raises(errors.BadRequestError, match="16 levels"):
        check.metadata(deep)
    nested_lists: Any = []
    for _ in range(17):
        nested_lists = [nested_lists]
    with pytest.raises(errors.BadRequestError):
        check.json_object({"x": nested_lists}, "params", 1 << 20)
    ok: Any = "leaf"
    for _ in range(15):
        ok = {"k": ok}
    assert check.metadata(ok) == ok  # 15 objects + the leaf: within 16 levels
    for bad in ({1: "int key"}, {"x": float("nan")}, {"x": float("inf")}, {"x": object()}):
        with pytest.raises(errors.BadRequestError):
            check.metadata(bad)


def test_text_and_json_refuse_lone_surrogates_and_del() -> None:
    for bad in ("vm \ud800", "name\x7f"):
        with pytest.raises(errors.BadRequestError):
            check.optional_text(bad, "vm_name")
    for bad_json in ({"k": "\udfff"}, {"\ud800": 1}):
        with pytest.raises(errors.BadRequestError, match="Unicode"):
            check.metadata(bad_json)
    assert check.optional_text("ünïcødé ✓ 🤖", "vm_name") == "ünïcødé ✓ 🤖"
