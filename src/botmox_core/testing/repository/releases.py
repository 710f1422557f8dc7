"""Repository conformance: releases."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import attrs
import pytest

from botmox_core.errors import BadRequestError, DuplicateError
from botmox_core.models import (
    ReleaseScope,
    ReleaseStatus,
)
from botmox_core.ports import DataBackend
from botmox_core.testing.repository._base import B, RepositoryConformanceBase
from botmox_core.testing.repository._support import (
    SCOPE,
    SHA_A,
    _check_equal,
    _check_utc,
    make_release,
)

__all__ = ["ReleaseConformance"]


class ReleaseConformance(RepositoryConformanceBase[B]):
    """Pytest mixin: releases."""

    def test_release_round_trip(self, backend: DataBackend, tenant: str) -> None:
        for status in ReleaseStatus:
            release = make_release(tenant, status=status)
            with backend.unit_of_work() as uow:
                stored = uow.releases.add(release)
                uow.commit()
            assert isinstance(stored.id, int) and stored.id > 0, f"release id {stored.id!r}"
            _check_equal(stored, attrs.evolve(release, id=stored.id), "releases.add result")
            with backend.unit_of_work() as uow:
                got = uow.releases.get(tenant, stored.id)
            _check_equal(got, stored, "releases.get")
            _check_utc(got, "release")

    def test_release_ids_are_positive_distinct_and_ignore_given_id(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        added = []
        for owner in (tenant, tenant, other_tenant, tenant):
            with backend.unit_of_work() as uow:
                added.append(uow.releases.add(make_release(owner, id=7)))
                uow.commit()
        ids = [release.id for release in added]
        assert all(isinstance(i, int) and i > 0 for i in ids), f"release ids {ids}"
        _check_equal(len(set(ids)), len(ids), f"distinct release ids ({ids})")

    def test_release_find(self, backend: DataBackend, tenant: str) -> None:
        stored = self.committed(
            backend, lambda uow: uow.releases.add(make_release(tenant, version="2.0.0"))
        )
        got = self.read(backend, lambda uow: uow.releases.find(tenant, SCOPE, "2.0.0"))
        _check_equal(got, stored, "releases.find")
        for scope, version in (
            (SCOPE, "2.0.1"),
            (ReleaseScope("fishing", "windows", "beta"), "2.0.0"),
            (ReleaseScope("fishing", "linux", "stable"), "2.0.0"),
            (ReleaseScope("mining", "windows", "stable"), "2.0.0"),
        ):
            with backend.unit_of_work() as uow:
                _check_equal(uow.releases.find(tenant, scope, version), None, f"find({scope})")

    def test_release_missing_is_none(self, backend: DataBackend, tenant: str) -> None:
        _check_equal(self.read(backend, lambda uow: uow.releases.get(tenant, 987654)), None, "get")

    def test_release_list_newest_first_and_by_module(
        self, backend: DataBackend, tenant: str
    ) -> None:
        _check_equal(list(self.read(backend, lambda uow: uow.releases.list(tenant))), [], "empty")
        added = []
        for module in ("fishing", "mining", "fishing", "mining", "fishing"):
            with backend.unit_of_work() as uow:
                added.append(uow.releases.add(make_release(tenant, module=module)))
                uow.commit()
        newest_first = sorted(added, key=lambda r: r.id, reverse=True)
        got = list(self.read(backend, lambda uow: uow.releases.list(tenant)))
        _check_equal(got, newest_first, "releases.list")
        got = list(self.read(backend, lambda uow: uow.releases.list(tenant, module="fishing")))
        _check_equal(got, [r for r in newest_first if r.module == "fishing"], "list(fishing)")
        got = list(self.read(backend, lambda uow: uow.releases.list(tenant, module="nothing")))
        _check_equal(got, [], "list of a module without releases")

    def test_release_duplicate_version_is_refused(self, backend: DataBackend, tenant: str) -> None:
        original = self.committed(
            backend, lambda uow: uow.releases.add(make_release(tenant, version="3.0.0"))
        )
        clash = make_release(tenant, version="3.0.0", sha256=SHA_A, size_bytes=5)
        with pytest.raises(DuplicateError):
            self.committed(backend, lambda uow: uow.releases.add(clash))
        got = list(self.read(backend, lambda uow: uow.releases.list(tenant)))
        _check_equal(got, [original], "releases after a refused duplicate version")

    def test_release_duplicate_object_key_is_refused(
        self, backend: DataBackend, tenant: str
    ) -> None:
        original = self.committed(backend, lambda uow: uow.releases.add(make_release(tenant)))
        clash = make_release(tenant, object_key=original.object_key, channel="beta")
        with pytest.raises(DuplicateError):
            self.committed(backend, lambda uow: uow.releases.add(clash))
        got = list(self.read(backend, lambda uow: uow.releases.list(tenant)))
        _check_equal(got, [original], "releases after a refused duplicate object key")

    def test_release_uniqueness_is_per_tenant_and_scope(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        original = self.committed(
            backend, lambda uow: uow.releases.add(make_release(tenant, version="4.0.0"))
        )
        same_elsewhere = attrs.evolve(original, id=0, tenant_id=other_tenant)
        other_channel = make_release(tenant, version="4.0.0", channel="beta")
        for release in (same_elsewhere, other_channel):
            with backend.unit_of_work() as uow:
                stored = uow.releases.add(release)
                uow.commit()
            _check_equal(stored, attrs.evolve(release, id=stored.id), "allowed release")

    def test_release_tenant_isolation(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        stored = self.committed(
            backend, lambda uow: uow.releases.add(make_release(tenant, version="5.0.0"))
        )
        with backend.unit_of_work() as uow:
            _check_equal(uow.releases.get(other_tenant, stored.id), None, "get")
            _check_equal(uow.releases.find(other_tenant, SCOPE, "5.0.0"), None, "find")
            _check_equal(list(uow.releases.list(other_tenant)), [], "list")
            _check_equal(list(uow.releases.list(other_tenant, module="fishing")), [], "list")

    def test_release_invalid_values_are_refused(self, backend: DataBackend, tenant: str) -> None:
        self._require("rejects_invalid_release_values", "the backend does not check values")
        for bad in (
            {"sha256": SHA_A.upper()},
            {"sha256": SHA_A[:63]},
            {"sha256": "g" * 64},
            {"size_bytes": 0},
            {"size_bytes": -1},
        ):
            with pytest.raises(BadRequestError), backend.unit_of_work() as uow:
                uow.releases.add(make_release(tenant, **bad))
                uow.commit()
        _check_equal(list(self.read(backend, lambda uow: uow.releases.list(tenant))), [], "stored")

    def test_release_adds_concurrently_get_distinct_ids(
        self, backend: DataBackend, tenant: str
    ) -> None:
        threads, per_thread = self.concurrency_threads, 5
        start = threading.Barrier(threads)

        def worker(number: int) -> list[int]:
            start.wait(timeout=30)
            ids = []
            for step in range(per_thread):
                with backend.unit_of_work() as uow:
                    ids.append(
                        uow.releases.add(make_release(tenant, version=f"9.{number}.{step}")).id
                    )
                    uow.commit()
            return ids

        with ThreadPoolExecutor(threads) as pool:
            ids = [i for f in [pool.submit(worker, n) for n in range(threads)] for i in f.result()]
        assert all(i > 0 for i in ids), f"release ids {ids}"
        _check_equal(len(set(ids)), threads * per_thread, f"distinct ids ({sorted(ids)})")
        listed = {r.id for r in self.read(backend, lambda uow: uow.releases.list(tenant))}
        _check_equal(listed, set(ids), "listed release ids")
