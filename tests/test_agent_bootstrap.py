"""Which agent transport the composition root picks."""

from __future__ import annotations

from typing import Any

import pytest

from botmox_core.bootstrap import select_agent_transport
from botmox_core.errors import ConfigurationError
from botmox_core.plugin import load_registry
from botmox_core.ports import BackendCapabilities


class _Backend:
    name = "fake"

    def __init__(self, preferred: Any = None) -> None:
        self.capabilities = BackendCapabilities(preferred_agent_transport=preferred)


def test_environment_wins_then_backend_preference_then_inprocess() -> None:
    registry = load_registry({"BOTMOX_PLUGINS": "none"})
    registry.agent_transports.register("postgres", lambda settings: None)
    env = {"BOTMOX_AGENT_TRANSPORT": "inprocess"}
    assert select_agent_transport(env, _Backend("postgres"), registry) == "inprocess"  # type: ignore[arg-type]
    assert select_agent_transport({}, _Backend("postgres"), registry) == "postgres"  # type: ignore[arg-type]
    assert select_agent_transport({}, _Backend("not-installed"), registry) == "inprocess"  # type: ignore[arg-type]
    assert select_agent_transport({}, _Backend(), registry) == "inprocess"  # type: ignore[arg-type]


def test_unknown_transport_is_a_configuration_error(tmp_path: Any) -> None:
    from botmox_core.bootstrap import bootstrap
    from botmox_core.config import load_settings

    env = {
        "BOTMOX_DATA_DIR": str(tmp_path),
        "BOTMOX_PLUGINS": "none",
        "BOTMOX_AGENT_TRANSPORT": "carrier-pigeon",
    }
    with pytest.raises(ConfigurationError, match="carrier-pigeon"):
        bootstrap(load_settings(env))
