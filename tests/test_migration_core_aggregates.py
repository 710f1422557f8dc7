"""``botmox migrate`` of the artifact and agent records (tokens, VMs, licence, entitlements,
releases with their integer ids, assignments, leases, the download audit with its ids, agents,
commands with output) SQLite -> SQLite and SQLite -> PostgreSQL: copied as stored, parity
green, an unchanged re-run writes nothing, ids kept and later ``add``/``append`` allocate above
them, one tenant's records never reach another, changes and growth replayed."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.migration import MigrationOptions, migrate, parity
from botmox_core.models import AgentStatus, CommandStatus, Entitlement, Licence, LicenceStatus
from botmox_core.ports import DataBackend
from botmox_core.testing.agents import make_agent, make_command
from botmox_core.testing.repository._support import (
    SCOPE,
    make_assignment,
    make_entry,
    make_lease,
    make_release,
    make_token,
    make_vm,
)

STREAMS = [
    "tokens",
    "vms",
    "licence",
    "entitlements",
    "releases",
    "assignments",
    "leases",
    "download_audit",
    "agents",
    "commands",
]
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _sqlite(directory: Path) -> SqliteBackend:
    directory.mkdir(parents=True, exist_ok=True)
    return SqliteBackend(directory / "botmox.sqlite3", synchronous="OFF")


@pytest.fixture
def source(tmp_path: Path) -> Iterator[SqliteBackend]:
    backend = _sqlite(tmp_path / "a")
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def postgres_admin() -> Iterator[str]:
    from botmox_supabase.testing import PostgresUnavailable, require_postgres, running_postgres

    with contextlib.ExitStack() as stack:
        try:
            dsn = stack.enter_context(running_postgres())
        except PostgresUnavailable as exc:
            require_postgres(str(exc))
        yield dsn


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataBackend]:
    if request.param == "sqlite":
        backend: Any = _sqlite(tmp_path / "b")
        yield backend
        backend.close()
        return
    from botmox_supabase.backend import PostgresDataBackend
    from botmox_supabase.options import SupabaseOptions
    from botmox_supabase.testing import migrated_database

    admin = request.getfixturevalue("postgres_admin")
    with migrated_database(admin) as dsn:
        backend = PostgresDataBackend(
            SupabaseOptions(database_url=dsn, pool_min_size=1, pool_max_size=4)  # type: ignore[arg-type]
        )
        try:
            yield backend
        finally:
            backend.close()


def _seed(backend: DataBackend, tenant: str) -> dict[str, Any]:
    """Every kind of record for ``tenant``; release ids with a gap (one allocated, unused)."""
    made: dict[str, Any] = {}
    uow: Any
    with backend.unit_of_work() as uow:
        made["tokens"] = [make_token(tenant), make_token(tenant, revoked_at=T0, user_id=None)]
        for token in made["tokens"]:
            uow.tokens.add(token)
        made["vms"] = [uow.vms.upsert(make_vm(tenant)) for _ in range(3)]
        uow.licences.put_licence(Licence(tenant, LicenceStatus.ACTIVE, T0, T0 + timedelta(days=9)))
        for user in ("user-b", "user-a", "ünï"):
            uow.licences.put_entitlement(Entitlement(tenant, user, frozenset({"fishing", "*"}), T0))
        releases = [uow.releases.add(make_release(tenant)) for _ in range(3)]
        made["releases"] = releases
        uow.assignments.put(make_assignment(tenant, SCOPE, releases[0].id, T0, None))
        uow.assignments.put(make_assignment(tenant, SCOPE, releases[1].id, T0, "user-z"))
        uow.assignments.put(make_assignment(tenant, SCOPE, releases[2].id, T0, "user-a"))
        made["leases"] = [make_lease(tenant) for _ in range(2)]
        for lease in made["leases"]:
            uow.leases.add(lease)
        made["audit"] = [
            uow.audit.append(make_entry(tenant, release_id=releases[0].id)) for _ in range(4)
        ]
        agent = make_agent(tenant)
        uow.agents.add(agent)
        uow.agents.add(make_agent(tenant, status=AgentStatus.REVOKED, revoked_at=T0))
        made["agent"] = agent
        commands = [make_command(tenant, agent.id) for _ in range(2)]
        for command in commands:
            uow.commands.add(command)
        uow.commands.append_output(tenant, commands[0].id, 0, "line 1\n")
        uow.commands.append_output(tenant, commands[0].id, 1, "line 2\n")
        made["commands"] = commands
        uow.commit()
    return made


def _run(source: DataBackend, target: DataBackend, **options: Any) -> Any:
    return migrate(source, target, MigrationOptions(streams=STREAMS, **options), source_id="src")


def _counts(report: Any) -> dict[str, int]:
    return {f"{s.tenant}/{s.stream}": s.source for s in report.streams}


def test_every_aggregate_copied_as_stored(source: SqliteBackend, target: DataBackend) -> None:
    # Another tenant's releases first, so the two tenants' ids interleave at the source.
    other = _seed(source, "t2")
    made = _seed(source, "t1")
    first = _run(source, target, tenants=["t1", "t2"])
    assert first.ok, first.problems
    counts = _counts(first)
    assert counts["t1/tokens"] == 2 and counts["t1/vms"] == 3 and counts["t1/licence"] == 1
    assert counts["t1/entitlements"] == 3 and counts["t1/releases"] == 3
    assert counts["t1/assignments"] == 3 and counts["t1/leases"] == 2
    assert counts["t1/download_audit"] == 4 and counts["t1/agents"] == 2
    assert counts["t1/commands"] == 2
    check = parity(source, target, tenants=["t1", "t2"], streams=STREAMS)
    assert check.ok, [s for s in check.streams if not s.ok]

    uow: Any
    with target.unit_of_work() as uow:
        for release in made["releases"] + other["releases"]:
            assert uow.releases.get(release.tenant_id, release.id) == release
        assert uow.releases.get("t2", made["releases"][0].id) is None  # tenant kept
        for entry in made["audit"]:
            assert uow.audit.scan("t1", after=entry.id - 1, limit=1)[0] == entry
        token = made["tokens"][1]
        assert uow.tokens.get_by_hash(token.token_hash) == token
        assert uow.commands.output("t1", made["commands"][0].id) == "line 1\nline 2\n"
        assert uow.agents.get("t1", made["agent"].id) == made["agent"]
        assert [a.user_id for a in uow.assignments.scan("t1")] == [None, "user-a", "user-z"]
        # Ids allocated after the import are above every kept id.
        highest = max(r.id for r in made["releases"] + other["releases"])
        assert uow.releases.add(make_release("t1")).id > highest
        assert uow.audit.append(make_entry("t1")).id > max(e.id for e in made["audit"])
        uow.rollback()

    second = _run(source, target, tenants=["t1", "t2"])
    assert second.ok and second.writes == 0, [s for s in second.streams if s.writes]


def test_changes_at_the_source_are_replayed(source: SqliteBackend, target: DataBackend) -> None:
    made = _seed(source, "t1")
    assert _run(source, target, tenants=["t1"]).ok
    later = T0 + timedelta(hours=1)
    uow: Any
    with source.unit_of_work() as uow:
        uow.tokens.revoke("t1", made["tokens"][0].id, later)
        uow.vms.upsert(attrs.evolve(made["vms"][0], vm_name="renamed", updated_at=later))
        lease = made["leases"][0]
        uow.leases.modify("t1", lease.id, lambda held: attrs.evolve(held, revoke_reason="x"))
        command = made["commands"][0]
        uow.commands.modify(
            "t1",
            command.id,
            lambda held: attrs.evolve(held, status=CommandStatus.DISPATCHED, updated_at=later),
        )
        uow.commands.append_output("t1", command.id, 2, "line 3\n")
        uow.assignments.put(make_assignment("t1", SCOPE, made["releases"][2].id, later, None))
        uow.commit()
    assert not parity(source, target, tenants=["t1"], streams=STREAMS).ok
    again = _run(source, target, tenants=["t1"])
    assert again.ok, again.problems
    assert again.writes == 5
    assert parity(source, target, tenants=["t1"], streams=STREAMS).ok
    with target.unit_of_work() as uow:
        assert uow.commands.output("t1", made["commands"][0].id) == "line 1\nline 2\nline 3\n"


def test_extra_records_at_the_target_are_reported_not_pruned(
    source: SqliteBackend, target: DataBackend
) -> None:
    _seed(source, "t1")
    assert _run(source, target, tenants=["t1"]).ok
    uow: Any
    with target.unit_of_work() as uow:
        uow.vms.upsert(make_vm("t1"))
        uow.commit()
    report = _run(source, target, tenants=["t1"], prune=True)
    assert not report.ok
    assert [(p.stream, "no delete" in p.reason) for p in report.problems] == [("vms", True)]


def test_scan_reads_one_tenant_in_key_order(source: SqliteBackend) -> None:
    _seed(source, "t1")
    _seed(source, "t2")
    uow: Any
    with source.unit_of_work() as uow:
        scans: dict[str, Callable[..., Any]] = {
            "tokens": uow.tokens.scan,
            "vms": uow.vms.scan,
            "leases": uow.leases.scan,
            "agents": uow.agents.scan,
            "commands": uow.commands.scan,
            "entitlements": uow.licences.scan_entitlements,
        }
        for name, scan in scans.items():
            page = scan("t1", limit=100)
            keys = [getattr(r, "vm_uuid", None) or getattr(r, "user_id", None) for r in page]
            if name not in ("vms", "entitlements"):
                keys = [r.id for r in page]
            assert keys == sorted(keys), name
            assert all(r.tenant_id == "t1" for r in page), name
            assert scan("t1", after=keys[0], limit=100) == page[1:], name
        releases = uow.releases.scan("t1", limit=2)
        assert [r.id for r in releases] == sorted(r.id for r in releases)
        assert all(r.tenant_id == "t1" for r in uow.releases.scan("t1", limit=100))
        assert uow.audit.scan("t1", after=releases[0].id + 10_000, limit=5) == []
