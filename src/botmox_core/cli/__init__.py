"""The ``botmox`` command line: ``serve``, ``admin ...``, ``runner ...`` and plugin commands.

Every command accepts ``--json`` where it prints results, so operators can script it.
"""

from __future__ import annotations

import sys

import click

from botmox_core.errors import BotmoxError

__all__ = ["cli", "main"]


@click.group()
@click.version_option(package_name="botmox")
def cli() -> None:
    """botmox: deliver licensed bot modules to VMs and drive them through agents."""


def _add_builtin_commands() -> None:
    from botmox_core.cli.admin import admin_group
    from botmox_core.cli.runner import runner_group
    from botmox_core.cli.serve import serve_command

    cli.add_command(serve_command)
    cli.add_command(admin_group)
    cli.add_command(runner_group)


def _add_plugin_commands() -> None:
    from botmox_core.plugin import build_plugin_manager

    build_plugin_manager().hook.botmox_register_commands(cli=cli)


def main() -> None:
    """Console-script entry point: run the CLI, printing botmox errors without a traceback."""
    try:
        _add_builtin_commands()
        _add_plugin_commands()
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except BotmoxError as exc:
        click.echo(f"error: {exc.code}: {exc.message}", err=True)
        sys.exit(1)
