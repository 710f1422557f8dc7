"""Conformance of ``uow.records.list``: exactly what the reference
:func:`~botmox_core.domain.listing.apply_query` answers, over generated collections with mixed
types, edge numbers, unicode and ties, for every query parameter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, TypeVar

import pytest

from botmox_core.domain.listing import MAX_LIMIT, ListPage, ListQuery, apply_query
from botmox_core.domain.records import Collection, DomainRecord
from botmox_core.ports import DataBackend
from botmox_core.testing.domains._base import DomainConformanceBase
from botmox_core.testing.domains._support import (
    EDGE_NUMBERS,
    EDGE_STRINGS,
    T0_MS,
    check_same_json,
    generated_records,
    make_record,
)

__all__ = ["ListingConformance"]

B = TypeVar("B", bound=DataBackend)

#: Filters tried on the generated collection (already normalised: ASCII lower case).
QUERIES: tuple[str | None, ...] = (
    None,
    "a",
    "ab",
    "é",
    "émile",
    "\U0001f600",
    "𝄞",
    "日本",
    "ß",
    "true",
    "false",
    "null",
    "1",
    "-0",
    "0.5",
    "e+300",
    "1e+300",
    "9007199254740993",
    "1000000000000000000000000000001",
    "1e-07",
    "needle",
    "zzz-not-there",
    " ",
    "%",
    "_",
    "-",
    ":",
    "\\",
    '"',
)

SORTS: tuple[str | None, ...] = (None, "id", "mixed", "name", "score", "flag", "nested", "absent")


class ListingConformance(DomainConformanceBase[B]):
    """Pytest mixin: what ``uow.records.list`` must answer."""

    listing_records: ClassVar[int] = 240

    @pytest.fixture
    def listed(self, backend: B, tenant: str, other_tenant: str) -> Iterator[list[DomainRecord]]:
        """The generated collection, stored in ``tenant``'s bots (and noise elsewhere)."""
        records = generated_records(tenant, Collection.BOTS, self.listing_records)
        noise = generated_records(other_tenant, Collection.BOTS, 40, seed=3)
        notes = generated_records(tenant, Collection.NOTES, 40, seed=5)

        def store(uow: Any) -> None:
            for record in (*records, *noise, *notes):
                uow.records.add(record)

        self.write_unit(backend, store)
        yield records

    def _list(self, backend: DataBackend, tenant: str, query: ListQuery) -> ListPage:
        return self.read_unit(backend, lambda uow: uow.records.list(tenant, Collection.BOTS, query))

    def _check(
        self,
        backend: DataBackend,
        tenant: str,
        records: list[DomainRecord],
        query: ListQuery,
    ) -> None:
        expected = apply_query(records, query)
        actual = self._list(backend, tenant, query)
        got = [record.id for record in actual.records]
        want = [record.id for record in expected.records]
        if got != want or actual.total != expected.total:
            by_id = {record.id: record for record in records}
            lines = [f"list({query!r}) differs from apply_query:"]
            lines.append(f"  total {actual.total}, expected {expected.total}")
            for index in range(max(len(got), len(want))):
                mine = got[index] if index < len(got) else "-"
                ref = want[index] if index < len(want) else "-"
                mark = "  " if mine == ref else "≠ "
                field = query.sort or "id"
                values = [
                    repr(by_id[i].data.get(field)) if i in by_id and field != "id" else ""
                    for i in (mine, ref)
                ]
                lines.append(f"  {mark}{mine!r} {values[0]}  expected {ref!r} {values[1]}")
                if len(lines) > 30:
                    break
            raise AssertionError("\n".join(lines))
        for record, reference in zip(actual.records, expected.records, strict=True):
            assert record.tenant_id == tenant and record.collection is Collection.BOTS
            check_same_json(dict(reference.data), dict(record.data), f"{record.id}.data")

    @pytest.mark.parametrize("sort", SORTS)
    @pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
    def test_every_sort_and_filter_matches_the_reference(
        self,
        backend: B,
        tenant: str,
        listed: list[DomainRecord],
        sort: str | None,
        descending: bool,
    ) -> None:
        for q in QUERIES:
            self._check(
                backend,
                tenant,
                listed,
                ListQuery(sort=sort, descending=descending, q=q, limit=MAX_LIMIT),
            )

    @pytest.mark.parametrize(
        ("page", "limit"),
        [(1, 1), (2, 1), (3, 7), (1, 50), (2, 50), (5, 50), (2, 200), (1000, 50), (1_000_000, 200)],
    )
    def test_pages_match_the_reference(
        self, backend: B, tenant: str, listed: list[DomainRecord], page: int, limit: int
    ) -> None:
        for sort, q in ((None, None), ("mixed", None), ("score", "1"), ("name", "a")):
            for descending in (False, True):
                query = ListQuery(page=page, limit=limit, sort=sort, descending=descending, q=q)
                self._check(backend, tenant, listed, query)

    def test_a_page_past_the_end_is_empty_with_the_total(
        self, backend: B, tenant: str, listed: list[DomainRecord]
    ) -> None:
        page = self._list(backend, tenant, ListQuery(page=100, limit=200))
        assert page.records == [] and page.total == len(listed)

    def test_an_empty_collection_lists_nothing(self, backend: B, tenant: str) -> None:
        page = self._list(backend, tenant, ListQuery(q="a", sort="name"))
        assert page.records == [] and page.total == 0

    def test_edge_numbers_order_exactly(self, backend: B, tenant: str) -> None:
        """Every edge number (and bools, nulls, strings, containers) in one sort field, with
        ties on equal values (1 and 1.0, 0.0 and -0.0) broken by id."""
        values: list[Any] = [*EDGE_NUMBERS, *EDGE_STRINGS, True, False, None, {}, [], [0], {"a": 0}]
        records = [
            make_record(tenant, record_id=f"r{index:03d}", value=value, created_at=T0_MS)
            for index, value in enumerate(values)
        ]
        records.append(make_record(tenant, record_id="r_missing", created_at=T0_MS))
        records.append(make_record(tenant, record_id="Q_missing", created_at=T0_MS))
        self.write_unit(backend, lambda uow: [uow.records.add(record) for record in records])
        for descending in (False, True):
            for q in (None, "1", "e", "-", "0"):
                query = ListQuery(sort="value", descending=descending, q=q, limit=MAX_LIMIT)
                self._check(backend, tenant, records, query)

    def test_a_filter_never_matches_nested_values_or_keys(
        self, backend: B, tenant: str, listed: list[DomainRecord]
    ) -> None:
        """``needle`` is only inside ``nested``; ``hidden`` and ``mixed`` are only keys."""
        for q in ("needle", "hidden", "mixed", "created_at"):
            page = self._list(backend, tenant, ListQuery(q=q))
            assert page.total == 0 and page.records == [], q

    def test_a_filter_matches_the_id(self, backend: B, tenant: str) -> None:
        self.write_unit(
            backend, lambda uow: uow.records.add(make_record(tenant, record_id="-NxNeedleID_1"))
        )
        for q in ("needleid", "-nx", "_1"):
            page = self._list(backend, tenant, ListQuery(q=q))
            assert [record.id for record in page.records] == ["-NxNeedleID_1"], q

    def test_listing_sees_writes_deletes_and_modifies(self, backend: B, tenant: str) -> None:
        records = [make_record(tenant, record_id=f"id{n}", rank=n) for n in range(5)]
        self.write_unit(backend, lambda uow: [uow.records.add(record) for record in records])
        self.write_unit(backend, lambda uow: uow.records.delete(tenant, Collection.BOTS, "id2"))

        def rerank(current: DomainRecord) -> DomainRecord:
            return DomainRecord(current.tenant_id, current.collection, current.id, {"rank": -1})

        self.write_unit(
            backend, lambda uow: uow.records.modify(tenant, Collection.BOTS, "id4", rerank)
        )
        page = self._list(backend, tenant, ListQuery(sort="rank"))
        assert [record.id for record in page.records] == ["id4", "id0", "id1", "id3"]
        assert page.total == 4
        page = self._list(backend, tenant, ListQuery(q="-1"))
        assert [record.id for record in page.records] == ["id4"]
