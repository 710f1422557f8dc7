"""The click group class every botmox command group uses (its own module, so command modules
import it without importing the CLI package that imports them)."""

from __future__ import annotations

from typing import Any

import click

from botmox_core.errors import BotmoxError

__all__ = ["BotmoxGroup"]


class BotmoxGroup(click.Group):
    """A click group that reports botmox errors as clean CLI errors."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BotmoxError as exc:
            raise click.ClickException(f"{exc.code}: {exc.message}") from exc
