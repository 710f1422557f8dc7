"""The domain services (records, bot lifecycle, finance, settings) on the embedded SQLite backend,
and their pure parts: settings paths and schemas, the lifecycle algorithms, the field rules and the
list query."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.backends.sqlite import domains as sqlite_domains
from botmox_core.backends.sqlite.backend import SqliteUnitOfWork
from botmox_core.backends.sqlite.unit import SqliteReadUnitOfWork
from botmox_core.domain.records import AggregateKey, Collection, DomainRecord
from botmox_core.errors import (
    BadRequestError,
    DomainsNotSupportedError,
    DuplicateError,
    NotFoundError,
)
from botmox_core.models import Role
from botmox_core.services import Principal
from botmox_core.services.domains import DomainServices, lifecycle
from botmox_core.services.domains import bots as bots_module
from botmox_core.services.domains.query import list_query
from botmox_core.services.domains.rules import clean_json
from botmox_core.services.domains.settings import (
    GENERIC,
    merge_at,
    schema_for,
    settings_path,
)
from tests.conftest import FakeClock

ALICE = Principal("tenant-a", Role.API, user_id="alice")
BOB = Principal("tenant-b", Role.API, user_id="bob")
NOW_MS = int(FakeClock().now.timestamp() * 1000)  # the services' clock in epoch ms


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[SqliteBackend]:
    backend = SqliteBackend(tmp_path / "domains.sqlite3", synchronous="OFF")
    yield backend
    backend.close()


@pytest.fixture
def services(backend: SqliteBackend, clock: FakeClock) -> DomainServices:
    return DomainServices.build(backend, clock)


def field_of(error: BadRequestError) -> str:
    assert isinstance(error.details, list), error.details
    return str(error.details[0]["field"])


# -- records ---------------------------------------------------------------------------------


def test_create_stamps_and_answers_the_entity(services: DomainServices) -> None:
    bot = services.records.create(
        ALICE, Collection.BOTS, {"name": " Thrall ", "character": {"level": "60"}, "x": [1, 2.0]}
    )
    assert bot["name"] == "Thrall"  # trimmed, as the contract's schema does
    assert bot["character"] == {"level": 60}  # numeric string coerced
    assert bot["x"] == [1, 2] and isinstance(bot["x"][1], int)  # passthrough, 2.0 -> 2
    assert bot["created_at"] == bot["updated_at"] == NOW_MS
    assert len(bot["id"]) == 20
    assert services.records.get(ALICE, Collection.BOTS, bot["id"]) == bot


def test_create_keeps_a_client_created_at_and_trims_the_id(services: DomainServices) -> None:
    note = services.records.create(
        ALICE, Collection.NOTES, {"id": "  n-1 ", "title": "t", "created_at": 5, "updated_at": 7}
    )
    assert note["id"] == "n-1"
    assert note["created_at"] == 5 and note["updated_at"] == NOW_MS


def test_create_with_a_taken_id_is_409_and_keeps_the_record(services: DomainServices) -> None:
    services.records.create(ALICE, Collection.LICENSES, {"id": "lic", "key": "A"})
    with pytest.raises(DuplicateError) as caught:
        services.records.create(ALICE, Collection.LICENSES, {"id": "lic", "key": "B"})
    assert caught.value.status == 409 and caught.value.code == "DUPLICATE"
    assert services.records.get(ALICE, Collection.LICENSES, "lic")["key"] == "A"
    # another tenant may use the same id
    assert (
        services.records.create(BOB, Collection.LICENSES, {"id": "lic", "key": "C"})["key"] == "C"
    )


@pytest.mark.parametrize(
    ("collection", "body", "field"),
    [
        (Collection.BOTS, {"character": {"level": 500}}, "character.level"),
        (Collection.BOTS, {"status": "dead"}, "status"),
        (
            Collection.BOTS,
            {"lifecycle": {"stage_transitions": [{"from": "x", "to": "prepare", "timestamp": 1}]}},
            "lifecycle.stage_transitions[0].from",
        ),
        (Collection.PROXIES, {"port": 0}, "port"),
        (Collection.PROXIES, {"port": True}, "port"),
        (Collection.SUBSCRIPTIONS, {"bot_id": None}, "bot_id"),
        (Collection.SUBSCRIPTIONS, {"notes": "x" * 1001}, "notes"),
        (Collection.CALENDAR, {"date": "2026-1-1"}, "date"),
        (Collection.KANBAN, {"order": 1.5}, "order"),
        (Collection.LICENSES, {"expires_at": -1}, "expires_at"),
        (Collection.LICENSES, {"created_at": "soon"}, "created_at"),
        (Collection.FINANCE_OPERATIONS, {"type": "income"}, "category"),
        (Collection.NOTES, {"id": "a b"}, "id"),
        (Collection.NOTES, {"id": "a.b"}, "id"),
        (Collection.NOTES, {"id": "x" * 129}, "id"),
        (Collection.NOTES, {"title": "nul\x00"}, "title"),
        (Collection.NOTES, {"big": 2**60}, "big"),
        (Collection.NOTES, {"meta": {"a.b": 1}}, "meta"),
        (Collection.NOTES, {"meta": {"a/b": 1}}, "meta"),
        (Collection.NOTES, {"meta": {"": 1}}, "meta"),
    ],
)
def test_create_refuses_a_bad_field_naming_it(
    services: DomainServices, collection: Collection, body: dict[str, Any], field: str
) -> None:
    with pytest.raises(BadRequestError) as caught:
        services.records.create(ALICE, collection, body)
    assert field_of(caught.value) == field
    assert services.records.list(ALICE, collection).total == 0  # nothing half written


@pytest.mark.parametrize("body", [None, {}])
def test_an_empty_body_is_refused_with_the_contract_message(
    services: DomainServices, body: Any
) -> None:
    with pytest.raises(BadRequestError, match="Bot payload must not be empty"):
        services.records.create(ALICE, Collection.BOTS, body)
    with pytest.raises(BadRequestError, match="Proxy payload must not be empty"):
        services.records.create(ALICE, Collection.PROXIES, body)


def test_deep_and_large_bodies_are_refused(services: DomainServices) -> None:
    deep: Any = 1
    for _ in range(17):
        deep = {"k": deep}
    with pytest.raises(BadRequestError, match="levels deep") as caught:
        services.records.create(ALICE, Collection.NOTES, {"deep": deep})
    assert field_of(caught.value).startswith("deep")
    with pytest.raises(BadRequestError, match="262144 bytes"):
        services.records.create(ALICE, Collection.NOTES, {"content": "x" * (256 * 1024)})


def test_finance_accepts_null_for_the_global_fields(services: DomainServices) -> None:
    op = services.records.create(
        ALICE,
        Collection.FINANCE_OPERATIONS,
        {
            "type": "expense",
            "category": "proxy",
            "amount": "12.5",
            "currency": "USD",
            "date": NOW_MS,
            "bot_id": None,
            "project_id": None,
            "gold_price_at_time": None,
        },
    )
    assert op["amount"] == 12.5 and op["bot_id"] is None and op["gold_price_at_time"] is None
    with pytest.raises(BadRequestError) as caught:
        services.records.patch(ALICE, Collection.FINANCE_OPERATIONS, op["id"], {"amount": None})
    assert field_of(caught.value) == "amount"
    patched = services.records.patch(
        ALICE, Collection.FINANCE_OPERATIONS, op["id"], {"bot_id": None, "gold_amount": 3}
    )
    assert "bot_id" not in patched and patched["gold_amount"] == 3


def test_patch_merges_shallow_deep_keys_and_null_deletes(
    services: DomainServices, clock: FakeClock
) -> None:
    bot = services.records.create(
        ALICE,
        Collection.BOTS,
        {"id": "b1", "name": "A", "character": {"level": 10, "class": "mage"}, "farm": {"x": 1}},
    )
    clock.advance(1)
    patched = services.records.patch(
        ALICE,
        Collection.BOTS,
        "b1",
        {
            "character/level": 11,
            "farm": {"y": 2},
            "name": None,
            "id": "b1",
            "created_at": 1,
            "updated_at": 2,
            "created_at/x": 3,
        },
    )
    assert patched["character"] == {"level": 11, "class": "mage"}
    assert patched["farm"] == {"y": 2}  # shallow: the child is replaced
    assert "name" not in patched
    assert patched["created_at"] == bot["created_at"]
    assert patched["updated_at"] == NOW_MS + 1000
    assert services.records.get(ALICE, Collection.BOTS, "b1") == patched


def test_patch_checks_touched_fields_after_merging(services: DomainServices) -> None:
    services.records.create(ALICE, Collection.BOTS, {"id": "b1", "character": {"level": 10}})
    with pytest.raises(BadRequestError) as caught:
        services.records.patch(ALICE, Collection.BOTS, "b1", {"character/level": 101})
    assert field_of(caught.value) == "character.level"
    with pytest.raises(BadRequestError) as caught:
        services.records.patch(ALICE, Collection.BOTS, "b1", {"id": "other"})
    assert field_of(caught.value) == "id"
    with pytest.raises(BadRequestError):
        services.records.patch(ALICE, Collection.BOTS, "b1", {"a/./b": 1})
    deep_key = "/".join(["k"] * 18)  # the top-level field would nest 17 levels
    with pytest.raises(BadRequestError, match="levels deep"):
        services.records.patch(ALICE, Collection.BOTS, "b1", {deep_key: 1})
    assert services.records.get(ALICE, Collection.BOTS, "b1")["character"] == {"level": 10}


def test_missing_and_other_tenants_records_are_404(services: DomainServices) -> None:
    services.records.create(ALICE, Collection.KANBAN, {"id": "k1", "title": "t"})
    for call in (
        lambda: services.records.get(BOB, Collection.KANBAN, "k1"),
        lambda: services.records.patch(BOB, Collection.KANBAN, "k1", {"title": "x"}),
        lambda: services.records.delete(BOB, Collection.KANBAN, "k1"),
        lambda: services.records.patch(ALICE, Collection.KANBAN, "nope", {"title": "x"}),
    ):
        with pytest.raises(NotFoundError, match="Workspace entity not found"):
            call()
    assert services.records.list(BOB, Collection.KANBAN).total == 0
    assert services.records.get(ALICE, Collection.KANBAN, "k1")["title"] == "t"
    assert services.records.delete(ALICE, Collection.KANBAN, "k1") == {"id": "k1", "deleted": True}
    with pytest.raises(NotFoundError):
        services.records.delete(ALICE, Collection.KANBAN, "k1")


@pytest.mark.parametrize("bad_id", ["a\n", "a b", "", "a/b", "..", "ａ", "a" * 129, "a\x00"])
def test_url_ids_with_forbidden_characters_are_400(services: DomainServices, bad_id: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        services.records.get(ALICE, Collection.BOTS, bad_id)
    assert field_of(caught.value) == "id"


def test_list_pages_filters_and_sorts(services: DomainServices) -> None:
    for index, name in enumerate(["Zed", "alpha", "Beta", "gamma", "farm-1"]):
        services.records.create(
            ALICE, Collection.BOTS, {"id": f"b{index}", "name": name, "level": index}
        )
    services.records.create(BOB, Collection.BOTS, {"id": "other", "name": "alpha"})
    page = services.records.list(ALICE, Collection.BOTS, sort="name", order="desc", limit="2")
    assert [bot["name"] for bot in page.data] == ["gamma", "farm-1"]
    assert page.meta == {"total": 5, "page": 1, "limit": 2}
    assert [b["id"] for b in services.records.list(ALICE, Collection.BOTS, q=" ALPHA ").data] == [
        "b1"
    ]
    past = services.records.list(ALICE, Collection.BOTS, page="9")
    assert past.data == [] and past.total == 5


def test_a_backend_without_domain_data_answers_501(tmp_path: Path, clock: FakeClock) -> None:
    class NoDomains(SqliteBackend):
        capabilities = attrs.evolve(SqliteBackend.capabilities, domains=False)

    backend = NoDomains(tmp_path / "plain.sqlite3")
    try:
        services = DomainServices.build(backend, clock)
        for call in (
            lambda: services.records.list(ALICE, Collection.BOTS),
            lambda: services.settings.read(ALICE),
            lambda: services.finance.daily_stats(ALICE),
            lambda: services.bots.unban(ALICE, "b1"),
        ):
            with pytest.raises(DomainsNotSupportedError) as caught:
                call()
            assert caught.value.status == 501 and caught.value.code == "DOMAINS_NOT_SUPPORTED"
    finally:
        backend.close()


@pytest.fixture
def repository_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts units of work entered and domain repository calls on SQLite."""
    calls: Counter[str] = Counter()

    def counting(cls: type, name: str) -> None:
        original = getattr(cls, name)

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls[f"{cls.__name__}.{name}"] += 1
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, wrapper)

    counting(SqliteUnitOfWork, "__enter__")
    counting(SqliteReadUnitOfWork, "__enter__")
    for name in ("get", "add", "modify", "delete", "list", "scan"):
        counting(sqlite_domains.SqliteRecordRepository, name)
    for name in ("get", "modify"):
        counting(sqlite_domains.SqliteSettingsRepository, name)
    return calls


