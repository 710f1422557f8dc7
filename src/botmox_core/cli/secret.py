"""``botmox secret ...``: the vault from the command line (``docs/vault.md``).

The plaintext of ``put`` and ``rotate`` comes from standard input or a file, never from an
argument (arguments land in shell history and ``ps``); it is sealed here to the agents' public
keys and only the envelope is sent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from botmox_core.client import VaultClient
from botmox_core.vault.envelopes import MAX_PLAINTEXT_BYTES
from botmox_core.vault.models import ScopeType

__all__ = ["secret_group"]

_server = click.option(
    "--server", envvar="BOTMOX_SERVER", required=True, help="Server base URL (also BOTMOX_SERVER)."
)
_token = click.option(
    "--token",
    envvar="BOTMOX_TOKEN",
    required=True,
    show_envvar=True,
    help="API token, admin or infra for writes (prefer the BOTMOX_TOKEN environment variable).",
)
_json = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")


@click.group("secret")
def secret_group() -> None:
    """Secrets sealed to agents: the server stores ciphertext only."""


def _plaintext(source: Path | None) -> bytes:
    if source is None or str(source) == "-":
        if sys.stdin.isatty():
            raise click.UsageError("pipe the secret on standard input, or pass --from-file PATH")
        data = sys.stdin.buffer.read(MAX_PLAINTEXT_BYTES + 2)
    else:
        try:
            with source.open("rb") as handle:
                data = handle.read(MAX_PLAINTEXT_BYTES + 2)
        except OSError as exc:
            raise click.UsageError(f"cannot read {source}: {exc.strerror}") from None
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise click.UsageError("the secret is empty")
    if len(data) > MAX_PLAINTEXT_BYTES:
        raise click.UsageError(f"a secret holds at most {MAX_PLAINTEXT_BYTES} bytes")
    return data


def _print(data: Any, as_json: bool, summary: str) -> None:
    if as_json:
        click.echo(json.dumps(data, default=str, sort_keys=True))
    else:
        click.echo(summary)


def _meta_summary(meta: dict[str, Any]) -> str:
    agents = ", ".join(r["agent_id"] for r in meta.get("recipients") or []) or "-"
    return (
        f"{meta['id']}  version {meta['version']}  {meta['alg']}  label {meta['label']!r}  "
        f"agents {agents}"
    )


_from_file = click.option(
    "--from-file",
    "source",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read the secret from this file ('-' or absent: standard input). One trailing "
    "newline is dropped.",
)
_agents = click.option(
    "--agent",
    "agents",
    multiple=True,
    help="Agent to seal the secret to (repeat for several).",
)


@secret_group.command("put")
@_server
@_token
@click.option("--label", required=True, help="A label for the secret (1-200 characters).")
@_agents
@_from_file
@_json
def put_command(
    server: str,
    token: str,
    label: str,
    agents: tuple[str, ...],
    source: Path | None,
    as_json: bool,
) -> None:
    """Seal a new secret to the agents and store it (version 1)."""
    if not agents:
        raise click.UsageError("name at least one --agent to seal the secret to")
    plaintext = _plaintext(source)
    with VaultClient(server, token) as vault:
        meta = vault.put(plaintext, label=label, agents=list(agents))
    _print(meta, as_json, _meta_summary(meta))


@secret_group.command("rotate")
@_server
@_token
@click.argument("secret_id")
@_agents
@click.option(
    "--expected-version",
    type=click.IntRange(1),
    default=None,
    help="Fail with SECRET_VERSION_CONFLICT unless this is the current version "
    "[default: the version read just before].",
)
@_from_file
@_json
def rotate_command(
    server: str,
    token: str,
    secret_id: str,
    agents: tuple[str, ...],
    expected_version: int | None,
    source: Path | None,
    as_json: bool,
) -> None:
    """Seal a new version of SECRET_ID (to --agent, default: the current recipients)."""
    plaintext = _plaintext(source)
    with VaultClient(server, token) as vault:
        meta = vault.rotate(
            secret_id, plaintext, agents=list(agents) or None, expected_version=expected_version
        )
    _print(meta, as_json, _meta_summary(meta))


@secret_group.command("meta")
@_server
@_token
@click.argument("secret_id")
@_json
def meta_command(server: str, token: str, secret_id: str, as_json: bool) -> None:
    """Show SECRET_ID's metadata and version history (never ciphertext)."""
    with VaultClient(server, token) as vault:
        meta = vault.meta(secret_id)
    history = "\n".join(
        f"  version {v['version']}  {v['created_at']}  "
        f"{'ciphertext kept' if v['ciphertext_kept'] else 'metadata only'}"
        for v in meta.get("versions") or []
    )
    _print(meta, as_json, _meta_summary(meta) + ("\n" + history if history else ""))


@secret_group.command("bind")
@_server
@_token
@click.argument("secret_id")
@click.option(
    "--scope-type",
    required=True,
    type=click.Choice([t.value for t in ScopeType]),
    help="What the secret is attached to.",
)
@click.option("--scope-id", required=True, help="Which one (e.g. vmgenerator).")
@click.option("--field", "field_name", required=True, help="The field it fills.")
@_json
def bind_command(
    server: str,
    token: str,
    secret_id: str,
    scope_type: str,
    scope_id: str,
    field_name: str,
    as_json: bool,
) -> None:
    """Bind SECRET_ID to a scope's field (replaces that field's binding)."""
    with VaultClient(server, token) as vault:
        binding = vault.bind(secret_id, scope_type, scope_id, field_name)
    _print(
        binding,
        as_json,
        f"{binding['scope_type']}/{binding['scope_id']}/{binding['field_name']} -> "
        f"{binding['secret_ref']}",
    )


@secret_group.command("bindings")
@_server
@_token
@click.option(
    "--scope-type",
    default=None,
    type=click.Choice([t.value for t in ScopeType]),
    help="Only this scope type.",
)
@click.option("--scope-id", default=None, help="Only this scope id.")
@_json
def bindings_command(
    server: str, token: str, scope_type: str | None, scope_id: str | None, as_json: bool
) -> None:
    """List the tenant's bindings, newest first."""
    with VaultClient(server, token) as vault:
        found = vault.bindings(scope_type, scope_id)
    lines = "\n".join(
        f"{b['scope_type']}/{b['scope_id']}/{b['field_name']} -> {b['secret_ref']}" for b in found
    )
    _print({"bindings": found}, as_json, lines or "no bindings")
