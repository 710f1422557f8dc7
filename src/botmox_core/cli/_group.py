"""The click group class every botmox command group uses (its own module, so command modules
import it without importing the CLI package that imports them)."""

from __future__ import annotations

from typing import Any

import click

from botmox_core.errors import BotmoxError

__all__ = ["BotmoxGroup", "printable"]

_KEPT = "\n\t"


def _escaped(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every character Python does not call printable (C0 and C1 controls, DEL,
    format characters such as the bidirectional overrides, separators other than the space)
    written as ``\\xNN``/``\\uNNNN``, newline and tab kept: an id typed or pasted by an
    operator is echoed in error messages, and must not move the cursor, start an escape
    sequence or reorder the text on their terminal. (The server's log lines use
    :func:`botmox_server.logs.escape`, which escapes newlines too; the CLI's messages have
    lines of their own, and the CLI does not import the server.)"""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() or char in _KEPT else _escaped(char) for char in text)


class BotmoxGroup(click.Group):
    """A click group that reports botmox errors as clean CLI errors, with control characters
    in any error message escaped."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BotmoxError as exc:
            raise click.ClickException(printable(f"{exc.code}: {exc.message}")) from exc
        except click.ClickException as exc:
            exc.message = printable(exc.message)  # type: ignore[misc]  # Final only in stubs
            raise