def test_list_and_settings_reads_are_one_read_unit_and_one_call(
    services: DomainServices, repository_calls: Counter[str]
) -> None:
    """The reads the web client polls with run in read units (a reader connection: no writer
    lock), one repository call each; writes keep the writing unit."""
    services.records.list(ALICE, Collection.BOTS, q="x", sort="name")
    assert repository_calls == Counter(
        {"SqliteReadUnitOfWork.__enter__": 1, "SqliteRecordRepository.list": 1}
    )
    repository_calls.clear()
    services.settings.read(ALICE, "ui/resource_tree")
    services.settings.read(ALICE)
    services.finance.daily_stats(ALICE)
    assert repository_calls == Counter(
        {"SqliteReadUnitOfWork.__enter__": 3, "SqliteSettingsRepository.get": 2}
    )
    repository_calls.clear()
    services.records.create(ALICE, Collection.BOTS, {"id": "w1", "name": "written"})
    assert services.records.get(ALICE, Collection.BOTS, "w1")["name"] == "written"
    assert services.bots.lifecycle(ALICE, "w1") is None
    assert repository_calls == Counter(
        {
            "SqliteUnitOfWork.__enter__": 1,
            "SqliteRecordRepository.add": 1,
            "SqliteReadUnitOfWork.__enter__": 2,
            "SqliteRecordRepository.get": 2,
        }
    )


