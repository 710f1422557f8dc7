"""Vault conformance: check-and-set rotations under concurrency, and rollback of uncommitted
writes."""

from __future__ import annotations

import threading
from collections.abc import Callable

import attrs

from botmox_core.ports.vault import VaultUnitOfWork
from botmox_core.testing.vault._base import B, VaultConformanceBase
from botmox_core.testing.vault._support import _vault, make_secret, make_version
from botmox_core.vault.models import Secret

__all__ = ["SecretTransactionConformance"]


class SecretTransactionConformance(VaultConformanceBase[B]):
    """Pytest mixin: concurrent check-and-set rotations never lose one; a unit left without
    ``commit()`` writes nothing."""

    def test_check_and_set_never_loses_a_rotation(self, backend: B, tenant: str) -> None:
        """Concurrent rotations, each a modify that raises unless the version is the one it
        read: every version number is taken exactly once."""
        secret = make_secret(tenant)
        self.store(backend, secret)
        won: list[int] = []
        lock = threading.Lock()

        def rotate() -> None:
            for _ in range(self.modifies_per_thread):
                seen = self.read_unit(backend, lambda u: u.secrets.get(tenant, secret.id))
                assert seen is not None

                def change(current: Secret, expected: int = seen.version) -> Secret:
                    if current.version != expected:
                        raise _Stale()
                    return attrs.evolve(current, version=expected + 1)

                try:
                    self.write_unit(backend, _modifier(tenant, secret.id, change))
                except _Stale:
                    continue
                with lock:
                    won.append(seen.version + 1)

        threads = [threading.Thread(target=rotate) for _ in range(self.concurrency_threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        final = self.read_unit(backend, lambda u: u.secrets.get(tenant, secret.id))
        assert final is not None
        assert sorted(won) == list(range(2, final.version + 1))

    def test_uncommitted_writes_roll_back(self, backend: B, tenant: str) -> None:
        self._require("supports_rollback", "rollback is not declared")
        secret = make_secret(tenant)
        with backend.unit_of_work() as uow:
            _vault(uow).secrets.add(secret)
            _vault(uow).secrets.add_version(make_version(secret))
        assert self.read_unit(backend, lambda u: u.secrets.get(tenant, secret.id)) is None
        assert (
            self.read_unit(backend, lambda u: u.secrets.get_version(tenant, secret.id, 1)) is None
        )


class _Stale(Exception):
    pass


def _modifier(
    tenant: str, secret_id: str, change: Callable[[Secret], Secret]
) -> Callable[[VaultUnitOfWork], Secret | None]:
    return lambda uow: uow.secrets.modify(tenant, secret_id, change)
