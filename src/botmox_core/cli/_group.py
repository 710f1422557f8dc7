"""The click group class every botmox command group uses (its own module, so command modules
import it without importing the CLI package that imports them)."""

from __future__ import annotations

import re
from typing import Any

import click

from botmox_core.errors import BotmoxError

__all__ = ["BotmoxGroup", "printable"]

#: C0 and C1 control characters (and DEL) except newline and tab: an id typed or pasted by an
#: operator is echoed in error messages, and must not move the cursor or start an escape
#: sequence on their terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every control character but newline and tab written as ``\\xNN``."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


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
