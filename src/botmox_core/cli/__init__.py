"""The ``botmox`` command line: ``serve``, ``admin ...``, ``runner ...``, ``agent ...``,
``config show``, ``data export|import`` and plugin commands.

Every command that prints results accepts ``--json`` so operators can script it. Errors print
``Error: CODE: message`` on stderr and exit 1, without a traceback.

Start-up is lazy: when the first word of the command line names a built-in command, only that
command's module is imported (``botmox runner fetch`` imports neither the server, nor the
admin commands, nor any plugin); any other command line (``botmox --help``, a plugin's command
such as ``botmox db``, a misspelt name) loads every built-in command and the plugins' commands
(``botmox_register_commands``) first, so plugin commands work as before and a plugin taking a
built-in name is still refused.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import click

from botmox_core.cli._group import BotmoxGroup
from botmox_core.errors import BotmoxError

__all__ = ["BUILTIN_COMMANDS", "BotmoxGroup", "cli", "main"]


@click.group(cls=BotmoxGroup)
@click.version_option(package_name="botmox")
def cli() -> None:
    """botmox: deliver licensed bot modules to VMs and drive them through agents."""


#: Built-in commands: name -> the modules to import (``module:attribute`` adds that command;
#: a bare module is imported for what it adds to a group, e.g. the admin inventory commands).
BUILTIN_COMMANDS: dict[str, tuple[str, ...]] = {
    "serve": ("botmox_core.cli.serve:serve_command",),
    "admin": ("botmox_core.cli.admin:admin_group", "botmox_core.cli.inventory"),
    "runner": ("botmox_core.cli.runner:runner_group",),
    "secret": ("botmox_core.cli.secret:secret_group",),
    "agent": ("botmox_core.cli.agent:agent_group", "botmox_core.cli.operate"),
    "config": ("botmox_core.cli.config:config_group",),
    "data": ("botmox_core.cli.data:data_group",),
    "keys": ("botmox_core.cli.keys:keys_group",),
    "backup": ("botmox_core.cli.backup:backup_group",),
    "command": ("botmox_core.cli.operate:command_group",),
    "migrate": ("botmox_core.cli.migrate:migrate_command",),
    "parity": ("botmox_core.cli.migrate:parity_command",),
    "cutover": ("botmox_core.cli.migrate:cutover_group",),
}


def _add_builtin(name: str) -> None:
    """Import built-in command ``name`` and add it to :data:`cli` (once)."""
    if name in cli.commands:
        return
    for target in BUILTIN_COMMANDS[name]:
        module_name, _, attribute = target.partition(":")
        module = importlib.import_module(module_name)
        if attribute:
            cli.add_command(getattr(module, attribute), name)
    if name == "agent":
        from botmox_core.cli.agent import agent_group
        from botmox_core.cli.operate import agent_commands

        for command in agent_commands:
            agent_group.add_command(command)


def _add_commands() -> None:
    """Add every built-in command, then the plugins' commands (a plugin name that is taken is
    refused with a :class:`~botmox_core.errors.ConfigurationError` naming the plugin)."""
    from botmox_core.plugin import build_plugin_manager
    from botmox_core.plugin.manager import register_commands

    for name in BUILTIN_COMMANDS:
        _add_builtin(name)
    register_commands(build_plugin_manager(), cli)


def _first_word(args: Sequence[str]) -> str | None:
    """The command name on a command line (the root group takes no option with a value)."""
    return next((arg for arg in args if not arg.startswith("-")), None)


def main(args: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    from botmox_core.logging_redaction import install_redaction

    install_redaction()  # whatever any command logs goes through the redacting filter
    words = list(sys.argv[1:] if args is None else args)
    name = _first_word(words)
    try:
        if name in BUILTIN_COMMANDS:
            _add_builtin(name)
        else:
            _add_commands()
    except BotmoxError as exc:
        raise SystemExit(f"Error: {exc.code}: {exc.message}") from None
    cli.main(args=words, prog_name="botmox")
