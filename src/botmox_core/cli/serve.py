"""``botmox serve``: run the server (zero configuration: SQLite + local files in ``./.botmox``)."""

from __future__ import annotations

import ipaddress
import logging
import logging.config
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from botmox_core.config import LOG_FORMATS, Settings, load_settings

log = logging.getLogger("botmox.server")

#: The factory every worker process imports (``uvicorn --factory``).
WORKER_APP = "botmox_core.cli.serve:worker_app"
MAX_WORKERS = 64


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
@click.option(
    "--workers",
    type=click.IntRange(1, MAX_WORKERS),
    default=1,
    show_default=True,
    help="Worker processes sharing the port. Above 1, agents are woken across them through "
    "the unixsocket transport on the embedded default (postgres with Supabase).",
)
def serve_command(
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    config_file: str | None,
    log_level: str,
    log_format: str | None,
    workers: int,
) -> None:
    """Run the botmox HTTP server."""
    try:
        import uvicorn

        from botmox_core.cli._workers import reuse_port_supported, run_workers
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
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "access_log": False,  # botmox.access logs requests without query strings (signatures)
        "log_config": log_config,
        "log_level": log_level,
        "ws_per_message_deflate": False,
        # X-Forwarded-For is believed only from BOTMOX_RATE_LIMIT_TRUSTED_PROXIES (by the rate
        # limiter); uvicorn's own proxy headers would trust any loopback peer.
        "proxy_headers": False,
    }
    if workers == 1:
        app = create_app(settings)
        _log_serving(settings, 1)
        uvicorn.run(app, **options)
        return
    with _worker_environment(settings, workers, config_file) as transport:
        _log_serving(settings, workers, transport)
        if reuse_port_supported():  # a socket per worker: the kernel spreads connections
            run_workers(WORKER_APP, options, workers)
        else:  # uvicorn's one shared socket
            uvicorn.run(WORKER_APP, factory=True, workers=workers, **options)


def worker_app() -> Any:
    """The application of one worker process: settings from the environment ``serve`` set."""
    from botmox_server import create_app

    return create_app(load_settings())


def _log_serving(settings: Settings, workers: int, transport: str | None = None) -> None:
    log.info(
        "botmox serving on http://%s:%s (data backend %s, storage %s, data dir %s%s)",
        settings.host,
        settings.port,
        settings.data_backend,
        settings.storage,
        settings.data_dir,
        f", {workers} workers, agent transport {transport}" if workers > 1 else "",
    )


def worker_transport(settings: Settings, chosen: str) -> str:
    """The agent transport ``workers`` processes use, or :class:`click.UsageError` when the
    configuration cannot wake agents across processes.

    ``inprocess`` reaches only its own process: chosen by default it is replaced by
    ``unixsocket`` (the processes share the host); named in ``BOTMOX_AGENT_TRANSPORT`` it is
    refused. Every other transport (``postgres``, ``unixsocket``, plugins) crosses processes.
    """
    if chosen != "inprocess":
        return chosen
    if settings.agent_transport == "inprocess":
        origin = settings.origin("agent_transport").describe("agent_transport")
        raise click.UsageError(
            "--workers above 1 cannot use the inprocess agent transport "
            f"(set by {origin}): it wakes agents only inside one process, so a command "
            "queued through one worker would not reach an agent connected to another. Unset "
            "it (the embedded default then uses unixsocket), set "
            "BOTMOX_AGENT_TRANSPORT=unixsocket, or run --workers 1."
        )
    return "unixsocket"


@contextmanager
def _worker_environment(settings: Settings, workers: int, config_file: str | None) -> Iterator[str]:
    """Prepare what ``workers`` processes share, and the environment they read it from.

    The parent builds the core once (schema, key rings, URL key are created here, not raced by
    the workers), checks the configuration and passes its choices on: host, port, data dir,
    config file, log format, the agent transport and, when the metrics token is set, a
    fresh ``PROMETHEUS_MULTIPROC_DIR`` removed at exit.
    """
    from botmox_core.bootstrap import bootstrap

    sqlite_path = settings.plugin_options("sqlite").get("path", "").strip()
    if settings.data_backend == "sqlite" and sqlite_path == ":memory:":
        raise click.UsageError(
            "--workers above 1 needs a SQLite file: with path = ':memory:' every worker would "
            "hold a database of its own"
        )
    core = bootstrap(settings)
    try:
        transport = worker_transport(settings, core.transport.name)
        limiter_warning = _rate_limit_warning(core, workers)
    finally:
        core.close()
    if limiter_warning:
        log.warning("%s", limiter_warning)
    environment = {
        "BOTMOX_HOST": settings.host,
        "BOTMOX_PORT": str(settings.port),
        "BOTMOX_DATA_DIR": str(settings.data_dir.absolute()),
        "BOTMOX_LOG_FORMAT": settings.log_format,
        "BOTMOX_AGENT_TRANSPORT": transport,
    }
    if config_file:
        environment["BOTMOX_CONFIG"] = str(Path(config_file).absolute())
    metrics_dir = None
    if settings.metrics_token:
        metrics_dir = tempfile.mkdtemp(prefix="botmox-metrics-")
        environment["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)  # spawned workers inherit it
    try:
        yield transport
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _rate_limit_warning(core: Any, workers: int) -> str | None:
    """A warning when each worker would count rate limits alone (the ``memory`` store)."""
    settings = core.settings
    if not settings.rate_limit_enabled:
        return None
    from botmox_server.ratelimit import (
        MEMORY_STORE,
        rate_limit_store_factories,
        select_rate_limit_store,
    )

    installed = set(rate_limit_store_factories(core.registry))
    if select_rate_limit_store(settings.rate_limit_store, core.backend, installed) != MEMORY_STORE:
        return None
    return (
        f"rate limits use the per-process memory store: each of the {workers} workers counts "
        f"alone, so a client may get up to {workers} x the configured limits "
        "(BOTMOX_RATE_LIMIT_REQUESTS, BOTMOX_RATE_LIMIT_ADDRESS_REQUESTS); divide them by the "
        "worker count, or use a shared store (BOTMOX_RATE_LIMIT_STORE=postgres with Supabase)"
    )