def test_a_list_does_not_wait_for_an_open_write(
    services: DomainServices, backend: SqliteBackend
) -> None:
    """A list while another unit holds the SQLite writer (an import, a slow ban) answers from
    what was committed, without waiting for the writer."""
    services.records.create(ALICE, Collection.BOTS, {"id": "c1", "name": "committed"})
    with backend.unit_of_work() as writing:
        writing.records.add(  # type: ignore[attr-defined]
            DomainRecord(ALICE.tenant_id, Collection.BOTS, "open", {"name": "uncommitted"})
        )
        outcome: list[Any] = []
        reader = threading.Thread(
            target=lambda: outcome.append(services.records.list(ALICE, Collection.BOTS))
        )
        reader.start()
        reader.join(timeout=10)
        assert not reader.is_alive(), "the list waited for the open writing unit"
    assert [bot["id"] for bot in outcome[0].data] == ["c1"] and outcome[0].total == 1


# -- bot lifecycle -----------------------------------------------------------------------------


def test_transition_ban_unban_write_bot_log_and_archive(
    services: DomainServices, backend: SqliteBackend, clock: FakeClock
) -> None:
    services.records.create(
        ALICE,
        Collection.BOTS,
        {
            "id": "b1",
            "project_id": "wow_tbc",
            "character": {"level": 70},
            "farm": {"all_farmed_gold": 9},
        },
    )
    moved = services.bots.transition(ALICE, "b1", {"status": "leveling"})
    assert moved["status"] == "leveling"
    assert moved["lifecycle"]["current_stage"] == "leveling"
    assert moved["lifecycle"]["previous_status"] == "offline"
    assert moved["lifecycle"]["stage_transitions"] == [
        {"from": "create", "to": "leveling", "timestamp": NOW_MS}
    ]
    same = services.bots.transition(ALICE, "b1", {"status": "leveling"})
    assert same == moved  # unchanged, nothing logged
    clock.advance(1)
    banned = services.bots.ban(
        ALICE,
        "b1",
        {"ban_date": "01.02.2026", "ban_reason": " botting ", "ban_mechanism": "game_suspension"},
    )
    assert banned["status"] == "banned" and services.bots.is_banned(ALICE, "b1") == {"banned": True}
    details = banned["lifecycle"]["ban_details"]
    assert details["ban_reason"] == "botting"
    assert details["ban_timestamp"] == 1_769_904_000_000  # 2026-02-01T00:00Z
    clock.advance(1)
    restored = services.bots.unban(ALICE, "b1")
    assert restored["status"] == "leveling"
    assert restored["lifecycle"]["ban_details"]["unbanned_at"] == NOW_MS + 2000
    assert len(services.bots.transitions(ALICE, "b1")) == 2  # create->leveling, leveling->leveling
    with backend.unit_of_work() as uow:
        log = uow.bot_history.log("tenant-a", "b1")
        archive = uow.bot_history.archive("tenant-a", "b1")
    assert [entry.type for entry in log] == ["status_change", "ban", "unban"]
    assert log[1].message == "Bot banned: botting"
    assert log[2].details == {"restored_status": "leveling"}
    assert len(archive) == 1
    assert archive[0].snapshot == {
        "final_level": 70,
        "total_farmed": 9,
        "total_earned_gold": 0,
        "total_runtime_hours": 0,
        "project_id": "wow_tbc",
        "character": {"level": 70},
    }


