"""The agent command bus repositories on a real PostgreSQL: what the SQL itself guarantees
(constraints, the state guard, lossless output) and claiming under concurrency — 10,000 commands
claimed by three replicas at once, each with its own backend (own connection pool), with zero
double claims and none lost."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs
import psycopg
import pytest
from botmox_supabase.backend import PostgresDataBackend

from botmox_core.errors import BadRequestError, DuplicateError, InvalidCommandTransitionError
from botmox_core.models import Agent, AgentStatus, Command, CommandStatus
from botmox_core.ports import supports_agents

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
BackendFactory = Callable[..., PostgresDataBackend]


def make_agent(tenant: str, **fields: object) -> Agent:
    values: dict[str, object] = {
        "id": f"agt_{secrets.token_hex(12)}",
        "tenant_id": tenant,
        "status": AgentStatus.ACTIVE,
        "created_at": NOW,
        "pairing_expires_at": NOW + timedelta(minutes=15),
        "token_hash": secrets.token_hex(32),
        "registered_at": NOW,
        "last_seen_at": NOW,
        "capabilities": ("proxmox", "syncthing"),
    }
    values.update(fields)
    return Agent(**values)  # type: ignore[arg-type]


def make_command(agent: Agent, queued_at: datetime = NOW, **fields: object) -> Command:
    values: dict[str, object] = {
        "id": f"cmd_{secrets.token_hex(16)}",
        "tenant_id": agent.tenant_id,
        "agent_id": agent.id,
        "command_type": "proxmox.start",
        "status": CommandStatus.QUEUED,
        "queued_at": queued_at,
        "expires_at": queued_at + timedelta(minutes=5),
        "updated_at": queued_at,
        "payload": {"vmid": 101},
    }
    values.update(fields)
    return Command(**values)  # type: ignore[arg-type]


def store(backend: PostgresDataBackend, *records: Agent | Command) -> None:
    with backend.unit_of_work() as uow:
        for record in records:
            if isinstance(record, Agent):
                uow.agents.add(record)
            else:
                uow.commands.add(record)
        uow.commit()


def test_units_carry_the_agent_repositories(pg_backend: PostgresDataBackend) -> None:
    assert supports_agents(pg_backend)  # the declaration: no unit made, no connection taken
    with pg_backend.unit_of_work() as unit:
        agents = unit.agents
        assert agents.get("t", "agt_x") is None
    with pytest.raises(RuntimeError, match="outside its with-block"):
        agents.get("t", "agt_x")


def test_agent_round_trip_and_credential_lookups(pg_backend: PostgresDataBackend) -> None:
    pending = make_agent(
        "tenant-a",
        status=AgentStatus.PENDING,
        token_hash=None,
        registered_at=None,
        last_seen_at=None,
        pairing_code_hash=secrets.token_hex(32),
        capabilities=(),
        name="rack 1",
    )
    active = make_agent("tenant-a", created_at=NOW + timedelta(seconds=1), public_key="A" * 44)
    store(pg_backend, pending, active)
    with pg_backend.unit_of_work() as uow:
        assert uow.agents.get("tenant-a", active.id) == active
        assert uow.agents.get("tenant-b", active.id) is None
        assert uow.agents.get_by_pairing_hash(str(pending.pairing_code_hash)) == pending
        assert uow.agents.get_by_token_hash(str(active.token_hash)) == active
        assert [a.id for a in uow.agents.list("tenant-a")] == [active.id, pending.id]
        assert [a.id for a in uow.agents.list("tenant-a", AgentStatus.PENDING)] == [pending.id]
        assert uow.agents.list("tenant-b") == []
        revoked = uow.agents.modify(
            "tenant-a",
            active.id,
            lambda a: attrs.evolve(a, status=AgentStatus.REVOKED, revoked_at=NOW),
        )
        assert revoked is not None and revoked.status is AgentStatus.REVOKED
        assert uow.agents.modify("tenant-b", active.id, lambda a: a) is None
        uow.commit()


def test_agent_rules_are_constraints(pg_backend: PostgresDataBackend) -> None:
    agent = make_agent("tenant-a")
    store(pg_backend, agent)
    with pytest.raises(DuplicateError, match="token hash"):
        store(pg_backend, make_agent("tenant-b", token_hash=agent.token_hash))
    with pytest.raises(BadRequestError, match="agents_token_hash_check"):
        store(pg_backend, make_agent("tenant-a", token_hash="not-a-hash"))
    with pytest.raises(BadRequestError, match="agent status 'retired'"):
        store(pg_backend, make_agent("tenant-a", status="retired"))
    with pg_backend.unit_of_work() as uow, pytest.raises(BadRequestError, match="command status"):
        uow.commands.list("tenant-a", statuses=["lost"])  # type: ignore[list-item]


def test_idempotency_key_is_unique_per_tenant_and_agent(pg_backend: PostgresDataBackend) -> None:
    one, two = make_agent("tenant-a"), make_agent("tenant-a")
    store(pg_backend, one, two)
    store(pg_backend, make_command(one, idempotency_key="k-1"))
    with pytest.raises(DuplicateError, match="idempotency key") as caught:
        store(pg_backend, make_command(one, idempotency_key="k-1"))
    assert caught.value.details == {"constraint": "commands_idempotency_key"}
    store(pg_backend, make_command(two, idempotency_key="k-1"))  # another agent: fine
    store(pg_backend, make_command(one), make_command(one))  # no key: never deduplicated
    with pg_backend.unit_of_work() as uow:
        found = uow.commands.find_by_idempotency_key("tenant-a", one.id, "k-1")
        assert found is not None and found.agent_id == one.id
        assert uow.commands.find_by_idempotency_key("tenant-b", one.id, "k-1") is None


def test_a_final_state_is_final_in_the_database(
    pg_backend: PostgresDataBackend, sql: psycopg.Connection
) -> None:
    agent = make_agent("tenant-a")
    done = make_command(agent, status=CommandStatus.SUCCEEDED, finished_at=NOW)
    queued = make_command(agent)
    store(pg_backend, agent, done, queued)
    with (
        pg_backend.unit_of_work() as uow,
        pytest.raises(InvalidCommandTransitionError, match="final state"),
    ):
        uow.commands.modify(
            "tenant-a", done.id, lambda c: attrs.evolve(c, status=CommandStatus.QUEUED)
        )
    for status in ("queued", "failed", "running"):
        with pytest.raises(psycopg.errors.CheckViolation, match="final state"):
            sql.execute("update botmox.commands set status = %s where id = %s", (status, done.id))
    # Other changes pass: moves between unfinished states (the services check which are
    # legal), and updates of a finished command that keep its state.
    with pg_backend.unit_of_work() as uow:
        dispatched = uow.commands.modify(
            "tenant-a", queued.id, lambda c: attrs.evolve(c, status=CommandStatus.DISPATCHED)
        )
        assert dispatched is not None and dispatched.status is CommandStatus.DISPATCHED
        touched = uow.commands.modify(
            "tenant-a", done.id, lambda c: attrs.evolve(c, output_bytes=5)
        )
        assert touched is not None and touched.output_bytes == 5
        uow.commit()


def test_output_is_stored_without_loss(pg_backend: PostgresDataBackend) -> None:
    agent = make_agent("tenant-a")
    command = make_command(agent, status=CommandStatus.DISPATCHED, dispatched_at=NOW)
    store(pg_backend, agent, command)
    chunks = ["line 1\n", "nul \x00 byte, ünïcödé, emoji \U0001f600\n", "lone \ud800 surrogate"]
    with pg_backend.unit_of_work() as uow:
        for seq, chunk in reversed(list(enumerate(chunks))):
            assert uow.commands.append_output("tenant-a", command.id, seq, chunk) is True
        assert uow.commands.append_output("tenant-a", command.id, 1, "resent") is False
        uow.commit()
    with pg_backend.unit_of_work() as uow:
        assert uow.commands.output("tenant-a", command.id) == "".join(chunks)
        assert uow.commands.output("tenant-b", command.id) == ""
        with pytest.raises(BadRequestError, match="seq"):
            uow.commands.append_output("tenant-a", command.id, -1, "x")
        with pytest.raises(BadRequestError):
            uow.commands.append_output("tenant-b", command.id, 9, "x")  # not tenant B's command


def test_claim_takes_the_oldest_unexpired_queued_commands(pg_backend: PostgresDataBackend) -> None:
    agent, other = make_agent("tenant-a"), make_agent("tenant-a")
    commands = [make_command(agent, NOW + timedelta(seconds=i)) for i in range(5)]
    expired = make_command(agent, NOW - timedelta(hours=1))
    running = make_command(agent, status=CommandStatus.RUNNING, started_at=NOW)
    store(pg_backend, agent, other, *commands, expired, running, make_command(other))
    at = NOW + timedelta(seconds=30)
    with pg_backend.unit_of_work() as uow:
        first = uow.commands.claim("tenant-a", agent.id, at, 3)
        second = uow.commands.claim("tenant-a", agent.id, at, 10)
        none = uow.commands.claim("tenant-b", agent.id, at, 10)
        uow.commit()
    assert [c.id for c in first] == [c.id for c in commands[:3]]
    assert [c.id for c in second] == [c.id for c in commands[3:]]
    assert none == []
    for claimed in (*first, *second):
        assert claimed.status is CommandStatus.DISPATCHED
        assert claimed.attempts == 1
        assert claimed.dispatched_at == at and claimed.updated_at == at
    with pg_backend.unit_of_work() as uow:
        assert uow.commands.get("tenant-a", expired.id).status is CommandStatus.QUEUED  # type: ignore[union-attr]
        assert uow.commands.count("tenant-a", agent.id, [CommandStatus.DISPATCHED]) == 5


def test_claim_uses_the_partial_queue_index(
    pg_backend: PostgresDataBackend, sql: psycopg.Connection
) -> None:
    agent = make_agent("tenant-a")
    store(pg_backend, agent)
    sql.execute(
        "insert into botmox.commands (id, tenant_id, agent_id, command_type, status, queued_at,"
        " expires_at, updated_at, execution_timeout_seconds)"
        " select 'cmd_' || i, 'tenant-a', %s, 'proxmox.start',"
        " case when i %% 100 = 0 then 'queued' else 'succeeded' end,"
        " now(), now() + interval '1 hour', now(), 60 from generate_series(1, 20000) as i",
        (agent.id,),
    )
    sql.execute("analyze botmox.commands")
    plan = "\n".join(
        row[0]
        for row in sql.execute(
            "explain select id from botmox.commands where tenant_id = 'tenant-a'"
            " and agent_id = %s and status = 'queued' and expires_at > now()"
            " order by queued_at, id limit 10 for update skip locked",
            (agent.id,),
        ).fetchall()
    )
    assert "commands_claim_idx" in plan, plan


def test_list_stale_finds_what_the_sweeper_must_settle(pg_backend: PostgresDataBackend) -> None:
    seen, lost = make_agent("tenant-a"), make_agent("tenant-b", last_seen_at=None)
    now = NOW + timedelta(minutes=10)
    late_queued = make_command(seen, NOW, expires_at=now)
    late_ack = make_command(
        seen,
        now - timedelta(minutes=1),
        status=CommandStatus.DISPATCHED,
        dispatched_at=now - timedelta(seconds=45),
    )
    overrun = make_command(
        seen,
        NOW,
        status=CommandStatus.RUNNING,
        started_at=now - timedelta(seconds=61),
        execution_timeout_seconds=60,
        expires_at=now + timedelta(hours=1),
    )
    orphan = make_command(
        lost,
        NOW,
        status=CommandStatus.RUNNING,
        started_at=now - timedelta(seconds=5),
        expires_at=now + timedelta(hours=1),
    )
    fine = [
        make_command(seen, now, expires_at=now + timedelta(minutes=5)),
        make_command(
            seen,
            now,
            status=CommandStatus.DISPATCHED,
            dispatched_at=now - timedelta(seconds=5),
            expires_at=now + timedelta(minutes=5),
        ),
        make_command(
            seen,
            NOW,
            status=CommandStatus.RUNNING,
            started_at=now - timedelta(seconds=5),
            expires_at=now + timedelta(minutes=5),
        ),
        make_command(seen, NOW, status=CommandStatus.FAILED, finished_at=NOW),
    ]
    store(pg_backend, seen, lost, late_queued, late_ack, overrun, orphan, *fine)
    with pg_backend.unit_of_work() as uow:
        stale = uow.commands.list_stale(
            now,
            dispatched_before=now - timedelta(seconds=30),
            agents_seen_before=NOW - timedelta(seconds=120),
        )
        assert {c.id for c in stale} == {late_queued.id, late_ack.id, overrun.id, orphan.id}
        assert (
            len(
                uow.commands.list_stale(
                    now,
                    dispatched_before=now - timedelta(seconds=30),
                    agents_seen_before=NOW - timedelta(seconds=120),
                    limit=2,
                )
            )
            == 2
        )


def test_list_filters_and_orders(pg_backend: PostgresDataBackend) -> None:
    agent, other = make_agent("tenant-a"), make_agent("tenant-a")
    older = make_command(agent, NOW)
    newer = make_command(agent, NOW + timedelta(seconds=1), status=CommandStatus.DISPATCHED)
    theirs = make_command(other, NOW + timedelta(seconds=2))
    store(pg_backend, agent, other, older, newer, theirs)
    with pg_backend.unit_of_work() as uow:
        assert [c.id for c in uow.commands.list("tenant-a")] == [theirs.id, newer.id, older.id]
        assert [c.id for c in uow.commands.list("tenant-a", agent_id=agent.id)] == [
            newer.id,
            older.id,
        ]
        assert [
            c.id for c in uow.commands.list("tenant-a", statuses=[CommandStatus.QUEUED], limit=1)
        ] == [theirs.id]
        assert uow.commands.list("tenant-a", statuses=[]) == []
        assert uow.commands.list("tenant-b") == []
        assert uow.commands.count("tenant-a", agent.id, []) == 0


# -- concurrency -------------------------------------------------------------------------------

CLAIM_COMMANDS = 10_000
CLAIM_REPLICAS = 3


def test_ten_thousand_commands_three_replicas_no_double_claims(
    database_url: str, make_backend: BackendFactory, sql: psycopg.Connection
) -> None:
    """Three replicas (each its own backend and pool, two claiming threads each) drain one
    agent's queue of 10,000 commands at once: every command is claimed exactly once."""
    setup = make_backend(database_url)
    agent = make_agent("tenant-a")
    store(setup, agent)
    sql.execute(
        "insert into botmox.commands (id, tenant_id, agent_id, command_type, status, queued_at,"
        " expires_at, updated_at, execution_timeout_seconds)"
        " select 'cmd_' || lpad(i::text, 6, '0'), 'tenant-a', %s, 'proxmox.start', 'queued',"
        " %s + i * interval '1 millisecond', %s + interval '1 day', %s, 60"
        " from generate_series(1, %s) as i",
        (agent.id, NOW, NOW, NOW, CLAIM_COMMANDS),
    )
    replicas = [make_backend(database_url, pool_max_size=2) for _ in range(CLAIM_REPLICAS)]
    claimed: list[list[str]] = [[] for _ in range(CLAIM_REPLICAS * 2)]
    errors: list[BaseException] = []
    start = threading.Barrier(CLAIM_REPLICAS * 2)

    def drain(slot: int, backend: PostgresDataBackend) -> None:
        try:
            start.wait()
            empty_in_a_row = 0
            while empty_in_a_row < 3:
                with backend.unit_of_work() as uow:
                    batch = uow.commands.claim("tenant-a", agent.id, NOW + timedelta(hours=1), 7)
                    uow.commit()
                claimed[slot].extend(c.id for c in batch)
                empty_in_a_row = 0 if batch else empty_in_a_row + 1
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=drain, args=(slot, replicas[slot % CLAIM_REPLICAS]))
        for slot in range(CLAIM_REPLICAS * 2)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    elapsed = time.perf_counter() - started
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    everything = [cid for ids in claimed for cid in ids]
    assert len(everything) == CLAIM_COMMANDS, "a command was lost or claimed twice"
    assert len(set(everything)) == CLAIM_COMMANDS, "double claim"
    per_replica = [
        sum(len(claimed[s]) for s in range(r, len(claimed), CLAIM_REPLICAS))
        for r in range(CLAIM_REPLICAS)
    ]
    assert all(n > 0 for n in per_replica), per_replica  # all replicas really competed
    rows = sql.execute(
        "select status, attempts, count(*) from botmox.commands group by 1, 2"
    ).fetchall()
    assert rows == [("dispatched", 1, CLAIM_COMMANDS)]
    print(
        f"\n{CLAIM_COMMANDS} claims by {CLAIM_REPLICAS} replicas in {elapsed:.2f} s;"
        f" per replica {per_replica}"
    )
