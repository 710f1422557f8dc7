"""Domain data on RTDB through the real firebase-admin client on the loopback emulator: the
seed's layout (legacy tenant at the root, others under ``tenants/``), values read back exactly,
seed data read faithfully, listing equal to the reference ``apply_query``, key and depth
refusals with nothing written, compare-and-set modifies without lost updates, and a ban (bot,
archive entry, log entry) written all or nothing."""

from __future__ import annotations

import copy
import json
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from botmox_rtdb import RtdbBackend
from botmox_rtdb import layout as runner_layout
from botmox_rtdb.domain_codec import EXACT_KEY, LOCK_KEY, decode, encode, rtdb_view
from botmox_rtdb.domain_repositories import (
    COLLECTION_PATHS,
    DOMAIN_ROOTS,
    DomainLayout,
)
from botmox_rtdb.rules import rules_document
from botmox_rtdb.testing import RtdbEmulator

from botmox_core.domain.listing import ListQuery, apply_query
from botmox_core.domain.patching import apply_patch
from botmox_core.domain.records import (
    AggregateKey,
    ArchiveEntry,
    Collection,
    DomainRecord,
    LifecycleLogEntry,
    new_record_id,
)
from botmox_core.errors import (
    BadRequestError,
    ConfigurationError,
    ConflictError,
    DuplicateError,
)
from botmox_core.testing.domains import DomainRepositoryConformance

LEGACY = "legacy-tenant"
T0 = 1_795_000_000_000

EDGE_DATA: dict[str, Any] = {
    "null": None,
    "empty_object": {},
    "empty_array": [],
    "gappy_array": ["b", None],
    "leading_nulls": [None, None, 3],
    "index_keyed": {"0": "a", "1": "b"},
    "nested_empties": {"keep": 1, "drop": {}, "also": [], "n": None},
    "big": 2**63,
    "big_negative": -(2**53) - 1,
    "huge": 10**30,
    "one_float": 1.0,
    "negative_zero": -0.0,
    "tiny": 5e-324,
    "max": 1.7976931348623157e308,
    "text": "Ünïcødé ✓ \U0001f600",
    "flag": False,
    EXACT_KEY: "a client field with a reserved name",
    LOCK_KEY: {"until": 9_999_999_999_999},
    "created_at": T0,
    "updated_at": T0 + 1,
}