def test_lifecycle_refusals(services: DomainServices) -> None:
    services.records.create(ALICE, Collection.BOTS, {"id": "b1", "name": "x"})
    with pytest.raises(BadRequestError, match="Use /lifecycle/ban endpoint"):
        services.bots.transition(ALICE, "b1", {"status": "banned"})
    with pytest.raises(BadRequestError, match="Bot is not banned"):
        services.bots.unban(ALICE, "b1")
    with pytest.raises(BadRequestError) as caught:
        services.bots.ban(
            ALICE, "b1", {"ban_date": "2026-01-01", "ban_reason": "r", "ban_mechanism": "other"}
        )
    assert field_of(caught.value) == "ban_date"
    with pytest.raises(BadRequestError, match="Ban payload must not be empty"):
        services.bots.ban(ALICE, "b1", None)
    with pytest.raises(NotFoundError, match="Bot not found"):
        services.bots.lifecycle(BOB, "b1")
    assert services.bots.lifecycle(ALICE, "b1") is None
    assert services.bots.transitions(ALICE, "b1") == []


def test_a_ban_that_fails_midway_writes_nothing(
    services: DomainServices, backend: SqliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    services.records.create(ALICE, Collection.BOTS, {"id": "b1", "status": "farming"})

    def failing_log_entry(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the log write failed")

    # the bot is patched and the archive entry added in the unit before the log entry fails
    monkeypatch.setattr(bots_module, "LifecycleLogEntry", failing_log_entry)
    with pytest.raises(RuntimeError):
        services.bots.ban(
            ALICE, "b1", {"ban_date": "01.02.2026", "ban_reason": "r", "ban_mechanism": "other"}
        )
    assert services.records.get(ALICE, Collection.BOTS, "b1")["status"] == "farming"
    with backend.unit_of_work() as uow:
        assert list(uow.bot_history.archive("tenant-a")) == []
        assert list(uow.bot_history.log("tenant-a")) == []


# -- finance aggregates ------------------------------------------------------------------------


def test_finance_aggregates_per_tenant(services: DomainServices, backend: SqliteBackend) -> None:
    assert services.finance.daily_stats(ALICE) == {}
    with backend.unit_of_work() as uow:
        uow.aggregates.put("tenant-a", AggregateKey.DAILY_STATS, {"2026-01-01": {"net_profit": 1}})
        uow.commit()
    assert services.finance.daily_stats(ALICE) == {"2026-01-01": {"net_profit": 1}}
    assert services.finance.daily_stats(BOB) == {}
    assert services.finance.gold_price_history(ALICE) == {}


# -- settings ----------------------------------------------------------------------------------


def test_settings_write_merges_and_answers_the_value_at_the_path(
    services: DomainServices,
) -> None:
    assert services.settings.read(ALICE) == {}
    assert services.settings.read(ALICE, "alerts") is None
    assert services.settings.write(ALICE, "alerts", {"warning_days": 7}) == {"warning_days": 7}
    assert services.settings.write(ALICE, "/settings/alerts/", {"updated_by": "me"}) == {
        "warning_days": 7,
        "updated_by": "me",
    }
    assert services.settings.write(ALICE, "alerts", {"updated_by": None}) == {"warning_days": 7}
    assert services.settings.write(ALICE, "projects/wow_tbc/gold_price_usd", "0.5") == 0.5
    assert services.settings.write(ALICE, "free/form", [1, "two"]) == [1, "two"]
    assert services.settings.write(ALICE, "free/form", None) is None
    assert services.settings.read(ALICE) == {
        "alerts": {"warning_days": 7},
        "projects": {"wow_tbc": {"gold_price_usd": 0.5}},
        "free": {},
    }
    assert services.settings.read(BOB) == {}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("alerts", {"warning_days": 0}, "alerts.warning_days"),
        ("alerts", {}, "alerts"),
        ("projects/wow_tbc/gold_price_usd", 0, "projects/wow_tbc/gold_price_usd"),
        ("projects/wow_tbc", {"max_level": 500}, "projects/wow_tbc.max_level"),
        ("finance/chart_config", [{"key": "k"}], "finance/chart_config[0].name"),
        ("schedule/last_params", {"startTime": "24:00"}, "schedule/last_params.startTime"),
        ("free", {"a": {"b.c": 1}}, "free.a"),
        ("", "not an object", "body"),
    ],
)
def test_settings_bodies_are_checked_by_path(
    services: DomainServices, path: str, body: Any, field: str
) -> None:
    with pytest.raises(BadRequestError) as caught:
        services.settings.write(ALICE, path, body)
    assert field_of(caught.value) == field
    assert services.settings.read(ALICE) == {}


