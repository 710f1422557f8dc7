"""Conformance suite for the control entries (:mod:`botmox_core.ports.control`).

A backend that declares ``capabilities.control`` subclasses :class:`ControlRepositoryConformance`
with the same ``backend`` fixture as :class:`~botmox_core.testing.RepositoryConformance`
(``second_backend``, another instance on the same store, enables the cross-instance race).
Without ``control`` every test skips with the reason. Keys and tenants are unique per test, so
the suite also runs against a shared database.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from typing import Any

import pytest

from botmox_core.errors import BadRequestError
from botmox_core.ports import DataBackend
from botmox_core.ports.control import ControlUnitOfWork, supports_control
from botmox_core.testing.repository._base import RepositoryConformanceBase
from botmox_core.testing.repository._support import make_vm

__all__ = ["ControlRepositoryConformance"]


def _key() -> str:
    return f"t-{uuid.uuid4().hex[:20]}"


class ControlRepositoryConformance(RepositoryConformanceBase[DataBackend]):
    """Control entries: get, modify (create, replace, delete, abort), atomic under races, and
    the tenant list."""

    def _control(self, backend: DataBackend) -> ControlUnitOfWork:
        if not supports_control(backend):
            pytest.skip(f"{backend.name} does not declare capabilities.control")
        return backend.unit_of_work()

    def test_control_absent_entry_reads_none(self, backend: DataBackend) -> None:
        with self._control(backend) as uow:
            assert uow.control.get(_key()) is None

    def test_control_modify_creates_replaces_and_deletes(self, backend: DataBackend) -> None:
        key = _key()
        seen: list[Any] = []

        def put(value: Mapping[str, Any]) -> Any:
            def change(current: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
                seen.append(None if current is None else dict(current))
                return value

            return change

        value = {"frozen": True, "retry_after": 30, "reason": "cutover é", "nested": {"a": [1, 2]}}
        with self._control(backend) as uow:
            assert uow.control.modify(key, put(value)) == value
            uow.commit()
        with self._control(backend) as uow:
            assert uow.control.get(key) == value
            assert uow.control.modify(key, put({"frozen": False})) == {"frozen": False}
            uow.commit()
        assert seen[-1] == value
        with self._control(backend) as uow:
            assert uow.control.get(key) == {"frozen": False}
            assert uow.control.modify(key, lambda current: None) is None
            uow.commit()
        with self._control(backend) as uow:
            assert uow.control.get(key) is None

    def test_control_change_that_raises_writes_nothing(self, backend: DataBackend) -> None:
        key = _key()
        with self._control(backend) as uow:
            uow.control.modify(key, lambda current: {"n": 1})
            uow.commit()

        def refuse(current: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
            raise BadRequestError("no")

        with self._control(backend) as uow, pytest.raises(BadRequestError):
            uow.control.modify(key, refuse)
        with self._control(backend) as uow:
            assert uow.control.get(key) == {"n": 1}

    def test_control_keys_are_checked(self, backend: DataBackend) -> None:
        with self._control(backend) as uow:
            for bad in ("", "A", "a/b", "a.b", "x" * 65):
                with pytest.raises(BadRequestError):
                    uow.control.modify(bad, lambda current: {"n": 1})

    def test_control_modify_never_loses_an_update(self, backend: DataBackend) -> None:
        key = _key()
        threads, per_thread = 4, 5
        errors: list[BaseException] = []

        def increment(current: Mapping[str, Any] | None) -> Mapping[str, Any]:
            return {"n": (0 if current is None else int(current["n"])) + 1}

        def work() -> None:
            try:
                for _ in range(per_thread):
                    with self._control(backend) as uow:
                        uow.control.modify(key, increment)
                        uow.commit()
            except BaseException as exc:  # reported below
                errors.append(exc)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert not errors
        with self._control(backend) as uow:
            assert uow.control.get(key) == {"n": threads * per_thread}

    def test_control_tenants_lists_tenants_with_data_in_order(self, backend: DataBackend) -> None:
        prefix = f"ct-{uuid.uuid4().hex[:8]}"
        tenants = [f"{prefix}-b", f"{prefix}-a", f"{prefix}-c"]
        with self._control(backend) as uow:
            for tenant in tenants:
                uow.vms.upsert(make_vm(tenant))
            uow.commit()
        found: list[str] = []
        after: str | None = None
        with self._control(backend) as uow:
            for _ in range(1000):
                page = list(uow.control.tenants(after=after, limit=2))
                assert len(page) <= 2
                found += page
                if len(page) < 2:
                    break
                after = page[-1]
        assert found == sorted(found)
        assert len(found) == len(set(found))
        assert [t for t in found if t.startswith(prefix)] == sorted(tenants)
