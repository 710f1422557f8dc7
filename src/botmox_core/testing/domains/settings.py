"""Conformance of ``uow.settings``: one settings tree per tenant, modified atomically."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pytest

from botmox_core.domain.patching import apply_patch
from botmox_core.ports import DataBackend
from botmox_core.ports.domains import DomainUnitOfWork
from botmox_core.testing.domains._base import DomainConformanceBase
from botmox_core.testing.domains._support import check_same_json

__all__ = ["SettingsConformance"]

B = TypeVar("B", bound=DataBackend)

TREE: dict[str, Any] = {
    "api_keys": {"ggg": {"key": "secret ✓", "enabled": True}},
    "notifications": {"events": {"ban": True, "level_up": False}, "limit": 2**53 + 1},
    "theme": {"palette": {"light": {"accent": "#ff00ff"}}, "empty": {}, "list": [1, None, "x"]},
    "projects": {"wow_tbc": {"name": "Burning Crusade \U0001f600", "gold_rate": 0.25}},
}


class _Abort(Exception):
    pass


def _counting(
    tenant: str, writer: int, step: int
) -> Callable[[DomainUnitOfWork], Mapping[str, Any]]:
    def change(tree: Mapping[str, Any]) -> Mapping[str, Any]:
        return {**tree, "counter": tree.get("counter", 0) + 1, f"w{writer}": {"last": step}}

    return lambda uow: uow.settings.modify(tenant, change)


class SettingsConformance(DomainConformanceBase[B]):
    """Pytest mixin: what ``uow.settings`` must do."""

    def _tree(self, backend: DataBackend, tenant: str) -> Mapping[str, Any] | None:
        return self.read_unit(backend, lambda uow: uow.settings.get(tenant))

    def test_a_new_tenant_has_no_settings(self, backend: B, tenant: str) -> None:
        assert self._tree(backend, tenant) is None

    def test_modify_starts_from_an_empty_tree_and_stores_it(self, backend: B, tenant: str) -> None:
        seen: list[Mapping[str, Any]] = []

        def change(current: Mapping[str, Any]) -> Mapping[str, Any]:
            seen.append(current)
            return TREE

        result = self.write_unit(backend, lambda uow: uow.settings.modify(tenant, change))
        assert [dict(tree) for tree in seen] == [{}]
        check_same_json(TREE, dict(result))
        stored = self._tree(backend, tenant)
        assert stored is not None
        check_same_json(TREE, dict(stored))

    def test_modify_sees_the_stored_tree(self, backend: B, tenant: str) -> None:
        self.write_unit(backend, lambda uow: uow.settings.modify(tenant, lambda _: TREE))
        patch = {"theme/palette/dark/accent": "#000", "api_keys": None}
        result = self.write_unit(
            backend, lambda uow: uow.settings.modify(tenant, lambda tree: apply_patch(tree, patch))
        )
        expected = apply_patch(TREE, patch)
        check_same_json(expected, dict(result))
        stored = self._tree(backend, tenant)
        assert stored is not None
        check_same_json(expected, dict(stored))

    def test_a_failing_change_writes_nothing(self, backend: B, tenant: str) -> None:
        self.write_unit(backend, lambda uow: uow.settings.modify(tenant, lambda _: TREE))

        def change(tree: Mapping[str, Any]) -> Mapping[str, Any]:
            raise _Abort

        with pytest.raises(_Abort):
            self.write_unit(backend, lambda uow: uow.settings.modify(tenant, change))
        stored = self._tree(backend, tenant)
        assert stored is not None
        check_same_json(TREE, dict(stored))

    def test_settings_are_per_tenant(self, backend: B, tenant: str, other_tenant: str) -> None:
        self.write_unit(backend, lambda uow: uow.settings.modify(tenant, lambda _: TREE))
        assert self._tree(backend, other_tenant) is None
        self.write_unit(backend, lambda uow: uow.settings.modify(other_tenant, lambda _: {"a": 1}))
        stored = self._tree(backend, tenant)
        assert stored is not None
        check_same_json(TREE, dict(stored))

    def test_a_large_tree_round_trips(self, backend: B, tenant: str) -> None:
        """Close to the 2 MiB a settings tree may hold."""
        tree = {f"section_{n}": {"text": "é\U0001f600" * 500, "n": n} for n in range(700)}
        self.write_unit(backend, lambda uow: uow.settings.modify(tenant, lambda _: tree))
        stored = self._tree(backend, tenant)
        assert stored is not None
        check_same_json(tree, dict(stored))

    def _writers(self, backends: list[DataBackend], tenant: str) -> None:
        errors: list[BaseException] = []

        def worker(index: int, backend: DataBackend) -> None:
            try:
                for step in range(self.modifies_per_thread):
                    self.write_unit(backend, _counting(tenant, index, step))
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=worker, args=(index, backends[index % len(backends)]))
            for index in range(self.concurrency_threads)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, f"concurrent settings writers failed: {errors[0]!r}"
        stored = self._tree(backends[0], tenant)
        assert stored is not None
        assert stored["counter"] == self.concurrency_threads * self.modifies_per_thread
        for index in range(self.concurrency_threads):
            assert stored[f"w{index}"] == {"last": self.modifies_per_thread - 1}

    def test_concurrent_writers_lose_no_update(self, backend: B, tenant: str) -> None:
        self._writers([backend], tenant)

    def test_concurrent_writers_across_instances_lose_no_update(
        self, backend: B, second_backend: DataBackend, tenant: str
    ) -> None:
        self._writers([backend, second_backend], tenant)
