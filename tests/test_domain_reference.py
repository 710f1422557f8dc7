"""The reference semantics of domain data (listing, patching, ids) that every backend matches."""

from __future__ import annotations

import time

import pytest

from botmox_core.domain.listing import (
    ListQuery,
    apply_query,
    ascii_lower,
    search_text,
    value_text,
)
from botmox_core.domain.patching import apply_patch, key_error
from botmox_core.domain.records import (
    RECORD_ID_PATTERN,
    Collection,
    DomainRecord,
    new_record_id,
)


def rec(record_id: str, **data: object) -> DomainRecord:
    return DomainRecord("t", Collection.BOTS, record_id, data)


RECORDS = [
    rec("a", name="Zed", level=3, active=True),
    rec("b", name="alpha", level=10.5, active=False),
    rec("c", name=None, level="7", tags=["x"]),
    rec("d", level={"nested": 1}),
    rec("e", name="Émile", level=-2, active=True),
    rec("f", name="beta", level=3),
]


def ids(query: ListQuery) -> list[str]:
    return [r.id for r in apply_query(RECORDS, query).records]


def test_order_ranks_null_false_true_numbers_strings_objects_then_id() -> None:
    # missing/null first, numbers by value (ties by id), then strings, then objects
    assert ids(ListQuery(sort="level")) == ["e", "a", "f", "b", "c", "d"]
    assert ids(ListQuery(sort="active")) == ["c", "d", "f", "b", "a", "e"]
    # strings by code point: upper case before lower case, accents after ASCII
    assert ids(ListQuery(sort="name")) == ["c", "d", "a", "b", "f", "e"]
    assert ids(ListQuery(sort="name", descending=True)) == ["e", "f", "b", "a", "d", "c"]
    assert ids(ListQuery()) == ["a", "b", "c", "d", "e", "f"]
    assert ids(ListQuery(sort="id", descending=True)) == ["f", "e", "d", "c", "b", "a"]


def test_q_matches_top_level_primitives_ascii_case_insensitively() -> None:
    assert ids(ListQuery(q="zed")) == ["a"]
    assert ids(ListQuery(q="10.5")) == ["b"]
    assert ids(ListQuery(q="true")) == ["a", "e"]
    assert ids(ListQuery(q="x")) == []  # inside an array: never matched
    assert ids(ListQuery(q="nested")) == []
    assert ids(ListQuery(q="émile")) == []  # only ASCII letters fold: "É" stays upper case
    assert ids(ListQuery(q=ascii_lower("ÉMILE"))) == ["e"]
    assert ids(ListQuery(q="-2")) == ["e"]
    assert ids(ListQuery(q="e")) == ["a", "b", "e", "f"]  # "zed", "false", the id "e", "beta"
    assert ids(ListQuery(q="a\x1fz")) == []  # never across two values


def test_paging_counts_every_match() -> None:
    page = apply_query(RECORDS, ListQuery(page=2, limit=4))
    assert [r.id for r in page.records] == ["e", "f"] and page.total == 6
    past = apply_query(RECORDS, ListQuery(page=9, limit=4))
    assert past.records == [] and past.total == 6


def test_value_texts() -> None:
    assert value_text(2.0) == "2" and value_text(1e300) == "1e+300" and value_text(0.1) == "0.1"
    assert value_text(None) is None and value_text([1]) is None and value_text({}) is None
    assert ascii_lower("ÀBC") == "Àbc"
    assert search_text("ID", {"x": "A", "y": {"z": 1}, "id": "ignored"}) == "\x1fid\x1fa\x1f"


def test_patch_is_shallow_with_deep_paths_and_null_deletes() -> None:
    data = {"a": {"b": 1, "c": 2}, "d": 3, "e": "x"}
    out = apply_patch(data, {"a": {"b": 9}, "d": None, "f/g/h": 1, "e/i": 2, "missing": None})
    assert out == {"a": {"b": 9}, "f": {"g": {"h": 1}}, "e": {"i": 2}}
    assert data == {"a": {"b": 1, "c": 2}, "d": 3, "e": "x"}  # unchanged
    assert apply_patch({"a": {"b": 1, "c": 2}}, {"a/b": None}) == {"a": {"c": 2}}
    assert apply_patch({}, {"x/y": None}) == {}


@pytest.mark.parametrize("bad", ["", "a.b", "a#", "$x", "[0]", "a/b", "tab\t", "\x7f", "k" * 769])
def test_keys_every_backend_can_store(bad: str) -> None:
    assert key_error(bad) is not None
    assert key_error("ok key-ü") is None


def test_generated_ids_are_valid_unique_and_time_ordered() -> None:
    first = new_record_id(1_700_000_000_000)
    later = new_record_id(1_700_000_000_001)
    assert RECORD_ID_PATTERN.fullmatch(first) and len(first) == 20
    assert first[:8] < later[:8]
    assert len({new_record_id() for _ in range(1000)}) == 1000
    assert new_record_id()[:8] >= new_record_id(int(time.time() * 1000) - 1000)[:8]


def test_ids_made_in_one_millisecond_keep_their_order() -> None:
    made = [new_record_id(1_700_000_000_123) for _ in range(500)]
    assert made == sorted(made) and len(set(made)) == 500
