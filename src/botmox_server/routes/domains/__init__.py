"""Domain data routes (docs/domains.md): resources, workspace, bots and their lifecycle,
finance, settings, and the auth probes. Thin: every rule is in
:mod:`botmox_core.services.domains`."""

from __future__ import annotations

from typing import Any

from botmox_server.routes.domains import auth, finance, lifecycle, records, settings

ROUTES: list[Any] = [
    *records.ROUTES,
    *lifecycle.ROUTES,
    *finance.ROUTES,
    *settings.ROUTES,
    *auth.ROUTES,
]
"""Every domain route handler, for :data:`botmox_server.app.ROUTES`."""