def test_a_settings_tree_past_2_mib_is_refused_and_unchanged(services: DomainServices) -> None:
    services.settings.write(ALICE, "a", "x" * 900_000)
    services.settings.write(ALICE, "b", "x" * 900_000)
    with pytest.raises(BadRequestError, match="2097152 bytes"):
        services.settings.write(ALICE, "c", "x" * 900_000)
    assert sorted(services.settings.read(ALICE)) == ["a", "b"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("a/../x", "Invalid path segment: .."),
        ("settings/../x", "Invalid path segment: .."),
        ("a/./x", "Invalid path segment: ."),
        ("a//x", "Invalid path segment: "),
        ("a#b", "Invalid path segment: a#b"),
        ("a$b", "Invalid path segment: a$b"),
        ("a[0]", "Invalid path segment: a[0]"),
        ("v1.2", "Invalid path segment: v1.2"),
        ("alerts\n", "control characters are not allowed"),
        ("al\x00erts", "control characters are not allowed"),
        ("/".join(["k"] * 9), "a settings path has at most 8 segments"),
    ],
)
def test_invalid_settings_paths_say_why(raw: str, reason: str) -> None:
    with pytest.raises(BadRequestError, match="Invalid settings path") as caught:
        settings_path(raw)
    assert caught.value.details == {"path": raw, "reason": reason}


