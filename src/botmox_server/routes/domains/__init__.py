"""Domain data routes (docs/domains.md): resources, workspace, bots and their lifecycle,
finance, settings, and the auth probes. Thin: every rule is in
:mod:`botmox_core.services.domains`."""

from __future__ import annotations

from typing import Any

from botmox_server.routes.domains import auth
from botmox_server.routes.domains.lifecycle import BotsController
from botmox_server.routes.domains.records import (
    FinanceAggregatesController,
    FinanceOperationsController,
    ResourcesController,
    WorkspaceController,
)
from botmox_server.routes.domains.settings import SettingsController

ROUTES: list[Any] = [
    ResourcesController,
    WorkspaceController,
    BotsController,
    FinanceOperationsController,
    FinanceAggregatesController,
    SettingsController,
    *auth.ROUTES,
]
"""Every domain route handler and controller, for :data:`botmox_server.app.ROUTES`."""
