"""``botmox agent ...``: pair this machine's agent with a server and run its handlers."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any

import click

from botmox_core.cli._group import BotmoxGroup
from botmox_core.cli._output import emit
from botmox_core.errors import ConfigurationError

__all__ = ["agent_group"]

_STATE_HELP = "Agent state file [default: BOTMOX_AGENT_STATE, else ~/.config/botmox/agent.json]."


#: Top-level modules the ``agent`` extra installs (a missing one gets an install hint).
AGENT_EXTRA_MODULES = frozenset({"websockets"})


def require_agent_runtime() -> None:
    """Import the agent runtime, or fail with an install hint when the ``agent`` extra is
    missing (instead of a raw ``ModuleNotFoundError``)."""
    try:
        importlib.import_module("botmox_core.agent")
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in AGENT_EXTRA_MODULES:
            raise
        raise click.ClickException(
            f"the agent runtime is not installed ({missing} is missing); "
            "pip install 'botmox[agent]'"
        ) from None


def _state_path(value: Path | None) -> Path:
    from botmox_core.agent.state import default_state_path

    return value or default_state_path()


def load_app(spec: str) -> Any:
    """The :class:`~botmox_core.agent.Agent` named by ``module:attr`` or ``path/file.py:attr``
    (``attr`` defaults to ``agent``)."""
    require_agent_runtime()
    from botmox_core.agent import Agent

    target, _, attr = spec.partition(":")
    attr = attr or "agent"
    try:
        if target.endswith(".py"):
            path = Path(target).resolve()
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            if module_spec is None or module_spec.loader is None:
                raise ConfigurationError(f"cannot load {target}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[path.stem] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except ConfigurationError:
        raise
    except Exception as exc:  # the app module is user code: report, never a traceback
        raise ConfigurationError(f"cannot import {target}: {type(exc).__name__}: {exc}") from exc
    app = getattr(module, attr, None)
    if not isinstance(app, Agent):
        raise ConfigurationError(f"{spec} is not a botmox_core.agent.Agent")
    return app


@click.group("agent", cls=BotmoxGroup)
def agent_group() -> None:
    """Agent commands: pair with a server, run command handlers."""


@agent_group.command("pair")
@click.option("--server", envvar="BOTMOX_SERVER", required=True, help="Server base URL.")
@click.option("--code", required=True, help="Pairing code from POST /api/v1/agents/pairings.")
@click.option("--state", "state", type=click.Path(path_type=Path), default=None, help=_STATE_HELP)
@click.option("--app", default=None, help="module:attr of the Agent whose handlers are announced.")
@click.option("--capability", "capabilities", multiple=True, help="Extra capability (repeat).")
@click.option("--platform", default=None, help="Platform to report [default: this machine].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def pair_command(
    server: str,
    code: str,
    state: Path | None,
    app: str | None,
    capabilities: tuple[str, ...],
    platform: str | None,
    as_json: bool,
) -> None:
    """Register with a pairing code; stores the agent token in a 0600 state file."""
    require_agent_runtime()
    from botmox_core.agent import pair
    from botmox_core.client._rules import server_base_url

    server_base_url(server)  # a clear error for a URL without http:// or https://

    announced = list(capabilities)
    if app:
        announced.extend(load_app(app).capabilities)
    path = _state_path(state)
    paired = pair(
        server,
        code,
        state_path=path,
        capabilities=list(dict.fromkeys(announced)),
        platform=platform,
    )
    emit(
        {"agent_id": paired.agent_id, "tenant_id": paired.tenant_id, "state": str(path)},
        as_json,
        f"paired as agent {paired.agent_id} (tenant {paired.tenant_id}); state in {path}",
    )


@agent_group.command("run")
@click.option("--app", required=True, help="The Agent to run: module:attr or path/to/file.py:attr.")
@click.option("--state", "state", type=click.Path(path_type=Path), default=None, help=_STATE_HELP)
@click.option(
    "--journal",
    type=click.Path(path_type=Path),
    default=None,
    help="Command journal [default: <state>.journal.sqlite3].",
)
@click.option("--concurrency", type=click.IntRange(1, 100), default=None, help="Override.")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def run_command(
    app: str,
    state: Path | None,
    journal: Path | None,
    concurrency: int | None,
    log_level: str,
) -> None:
    """Connect and run commands until SIGINT/SIGTERM (graceful shutdown)."""
    require_agent_runtime()
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,  # replaces the CLI's fallback handler; the runtime re-attaches redaction
    )
    agent = load_app(app)
    if concurrency is not None:
        agent.concurrency = concurrency
    agent.run_forever(_state_path(state), journal_path=journal)
