"""``botmox serve``: run the server (zero configuration: SQLite + local files in ``./.botmox``)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from botmox_core.config import load_settings


@click.command("serve")
@click.option("--host", default=None, help="Interface to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to listen on [default: 8000].")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory of the embedded backends' files [default: ./.botmox].",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML configuration file (also BOTMOX_CONFIG).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def serve_command(
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    config_file: str | None,
    log_level: str,
) -> None:
    """Run the botmox HTTP server."""
    try:
        import uvicorn

        from botmox_server import create_app
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise click.ClickException(
            f"the server is not installed ({exc.name}); pip install 'botmox[server]'"
        ) from exc
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = load_settings(config_file=config_file, host=host, port=port, data_dir=data_dir)
    app = create_app(settings)
    click.echo(
        f"botmox serving on http://{settings.host}:{settings.port} "
        f"(data backend {settings.data_backend}, storage {settings.storage}, "
        f"data dir {settings.data_dir})",
        err=True,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,  # botmox.access logs requests without query strings (signatures)
        log_level=log_level,
        ws_per_message_deflate=False,
        # X-Forwarded-For is believed only from BOTMOX_RATE_LIMIT_TRUSTED_PROXIES (by the rate
        # limiter); uvicorn's own proxy headers would trust any loopback peer.
        proxy_headers=False,
    )
