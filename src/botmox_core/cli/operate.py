"""Operator commands over HTTP against a running server: ``botmox agent list|show|revoke``,
``botmox agent pairing create`` and ``botmox command send|list|show|cancel|watch``.

Agents and commands live with the server's agent bus: enqueueing must wake the server process
(or worker, or replica) holding the agent's socket, and revoking must close that socket, which
only the server can do. So these commands call the HTTP API with an admin or infra API token
(``--server``/``BOTMOX_SERVER``, ``--token``/``BOTMOX_TOKEN``), unlike ``botmox admin``, which
acts on the backends directly. ``command watch`` polls the command (its stored output grows
append-only) and prints what is new until the command settles.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import click
import httpx

from botmox_core.cli._group import BotmoxGroup
from botmox_core.cli._output import emit
from botmox_core.client import _rules as rules
from botmox_core.client._rules import API_PREFIX, ApiRequest
from botmox_core.client._sync import RunnerClient
from botmox_core.errors import BadRequestError
from botmox_core.models import CommandStatus

__all__ = ["TERMINAL_STATES", "agent_commands", "command_group", "pairing_group"]

#: Command states after which nothing changes any more.
TERMINAL_STATES = frozenset(
    {"succeeded", "failed", "expired", "cancelled", "timed_out"} & {s.value for s in CommandStatus}
)
#: Seconds between two looks at a watched command.
WATCH_INTERVAL = 0.25

_server = click.option(
    "--server", envvar="BOTMOX_SERVER", required=True, help="Server base URL (also BOTMOX_SERVER)."
)
_token = click.option(
    "--token",
    envvar="BOTMOX_TOKEN",
    required=True,
    show_envvar=True,
    help="Admin or infra API token (prefer the BOTMOX_TOKEN environment variable).",
)
_json = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _client(server: str, token: str) -> RunnerClient:
    return RunnerClient(server, token)


def _get(client: RunnerClient, path: str, query: Mapping[str, Any] | None = None) -> Any:
    """GET ``path`` below ``/api/v1`` with the query parameters that are not None."""
    if not query:
        return client._send(ApiRequest.get(path))
    params = {key: str(value) for key, value in query.items() if value is not None}
    url = rules.api_url(client.base_url, API_PREFIX + path)
    try:
        response = client._api.request("GET", url, params=params, headers=client._headers)
    except httpx.TransportError as exc:
        raise rules.network_error(exc, url) from exc
    return rules.parse_api_response(response.status_code, response.headers, response.content)


def _segment(value: str) -> str:
    """One path segment (an id typed by an operator never changes the path)."""
    return quote(value, safe="")


# -- agents --------------------------------------------------------------------------------------


def _agent_line(agent: Mapping[str, Any]) -> str:
    connected = " connected" if agent.get("connected") else ""
    return (
        f"{agent.get('id')}  {agent.get('status', '-'):8} name={agent.get('name') or '-'} "
        f"platform={agent.get('platform') or '-'} version={agent.get('version') or '-'} "
        f"last_seen={agent.get('last_seen_at') or '-'}{connected}"
    )


@click.command("list")
@click.option(
    "--status", type=click.Choice(["pending", "active", "offline", "revoked"]), default=None
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 200))
@click.option("--page", default=1, show_default=True, type=click.IntRange(1))
@_server
@_token
@_json
def agent_list(
    status: str | None, limit: int, page: int, server: str, token: str, as_json: bool
) -> None:
    """List the tenant's agents (GET /api/v1/agents)."""
    with _client(server, token) as client:
        agents = _get(client, "/agents", {"status": status, "limit": limit, "page": page})
    emit(agents, as_json, "\n".join(_agent_line(a) for a in agents) or "no agents")


@click.command("show")
@click.argument("agent_id")
@_server
@_token
@_json
def agent_show(agent_id: str, server: str, token: str, as_json: bool) -> None:
    """Show one agent (connected: whether the answering server process holds its socket)."""
    with _client(server, token) as client:
        agent = _get(client, f"/agents/{_segment(agent_id)}")
    emit(agent, as_json, _agent_line(agent))


