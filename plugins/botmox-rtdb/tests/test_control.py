"""The control entries (write freeze, migration lock and checkpoints) and the tenant list on
RTDB: the conformance kit, with and without a legacy tenant."""

from __future__ import annotations

from typing import Any

import pytest
from botmox_rtdb import RtdbBackend

from botmox_core.testing.control import ControlRepositoryConformance


class TestRtdbControl(ControlRepositoryConformance):
    @pytest.fixture
    def backend(self, make_backend: Any) -> RtdbBackend:
        return make_backend()  # type: ignore[no-any-return]

    @pytest.fixture
    def second_backend(self, make_backend: Any) -> RtdbBackend:
        return make_backend()  # type: ignore[no-any-return]


def test_the_legacy_tenant_is_listed_with_the_tenants_below_tenants(make_backend: Any) -> None:
    backend = make_backend(BOTMOX_RTDB_LEGACY_TENANT="seed")
    with backend.unit_of_work() as uow:
        assert list(uow.control.tenants()) == ["seed"]
        uow.settings.modify("other", lambda tree: {"theme": "dark"})
        uow.commit()
    with backend.unit_of_work() as uow:
        assert list(uow.control.tenants()) == ["other", "seed"]
        assert list(uow.control.tenants(after="other")) == ["seed"]


def test_entries_read_back_exactly(make_backend: Any) -> None:
    backend = make_backend()
    value = {"a": [], "b": {}, "c": None, "d": {"0": 1, "1": 2}, "e": 1.5}
    with backend.unit_of_work() as uow:
        uow.control.modify("exact", lambda current: value)
    with backend.unit_of_work() as uow:
        assert uow.control.get("exact") == value
