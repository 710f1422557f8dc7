"""Options shared by the commands that act on the configured installation (``admin``, ``data``,
``keys``, ``backup``): ``--json``, and ``--data-dir``/``--config`` (with ``--init`` where a new
installation may be created) accepted before or after the subcommand."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from botmox_core.config import Settings, load_settings

__all__ = [
    "CONFIG_HELP",
    "DATA_DIR_HELP",
    "INIT_HELP",
    "json_option",
    "location_options",
    "path_options",
    "settings_from",
    "tenant_ids",
]

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")

DATA_DIR_HELP = "Directory of the embedded backends' files [default: ./.botmox]."
CONFIG_HELP = "TOML configuration file (also BOTMOX_CONFIG)."
INIT_HELP = (
    "Create the data directory if it does not exist yet (a new installation). Without it an "
    "absent data directory is refused."
)


def tenant_ids(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Click callback of every ``--tenant``: refuse an id the server would refuse (a trailing
    newline, control characters, an empty or over-long id) with the rule, instead of matching
    nothing. The value is not echoed (it may hold terminal escapes)."""
    from botmox_core.services import validation

    for each in value if isinstance(value, tuple) else (value,):
        if each is not None and not (isinstance(each, str) and validation.ID_RE.fullmatch(each)):
            raise click.BadParameter(
                "a tenant id is 1-128 characters of A-Z a-z 0-9 . _ : @ - starting alphanumeric"
            )
    return value


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Store a location option given after the subcommand where the group keeps it."""
    if value is not None and value is not False and param.name is not None:
        ctx.ensure_object(dict)[param.name] = value
    return value


def _options(command: Callable[..., Any], *, init: bool) -> Callable[..., Any]:
    options = [
        click.option(
            "--data-dir",
            type=click.Path(path_type=Path),
            default=None,
            expose_value=False,
            callback=_remember,
            help=DATA_DIR_HELP,
        ),
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False),
            default=None,
            expose_value=False,
            callback=_remember,
            help=CONFIG_HELP,
        ),
    ]
    if init:
        options.append(
            click.option(
                "--init",
                is_flag=True,
                default=False,
                expose_value=False,
                callback=_remember,
                help=INIT_HELP,
            )
        )
    for option in reversed(options):
        command = option(command)
    return command


def location_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--data-dir``, ``--config`` and ``--init`` on a leaf command too, so they work before
    or after the subcommand (``botmox admin token create ... --data-dir X``)."""
    return _options(command, init=True)


def path_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--data-dir`` and ``--config`` before or after the subcommand (no ``--init``: the
    command works on an existing installation)."""
    return _options(command, init=False)


def settings_from(ctx: click.Context) -> Settings:
    """The settings for the location options the command line gave (anywhere in it)."""
    options = ctx.find_object(dict) or {}
    return load_settings(config_file=options.get("config_file"), data_dir=options.get("data_dir"))