@click.command("revoke")
@click.argument("agent_id")
@click.option("--reason", required=True, help="Why (kept with the agent).")
@_server
@_token
@_json
def agent_revoke(agent_id: str, reason: str, server: str, token: str, as_json: bool) -> None:
    """Revoke an agent: its token is refused, its socket closed, its unfinished commands
    failed."""
    with _client(server, token) as client:
        agent = client._send(
            ApiRequest.post(f"/agents/{_segment(agent_id)}/revoke", {"reason": reason})
        )
    emit(agent, as_json, _agent_line(agent))


@click.group("pairing", cls=BotmoxGroup)
def pairing_group() -> None:
    """Pairing codes for new agents."""


@pairing_group.command("create")
@click.option("--name", required=True, help="Name of the new agent.")
@click.option(
    "--expires-in-minutes",
    type=click.IntRange(5, 1440),
    default=15,
    show_default=True,
    help="How long the code may be used.",
)
@_server
@_token
@_json
def pairing_create(
    name: str, expires_in_minutes: int, server: str, token: str, as_json: bool
) -> None:
    """Create a pending agent and its one-time pairing code, printed once (run
    ``botmox agent pair --code`` with it on the agent's machine)."""
    with _client(server, token) as client:
        pairing = client._send(
            ApiRequest.post(
                "/agents/pairings", {"name": name, "expires_in_minutes": expires_in_minutes}
            )
        )
    emit(
        pairing,
        as_json,
        f"agent {pairing['id']} ({name}): pairing code {pairing['pairing_code']} "
        f"(expires {pairing['pairing_expires_at']})",
    )


#: The commands added to ``botmox agent`` (registered in :mod:`botmox_core.cli`).
agent_commands = (agent_list, agent_show, agent_revoke, pairing_group)


# -- commands ------------------------------------------------------------------------------------


def _command_line(command: Mapping[str, Any]) -> str:
    return (
        f"{command.get('id')}  {command.get('status', '-'):10} {command.get('command_type')} "
        f"agent={command.get('agent_id')} queued={command.get('queued_at')} "
        f"attempts={command.get('attempts')}"
        + (f" error={command['error']}" if command.get("error") else "")
    )


@click.group("command", cls=BotmoxGroup)
def command_group() -> None:
    """Commands for agents, over the HTTP API of a running server."""


def _payload(payload: str | None) -> dict[str, Any]:
    if payload is None:
        return {}
    source = sys.stdin.read() if payload == "-" else payload
    try:
        value = json.loads(source)
    except ValueError as exc:
        raise BadRequestError(f"--payload is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequestError("--payload must be a JSON object")
    return value


@command_group.command("send")
@click.option("--agent", "agent_id", required=True, help="Agent id (agt_...).")
@click.option("--type", "command_type", required=True, help="proxmox.start, syncthing.scan ...")
@click.option("--payload", default=None, help="JSON object for the handler ('-': stdin).")
@click.option("--expires-in-seconds", type=click.IntRange(10, 3600), default=None)
@click.option("--execution-timeout-seconds", type=click.IntRange(1), default=None)
@click.option(
    "--idempotency-key",
    default=None,
    help="Send twice with the same key, get one command [default: a fresh key per call].",
)
@click.option("--watch", is_flag=True, help="Then stream its output until it settles.")
@_server
@_token
@_json
def command_send(
    agent_id: str,
    command_type: str,
    payload: str | None,
    expires_in_seconds: int | None,
    execution_timeout_seconds: int | None,
    idempotency_key: str | None,
    watch: bool,
    server: str,
    token: str,
    as_json: bool,
) -> None:
    """Queue a command for an agent (POST /api/v1/vm-ops/commands); prints its id."""
    body = {
        "agent_id": agent_id,
        "command_type": command_type,
        "payload": _payload(payload),
        "expires_in_seconds": expires_in_seconds,
        "execution_timeout_seconds": execution_timeout_seconds,
        # a retried send (network error) must not queue the command twice
        "idempotency_key": idempotency_key or f"cli-{secrets.token_hex(12)}",
    }
    with _client(server, token) as client:
        command = client._send(ApiRequest.post("/vm-ops/commands", body))
        if not watch:
            emit(command, as_json, str(command["id"]))
            return
        if not as_json:
            click.echo(f"{command['id']} queued", err=True)
        _watch(client, str(command["id"]), as_json, timeout=None)


@command_group.command("list")
@click.option("--agent", "agent_id", default=None, help="Only this agent's commands.")
@click.option(
    "--status",
    type=click.Choice([status.value for status in CommandStatus]),
    default=None,
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100))
@_server
@_token
@_json
def command_list(
    agent_id: str | None, status: str | None, limit: int, server: str, token: str, as_json: bool
) -> None:
    """List the tenant's commands, newest first."""
    with _client(server, token) as client:
        commands = _get(
            client, "/vm-ops/commands", {"agent_id": agent_id, "status": status, "limit": limit}
        )
    emit(commands, as_json, "\n".join(_command_line(c) for c in commands) or "no commands")


