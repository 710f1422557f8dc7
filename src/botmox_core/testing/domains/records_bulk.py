"""Conformance of ``uow.records.put_many``, the bulk create-or-replace of migration and data
import (a mixin :class:`~botmox_core.testing.domains.records.RecordConformance` includes), and
the record helpers both use."""

from __future__ import annotations

from typing import Any, TypeVar

import attrs
import pytest

from botmox_core.domain.listing import MAX_LIMIT, ListQuery, apply_query
from botmox_core.domain.records import Collection, DomainRecord
from botmox_core.ports import DataBackend
from botmox_core.testing.domains._base import DomainConformanceBase
from botmox_core.testing.domains._support import (
    EDGE_NUMBERS,
    EDGE_STRINGS,
    check_same_json,
    generated_records,
    make_record,
)

__all__ = ["PutManyConformance", "RecordHelpers"]

B = TypeVar("B", bound=DataBackend)


class _Abort(Exception):
    pass


class RecordHelpers(DomainConformanceBase[B]):
    """Adding, reading and checking one record in units of its own."""

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


class PutManyConformance(RecordHelpers[B]):
    """Pytest mixin: what ``uow.records.put_many`` must do."""

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
