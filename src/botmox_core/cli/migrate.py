"""``botmox migrate``, ``botmox parity`` and ``botmox cutover freeze|status|switch|unfreeze``
(docs/cutover.md). The logic lives in :mod:`botmox_core.migration`; this module parses options
and draws."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
import httpx

from botmox_core.cli._group import BotmoxGroup
from botmox_core.cli._options import json_option, tenant_ids
from botmox_core.cli.data import _bars
from botmox_core.converter import get_converter
from botmox_core.migration.control import (
    FreezeState,
    control_backend,
    freeze,
    freeze_state,
    unfreeze,
)
from botmox_core.migration.endpoints import Endpoint, open_endpoint, parse_env_pairs
from botmox_core.migration.engine import MigrationOptions, MigrationReport, migrate
from botmox_core.migration.parity import ParityReport, parity

__all__ = ["cutover_group", "migrate_command", "parity_command"]

F = TypeVar("F", bound=Callable[..., Any])


def _end_options(prefix: str, required: bool) -> Callable[[F], F]:
    """``--<prefix>``, ``--<prefix>-config``, ``--<prefix>-env`` and ``--<prefix>-data-dir``."""

    def decorate(function: F) -> F:
        options = [
            click.option(
                f"--{prefix}",
                f"{prefix}_backend",
                required=required,
                metavar="BACKEND",
                help=f"The {prefix} data backend (sqlite, supabase, rtdb ...).",
            ),
            click.option(
                f"--{prefix}-config",
                f"{prefix}_config",
                type=click.Path(dir_okay=False),
                default=None,
                help=f"TOML config file of the {prefix} deployment (else BOTMOX_CONFIG).",
            ),
            click.option(
                f"--{prefix}-env",
                f"{prefix}_env",
                multiple=True,
                metavar="KEY=VALUE",
                help=f"An environment variable for the {prefix} backend only (repeatable).",
            ),
            click.option(
                f"--{prefix}-data-dir",
                f"{prefix}_data_dir",
                type=click.Path(file_okay=False),
                default=None,
                help=f"Data directory of the {prefix} deployment (sqlite).",
            ),
        ]
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def _open(prefix: str, values: dict[str, Any]) -> Endpoint:
    return open_endpoint(
        values[f"{prefix}_backend"],
        config_file=values[f"{prefix}_config"],
        env=parse_env_pairs(values[f"{prefix}_env"]),
        data_dir=values[f"{prefix}_data_dir"],
    )


def _since(value: str | None) -> int | None:
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            "an ISO 8601 time (2026-11-30T12:00:00Z) or epoch milliseconds", param_hint="--since"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _json(data: Any) -> str:
    return json.dumps(get_converter().unstructure(data), indent=2, sort_keys=True)


tenant_option = click.option(
    "--tenant",
    "tenants",
    multiple=True,
    callback=tenant_ids,
    help="Only this tenant (repeatable; default: all).",
)
stream_option = click.option(
    "--stream",
    "streams",
    multiple=True,
    help="Only this stream, e.g. records/bots, lifecycle_log, secrets (repeatable).",
)


@click.command("migrate")
@_end_options("from", True)
@_end_options("to", True)
@tenant_option
@stream_option
@click.option(
    "--prune/--no-prune",
    default=None,
    help="Delete at the target what the source does not hold (default: off; on with --final).",
)
@click.option("--final", is_flag=True, help="The final sync of a cutover: implies --prune.")
@click.option("--dry-run", is_flag=True, help="Read and compare only; write nothing.")
@click.option(
    "--since",
    "since_text",
    default=None,
    metavar="TIME",
    help="Leave alone records the source last changed before TIME (rollback).",
)
@click.option("--batch-size", type=click.IntRange(1, 5000), default=200, show_default=True)
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(0, 86400),
    default=0.0,
    help="Seconds to wait for another migration's lock on the target.",
)
@click.option("--restart", is_flag=True, help="Ignore a stored checkpoint; start over.")
@json_option
def migrate_command(**values: Any) -> None:
    """Copy data from one backend to another, per tenant, through the repository ports.

    Idempotent (a second run over unchanged data writes nothing) and resumable (checkpoints in
    the target; a killed run goes on where it stopped). Records the target cannot hold are
    listed and the exit status is 1; the rest is copied.
    """
    prune = values["prune"] if values["prune"] is not None else values["final"]
    options = MigrationOptions(
        tenants=list(values["tenants"]) or None,
        streams=list(values["streams"]) or None,
        prune=prune,
        dry_run=values["dry_run"],
        since=_since(values["since_text"]),
        batch_size=values["batch_size"],
        wait_seconds=values["wait_seconds"],
        resume=not values["restart"],
    )
    as_json = values["as_json"]
    with (
        _open("from", values) as source,
        _open("to", values) as target,
        _bars(not as_json) as bars,
    ):
        report = migrate(
            source.backend,
            target.backend,
            options,
            source_id=source.label,
            target_id=target.label,
            progress=bars,
        )
    click.echo(_json(_migration_summary(report)) if as_json else _migration_text(report))
    if not report.ok:
        raise click.ClickException(
            f"{report.problem_count} record(s) not copied or not pruned (listed above)"
        )


def _migration_summary(report: MigrationReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "source": report.source,
        "target": report.target,
        "dry_run": report.dry_run,
        "prune": report.prune,
        "since": report.since,
        "resumed": report.resumed,
        "tenants": report.tenants,
        "records": report.records,
        "writes": report.writes,
        "seconds": round(report.seconds, 3),
        "streams": report.streams,
        "problem_count": report.problem_count,
        "problems": report.problems,
    }


def _migration_text(report: MigrationReport) -> str:
    verb = "would write" if report.dry_run else "wrote"
    lines = [
        f"{report.source} -> {report.target}: {report.records} source records, {verb} "
        f"{report.writes} in {report.seconds:.1f}s"
        + (" (resumed from a checkpoint)" if report.resumed else "")
    ]
    header = f"  {'tenant':<20} {'stream':<28} {'source':>7} {'target':>7} {'created':>7} "
    header += f"{'updated':>7} {'deleted':>7} {'same':>7} {'failed':>6}"
    lines.append(header)
    for s in report.streams:
        if not (s.source or s.target):
            continue
        lines.append(
            f"  {s.tenant[:20]:<20} {s.stream:<28} {s.source:>7} {s.target:>7} {s.created:>7} "
            f"{s.updated:>7} {s.deleted:>7} {s.unchanged:>7} {s.failed + s.not_pruned:>6}"
        )
    for problem in report.problems:
        lines.append(f"  ! {problem.tenant}/{problem.stream}/{problem.id}: {problem.reason}")
    return "\n".join(lines)


@click.command("parity")
@_end_options("from", True)
@_end_options("to", True)
@tenant_option
@stream_option
@click.option("--buckets", type=click.IntRange(1, 1 << 20), default=1024, show_default=True)
@click.option(
    "--diffs",
    "diff_limit",
    type=click.IntRange(0, 10_000),
    default=10,
    show_default=True,
    help="Field-level diffs shown per stream.",
)
@json_option
def parity_command(**values: Any) -> None:
    """Compare two backends record by record (canonical hashes in buckets; only differing
    buckets are compared record by record). Exit status 1 on any difference."""
    with _open("from", values) as source, _open("to", values) as target:
        report = parity(
            source.backend,
            target.backend,
            tenants=list(values["tenants"]) or None,
            streams=list(values["streams"]) or None,
            buckets=values["buckets"],
            diff_limit=values["diff_limit"],
            source_id=source.label,
            target_id=target.label,
        )
    click.echo(_json(_parity_summary(report)) if values["as_json"] else _parity_text(report))
    if not report.ok:
        raise click.ClickException("PARITY MISMATCH (listed above)")


def _parity_summary(report: ParityReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "source": report.source,
        "target": report.target,
        "tenants": report.tenants,
        "records": report.records,
        "seconds": round(report.seconds, 3),
        "streams": report.streams,
    }


def _parity_text(report: ParityReport) -> str:
    lines = [
        f"{report.source} vs {report.target}: {report.records} records in {report.seconds:.1f}s"
    ]
    lines.append(
        f"  {'':<4} {'tenant':<20} {'stream':<28} {'source':>7} {'target':>7} "
        f"{'missing':>7} {'extra':>7} {'differ':>7}"
    )
    for s in report.streams:
        if not (s.source or s.target):
            continue
        mark = "OK" if s.ok else "DIFF"
        lines.append(
            f"  {mark:<4} {s.tenant[:20]:<20} {s.stream:<28} {s.source:>7} "
            f"{s.target:>7} {s.missing:>7} {s.extra:>7} {s.different:>7}"
        )
        for name, ids in (("missing", s.missing_ids), ("extra", s.extra_ids)):
            if ids:
                lines.append(f"       {name}: {', '.join(ids[:20])}")
        for diff in s.diffs:
            for field in diff["fields"]:
                lines.append(
                    f"       {diff['id']} {field['path'] or '(whole)'}: "
                    f"{json.dumps(field['source'], ensure_ascii=False)[:80]} != "
                    f"{json.dumps(field['target'], ensure_ascii=False)[:80]}"
                )
    lines.append("Overall: PARITY OK" if report.ok else "Overall: PARITY MISMATCH")
    return "\n".join(lines)


# -- cutover ----------------------------------------------------------------------------------


@click.group("cutover", cls=BotmoxGroup)
def cutover_group() -> None:
    """Write freeze and switch of a deployment's data backend (docs/cutover.md)."""