def same_json(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.fixture
def writes(emulator: RtdbEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The write requests (method and path) the emulator receives."""
    seen: list[str] = []
    handle = emulator.handle

    def counting(method: str, raw_path: str, *args: Any) -> Any:
        if method != "GET":
            seen.append(f"{method} {raw_path}")
        return handle(method, raw_path, *args)

    monkeypatch.setattr(emulator, "handle", counting)
    yield seen


@pytest.fixture
def legacy(make_backend: Callable[..., RtdbBackend]) -> RtdbBackend:
    return make_backend(BOTMOX_RTDB_LEGACY_TENANT=LEGACY)


def commit(backend: RtdbBackend, action: Callable[[Any], Any]) -> Any:
    with backend.unit_of_work() as uow:
        result = action(uow)
        uow.commit()
    return result


def read(backend: RtdbBackend, action: Callable[[Any], Any]) -> Any:
    with backend.unit_of_work() as uow:
        return action(uow)


def record(tenant: str, record_id: str | None = None, collection: Collection = Collection.BOTS,
           **data: Any) -> DomainRecord:
    fields = {"name": "Bot one", "status": "farming", "level": 42, "created_at": T0,
              "updated_at": T0 + 1, **data}
    return DomainRecord(tenant, collection, record_id or new_record_id(), fields)


# -- layout -------------------------------------------------------------------------------


def test_domain_paths_do_not_collide_with_the_runner_paths() -> None:
    runner = {runner_layout.VM_REGISTRY, runner_layout.LICENCES, runner_layout.ENTITLEMENTS,
              runner_layout.LEASES, runner_layout.API_TOKENS, runner_layout.RELEASES,
              runner_layout.ASSIGNMENTS, runner_layout.AUDIT, runner_layout.COUNTERS}
    assert not DOMAIN_ROOTS & runner
    assert not DOMAIN_ROOTS & {runner_layout.TENANTS, runner_layout.META}
    assert {path.split("/")[0] for path in COLLECTION_PATHS.values()} <= DOMAIN_ROOTS
    assert DomainLayout(LEGACY).path(LEGACY, "bots", "b1") == "bots/b1"
    assert DomainLayout(LEGACY).path("t1", "bots", "b1") == "tenants/t1/bots/b1"
    assert DomainLayout(None).path(LEGACY, "settings") == f"tenants/{LEGACY}/settings"


def test_the_legacy_tenant_uses_the_seed_paths_and_others_their_own(
    legacy: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    for collection in Collection:
        commit(legacy, lambda uow, c=collection: uow.records.add(record(LEGACY, "r1", c)))
        commit(legacy, lambda uow, c=collection: uow.records.add(record("t2", "r1", c, name="x")))
        seed_path = COLLECTION_PATHS[collection]
        assert emulator.read(namespace, f"{seed_path}/r1")["name"] == "Bot one"
        assert emulator.read(namespace, f"tenants/t2/{seed_path}/r1")["name"] == "x"
    commit(legacy, lambda uow: uow.aggregates.put(LEGACY, AggregateKey.DAILY_STATS,
                                                  {"2026-01-01": {"net_profit": 3}}))
    commit(legacy, lambda uow: uow.settings.modify(LEGACY, lambda tree: {"theme": {"a": 1}}))
    assert emulator.read(namespace, "finance/daily_stats") == {"2026-01-01": {"net_profit": 3}}
    assert emulator.read(namespace, "settings") == {"theme": {"a": 1}}
    # another tenant sees none of it, and the legacy tenant's ids answer nothing there
    assert read(legacy, lambda uow: uow.records.get("t3", Collection.BOTS, "r1")) is None
    assert read(legacy, lambda uow: uow.settings.get("t2")) is None


def test_without_the_option_every_tenant_is_under_tenants(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    commit(rtdb, lambda uow: uow.records.add(record(LEGACY, "r1")))
    assert emulator.read(namespace, "bots") is None
    assert emulator.read(namespace, f"tenants/{LEGACY}/bots/r1")["name"] == "Bot one"


@pytest.mark.parametrize("value", ["a/b", "a.b", "", "a\x01"])
def test_a_legacy_tenant_that_is_not_a_key_is_a_configuration_error(
    make_backend: Callable[..., RtdbBackend], value: str
) -> None:
    if value == "":
        assert make_backend(BOTMOX_RTDB_LEGACY_TENANT=value).options.legacy_tenant is None
        return
    with pytest.raises(ConfigurationError, match="legacy_tenant"):
        make_backend(BOTMOX_RTDB_LEGACY_TENANT=value)


def test_the_rules_index_the_log_and_archive_for_every_tenant() -> None:
    rules = rules_document()["rules"]
    for base in (rules, rules["tenants"]["$tenant_id"]):
        assert base["logs"]["bot_lifecycle"][".indexOn"] == ["bot_id"]
        assert base["archive"][".indexOn"] == ["bot_id"]


# -- values --------------------------------------------------------------------------------


def test_values_rtdb_would_change_read_back_exactly(
    legacy: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    for tenant in (LEGACY, "t2"):
        stored = record(tenant, "edge", **EDGE_DATA)
        commit(legacy, lambda uow, r=stored: uow.records.add(r))
        got = read(legacy, lambda uow, t=tenant: uow.records.get(t, Collection.BOTS, "edge"))
        assert got is not None and same_json(dict(got.data), dict(stored.data))
        page = read(legacy, lambda uow, t=tenant: uow.records.list(t, Collection.BOTS,
                                                                   ListQuery()))
        assert same_json(dict(page.records[0].data), dict(stored.data))
    raw = emulator.read(namespace, "bots/edge")
    assert isinstance(raw[EXACT_KEY], str)
    assert "empty_object" not in raw and raw["nested_empties"] == {"keep": 1}


def test_plain_records_are_stored_in_the_seed_shape(
    legacy: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    stored = record(LEGACY, "plain", tags=["a", "b"], character={"name": "Zed", "level": 3},
                    gold=12.5)
    commit(legacy, lambda uow: uow.records.add(stored))
    assert emulator.read(namespace, "bots/plain") == dict(stored.data)


def test_a_stale_exact_copy_gives_way_to_the_fields_another_writer_changed(
    legacy: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    commit(legacy, lambda uow: uow.records.add(record(LEGACY, "b1", tags=[], name="old")))
    emulator.write(namespace, "bots/b1/name", "renamed by the seed")
    got = read(legacy, lambda uow: uow.records.get(LEGACY, Collection.BOTS, "b1"))
    assert got is not None and got.data["name"] == "renamed by the seed"
    assert "tags" not in got.data and EXACT_KEY not in got.data


def test_seed_data_reads_as_it_is(
    legacy: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    emulator.write(namespace, "bots", {
        "-Nseed1": {"name": "no stamps", "lifecycle": {"current_stage": "prepare"}},
        "-Nseed2": "a bare string",
        "-Nseed3": 7,
        "-Nseed4": ["x", "y"],
    })
    emulator.write(namespace, "logs/bot_lifecycle/-Nlog1",
                   {"bot_id": "-Nseed1", "type": "ban", "message": "Bot banned: x",
                    "timestamp": T0})
    emulator.write(namespace, "archive/-Narc1", {"bot_id": "-Nseed1", "archived_at": T0})
    emulator.write(namespace, "settings", {"alerts": {"warning_days": 7}})

    def get(record_id: str) -> dict[str, Any]:
        got = read(legacy, lambda uow: uow.records.get(LEGACY, Collection.BOTS, record_id))
        assert got is not None
        return dict(got.data)

    assert get("-Nseed1") == {"name": "no stamps", "lifecycle": {"current_stage": "prepare"}}
    assert get("-Nseed2") == {"value": "a bare string"}
    assert get("-Nseed3") == {"value": 7}
    assert get("-Nseed4") == {"0": "x", "1": "y"}
    page = read(legacy, lambda uow: uow.records.list(LEGACY, Collection.BOTS,
                                                     ListQuery(q="bare")))
    assert [r.id for r in page.records] == ["-Nseed2"] and page.total == 1
    (log,) = read(legacy, lambda uow: uow.bot_history.log(LEGACY, "-Nseed1"))
    assert (log.id, log.type, log.timestamp, dict(log.details)) == ("-Nlog1", "ban", T0, {})
    (arc,) = read(legacy, lambda uow: uow.bot_history.archive(LEGACY, "-Nseed1"))
    assert (arc.id, arc.reason, arc.archived_at) == ("-Narc1", "", T0)
    assert read(legacy, lambda uow: uow.settings.get(LEGACY)) == {"alerts": {"warning_days": 7}}


@pytest.mark.parametrize("value", [
    {"a.b": 1}, {"ok": {"x$": 1}}, {"ok": [{"#": 1}]}, {"[": 1}, {"a/b": 1}, {"c\x7f": 1},
])
def test_keys_rtdb_forbids_are_refused_and_nothing_is_written(
    legacy: RtdbBackend, emulator: RtdbEmulator, namespace: str, writes: list[str],
    value: dict[str, Any],
) -> None:
    with pytest.raises(BadRequestError) as caught:
        commit(legacy, lambda uow: uow.records.add(record(LEGACY, "k1", **value)))
    assert caught.value.code == "INVALID_KEY"
    with pytest.raises(BadRequestError) as caught:
        commit(legacy, lambda uow: uow.settings.modify(LEGACY, lambda tree: value))
    assert caught.value.code == "INVALID_KEY"
    with pytest.raises(BadRequestError) as caught:
        commit(legacy, lambda uow: uow.aggregates.put(LEGACY, AggregateKey.DAILY_STATS, value))
    assert caught.value.code == "INVALID_KEY"
    with pytest.raises(BadRequestError) as caught:
        read(legacy, lambda uow: uow.records.get(LEGACY, Collection.BOTS, "a/b"))
    assert caught.value.code == "INVALID_KEY"
    assert writes == [] and emulator.read(namespace) is None


def test_data_deeper_than_rtdb_allows_is_refused_and_nothing_is_written(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str, writes: list[str]
) -> None:
    deep: Any = "leaf"
    for _ in range(28):  # tenants/t1/bots/id + 28 levels = 32 keys: allowed
        deep = {"k": deep}
    commit(rtdb, lambda uow: uow.records.add(record("t1", "ok", deep=deep["k"])))
    writes.clear()
    with pytest.raises(BadRequestError, match="levels deep"):
        commit(rtdb, lambda uow: uow.records.add(record("t1", "deep", deep=deep)))
    with pytest.raises(BadRequestError, match="levels deep"):
        commit(rtdb, lambda uow: uow.records.modify(
            "t1", Collection.BOTS, "ok", lambda r: attrs.evolve(r, data={**r.data, "deep": deep})))
    assert writes == []


def test_the_codec_agrees_with_the_emulator_on_what_rtdb_changes(
    emulator: RtdbEmulator, namespace: str
) -> None:
    rng = random.Random(5)
    leaves: list[Any] = [None, 0, 1, 1.0, -0.0, 2.5, "", "s", True, False, {}, [], 2**40]

    def value(depth: int) -> Any:
        kind = rng.randrange(4 if depth < 3 else 1)
        if kind == 0:
            return rng.choice(leaves)
        if kind == 1:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        keys = rng.sample(["0", "1", "2", "3", "a", "b"], rng.randrange(4))
        return {key: value(depth + 1) for key in keys}

    for index in range(300):
        sample = {"x": value(0), "y": value(0)}
        emulator.write(namespace, f"probe/{index}", sample)
        assert rtdb_view(sample) == emulator.read(namespace, f"probe/{index}"), sample
        assert same_json(decode(encode(sample, "t")), sample)


# -- records -------------------------------------------------------------------------------


def test_add_refuses_an_existing_id_now_and_at_commit(rtdb: RtdbBackend) -> None:
    commit(rtdb, lambda uow: uow.records.add(record("t1", "b1")))
    with pytest.raises(DuplicateError):
        commit(rtdb, lambda uow: uow.records.add(record("t1", "b1", name="other")))
    with rtdb.unit_of_work() as uow:
        uow.records.add(record("t1", "b2", name="mine"))
        commit(rtdb, lambda other: other.records.add(record("t1", "b2", name="theirs")))
        with pytest.raises(DuplicateError):
            uow.commit()
    got = read(rtdb, lambda uow: uow.records.get("t1", Collection.BOTS, "b2"))
    assert got is not None and got.data["name"] == "theirs"
    # the same id in another tenant or collection is another record
    commit(rtdb, lambda uow: uow.records.add(record("t2", "b1")))
    commit(rtdb, lambda uow: uow.records.add(record("t1", "b1", Collection.PROXIES)))


def test_modify_delete_and_rollback(rtdb: RtdbBackend, writes: list[str]) -> None:
    commit(rtdb, lambda uow: uow.records.add(record("t1", "b1", tags=["a"])))

    def patch(body: dict[str, Any]) -> Callable[[DomainRecord], DomainRecord]:
        return lambda r: attrs.evolve(r, data=apply_patch(r.data, body))

    changed = commit(rtdb, lambda uow: uow.records.modify(
        "t1", Collection.BOTS, "b1", patch({"tags": [], "character/level": 5, "name": None})))
    assert changed.data["tags"] == [] and "name" not in changed.data
    got = read(rtdb, lambda uow: uow.records.get("t1", Collection.BOTS, "b1"))
    assert same_json(dict(got.data), dict(changed.data))
    writes.clear()
    assert commit(rtdb, lambda uow: uow.records.modify(
        "t1", Collection.BOTS, "b1", lambda r: r)) == got
    assert writes == []  # unchanged: not written
    assert commit(rtdb, lambda uow: uow.records.modify(
        "t1", Collection.BOTS, "nope", patch({"a": 1}))) is None
    with pytest.raises(BadRequestError, match="id or tenant"):
        commit(rtdb, lambda uow: uow.records.modify(
            "t1", Collection.BOTS, "b1", lambda r: attrs.evolve(r, id="b2")))
    with pytest.raises(BadRequestError, match="collection"):
        commit(rtdb, lambda uow: uow.records.modify(
            "t1", Collection.BOTS, "b1", lambda r: attrs.evolve(r, collection=Collection.NOTES)))
    assert writes == []
    with rtdb.unit_of_work() as uow:  # rolled back: nothing stays
        uow.records.modify("t1", Collection.BOTS, "b1", patch({"name": "rolled back"}))
        assert uow.records.delete("t1", Collection.BOTS, "b1")
        assert uow.records.get("t1", Collection.BOTS, "b1") is None
        uow.rollback()
    assert writes == []
    assert commit(rtdb, lambda uow: uow.records.delete("t1", Collection.BOTS, "b1"))
    assert not commit(rtdb, lambda uow: uow.records.delete("t1", Collection.BOTS, "b1"))


def test_concurrent_modifies_lose_no_update(rtdb: RtdbBackend) -> None:
    commit(rtdb, lambda uow: uow.records.add(record("t1", "c1", count=0)))
    commit(rtdb, lambda uow: uow.settings.modify("t1", lambda tree: {"count": 0}))
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(5):
                commit(rtdb, lambda uow: uow.records.modify(
                    "t1", Collection.BOTS, "c1",
                    lambda r: attrs.evolve(r, data={**r.data, "count": r.data["count"] + 1})))
                commit(rtdb, lambda uow: uow.settings.modify(
                    "t1", lambda tree: {**tree, "count": tree["count"] + 1}))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    got = read(rtdb, lambda uow: uow.records.get("t1", Collection.BOTS, "c1"))
    assert got.data["count"] == 30
    assert read(rtdb, lambda uow: uow.settings.get("t1")) == {"count": 30}


# -- a ban: record, archive entry and log entry, all or nothing -------------------------------


def ban(uow: Any, tenant: str, bot_id: str) -> DomainRecord:
    banned = uow.records.modify(tenant, Collection.BOTS, bot_id, lambda r: attrs.evolve(
        r, data={**r.data, "status": "banned", "lifecycle": {"stage_transitions": []}}))
    uow.bot_history.append_archive(ArchiveEntry(tenant, new_record_id(), bot_id, "banned", T0,
                                                {"ban_reason": "x"}, {"final_level": 1}))
    uow.bot_history.append_log(LifecycleLogEntry(tenant, new_record_id(), bot_id, "ban",
                                                 "Bot banned: x", T0, {}))
    return banned  # type: ignore[no-any-return]


def test_a_ban_writes_bot_archive_and_log_in_one_update(
    legacy: RtdbBackend, emulator: RtdbEmulator, namespace: str, writes: list[str]
) -> None:
    commit(legacy, lambda uow: uow.records.add(record(LEGACY, "b1")))
    writes.clear()
    banned = commit(legacy, lambda uow: ban(uow, LEGACY, "b1"))
    # one compare-and-set to lock the bot, then one multi-path update with everything
    assert [w.split(" ")[0] for w in writes] == ["PUT", "PATCH"]
    assert read(legacy, lambda uow: uow.records.get(LEGACY, Collection.BOTS, "b1")) == banned
    assert LOCK_KEY not in emulator.read(namespace, "bots/b1")
    (log,) = read(legacy, lambda uow: uow.bot_history.log(LEGACY, "b1"))
    (arc,) = read(legacy, lambda uow: uow.bot_history.archive(LEGACY, "b1"))
    assert (log.type, dict(log.details), arc.reason) == ("ban", {}, "banned")
    assert read(legacy, lambda uow: uow.bot_history.log(LEGACY, "other")) == []


def test_a_ban_that_fails_at_commit_writes_nothing_and_unlocks(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    commit(rtdb, lambda uow: uow.records.add(record("t1", "b1")))
    before = emulator.read(namespace)
    with rtdb.unit_of_work() as uow:
        ban(uow, "t1", "b1")
        uow.records.add(record("t1", "raced"))
        commit(rtdb, lambda other: other.records.add(record("t1", "raced", name="first")))
        with pytest.raises(DuplicateError):
            uow.commit()
    after = emulator.read(namespace)
    del after["tenants"]["t1"]["bots"]["raced"]
    assert after == before  # no lock left, no archive or log entry, the bot unchanged


def test_a_ban_of_a_bot_changed_meanwhile_is_a_conflict_and_writes_nothing(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    commit(rtdb, lambda uow: uow.records.add(record("t1", "b1")))
    with rtdb.unit_of_work() as uow:
        ban(uow, "t1", "b1")
        emulator.write(namespace, "tenants/t1/bots/b1/name", "renamed meanwhile")
        before = emulator.read(namespace)
        with pytest.raises(ConflictError):
            uow.commit()
    assert emulator.read(namespace) == before


def test_a_modify_waits_for_a_live_lock(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    """A lock left by another commit holds the record until it expires; the modify then
    applies its change to the value it finds."""
    from botmox_core.domain.records import now_ms

    commit(rtdb, lambda uow: uow.records.add(record("t1", "b1", count=0)))
    emulator.write(namespace, f"tenants/t1/bots/b1/{LOCK_KEY}",
                   {"token": "other", "until": now_ms() + 600})
    with rtdb.unit_of_work() as uow:
        uow.records.modify("t1", Collection.BOTS, "b1",
                           lambda r: attrs.evolve(r, data={**r.data, "count": 1}))
        emulator.write(namespace, "tenants/t1/bots/b1/count", 5)  # the lock holder's write
        uow.commit()
    raw = emulator.read(namespace, "tenants/t1/bots/b1")
    assert LOCK_KEY not in raw and raw["count"] == 1


# -- history, aggregates, settings ---------------------------------------------------------


def test_history_is_per_bot_oldest_first(rtdb: RtdbBackend) -> None:
    def append(uow: Any) -> None:
        for index, stamp in enumerate((T0 + 5, T0, T0 + 5)):
            uow.bot_history.append_log(LifecycleLogEntry(
                "t1", f"log{index}", "b1" if index != 1 else "b2", "status_change", "m", stamp,
                {"from": None, "to": "prepare", "n": [1, None]}))
            uow.bot_history.append_archive(ArchiveEntry(
                "t1", f"arc{index}", "b1", "banned", T0 - index, {}, {"snapshot": {}}))

    commit(rtdb, append)
    logs = read(rtdb, lambda uow: uow.bot_history.log("t1", "b1"))
    assert [e.id for e in logs] == ["log0", "log2"]
    assert dict(logs[0].details) == {"from": None, "to": "prepare", "n": [1, None]}
    assert [e.id for e in read(rtdb, lambda uow: uow.bot_history.log("t1"))] == [
        "log1", "log0", "log2"]
    assert [e.id for e in read(rtdb, lambda uow: uow.bot_history.archive("t1", limit=2))] == [
        "arc2", "arc1"]
    assert read(rtdb, lambda uow: uow.bot_history.log("t2")) == []


def test_aggregates_and_settings_keep_their_values(rtdb: RtdbBackend) -> None:
    assert read(rtdb, lambda uow: uow.aggregates.get("t1", AggregateKey.GOLD_PRICE_HISTORY)) is None
    assert read(rtdb, lambda uow: uow.settings.get("t1")) is None
    commit(rtdb, lambda uow: uow.aggregates.put("t1", AggregateKey.GOLD_PRICE_HISTORY, {}))
    assert read(rtdb, lambda uow: uow.aggregates.get("t1", AggregateKey.GOLD_PRICE_HISTORY)) == {}
    tree = {"ui": {"resource_tree": {"expandedKeys": []}}, "generators": {"default": None},
            "n": 1.0}
    assert commit(rtdb, lambda uow: uow.settings.modify("t1", lambda cur: tree)) == tree
    assert same_json(read(rtdb, lambda uow: uow.settings.get("t1")), tree)
    with rtdb.unit_of_work() as uow:
        uow.settings.modify("t1", lambda cur: {**cur, "a": 1})
        assert uow.settings.modify("t1", lambda cur: {**cur, "b": 2}) == {**tree, "a": 1, "b": 2}
        uow.commit()
    assert same_json(read(rtdb, lambda uow: uow.settings.get("t1")), {**tree, "a": 1, "b": 2})


# -- listing: exactly the reference -----------------------------------------------------------

_IDS = ["1", "2", "10", "01", "-1", "007", "2147483648", "a", "B", "-Nabc", "z:1", "x@y", "_"]
_VALUES: list[Any] = [None, True, False, 0, -0.0, 1, 1.0, 2.5, -3, 2**53 + 1, "", "a", "A",
                      "Bot", "bot", "10", "émile", "\U0001f600", {}, [], {"x": 1}, [1]]


def _collection(tenant: str, count: int, seed: int) -> list[DomainRecord]:
    rng = random.Random(seed)
    ids = list(_IDS) + [f"{rng.choice('aAzZ09-_')}{index}_g" for index in range(count)]
    records = []
    for record_id in ids[:count]:
        data: dict[str, Any] = {"created_at": T0, "updated_at": T0}
        for field in ("name", "score", "flag"):
            if rng.random() < 0.85:
                data[field] = copy.deepcopy(rng.choice(_VALUES))
        records.append(DomainRecord(tenant, Collection.PROXIES, record_id, data))
    return records


@pytest.mark.parametrize("tenant", [LEGACY, "t2"])
def test_listing_gives_exactly_what_apply_query_gives(legacy: RtdbBackend, tenant: str) -> None:
    records = _collection(tenant, 60, seed=3)

    def add_all(uow: Any) -> None:
        for item in records:
            uow.records.add(item)

    commit(legacy, add_all)
    queries = [ListQuery(page=page, limit=limit, sort=sort, descending=desc, q=q)
               for page, limit in ((1, 50), (2, 7), (9, 7), (1, 200))
               for sort in (None, "id", "name", "score", "flag", "missing")
               for desc in (False, True)
               for q in (None, "a", "1", "true", "\U0001f600", "zzz")]
    for query in queries:
        expected = apply_query(records, query)
        page = read(legacy, lambda uow, q=query: uow.records.list(tenant, Collection.PROXIES, q))
        assert page.total == expected.total, query
        assert [r.id for r in page.records] == [r.id for r in expected.records], query
        for got, want in zip(page.records, expected.records, strict=True):
            assert same_json(dict(got.data), dict(want.data))
    with legacy.unit_of_work() as uow:  # a unit's own pending writes are listed too
        uow.records.delete(tenant, Collection.PROXIES, "a")
        uow.records.add(DomainRecord(tenant, Collection.PROXIES, "new", {"name": "n"}))
        page = uow.records.list(tenant, Collection.PROXIES, ListQuery(limit=200))
        assert page.total == len(records) and "new" in [r.id for r in page.records]
        assert "a" not in [r.id for r in page.records]


def test_scan_pages_through_in_id_order(rtdb: RtdbBackend) -> None:
    records = _collection("t1", 40, seed=8)

    def add_all(uow: Any) -> None:
        for item in records:
            uow.records.add(item)

    commit(rtdb, add_all)
    seen: list[str] = []
    after = None
    for _ in range(20):
        batch = read(rtdb, lambda uow, a=after: uow.records.scan(
            "t1", Collection.PROXIES, after=a, limit=7))
        if not batch:
            break
        seen += [r.id for r in batch]
        after = batch[-1].id
    assert seen == sorted(r.id for r in records)
    assert read(rtdb, lambda uow: uow.records.list(
        "t1", Collection.BOTS, ListQuery())).total == 0


def test_a_page_without_q_or_sort_reads_only_keys_and_the_page(
    rtdb: RtdbBackend, emulator: RtdbEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = _collection("t1", 60, seed=4)

    def add_all(uow: Any) -> None:
        for item in records:
            uow.records.add(item)

    commit(rtdb, add_all)
    reads: list[str] = []
    handle = emulator.handle

    def counting(method: str, raw_path: str, params: dict[str, str], *args: Any) -> Any:
        reads.append(",".join(sorted(params.keys() - {"ns"})))
        return handle(method, raw_path, params, *args)

    monkeypatch.setattr(emulator, "handle", counting)
    query = ListQuery(page=2, limit=10, descending=True)
    page = read(rtdb, lambda uow: uow.records.list("t1", Collection.PROXIES, query))
    assert [r.id for r in page.records] == [r.id for r in apply_query(records, query).records]
    assert page.total == 60
    # the keys (shallow), then one range query for integer keys and one for the others
    assert reads[0] == "shallow" and 2 <= len(reads) <= 3
    assert set(reads[1:]) == {"endAt,orderBy,startAt"}


# -- the core's domain conformance kit ---------------------------------------------------------


class TestRtdbDomainConformance(DomainRepositoryConformance[RtdbBackend]):
    """Every tenant under ``tenants/{tenant}`` (no legacy tenant configured)."""

    # Each listing test stores its collection record by record (a conditional create each, as
    # the services do); 120 records keep every type rank, tie and edge value of the generator
    # while the suite stays within minutes on the pure-Python emulator.
    listing_records = 120

    @pytest.fixture
    def backend(self, make_backend: Any) -> RtdbBackend:
        return make_backend()  # type: ignore[no-any-return]

    @pytest.fixture
    def second_backend(self, backend: RtdbBackend, make_backend: Any) -> RtdbBackend:
        return make_backend()  # type: ignore[no-any-return]


class TestRtdbLegacyTenantDomainConformance(DomainRepositoryConformance[RtdbBackend]):
    """The kit's tenant is the legacy tenant: its data at the seed's root paths, the other
    tenant's under ``tenants/``."""

    listing_records = 60

    @pytest.fixture
    def backend(self, make_backend: Any, tenant: str) -> RtdbBackend:
        return make_backend(BOTMOX_RTDB_LEGACY_TENANT=tenant)  # type: ignore[no-any-return]

    @pytest.fixture
    def second_backend(self, backend: RtdbBackend, make_backend: Any,
                       tenant: str) -> RtdbBackend:
        return make_backend(BOTMOX_RTDB_LEGACY_TENANT=tenant)  # type: ignore[no-any-return]