def test_settings_paths_parse() -> None:
    assert settings_path(None) == ()
    assert settings_path("settings") == ()
    assert settings_path(" /settings/ui/resource_tree/ ") == ("ui", "resource_tree")
    assert settings_path("．．/x") == ("．．", "x")  # a look-alike is just a key
    assert settings_path("settings/settings") == ("settings",)


def test_settings_schemas_first_match() -> None:
    assert schema_for(("projects", "p1", "gold_price_usd")) is not schema_for(("projects", "p1"))
    assert schema_for(("projects", "p1", "name")) is schema_for(("projects", "p1"))
    assert schema_for(("vmgenerator", "task_logs")) is GENERIC
    assert schema_for(("alerts", "x")) is GENERIC


def test_merge_at() -> None:
    tree = {"a": {"b": 1, "c": 2}, "s": "text"}
    assert merge_at(tree, ("a",), {"b": None, "d": 3}) == {"a": {"c": 2, "d": 3}, "s": "text"}
    assert merge_at(tree, ("s", "x"), 1) == {"a": {"b": 1, "c": 2}, "s": {"x": 1}}
    assert merge_at(tree, ("a",), [1]) == {"a": [1], "s": "text"}
    assert merge_at(tree, ("missing", "x"), None) == tree
    assert merge_at(tree, (), {"s": None}) == {"a": {"b": 1, "c": 2}}
    assert tree == {"a": {"b": 1, "c": 2}, "s": "text"}  # unchanged


