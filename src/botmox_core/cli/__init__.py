"""The ``botmox`` command line: ``serve``, ``admin ...``, ``runner ...``, ``agent ...``,
``config show``, ``data export|import`` and plugin commands.

Every command that prints results accepts ``--json`` so operators can script it. Errors print
``Error: CODE: message`` on stderr and exit 1, without a traceback.
"""

from __future__ import annotations

import click

from botmox_core.cli._group import BotmoxGroup
from botmox_core.errors import BotmoxError

__all__ = ["BotmoxGroup", "cli", "main"]


@click.group(cls=BotmoxGroup)
@click.version_option(package_name="botmox")
def cli() -> None:
    """botmox: deliver licensed bot modules to VMs and drive them through agents."""


def _add_commands() -> None:
    from botmox_core.cli.admin import admin_group
    from botmox_core.cli.agent import agent_group
    from botmox_core.cli.backup import backup_group
    from botmox_core.cli.config import config_group
    from botmox_core.cli.data import data_group
    from botmox_core.cli.keys import keys_group
    from botmox_core.cli.migrate import cutover_group, migrate_command, parity_command
    from botmox_core.cli.runner import runner_group
    from botmox_core.cli.secret import secret_group
    from botmox_core.cli.serve import serve_command
    from botmox_core.plugin import build_plugin_manager
    from botmox_core.plugin.manager import register_commands

    cli.add_command(serve_command)
    cli.add_command(admin_group)
    cli.add_command(runner_group)
    cli.add_command(secret_group)
    cli.add_command(agent_group)
    cli.add_command(config_group)
    cli.add_command(data_group)
    cli.add_command(keys_group)
    cli.add_command(backup_group)
    import botmox_core.cli.inventory  # noqa: F401 - adds list/show/revoke to the admin groups
    from botmox_core.cli.operate import agent_commands, command_group

    for command in agent_commands:
        agent_group.add_command(command)
    cli.add_command(command_group)
    cli.add_command(migrate_command)
    cli.add_command(parity_command)
    cli.add_command(cutover_group)
    register_commands(build_plugin_manager(), cli)


def main() -> None:
    """Console-script entry point."""
    from botmox_core.logging_redaction import install_redaction

    install_redaction()  # whatever any command logs goes through the redacting filter
    try:
        _add_commands()
    except BotmoxError as exc:
        raise SystemExit(f"Error: {exc.code}: {exc.message}") from None
    cli.main(prog_name="botmox")
