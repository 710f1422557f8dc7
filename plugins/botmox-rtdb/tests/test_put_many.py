"""``records.put_many`` on RTDB through firebase-admin on the loopback emulator: the stored tree
equals the one ``add`` of each absent record and a replacing ``modify`` of each present one
leave (the legacy tenant at the seed's root paths, another tenant under ``tenants/``), the whole
batch is one multi-path ``PATCH`` at commit and nothing before it, a refused batch stages
nothing, and records this unit already added, modified or deleted are replaced."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from botmox_rtdb import RtdbBackend, build_backend
from botmox_rtdb.domain_codec import EXACT_KEY
from botmox_rtdb.testing import RtdbEmulator, emulator_environ

from botmox_core.config import load_settings
from botmox_core.domain.records import Collection, DomainRecord
from botmox_core.errors import BadRequestError, DuplicateError

LEGACY = "legacy-tenant"
OTHER = "t2"
T0 = 1_795_000_000_000

EDGE: dict[str, Any] = {
    "null": None,
    "empty_object": {},
    "empty_array": [],
    "gappy": ["b", None],
    "index_keyed": {"0": "a", "1": "b"},
    "big": 2**63,
    "one_float": 1.0,
    "text": "Ünïcødé ✓ \U0001f600",
    EXACT_KEY: "a client field with a reserved name",
}


def record(
    tenant: str, record_id: str, collection: Collection = Collection.BOTS, **data: Any
) -> DomainRecord:
    fields = {"name": record_id, "created_at": T0, "updated_at": T0 + 1, **data}
    return DomainRecord(tenant, collection, record_id, fields)


@pytest.fixture
def databases(emulator: RtdbEmulator) -> Iterator[Callable[[], tuple[RtdbBackend, str]]]:
    """Backends (legacy tenant configured) each on a fresh namespace of its own."""
    built: list[RtdbBackend] = []

    def make() -> tuple[RtdbBackend, str]:
        namespace = f"botmox-put-many-{uuid.uuid4().hex[:12]}"
        environ = {
            **emulator_environ(emulator.host_port, namespace),
            "BOTMOX_RTDB_LEGACY_TENANT": LEGACY,
        }
        backend = build_backend(load_settings(environ))
        built.append(backend)
        return backend, namespace

    yield make
    for backend in built:
        backend.close()


@pytest.fixture
def requests_seen(emulator: RtdbEmulator, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every request (method and path) the emulator receives from now on."""
    seen: list[str] = []
    handle = emulator.handle

    def counting(method: str, raw_path: str, *args: Any) -> Any:
        seen.append(f"{method} {raw_path}")
        return handle(method, raw_path, *args)

    monkeypatch.setattr(emulator, "handle", counting)
    return seen


def commit(backend: RtdbBackend, action: Callable[[Any], Any]) -> Any:
    with backend.unit_of_work() as uow:
        result = action(uow)
        uow.commit()
    return result


def existing_records() -> list[DomainRecord]:
    """What both databases hold before the batch: records of both tenants, some of which the
    batch replaces, one it leaves alone, one it rewrites with equal data."""
    return [
        record(tenant, record_id, collection, **data)
        for tenant in (LEGACY, OTHER)
        for record_id, collection, data in (
            ("b1", Collection.BOTS, {"status": "farming", "gone": "soon"}),
            ("b2", Collection.BOTS, {"edge": EDGE, "level": 3}),
            ("same", Collection.BOTS, {"level": 7, "tags": ["a", "b"]}),
            ("kept", Collection.BOTS, {"untouched": True}),
            ("n1", Collection.NOTES, {"content": "old", "pinned": False}),
        )
    ]


def batch_records() -> list[DomainRecord]:
    """Replacements (fewer fields, edge values, equal data) and creations in several
    collections, for both tenants."""
    found: list[DomainRecord] = []
    for tenant in (LEGACY, OTHER):
        found += [
            record(tenant, "b1", status="banned", edge=EDGE),
            record(tenant, "b2", level=4.5),
            record(tenant, "same", level=7, tags=["a", "b"]),
            record(tenant, "n1", Collection.NOTES, content="", blocks=[{}, {"x": None}]),
            record(tenant, "new-bot", Collection.BOTS, big=-(2**60)),
            record(tenant, "l1", Collection.LICENSES, key="K-1", bots=[]),
            record(tenant, "f1", Collection.FINANCE_OPERATIONS, amount=-12.5, meta={}),
            *[record(tenant, f"p{index}", Collection.PROXIES, port=index) for index in range(5)],
        ]
    return found