# -- pure parts ------------------------------------------------------------------------------


def test_lifecycle_algorithms_over_a_bot_dict() -> None:
    assert lifecycle.transition({"status": "farming"}, "farming", 1) is None
    to_offline = lifecycle.transition({"status": "farming"}, "offline", 1)
    assert to_offline is not None
    assert to_offline.fields["lifecycle"]["current_stage"] == "prepare"
    assert to_offline.fields["lifecycle"]["stage_transitions"] == [
        {"from": "farming", "to": "prepare", "timestamp": 1}
    ]
    ban = lifecycle.ban(
        {"status": "offline"},
        {"ban_date": "31.02.2026", "ban_reason": "r", "ban_mechanism": "ip_ban"},
        5,
    )
    assert ban.fields["lifecycle"]["ban_details"]["ban_timestamp"] == 5  # no such day: now
    assert "stage_transitions" in ban.fields["lifecycle"]
    assert ban.fields["lifecycle"]["stage_transitions"] == []  # offline has no stage
    twice = lifecycle.ban(
        {"status": "banned", "lifecycle": ban.fields["lifecycle"]},
        {"ban_date": "01.01.2026", "ban_reason": "r", "ban_mechanism": "ip_ban"},
        6,
    )
    unbanned = lifecycle.unban({"status": "banned", "lifecycle": twice.fields["lifecycle"]}, 7)
    assert unbanned.fields["status"] == "offline"  # previous status was 'banned'
    assert lifecycle.is_banned({"lifecycle": {"current_stage": "banned"}})
    assert not lifecycle.is_banned({"status": "farming"})


def test_clean_json_copies_and_checks() -> None:
    value = {"a": [1.0, {"b": True}], "c": None}
    assert clean_json(value, "") == {"a": [1, {"b": True}], "c": None}
    with pytest.raises(BadRequestError, match="finite"):
        clean_json({"n": float("nan")}, "")
    with pytest.raises(BadRequestError, match="surrogates"):
        clean_json({"s": "\ud800"}, "")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "201"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"page": "0"}, "page"),
        ({"page": "1000001"}, "page"),
        ({"page": "1e3"}, "page"),
        ({"page": "٣"}, "page"),
        ({"order": "up"}, "order"),
        ({"sort": "a.b"}, "sort"),
        ({"sort": "name\n"}, "sort"),
        ({"q": "x" * 201}, "q"),
        ({"q": "farm\n"}, "q"),
    ],
)
def test_list_query_refusals(params: dict[str, str], field: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        list_query(**params)
    assert field_of(caught.value) == field


def test_list_query_defaults_and_normalising() -> None:
    query = list_query()
    assert (query.page, query.limit, query.sort, query.descending, query.q) == (
        1,
        50,
        None,
        False,
        None,
    )
    query = list_query(page="2", limit="200", sort="name", order="desc", q="  FaRm ")
    assert (query.page, query.limit, query.sort, query.descending, query.q) == (
        2,
        200,
        "name",
        True,
        "farm",
    )
    assert list_query(q="   ").q is None
