"""``botmox db``: database commands of the Supabase plugin.

``botmox db migrate [--database-url URL] [--json]`` brings a database to the latest shipped
schema; running it again changes nothing.
"""

from __future__ import annotations

import json

import click

from botmox_core.errors import BotmoxError

__all__ = ["db_group"]


@click.group(name="db")
def db_group() -> None:
    """Database commands of the Supabase (PostgreSQL) backend."""


@db_group.command(name="migrate")
@click.option(
    "--database-url",
    metavar="URL",
    default=None,
    help=(
        "PostgreSQL URL; default: BOTMOX_SUPABASE_DATABASE_URL, SUPABASE_DB_URL or DATABASE_URL. "
        "Use the direct connection or the session pooler."
    ),
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def migrate_command(database_url: str | None, as_json: bool) -> None:
    """Apply the shipped migrations (idempotent; recorded in botmox.schema_migrations)."""
    from botmox_core.config import load_settings
    from botmox_supabase.migrations import apply_migrations
    from botmox_supabase.options import SupabaseOptions, redact_database_url

    try:
        settings = load_settings()
        if database_url:
            environ = dict(settings.environ)
            environ["BOTMOX_SUPABASE_DATABASE_URL"] = database_url
            settings = load_settings(environ=environ, config_file=settings.config_file)
        options = SupabaseOptions.from_settings(settings)
        report = apply_migrations(options.database_url, connect_timeout=options.connect_timeout)
    except BotmoxError as exc:
        if as_json:
            click.echo(json.dumps({"success": False, "error": exc.to_envelope()["error"]}))
            raise SystemExit(1) from None
        raise
    target = redact_database_url(options.database_url)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "success": True,
                    "data": {
                        "database": target,
                        "applied": list(report.applied),
                        "already_applied": list(report.already_applied),
                        "latest": report.latest,
                    },
                }
            )
        )
        return
    if report.applied:
        click.echo(f"applied {len(report.applied)} migration(s) to {target}:")
        for version in report.applied:
            click.echo(f"  {version}")
    else:
        click.echo(f"{target} is up to date")
    click.echo(f"schema version {report.latest}")