def nested(depth: int) -> Any:
    """A list ``depth`` levels deep."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def add_or_modify(uow: Any, item: DomainRecord) -> None:
    """The reference: ``add`` when absent, a replacing ``modify`` when present."""
    if uow.records.get(item.tenant_id, item.collection, item.id) is None:
        uow.records.add(item)
    else:
        uow.records.modify(
            item.tenant_id,
            item.collection,
            item.id,
            lambda current: attrs.evolve(current, data=item.data),
        )


def test_the_stored_tree_equals_the_one_add_and_modify_leave(
    databases: Callable[[], tuple[RtdbBackend, str]], emulator: RtdbEmulator
) -> None:
    (reference, reference_ns), (bulk, bulk_ns) = databases(), databases()
    for backend in (reference, bulk):
        for item in existing_records():
            commit(backend, lambda uow, item=item: uow.records.add(item))
    assert emulator.read(reference_ns) == emulator.read(bulk_ns)
    batch = batch_records()
    for item in batch:
        commit(reference, lambda uow, item=item: add_or_modify(uow, item))
    commit(bulk, lambda uow: uow.records.put_many(batch))

    tree = emulator.read(bulk_ns)
    assert tree == emulator.read(reference_ns)
    # the layout: the legacy tenant at the seed's root paths, the other one under tenants/
    assert tree["bots"]["b1"]["status"] == "banned" and "gone" not in tree["bots"]["b1"]
    assert tree["tenants"][OTHER]["bots"]["b1"]["status"] == "banned"
    assert tree["resources"]["licenses"]["l1"]["key"] == "K-1"
    assert tree["tenants"][OTHER]["finance"]["operations"]["f1"]["amount"] == -12.5
    assert isinstance(tree["bots"]["b1"][EXACT_KEY], str)  # the exact copy, as add keeps it
    assert "b1" not in tree.get("tenants", {}).get(LEGACY, {}).get("bots", {})
    with bulk.unit_of_work() as uow:
        for item in [*batch, *(r for r in existing_records() if r.id == "kept")]:
            assert uow.records.get(item.tenant_id, item.collection, item.id) == item


def test_the_batch_is_one_patch_at_commit_and_nothing_before(
    legacy_backend: RtdbBackend, emulator: RtdbEmulator, namespace: str, requests_seen: list[str]
) -> None:
    batch = [
        record(LEGACY if index % 2 else OTHER, f"r{index:03d}", level=index) for index in range(200)
    ]
    with legacy_backend.unit_of_work() as uow:
        uow.records.put_many(batch)
        assert requests_seen == []  # staged only
        assert emulator.read(namespace) is None
        uow.commit()
    assert [seen.split(" ")[0] for seen in requests_seen] == ["PATCH"]
    assert len(emulator.read(namespace, "bots")) == 100
    assert len(emulator.read(namespace, f"tenants/{OTHER}/bots")) == 100


@pytest.fixture
def legacy_backend(make_backend: Callable[..., RtdbBackend]) -> RtdbBackend:
    return make_backend(BOTMOX_RTDB_LEGACY_TENANT=LEGACY)


@pytest.mark.parametrize(
    "bad",
    [
        record(OTHER, "r1", note="the same record twice"),
        record(OTHER, "bad.id"),
        record("bad/tenant", "r9"),
        record(OTHER, "r9", **{"bad.key": 1}),
        record(OTHER, "r9", deep=nested(30)),
    ],
    ids=["twice", "bad-id", "bad-tenant", "bad-data-key", "too-deep"],
)
def test_a_refused_batch_stages_nothing(
    legacy_backend: RtdbBackend,
    emulator: RtdbEmulator,
    namespace: str,
    requests_seen: list[str],
    bad: DomainRecord,
) -> None:
    batch = [record(OTHER, "r1"), record(LEGACY, "r2"), bad, record(OTHER, "r3")]
    with legacy_backend.unit_of_work() as uow:
        with pytest.raises(BadRequestError):
            uow.records.put_many(batch)
        assert uow.records.get(OTHER, Collection.BOTS, "r1") is None
        uow.records.add(record(OTHER, "after"))
        uow.commit()
    assert emulator.read(namespace) == {
        "tenants": {
            OTHER: {"bots": {"after": {"name": "after", "created_at": T0, "updated_at": T0 + 1}}}
        }
    }


def test_records_this_unit_added_modified_or_deleted_are_replaced(
    legacy_backend: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    for record_id in ("modified", "deleted", "modified-then-deleted"):
        commit(legacy_backend, lambda uow, r=record_id: uow.records.add(record(OTHER, r, v=0)))
    with legacy_backend.unit_of_work() as uow:
        uow.records.add(record(OTHER, "added", v=1))
        uow.records.add(record(OTHER, "added-then-deleted", v=1))
        uow.records.delete(OTHER, Collection.BOTS, "added-then-deleted")
        uow.records.modify(
            OTHER, Collection.BOTS, "modified", lambda r: attrs.evolve(r, data={**r.data, "v": 1})
        )
        uow.records.delete(OTHER, Collection.BOTS, "deleted")
        uow.records.modify(
            OTHER,
            Collection.BOTS,
            "modified-then-deleted",
            lambda r: attrs.evolve(r, data={**r.data, "v": 1}),
        )
        uow.records.delete(OTHER, Collection.BOTS, "modified-then-deleted")
        batch = [
            record(OTHER, record_id, v=2)
            for record_id in (
                "added",
                "added-then-deleted",
                "modified",
                "deleted",
                "modified-then-deleted",
            )
        ]
        uow.records.put_many(batch)
        for item in batch:  # the unit reads its batch
            assert uow.records.get(OTHER, Collection.BOTS, item.id) == item
        uow.records.put_many([record(OTHER, "added", v=3)])  # a second batch replaces again
        uow.commit()
    stored = emulator.read(namespace, f"tenants/{OTHER}/bots")
    assert {key: value["v"] for key, value in stored.items()} == {
        "added": 3,
        "added-then-deleted": 2,
        "modified": 2,
        "deleted": 2,
        "modified-then-deleted": 2,
    }


def test_an_added_record_replaced_by_the_batch_is_still_refused_if_raced(
    legacy_backend: RtdbBackend, make_backend: Callable[..., RtdbBackend]
) -> None:
    """``put_many`` over this unit's own ``add`` keeps the add's conditional create."""
    other = make_backend(BOTMOX_RTDB_LEGACY_TENANT=LEGACY)
    with legacy_backend.unit_of_work() as uow:
        uow.records.add(record(LEGACY, "raced", who="mine"))
        uow.records.put_many([record(LEGACY, "raced", who="mine, replaced")])
        commit(other, lambda theirs: theirs.records.add(record(LEGACY, "raced", who="theirs")))
        with pytest.raises(DuplicateError):
            uow.commit()
    with other.unit_of_work() as uow:
        found = uow.records.get(LEGACY, Collection.BOTS, "raced")
    assert found is not None and found.data["who"] == "theirs"


def test_500_records_one_request_against_one_add_each(
    databases: Callable[[], tuple[RtdbBackend, str]],
    emulator: RtdbEmulator,
    requests_seen: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Figures for the report (printed with ``-s``): requests and wall time of a 500-record
    ``put_many`` against 500 ``add`` calls in one unit, on the same emulator."""
    (added, added_ns), (bulk, bulk_ns) = databases(), databases()
    batch = [
        record(
            OTHER if index % 3 else LEGACY,
            f"r{index:04d}",
            Collection.PROXIES,
            port=index,
            host=f"10.0.{index // 250}.{index % 250}",
        )
        for index in range(500)
    ]

    requests_seen.clear()
    started = time.perf_counter()
    commit(added, lambda uow: [uow.records.add(item) for item in batch])
    add_seconds, add_requests = time.perf_counter() - started, len(requests_seen)

    requests_seen.clear()
    started = time.perf_counter()
    commit(bulk, lambda uow: uow.records.put_many(batch))
    bulk_seconds, bulk_requests = time.perf_counter() - started, len(requests_seen)

    assert emulator.read(bulk_ns) == emulator.read(added_ns)
    assert bulk_requests == 1
    assert add_requests >= 2 * len(batch)  # a read, then a conditional create (ETag + PUT)
    with capsys.disabled():
        print(
            f"\n500 records: put_many {bulk_requests} request(s) {bulk_seconds:.3f} s; "
            f"500 add {add_requests} requests {add_seconds:.3f} s"
        )