def _freeze_text(state: FreezeState) -> str:
    if not state.frozen:
        return "writes: open"
    when = (
        datetime.fromtimestamp(state.frozen_at / 1000, UTC).isoformat() if state.frozen_at else "?"
    )
    return (
        f"writes: FROZEN since {when} by {state.by} ({state.reason}); "
        f"Retry-After {state.retry_after}s"
    )


def _deployment(values: dict[str, Any]) -> Endpoint:
    return open_endpoint(
        values["backend"],
        config_file=values["config"],
        env=parse_env_pairs(values["env"]),
        data_dir=values["data_dir"],
    )


def _deployment_options(function: F) -> F:
    for option in reversed(
        [
            click.option(
                "--backend",
                required=True,
                metavar="BACKEND",
                help="The deployment's data backend (its servers' DATA_BACKEND).",
            ),
            click.option("--config", type=click.Path(dir_okay=False), default=None),
            click.option("--env", multiple=True, metavar="KEY=VALUE"),
            click.option("--data-dir", type=click.Path(file_okay=False), default=None),
            json_option,
        ]
    ):
        function = option(function)
    return function


def _show(state: FreezeState, as_json: bool) -> None:
    click.echo(_json(state) if as_json else _freeze_text(state))


@cutover_group.command("freeze")
@_deployment_options
@click.option(
    "--retry-after",
    type=click.IntRange(1, 86400),
    default=60,
    show_default=True,
    help="Seconds frozen writes tell clients to wait (Retry-After).",
)
@click.option("--reason", default="cutover", show_default=True)
def freeze_command(**values: Any) -> None:
    """Freeze writes on every server replica of the deployment (503 WRITES_FROZEN)."""
    with _deployment(values) as end:
        state = freeze(
            control_backend(end.backend, "deployment"),
            retry_after=values["retry_after"],
            reason=values["reason"],
        )
    _show(state, values["as_json"])


