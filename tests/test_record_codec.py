"""The record codec (:mod:`botmox_core.records`), the ``modify`` helper
(:mod:`botmox_core.ports.modify`), and both at work in the SQLite backend.

The Supabase and RTDB backends' own test suites check the same ``modify`` rules on a real
PostgreSQL and on the emulator (``test_supabase_modify.py``, ``test_modify.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.backends.sqlite.columns import CODEC as SQLITE
from botmox_core.errors import BadRequestError, DatabaseError
from botmox_core.models import (
    AgentStatus,
    ApiToken,
    Assignment,
    CommandStatus,
    Entitlement,
    Lease,
    LeaseStatus,
    Licence,
    LicenceStatus,
    Release,
    Role,
)
from botmox_core.ports.modify import checked_change, modify_record
from botmox_core.records import FieldHooks, RecordCodec, RecordHooks
from botmox_core.testing.agents import make_agent, make_command
from botmox_core.testing.repository import (
    SCOPE,
    T0,
    make_assignment,
    make_entry,
    make_lease,
    make_release,
    make_token,
    make_vm,
)

EVERY_MODEL: list[Any] = [
    make_token("t"),
    make_token("t", user_id=None, expires_at=None, revoked_at=None, label=None),
    make_vm("t", metadata={"rack": {"slot": [1, 2.5, None, True]}, "é": "ü"}),
    Licence("t", LicenceStatus.ACTIVE, T0),
    Licence("t", LicenceStatus.SUSPENDED, T0, expires_at=T0 + timedelta(days=30)),
    Entitlement("t", "u", frozenset({"fishing", "*"}), T0),
    Entitlement("t", "u", frozenset(), T0),
    make_lease("t"),
    make_release("t"),
    make_assignment("t", SCOPE, 7, T0, "u"),
    make_assignment("t", SCOPE, 7, T0, None),
    make_entry("t"),
    make_agent("t"),
    make_agent("t", capabilities=(), status=AgentStatus.PENDING),
    make_command("t", "agt_1", result={"ok": True}, started_at=T0),
    make_command("t", "agt_1"),
]


def _id(value: Any) -> str:
    return type(value).__name__


# -- the codec ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", EVERY_MODEL, ids=_id)
def test_sqlite_records_round_trip_every_model(value: Any) -> None:
    record = SQLITE.record(value)
    assert set(record) == {field.name for field in attrs.fields(type(value))}
    assert SQLITE.value(record, type(value)) == value


def test_each_kind_of_value_reaches_its_hook() -> None:
    seen: list[tuple[str, Any, str]] = []

    def hook(kind: str) -> FieldHooks:
        def encode(value: Any, field: str) -> Any:
            seen.append((kind, value, field))
            return f"<{kind}>"

        return FieldHooks(encode, lambda stored: stored)

    codec = RecordCodec(RecordHooks(hook("timestamp"), hook("json"), hook("strings")))
    plus_two = timezone(timedelta(hours=2))
    record = codec.record(
        Entitlement("t", "u", frozenset({"b", "a"}), datetime(2026, 1, 1, 14, tzinfo=plus_two))
    )
    assert record == {
        "tenant_id": "t",
        "user_id": "u",
        "modules": "<strings>",
        "updated_at": "<timestamp>",
    }
    assert seen[0] == ("strings", ["a", "b"], "modules"), "a set arrives sorted, as a list"
    assert seen[1][0] == "timestamp" and seen[1][1].utcoffset() == timedelta(hours=2)
    seen.clear()
    agent = make_agent("t", capabilities=("z", "a"), revoked_at=None)
    record = codec.record(agent)
    assert ("strings", ["z", "a"], "capabilities") in seen, "a tuple keeps its order"
    assert record["revoked_at"] is None, "None never reaches a hook"
    assert record["status"] == "active", "enums are stored as their values"
    seen.clear()
    assert codec.record(make_vm("t", metadata={"a": 1}))["metadata"] == "<json>"
    assert ("json", {"a": 1}, "metadata") in seen


def test_sqlite_stores_fixed_width_utc_text_and_json() -> None:
    plus_two = timezone(timedelta(hours=2))
    lease = make_lease("t", issued_at=datetime(2026, 11, 24, 14, 30, tzinfo=plus_two))
    record = SQLITE.record(lease)
    assert record["issued_at"] == "2026-11-24T12:30:00.000000Z"
    assert record["status"] == "active"
    vm = SQLITE.record(make_vm("t", metadata={"a": [1, "é"]}))
    assert vm["metadata"] == '{"a":[1,"é"]}'
    assert SQLITE.record(Entitlement("t", "u", frozenset({"b", "a"}), T0))["modules"] == (
        '["a","b"]'
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (make_lease("t", issued_at=datetime(2026, 1, 1)), "timezone-aware"),
        (make_lease("t", last_heartbeat_at=datetime(2026, 1, 1)), "timezone-aware"),
        (make_lease("t", expires_at="2026-01-01T00:00:00Z"), "timezone-aware"),
        (make_lease("t", status="gone"), "lease status 'gone' is not one of active, revoked"),
        (make_token("t", role="root"), "api token role 'root' is not one of"),
        (make_vm("t", metadata=["not", "an", "object"]), "metadata must be a JSON object"),
        (make_vm("t", metadata={"x": {1, 2}}), "metadata is not valid JSON"),
        (make_vm("t", metadata={"x": float("nan")}), "metadata is not valid JSON"),
        (make_agent("t", capabilities=("a", 1)), "capabilities must be a collection of strings"),
        (make_agent("t", capabilities="abc"), "capabilities must be a collection of strings"),
        (Entitlement("t", "u", frozenset({1}), T0), "modules must be a collection of strings"),
        (make_command("t", "a", result=[1]), "result must be a JSON object"),
    ],
    ids=lambda p: p if isinstance(p, str) else _id(p),
)
def test_values_a_backend_cannot_store_are_bad_requests(value: Any, message: str) -> None:
    with pytest.raises(BadRequestError, match=message) as caught:
        SQLITE.record(value)
    assert caught.value.code == "BAD_REQUEST"


def test_enum_fields_take_a_member_or_its_value() -> None:
    assert SQLITE.record(make_lease("t", status="revoked"))["status"] == "revoked"
    assert SQLITE.record(make_token("t", role=Role.ADMIN))["role"] == "admin"


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"status": "zombie"}, "zombie"),
        ({"issued_at": "next tuesday"}, "next tuesday"),
        ({"expires_at": None}, ""),
        ({"version": 7, "status": None}, ""),
    ],
)
def test_a_malformed_record_is_a_database_error_naming_the_model(
    change: dict[str, Any], detail: str
) -> None:
    record = {**SQLITE.record(make_lease("t")), **change}
    with pytest.raises(DatabaseError, match=f"a stored lease record is malformed: .*{detail}"):
        SQLITE.value(record, Lease)


def test_a_missing_required_field_is_named() -> None:
    record = SQLITE.record(make_release("t"))
    del record["sha256"]
    with pytest.raises(DatabaseError, match="stored release record is malformed: missing field"):
        SQLITE.value(record, Release)


def test_unknown_fields_are_ignored_and_known_fields_fill_in() -> None:
    assignment = make_assignment("t", SCOPE, 7, T0, "u")
    record = {**SQLITE.record(assignment), "id": 7, "extra": "x"}
    del record["tenant_id"]
    assert SQLITE.value(record, Assignment, tenant_id="t") == assignment
    assert SQLITE.value(record, Assignment, tenant_id="u").tenant_id == "u"


def test_optional_fields_absent_from_a_record_take_their_defaults() -> None:
    token = ApiToken("tok", "t", Role.API, "h" * 64, T0)
    record = {k: v for k, v in SQLITE.record(token).items() if v is not None}
    assert SQLITE.value(record, ApiToken) == token


def test_a_codec_is_built_on_the_shared_converter_as_plugins_extended_it() -> None:
    """Hooks a plugin registered on the shared converter (``botmox_configure_converter``)
    reach field types the codec leaves to the converter."""
    from cattrs.preconf.json import make_converter

    from botmox_core.converter import configure_converter

    @attrs.frozen
    class Tagged:
        tenant_id: str
        colour: Colour

    base = configure_converter(make_converter())
    base.register_structure_hook(Colour, lambda value, _: Colour(value.removeprefix("c:")))
    base.register_unstructure_hook(Colour, lambda colour: f"c:{colour.name}")
    codec = RecordCodec(SQLITE.hooks, base)
    record = codec.record(Tagged("t", Colour("red")))
    assert record == {"tenant_id": "t", "colour": "c:red"}
    assert codec.value(record, Tagged) == Tagged("t", Colour("red"))


@attrs.frozen
class Colour:
    name: str


# -- the modify helper ----------------------------------------------------------------------------


def test_checked_change_returns_the_changed_value() -> None:
    lease = make_lease("t")
    revoked = checked_change(lease, lambda cur: attrs.evolve(cur, status=LeaseStatus.REVOKED))
    assert revoked.status is LeaseStatus.REVOKED


@pytest.mark.parametrize(
    ("current", "change", "message"),
    [
        (make_lease("t"), lambda cur: "a lease", "a lease change must return a Lease, got 'a"),
        (make_lease("t"), lambda cur: None, "a lease change must return a Lease, got None"),
        (
            make_agent("t"),
            lambda cur: make_lease("t", id=cur.id),
            "an agent change must return an Agent",
        ),
        (
            make_lease("t"),
            lambda cur: attrs.evolve(cur, id="lease_other"),
            "a lease change must not alter the lease's id or tenant",
        ),
        (
            make_command("t", "a"),
            lambda cur: attrs.evolve(cur, tenant_id="u"),
            "a command change must not alter the command's id or tenant",
        ),
    ],
)
def test_checked_change_refuses_another_type_or_identity(
    current: Any, change: Callable[[Any], Any], message: str
) -> None:
    with pytest.raises(BadRequestError, match=message):
        checked_change(current, change)


def test_modify_record_writes_only_a_changed_value() -> None:
    written: list[Lease] = []

    def write(lease: Lease) -> Lease:
        written.append(lease)
        return lease

    lease = make_lease("t")
    assert modify_record(None, lambda cur: cur, write) is None
    assert modify_record(lease, lambda cur: attrs.evolve(cur), write) is lease
    assert written == [], "an equal value is not written"
    changed = modify_record(lease, lambda cur: attrs.evolve(cur, version="9"), write)
    assert changed is not None and changed.version == "9"
    assert written == [changed]
    with pytest.raises(BadRequestError):
        modify_record(lease, lambda cur: attrs.evolve(cur, tenant_id="u"), write)

    def refuse(cur: Lease) -> Lease:
        raise LookupError("no")

    with pytest.raises(LookupError):
        modify_record(lease, refuse, write)
    assert written == [changed], "a refused or failing change writes nothing"


# -- the SQLite backend keeps the modify rules ---------------------------------------------


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[tuple[SqliteBackend, Path]]:
    path = tmp_path / "botmox.sqlite3"
    backend = SqliteBackend(path)
    yield backend, path
    backend.close()


def _count_updates(path: Path) -> Callable[[], dict[str, int]]:
    """Triggers that count UPDATEs per table, out of band; returns a reader of the counts."""
    with closing(sqlite3.connect(path)) as raw, raw:
        raw.execute("CREATE TABLE update_count (name TEXT PRIMARY KEY, n INTEGER)")
        for table in ("leases", "agents", "commands"):
            raw.execute(
                f"CREATE TRIGGER count_{table} AFTER UPDATE ON {table} BEGIN"
                f" INSERT INTO update_count VALUES ('{table}', 1)"
                " ON CONFLICT (name) DO UPDATE SET n = n + 1; END"
            )

    def read() -> dict[str, int]:
        with closing(sqlite3.connect(path)) as raw:
            return dict(raw.execute("SELECT name, n FROM update_count").fetchall())

    return read


def test_sqlite_modify_of_an_unchanged_record_writes_nothing(
    sqlite_file: tuple[SqliteBackend, Path],
) -> None:
    """Before: the lease ``modify`` rewrote the row even when ``change`` left it equal."""
    backend, path = sqlite_file
    lease, agent = make_lease("t"), make_agent("t")
    command = make_command("t", agent.id)
    with backend.unit_of_work() as uow:
        uow.leases.add(lease)
        uow.agents.add(agent)
        uow.commands.add(command)
        uow.commit()
    updates = _count_updates(path)
    with backend.unit_of_work() as uow:
        assert uow.leases.modify("t", lease.id, lambda cur: attrs.evolve(cur)) == lease
        assert uow.agents.modify("t", agent.id, lambda cur: cur) == agent
        assert uow.commands.modify("t", command.id, lambda cur: attrs.evolve(cur)) == command
        uow.commit()
    assert updates() == {}
    with backend.unit_of_work() as uow:
        uow.leases.modify("t", lease.id, lambda cur: attrs.evolve(cur, version="2"))
        uow.agents.modify("t", agent.id, lambda cur: attrs.evolve(cur, name="renamed"))
        uow.commands.modify(
            "t", command.id, lambda cur: attrs.evolve(cur, status=CommandStatus.CANCELLED)
        )
        uow.commit()
    assert updates() == {"leases": 1, "agents": 1, "commands": 1}


@pytest.mark.parametrize("aggregate", ["leases", "agents", "commands"])
@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda cur: {"id": cur.id}, id="not-a-model"),
        pytest.param(lambda cur: attrs.evolve(cur, tenant_id="other"), id="tenant"),
        pytest.param(lambda cur: attrs.evolve(cur, id=cur.id + "x"), id="id"),
    ],
)
def test_sqlite_modify_refuses_a_change_that_breaks_the_rules(
    sqlite_file: tuple[SqliteBackend, Path], aggregate: str, change: Callable[[Any], Any]
) -> None:
    backend, _ = sqlite_file
    agent = make_agent("t")
    records: dict[str, Any] = {
        "leases": make_lease("t"),
        "agents": agent,
        "commands": make_command("t", agent.id),
    }
    with backend.unit_of_work() as uow:
        uow.agents.add(agent)
        uow.leases.add(records["leases"])
        uow.commands.add(records["commands"])
        uow.commit()
    stored = records[aggregate]
    with pytest.raises(BadRequestError, match="change must"), backend.unit_of_work() as uow:
        getattr(uow, aggregate).modify("t", stored.id, change)
        uow.commit()
    with backend.unit_of_work() as uow:
        assert getattr(uow, aggregate).get("t", stored.id) == stored


def test_sqlite_reads_timestamps_written_by_earlier_versions() -> None:
    """Rows written with ``strftime`` read back the same through the faster reader; other
    text is still refused."""
    from botmox_core.backends.sqlite.columns import decode_timestamp, encode_timestamp

    stamp = datetime(2026, 11, 24, 12, 30, 15, 250000, tzinfo=UTC)
    old_text = stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert encode_timestamp(stamp) == old_text
    assert decode_timestamp(old_text) == stamp and decode_timestamp(old_text).tzinfo is UTC
    for bad in ("", "next tuesday", "2026-13-24T12:30:15.250000Z", "2026-11-24T12:30:15.25000xZ"):
        with pytest.raises(ValueError):
            decode_timestamp(bad)
