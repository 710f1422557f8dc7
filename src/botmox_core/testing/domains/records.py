"""Conformance of ``uow.records``: create, read, modify, delete, scan and the bulk
``put_many``, per tenant."""

from __future__ import annotations

import threading
from typing import Any, TypeVar

import attrs
import pytest

from botmox_core.domain.listing import MAX_LIMIT, ListQuery, apply_query
from botmox_core.domain.records import Collection, DomainRecord
from botmox_core.errors import BadRequestError, DuplicateError
from botmox_core.ports import DataBackend
from botmox_core.testing.domains._base import DomainConformanceBase
from botmox_core.testing.domains._support import (
    EDGE_NUMBERS,
    EDGE_STRINGS,
    T0_MS,
    check_same_json,
    generated_records,
    make_record,
    uid,
)

__all__ = ["RecordConformance"]

B = TypeVar("B", bound=DataBackend)


class _Abort(Exception):
    pass


class RecordConformance(DomainConformanceBase[B]):
    """Pytest mixin: what ``uow.records`` must do."""

    def _add(self, backend: DataBackend, record: DomainRecord) -> DomainRecord:
        return self.write_unit(backend, lambda uow: uow.records.add(record))

    def _get(
        self, backend: DataBackend, tenant: str, record_id: str, collection: Collection
    ) -> DomainRecord | None:
        return self.read_unit(backend, lambda uow: uow.records.get(tenant, collection, record_id))

    def _check_stored(self, backend: DataBackend, record: DomainRecord) -> None:
        found = self._get(backend, record.tenant_id, record.id, record.collection)
        assert found is not None, f"{record.collection}/{record.id} was not stored"
        assert (found.tenant_id, found.collection, found.id) == (
            record.tenant_id,
            record.collection,
            record.id,
        )
        check_same_json(dict(record.data), dict(found.data))

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

    # -- put_many ----------------------------------------------------------------------------

    def _put_many(self, backend: DataBackend, records: list[DomainRecord]) -> None:
        self.write_unit(backend, lambda uow: uow.records.put_many(records))

    def test_put_many_creates_and_replaces_in_one_batch(self, backend: B, tenant: str) -> None:
        """Absent records are created, present ones replaced whole (a field the new version
        lacks is gone), and a record left out of the batch is untouched."""
        kept = self._add(backend, make_record(tenant, record_id="kept", name="untouched"))
        old = [
            self._add(backend, make_record(tenant, record_id=f"old{index}", gone="soon"))
            for index in range(3)
        ]
        replaced = [
            make_record(tenant, record_id=record.id, name=f"replaced {index}", level=2**53 + 1)
            for index, record in enumerate(old)
        ]
        created = [make_record(tenant, record_id=f"new{index}", n=index) for index in range(4)]
        batch = [created[0], replaced[0], created[1], replaced[1], created[2], replaced[2]]
        batch.append(created[3])
        self._put_many(backend, batch)
        for record in batch:
            self._check_stored(backend, record)
        for record in replaced:
            found = self._get(backend, tenant, record.id, Collection.BOTS)
            assert found is not None and "gone" not in found.data
        self._check_stored(backend, kept)

    def test_put_many_of_an_empty_batch_writes_nothing(self, backend: B, tenant: str) -> None:
        self._put_many(backend, [])
        assert (
            list(self.read_unit(backend, lambda uow: uow.records.scan(tenant, Collection.BOTS)))
            == []
        )

    def test_put_many_spans_collections_and_tenants(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        """One batch writes records of several collections and tenants, the same id in each
        being its own record; every other record stays as it was."""
        self._add(backend, make_record(tenant, Collection.NOTES, "same", v="old", gone=1))
        bystander = self._add(backend, make_record(tenant, Collection.KANBAN, "same", v="keep"))
        batch = [
            make_record(tenant, Collection.BOTS, "same", v="bots"),
            make_record(tenant, Collection.NOTES, "same", v="notes"),
            make_record(other_tenant, Collection.BOTS, "same", v="other bots"),
            make_record(other_tenant, Collection.FINANCE_OPERATIONS, "f1", amount=-12.5),
            make_record(tenant, Collection.LICENSES, "l1", key="abc"),
        ]
        self._put_many(backend, batch)
        for record in batch:
            self._check_stored(backend, record)
        self._check_stored(backend, bystander)
        note = self._get(backend, tenant, "same", Collection.NOTES)
        assert note is not None and "gone" not in note.data
        assert self._get(backend, other_tenant, "same", Collection.NOTES) is None
        assert self._get(backend, other_tenant, "l1", Collection.LICENSES) is None
        assert self._get(backend, tenant, "f1", Collection.FINANCE_OPERATIONS) is None

    def test_put_many_never_touches_another_tenants_record(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        """Replacing a tenant's record leaves another tenant's record of the same id alone, and
        the other tenant's listing does not see the batch."""
        theirs = self._add(backend, make_record(other_tenant, record_id="shared", who="them"))
        self._add(backend, make_record(tenant, record_id="shared", who="me"))
        mine = [make_record(tenant, record_id="shared", who="me again")]
        mine += [make_record(tenant, record_id=f"only-mine-{index}") for index in range(5)]
        self._put_many(backend, mine)
        self._check_stored(backend, theirs)
        listed = self.read_unit(
            backend, lambda uow: uow.records.list(other_tenant, Collection.BOTS, ListQuery())
        )
        assert [record.id for record in listed.records] == ["shared"] and listed.total == 1

    def test_put_many_round_trips_edge_values(self, backend: B, tenant: str) -> None:
        """The bulk path stores exactly what ``add`` stores: big integers, floats, astral code
        points, nulls and empty containers."""
        data: dict[str, Any] = {f"n{index}": value for index, value in enumerate(EDGE_NUMBERS)}
        data.update({f"s{index}": value for index, value in enumerate(EDGE_STRINGS)})
        data.update(numbers=list(EDGE_NUMBERS), none=None, empty_object={}, empty_array=[])
        data["holes"] = [None, 1, None]
        data["deep"] = {"a": {"b": {"c": [1, [2, {"d": True}]]}}}
        data["ünïcødé key ✓ \U0001f600"] = "value"
        batch = [make_record(tenant, record_id="edge", **data)]
        batch.append(make_record(tenant, Collection.NOTES, "edge2", content="x\U0001f600" * 20_000))
        self._put_many(backend, batch)
        for record in batch:
            self._check_stored(backend, record)

    def test_put_many_left_without_commit_keeps_nothing(self, backend: B, tenant: str) -> None:
        self._require("supports_rollback", "leaving a unit without commit must discard writes")
        existing = self._add(backend, make_record(tenant, record_id="kept", name="before"))
        batch = [
            make_record(tenant, record_id="kept", name="after"),
            make_record(tenant, record_id="dropped"),
            make_record(tenant, Collection.NOTES, "dropped-note"),
        ]
        self.read_unit(backend, lambda uow: uow.records.put_many(batch))
        self._check_stored(backend, existing)
        assert self._get(backend, tenant, "dropped", Collection.BOTS) is None
        assert self._get(backend, tenant, "dropped-note", Collection.NOTES) is None

    def test_put_many_then_a_failure_keeps_nothing(self, backend: B, tenant: str) -> None:
        """A unit that raises after ``put_many`` rolls the whole batch back."""
        self._require("supports_rollback", "a failed unit must discard its writes")
        existing = self._add(backend, make_record(tenant, record_id="kept", name="before"))
        batch = [make_record(tenant, record_id="kept", name="after")]
        batch += [make_record(tenant, record_id=f"dropped{index}") for index in range(50)]

        def action(uow: Any) -> None:
            uow.records.put_many(batch)
            raise _Abort

        with pytest.raises(_Abort):
            self.write_unit(backend, action)
        self._check_stored(backend, existing)
        whole = self.read_unit(backend, lambda uow: uow.records.scan(tenant, Collection.BOTS))
        assert [record.id for record in whole] == ["kept"]

    def test_a_unit_reads_its_own_put_many(self, backend: B, tenant: str) -> None:
        self._require("supports_multi_record_transactions", "a unit reads its own writes")
        self._add(backend, make_record(tenant, record_id="seen", name="before"))

        def action(uow: Any) -> list[DomainRecord | None]:
            uow.records.put_many(
                [
                    make_record(tenant, record_id="seen", name="after"),
                    make_record(tenant, record_id="own"),
                ]
            )
            return [uow.records.get(tenant, Collection.BOTS, i) for i in ("seen", "own")]

        seen, own = self.write_unit(backend, action)
        assert seen is not None and seen.data["name"] == "after"
        assert own is not None

    def test_listing_after_put_many_matches_the_reference(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        """A collection written by ``put_many`` (half of it first added with other data, then
        replaced; the rest created) lists exactly as :func:`apply_query` over the final
        records: the sort and search keys follow the replacement."""
        final = generated_records(tenant, Collection.BOTS, 120, seed=17)
        earlier = generated_records(tenant, Collection.BOTS, 120, seed=23)
        by_id = {record.id: record for record in final}
        stale = [
            attrs.evolve(other, id=record.id)
            for record, other in zip(final[::2], earlier, strict=False)
        ]
        self.write_unit(backend, lambda uow: [uow.records.add(record) for record in stale])
        noise = generated_records(other_tenant, Collection.BOTS, 30, seed=29)
        batch = [*final, *noise]
        for start in range(0, len(batch), 50):
            self._put_many(backend, batch[start : start + 50])
        queries = [ListQuery(limit=MAX_LIMIT)]
        for sort in ("id", "name", "score", "mixed", "flag"):
            for descending in (False, True):
                queries.append(ListQuery(sort=sort, descending=descending, limit=MAX_LIMIT))
        queries += [ListQuery(q=q, sort="name", limit=MAX_LIMIT) for q in ("a", "1", "needle")]
        queries += [ListQuery(page=2, limit=17, sort="score")]
        for query in queries:
            expected = apply_query(final, query)
            with backend.unit_of_work() as uow:
                actual = uow.records.list(tenant, Collection.BOTS, query)  # type: ignore[attr-defined]
            assert [r.id for r in actual.records] == [r.id for r in expected.records], query
            assert actual.total == expected.total, query
            for record in actual.records:
                check_same_json(dict(by_id[record.id].data), dict(record.data), record.id)
