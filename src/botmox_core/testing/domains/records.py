"""Conformance of ``uow.records``: create, read, modify, delete and scan, per tenant, and the
bulk ``put_many`` (:mod:`.records_bulk`)."""

from __future__ import annotations

import threading
from typing import Any, TypeVar

import attrs
import pytest

from botmox_core.domain.records import Collection, DomainRecord
from botmox_core.errors import BadRequestError, DuplicateError
from botmox_core.ports import DataBackend
from botmox_core.testing.domains._support import (
    EDGE_NUMBERS,
    EDGE_STRINGS,
    T0_MS,
    check_same_json,
    make_record,
    uid,
)
from botmox_core.testing.domains.records_bulk import PutManyConformance

__all__ = ["RecordConformance"]

B = TypeVar("B", bound=DataBackend)


class _Abort(Exception):
    pass


class RecordConformance(PutManyConformance[B]):
    """Pytest mixin: what ``uow.records`` must do (``put_many``: :class:`PutManyConformance`)."""

    # -- create and read ---------------------------------------------------------------------

    def test_add_returns_the_record_and_get_reads_it(self, backend: B, tenant: str) -> None:
        record = make_record(tenant)
        stored = self._add(backend, record)
        assert stored == record
        self._check_stored(backend, record)

    @pytest.mark.parametrize("collection", list(Collection))
    def test_every_collection_round_trips(
        self, backend: B, tenant: str, collection: Collection
    ) -> None:
        record = make_record(tenant, collection)
        self._add(backend, record)
        self._check_stored(backend, record)

    def test_edge_values_round_trip_exactly(self, backend: B, tenant: str) -> None:
        """Integers beyond 2**53 and 2**64 stay exact integers, floats keep their value,
        strings keep every code point (astral ones too), nesting is kept."""
        data: dict[str, Any] = {f"n{index}": value for index, value in enumerate(EDGE_NUMBERS)}
        data.update({f"s{index}": value for index, value in enumerate(EDGE_STRINGS)})
        data["numbers"] = list(EDGE_NUMBERS)
        data["strings"] = {f"k{index}": value for index, value in enumerate(EDGE_STRINGS)}
        data["ünïcødé key ✓ \U0001f600"] = "value"
        data["deep"] = {"a": {"b": {"c": {"d": {"e": [1, [2, [3, {"f": True}]]]}}}}}
        data["created_at"] = T0_MS
        data["updated_at"] = T0_MS
        record = make_record(tenant, record_id="edge", **data)
        self._add(backend, record)
        self._check_stored(backend, record)

    def test_nulls_and_empty_containers_round_trip(self, backend: B, tenant: str) -> None:
        """A stored ``null`` (finance's ``bot_id`` may be null), empty objects and arrays and
        nulls inside arrays come back as they were."""
        record = make_record(
            tenant,
            Collection.FINANCE_OPERATIONS,
            bot_id=None,
            project_id=None,
            empty_object={},
            empty_array=[],
            holes=[None, 1, None],
            nested={"none": None, "empty": {}},
        )
        self._add(backend, record)
        self._check_stored(backend, record)

    def test_a_large_record_round_trips(self, backend: B, tenant: str) -> None:
        """Close to the 256 KiB a record may hold."""
        blob = "x\U0001f600" * 40_000
        record = make_record(tenant, Collection.NOTES, content=blob, lines=list(range(5000)))
        self._add(backend, record)
        self._check_stored(backend, record)

    def test_get_of_a_missing_record_is_none(self, backend: B, tenant: str) -> None:
        assert self._get(backend, tenant, "missing", Collection.BOTS) is None

    def test_duplicate_id_is_refused_and_keeps_the_first(self, backend: B, tenant: str) -> None:
        record = self._add(backend, make_record(tenant, record_id="dup"))
        with pytest.raises(DuplicateError):
            self._add(backend, make_record(tenant, record_id="dup", name="second"))
        self._check_stored(backend, record)

    def test_same_id_in_another_collection_or_tenant_is_another_record(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        first = self._add(backend, make_record(tenant, Collection.BOTS, "same", name="one"))
        second = self._add(backend, make_record(tenant, Collection.NOTES, "same", name="two"))
        third = self._add(backend, make_record(other_tenant, Collection.BOTS, "same", name="3"))
        for record in (first, second, third):
            self._check_stored(backend, record)

    def test_another_tenants_record_is_invisible(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        record = self._add(backend, make_record(tenant))
        assert self._get(backend, other_tenant, record.id, Collection.BOTS) is None
        assert self._get(backend, tenant, record.id, Collection.NOTES) is None

    # -- modify ------------------------------------------------------------------------------

    def test_modify_replaces_the_record(self, backend: B, tenant: str) -> None:
        record = self._add(backend, make_record(tenant, gone="soon"))
        data = {**record.data, "name": "renamed", "level": 2**53 + 1}
        del data["gone"]
        changed = self.write_unit(
            backend,
            lambda uow: uow.records.modify(
                tenant, Collection.BOTS, record.id, lambda current: attrs.evolve(current, data=data)
            ),
        )
        assert changed is not None
        check_same_json(data, dict(changed.data))
        self._check_stored(backend, attrs.evolve(record, data=data))

    def test_modify_sees_the_current_record(self, backend: B, tenant: str) -> None:
        record = self._add(backend, make_record(tenant))
        seen: list[DomainRecord] = []

        def change(current: DomainRecord) -> DomainRecord:
            seen.append(current)
            return current

        self.write_unit(
            backend, lambda uow: uow.records.modify(tenant, Collection.BOTS, record.id, change)
        )
        assert len(seen) == 1 and seen[0].id == record.id and seen[0].tenant_id == tenant
        check_same_json(dict(record.data), dict(seen[0].data))

    def test_modify_of_a_missing_record_is_none_and_writes_nothing(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        record = self._add(backend, make_record(tenant))
        calls: list[DomainRecord] = []

        def change(current: DomainRecord) -> DomainRecord:
            calls.append(current)
            return current

        for who, collection, record_id in (
            (tenant, Collection.BOTS, "missing"),
            (other_tenant, Collection.BOTS, record.id),
            (tenant, Collection.NOTES, record.id),
        ):
            with backend.unit_of_work() as uow:
                result = uow.records.modify(who, collection, record_id, change)  # type: ignore[attr-defined]
                uow.commit()
            assert result is None
            assert self._get(backend, who, record_id, collection) is None
        assert calls == []

    def test_a_failing_change_writes_nothing(self, backend: B, tenant: str) -> None:
        record = self._add(backend, make_record(tenant))

        def change(current: DomainRecord) -> DomainRecord:
            raise _Abort

        with pytest.raises(_Abort):
            self.write_unit(
                backend, lambda uow: uow.records.modify(tenant, Collection.BOTS, record.id, change)
            )
        self._check_stored(backend, record)

    def test_an_unchanged_record_is_returned_as_it_is(self, backend: B, tenant: str) -> None:
        record = self._add(backend, make_record(tenant))
        result = self.write_unit(
            backend, lambda uow: uow.records.modify(tenant, Collection.BOTS, record.id, lambda c: c)
        )
        assert result is not None
        check_same_json(dict(record.data), dict(result.data))

    @pytest.mark.parametrize(
        "changes",
        [{"id": "other"}, {"tenant_id": "someone_else"}, {"collection": Collection.NOTES}],
        ids=["id", "tenant", "collection"],
    )
    def test_a_change_must_keep_the_identity(
        self, backend: B, tenant: str, changes: dict[str, Any]
    ) -> None:
        record = self._add(backend, make_record(tenant))
        with pytest.raises(BadRequestError):
            self.write_unit(
                backend,
                lambda uow: uow.records.modify(
                    tenant,
                    Collection.BOTS,
                    record.id,
                    lambda current: attrs.evolve(current, data={"x": 1}, **changes),
                ),
            )
        self._check_stored(backend, record)
        assert self._get(backend, tenant, "other", Collection.BOTS) is None
        assert self._get(backend, tenant, record.id, Collection.NOTES) is None

    def _count_concurrently(self, backends: list[DataBackend], tenant: str, record_id: str) -> None:
        errors: list[BaseException] = []

        def bump(current: DomainRecord) -> DomainRecord:
            data = dict(current.data)
            data["counter"] = int(data.get("counter", 0)) + 1
            return attrs.evolve(current, data=data)

        def worker(backend: DataBackend) -> None:
            try:
                for _ in range(self.modifies_per_thread):
                    self.write_unit(
                        backend,
                        lambda uow: uow.records.modify(tenant, Collection.BOTS, record_id, bump),
                    )
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=worker, args=(backends[index % len(backends)],))
            for index in range(self.concurrency_threads)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, f"concurrent modifies failed: {errors[0]!r}"
        found = self._get(backends[0], tenant, record_id, Collection.BOTS)
        assert found is not None
        expected = self.concurrency_threads * self.modifies_per_thread
        assert found.data["counter"] == expected, "a concurrent modify lost an update"

    def test_concurrent_modifies_lose_no_update(self, backend: B, tenant: str) -> None:
        record = self._add(backend, make_record(tenant, counter=0))
        self._count_concurrently([backend], tenant, record.id)

    def test_concurrent_modifies_across_instances_lose_no_update(
        self, backend: B, second_backend: DataBackend, tenant: str
    ) -> None:
        record = self._add(backend, make_record(tenant, counter=0))
        self._count_concurrently([backend, second_backend], tenant, record.id)

    # -- delete ------------------------------------------------------------------------------

    def test_delete_removes_once(self, backend: B, tenant: str) -> None:
        record = self._add(backend, make_record(tenant))
        delete = lambda uow: uow.records.delete(tenant, Collection.BOTS, record.id)  # noqa: E731
        assert self.write_unit(backend, delete) is True
        assert self._get(backend, tenant, record.id, Collection.BOTS) is None
        assert self.write_unit(backend, delete) is False

    def test_delete_leaves_other_tenants_and_collections(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        mine = self._add(backend, make_record(tenant, Collection.BOTS, "shared"))
        note = self._add(backend, make_record(tenant, Collection.NOTES, "shared"))
        theirs = self._add(backend, make_record(other_tenant, Collection.BOTS, "shared"))
        assert self.write_unit(
            backend, lambda uow: uow.records.delete(other_tenant, Collection.BOTS, "shared")
        )
        self._check_stored(backend, mine)
        self._check_stored(backend, note)
        assert self._get(backend, other_tenant, theirs.id, Collection.BOTS) is None
        assert not self.write_unit(
            backend, lambda uow: uow.records.delete(uid("nobody"), Collection.BOTS, "shared")
        )

    def test_a_deleted_id_can_be_created_again(self, backend: B, tenant: str) -> None:
        self._add(backend, make_record(tenant, record_id="again", name="first"))
        self.write_unit(backend, lambda uow: uow.records.delete(tenant, Collection.BOTS, "again"))
        second = self._add(backend, make_record(tenant, record_id="again", name="second"))
        self._check_stored(backend, second)

    # -- scan --------------------------------------------------------------------------------

    def test_scan_pages_through_the_collection_in_id_order(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        ids = ["A", "Z", "_", "a", "z", "-", "0", "9", ":", "@", "a-b", "a_b", "aa", "Ab", "-Nx1"]
        for record_id in ids:
            self._add(backend, make_record(tenant, record_id=record_id))
        self._add(backend, make_record(other_tenant, record_id="B"))
        self._add(backend, make_record(tenant, Collection.NOTES, "B"))
        pages: list[list[str]] = []
        after: str | None = None
        while True:
            with backend.unit_of_work() as uow:
                page = uow.records.scan(tenant, Collection.BOTS, after=after, limit=4)  # type: ignore[attr-defined]
            if not page:
                break
            assert len(page) <= 4
            pages.append([record.id for record in page])
            after = page[-1].id
            assert len(pages) <= len(ids), "scan does not advance"
        assert [record_id for page in pages for record_id in page] == sorted(ids)
        assert all(len(page) == 4 for page in pages[:-1])
        whole = self.read_unit(backend, lambda uow: uow.records.scan(tenant, Collection.BOTS))
        assert [record.id for record in whole] == sorted(ids)
        assert all(record.tenant_id == tenant for record in whole)
        check_same_json(dict(make_record(tenant).data), dict(whole[0].data))

    def test_scan_of_an_empty_collection_is_empty(self, backend: B, tenant: str) -> None:
        assert (
            list(self.read_unit(backend, lambda uow: uow.records.scan(tenant, Collection.KANBAN)))
            == []
        )

    # -- units -------------------------------------------------------------------------------

    def test_a_unit_left_without_commit_writes_nothing(self, backend: B, tenant: str) -> None:
        self._require("supports_rollback", "leaving a unit without commit must discard writes")
        existing = self._add(backend, make_record(tenant, record_id="kept"))

        def action(uow: Any) -> None:
            uow.records.add(make_record(tenant, record_id="dropped"))
            uow.records.delete(tenant, Collection.BOTS, "kept")

        self.read_unit(backend, action)
        assert self._get(backend, tenant, "dropped", Collection.BOTS) is None
        self._check_stored(backend, existing)

    def test_a_unit_reads_its_own_writes(self, backend: B, tenant: str) -> None:
        self._require("supports_multi_record_transactions", "a unit reads its own writes")

        def action(uow: Any) -> DomainRecord | None:
            uow.records.add(make_record(tenant, record_id="own"))
            return uow.records.get(tenant, Collection.BOTS, "own")  # type: ignore[no-any-return]

        assert self.write_unit(backend, action) is not None
