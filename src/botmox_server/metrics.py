"""``/metrics``: Prometheus text format, off unless the ``metrics_token`` setting is set.

Served by an ASGI wrapper around the whole application (outside the rate limiter, so refused
requests are counted too), never listed in OpenAPI. A scrape must send
``Authorization: Bearer <token>`` (``BOTMOX_METRICS_TOKEN``, or ``metrics_token`` in the TOML
file); without it the path is an unknown path like any other (404 ``NOT_FOUND``).

What is measured (``docs/operations.md``, Monitoring):

* ``botmox_http_request_duration_seconds{method, route, status}``: a histogram per *route
  template* (``/api/v1/vm/{vm_uuid}/resolve``), never the raw path; requests that match no
  route are ``route="<unmatched>"`` (unknown paths, and requests the rate limiter refused
  before routing); methods other than the usual seven are ``method="OTHER"``.
* ``botmox_resolve_download_total{result, reason}``: resolve-download outcomes; ``reason`` is
  the answer's error code (``LEASE_EXPIRED`` ...) or ``OK``.
* ``botmox_rate_limited_requests_total``: 429 ``RATE_LIMITED`` answers.
* ``botmox_agents_connected``: agent sockets held (summed over worker processes).
* ``botmox_commands{state}`` and ``botmox_command_queue_depth``: read from the data backend at
  scrape time (every tenant), when it keeps agents.

With ``botmox serve --workers N`` (N > 1) the workers write their samples to
``PROMETHEUS_MULTIPROC_DIR`` (set by ``serve``) and any worker answers a scrape with the sum.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from litestar.enums import ScopeType
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from botmox_core.models import CommandStatus
from botmox_core.ports.agents import supports_agents

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send
    from prometheus_client.metrics_core import Metric

    from botmox_core.bootstrap import App

__all__ = ["METRICS_PATH", "METRICS_TOKEN_VARIABLE", "Metrics", "install_metrics"]

log = logging.getLogger("botmox.metrics")

METRICS_PATH = "/metrics"
#: The variable of the ``metrics_token`` setting.
METRICS_TOKEN_VARIABLE = "BOTMOX_METRICS_TOKEN"  # noqa: S105 - a variable name
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
RESOLVE_ROUTE = "/api/v1/artifacts/resolve-download"
UNMATCHED = "<unmatched>"
#: Methods labelled by name; any other (a client may send any token) is ``OTHER``.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Seconds between refreshes of this process's connected-agents gauge.
#: The resolve answer is read for its error code only when it is this small.
_RESOLVE_BODY_LIMIT = 16 * 1024
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


class _CommandCollector(Collector):
    """Commands by state and the queue depth, counted by the data backend at scrape time."""

    def __init__(self, core: App) -> None:
        self._core = core

    def collect(self) -> Iterable[Metric]:
        backend = self._core.backend
        if not supports_agents(backend):
            return
        try:
            with backend.unit_of_work() as uow:
                counts = dict(uow.commands.count_by_status())
        except Exception:  # a scrape must answer even when the database does not
            log.warning("metrics: counting commands failed", exc_info=True)
            return
        states = GaugeMetricFamily(
            "botmox_commands", "Stored commands by state (every tenant).", labels=["state"]
        )
        for status in CommandStatus:
            states.add_metric([status.value], counts.get(status, 0))
        yield states
        yield GaugeMetricFamily(
            "botmox_command_queue_depth",
            "Commands queued and not yet delivered (every tenant).",
            value=counts.get(CommandStatus.QUEUED, 0),
        )


class Metrics:
    """The instruments of one application and its scrape registry.

    In one process the instruments live in a registry of their own (several apps in one test
    process do not collide). With ``PROMETHEUS_MULTIPROC_DIR`` set they write to that directory
    and a scrape sums every worker's files.
    """

    def __init__(self, core: App, token: str) -> None:
        self.token = token.encode("utf-8")
        self.multiprocess_dir = os.environ.get(MULTIPROCESS_VARIABLE) or None
        own = None if self.multiprocess_dir else CollectorRegistry(auto_describe=True)
        self._own = own
        self.latency = Histogram(
            "botmox_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.resolve_outcomes = Counter(
            "botmox_resolve_download",
            "resolve-download outcomes by result and reason code.",
            ["result", "reason"],
            registry=own,
        )
        self.rate_limited = Counter(
            "botmox_rate_limited_requests",
            "Requests answered 429 RATE_LIMITED.",
            registry=own,
        )
        self.agents_connected = Gauge(
            "botmox_agents_connected",
            "Agent sockets held by the server (every worker process).",
            registry=own,
            multiprocess_mode="livesum",
        )
        self._commands = _CommandCollector(core)
        if own is not None:
            own.register(self._commands)

    def render(self) -> bytes:
        """The Prometheus text of every metric."""
        if self._own is not None:
            return generate_latest(self._own)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        registry.register(self._commands)
        return generate_latest(registry)

    def authorized(self, scope: Scope) -> bool:
        """Whether the scrape carries the metrics token (compared in constant time)."""
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, presented = header.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(presented.strip(), self.token)

    def observe_resolve(self, status: int, body: bytes) -> None:
        """Count one resolve-download answer by its error code."""
        if status < 400:
            self.resolve_outcomes.labels("allowed", "OK").inc()
            return
        reason = "UNKNOWN"
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            code = json.loads(body)["error"]["code"]
            if isinstance(code, str) and code.isupper() and len(code) <= 64:
                reason = code
        self.resolve_outcomes.labels("error" if status >= 500 else "denied", reason).inc()


async def _answer(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(body))],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _error(code: str, message: str) -> bytes:
    return json.dumps({"success": False, "error": {"code": code, "message": message}}).encode()


class MetricsMiddleware:
    """Times every HTTP request by route template, counts resolve outcomes and 429s, and
    answers ``GET /metrics``."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._series: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        if scope["path"] == METRICS_PATH:
            await self._scrape(scope, send)
            return
        metrics = self.metrics
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 0, "body": b""}
        resolve = scope["path"] == RESOLVE_ROUTE

        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif (
                resolve
                and message["type"] == "http.response.body"
                and len(seen["body"]) < _RESOLVE_BODY_LIMIT
            ):
                seen["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            status = seen["status"] or 500
            route = scope.get("path_template") or UNMATCHED
            method = scope.get("method", "")
            key = (method if method in HTTP_METHODS else "OTHER", route, status)
            series = self._series.get(key)
            if series is None:  # bounded: routes x methods x status codes
                series = self._series[key] = metrics.latency.labels(key[0], route, str(status))
            series.observe(time.perf_counter() - started)
            if status == 429:
                metrics.rate_limited.inc()
            if resolve and route == RESOLVE_ROUTE and scope.get("method") == "POST":
                metrics.observe_resolve(status, seen["body"])

    async def _scrape(self, scope: Scope, send: Send) -> None:
        if scope.get("method") != "GET":
            await _answer(send, 405, _error("METHOD_NOT_ALLOWED", "GET only"), b"application/json")
        elif not self.metrics.authorized(scope):
            await _answer(
                send, 401, _error("UNAUTHORIZED", "metrics token required"), b"application/json"
            )
        else:
            body = await asyncio.to_thread(self.metrics.render)  # the command count reads the db
            await _answer(send, 200, body, _CONTENT_TYPE)


def install_metrics(app: Litestar, core: App) -> Litestar:
    """Put the metrics wrapper around ``app`` when the ``metrics_token`` setting is set;
    otherwise leave the app as it is (no ``/metrics``)."""
    token = core.settings.metrics_token
    if not token:
        return app
    metrics = Metrics(core, token)
    bus = app.state["agent_bus"]
    bus.hub.watch(metrics.agents_connected.set)  # set on every attach and detach

    async def stop() -> None:
        if metrics.multiprocess_dir:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid(), metrics.multiprocess_dir)  # type: ignore[no-untyped-call]

    app.on_shutdown.append(stop)
    app.asgi_handler = MetricsMiddleware(app.asgi_handler, metrics)
    app.state["metrics"] = metrics
    return app