@command_group.command("show")
@click.argument("command_id")
@_server
@_token
@_json
def command_show(command_id: str, server: str, token: str, as_json: bool) -> None:
    """Show one command with its result and whole output."""
    with _client(server, token) as client:
        command = _get(client, f"/vm-ops/commands/{_segment(command_id)}")
    lines = [_command_line(command)]
    if command.get("result") is not None:
        lines.append("result: " + json.dumps(command["result"], sort_keys=True))
    if command.get("output"):
        lines.append(str(command["output"]).rstrip("\n"))
    emit(command, as_json, "\n".join(lines))


@command_group.command("cancel")
@click.argument("command_id")
@_server
@_token
@_json
def command_cancel(command_id: str, server: str, token: str, as_json: bool) -> None:
    """Cancel a command: queued ones at once, running ones when the agent acknowledges."""
    with _client(server, token) as client:
        command = client._send(
            ApiRequest.post(f"/vm-ops/commands/{_segment(command_id)}/cancel", {})
        )
    emit(command, as_json, _command_line(command))


@command_group.command("watch")
@click.argument("command_id")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Give up after this many seconds (exit 124) [default: wait until it settles].",
)
@_server
@_token
@_json
def command_watch(
    command_id: str, timeout: float | None, server: str, token: str, as_json: bool
) -> None:
    """Stream a command's output as the agent writes it, until the command settles. Exits 0
    when it succeeded, 1 otherwise."""
    with _client(server, token) as client:
        _watch(client, command_id, as_json, timeout=timeout)


def _watch(client: RunnerClient, command_id: str, as_json: bool, timeout: float | None) -> None:
    """Print new output (text) or one JSON line per change (``--json``) until the command
    settles; exit status 0 for ``succeeded``, 1 for another final state, 124 on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    printed = 0
    last_status = None
    path = f"/vm-ops/commands/{_segment(command_id)}"
    while True:
        command = _get(client, path)
        output = str(command.get("output") or "")
        status = command.get("status")
        fresh = output[printed:]
        printed = len(output)
        if as_json:
            if fresh or status != last_status:
                event = {"id": command_id, "status": status, "output": fresh}
                click.echo(json.dumps(event, sort_keys=True))
        elif fresh:
            click.echo(fresh, nl=False)
        if status != last_status and not as_json:
            click.echo(f"[{command_id} {status}]", err=True)
        last_status = status
        if status in TERMINAL_STATES:
            if not as_json and command.get("error"):
                click.echo(f"error: {command['error']}", err=True)
            raise SystemExit(0 if status == "succeeded" else 1)
        if deadline is not None and time.monotonic() >= deadline:
            click.echo(f"{command_id} still {status} after {timeout} s", err=True)
            raise SystemExit(124)
        time.sleep(WATCH_INTERVAL)