@cutover_group.command("status")
@_deployment_options
def status_command(**values: Any) -> None:
    """Whether the deployment's writes are frozen."""
    with _deployment(values) as end:
        state = freeze_state(control_backend(end.backend, "deployment"))
    _show(state, values["as_json"])


@cutover_group.command("unfreeze")
@_deployment_options
def unfreeze_command(**values: Any) -> None:
    """Open writes again."""
    with _deployment(values) as end:
        state = unfreeze(control_backend(end.backend, "deployment"))
    _show(state, values["as_json"])


@cutover_group.command("switch")
@_end_options("to", True)
@click.option(
    "--ready-url",
    default=None,
    metavar="URL",
    help="Base URL of a server already running on the target: its "
    "/api/v1/health/ready must answer 200.",
)
@json_option
def switch_command(**values: Any) -> None:
    """Check that the target is ready and print the configuration to apply to the servers."""
    with _open("to", values) as target:
        health = target.backend.check_health()
        frozen = freeze_state(control_backend(target.backend, "target"))
        names = sorted(
            f"BOTMOX_{target.backend.name.upper()}_{key.upper()}"
            for key in target.settings.plugin_options(target.backend.name)
        )
    checks: dict[str, Any] = {"backend_health": {"ok": health.ok, "detail": health.detail}}
    if values["ready_url"]:
        url = values["ready_url"].rstrip("/") + "/api/v1/health/ready"
        try:
            answer = httpx.get(url, timeout=10.0)
            checks["ready_url"] = {
                "url": url,
                "ok": answer.status_code == 200,
                "status": answer.status_code,
            }
        except httpx.HTTPError as exc:
            checks["ready_url"] = {"url": url, "ok": False, "error": type(exc).__name__}
    ok = all(check["ok"] for check in checks.values()) and not frozen.frozen
    summary = {
        "ok": ok,
        "apply": {"BOTMOX_DATA_BACKEND": target.backend.name},
        "also_set": names,
        "target_frozen": frozen.frozen,
        "checks": checks,
    }
    if values["as_json"]:
        click.echo(_json(summary))
    else:
        lines = [f"apply to every server: BOTMOX_DATA_BACKEND={target.backend.name}"]
        lines += [f"  with {name} as given for the target" for name in names]
        lines += [
            f"check {name}: {'ok' if c['ok'] else 'FAILED'} {c}" for name, c in checks.items()
        ]
        if frozen.frozen:
            lines.append("the target is in write freeze: run `botmox cutover unfreeze` on it")
        click.echo("\n".join(lines))
    if not ok:
        raise click.ClickException("the target is not ready: do not switch")
