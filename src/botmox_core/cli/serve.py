"""``botmox serve``: run the server (zero configuration: SQLite + local files in ``./.botmox``)."""

from __future__ import annotations

import ipaddress
import logging
import logging.config
from pathlib import Path
from urllib.parse import urlsplit

import click

from botmox_core.config import LOG_FORMATS, Settings, load_settings

log = logging.getLogger("botmox.server")


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def public_url_warning(settings: Settings) -> str | None:
    """A warning when the server listens beyond loopback but hands out loopback download URLs
    (``BOTMOX_PUBLIC_URL`` unset or loopback): VMs on other machines could not use them."""
    if settings.storage != "localfs" or _is_loopback(settings.host):
        return None
    public_host = urlsplit(settings.base_url).hostname or ""
    if not _is_loopback(public_host):
        return None
    return (
        f"listening on {settings.host} but download URLs point at {settings.base_url}, a "
        "loopback address other machines cannot reach; set BOTMOX_PUBLIC_URL (or public_url "
        "in the config file) to the URL VMs reach this server at, e.g. "
        f"http://botmox.example.com:{settings.port}"
    )


@click.command("serve")
@click.option("--host", default=None, help="Interface to listen on [default: 127.0.0.1].")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port to listen on [default: 8000]."
)
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
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default=None,
    help="text: one line per record; json: one JSON object per line (for log shippers) "
    "[default: BOTMOX_LOG_FORMAT, else text].",
)
def serve_command(
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    config_file: str | None,
    log_level: str,
    log_format: str | None,
) -> None:
    """Run the botmox HTTP server."""
    try:
        import uvicorn

        from botmox_server import create_app
        from botmox_server.logs import logging_config
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise click.ClickException(
            f"the server is not installed ({exc.name}); pip install 'botmox[server]'"
        ) from exc
    settings = load_settings(
        config_file=config_file, host=host, port=port, data_dir=data_dir, log_format=log_format
    )
    log_config = logging_config(log_level, settings.log_format)
    logging.config.dictConfig(log_config)
    logging.captureWarnings(True)  # Python warnings take the same format as every other line
    warning = public_url_warning(settings)
    if warning is not None:
        log.warning("%s", warning)
    app = create_app(settings)
    log.info(
        "botmox serving on http://%s:%s (data backend %s, storage %s, data dir %s)",
        settings.host,
        settings.port,
        settings.data_backend,
        settings.storage,
        settings.data_dir,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,  # botmox.access logs requests without query strings (signatures)
        log_config=log_config,
        log_level=log_level,
        ws_per_message_deflate=False,
        # X-Forwarded-For is believed only from BOTMOX_RATE_LIMIT_TRUSTED_PROXIES (by the rate
        # limiter); uvicorn's own proxy headers would trust any loopback peer.
        proxy_headers=False,
    )
