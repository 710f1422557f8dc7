"""``modify`` on a real PostgreSQL keeps the port's rules for leases, agents and commands (one
helper, :mod:`botmox_core.ports.modify`): a change must return the same model with the same id
and tenant, and a change that leaves the record equal writes nothing.

Writes are observed out of band: every UPDATE gives the row a new version, so its ``xmin``
(the id of the transaction that wrote it) changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import psycopg
import pytest
from botmox_supabase.backend import PostgresDataBackend

from botmox_core.errors import BadRequestError
from botmox_core.testing.agents import make_agent, make_command
from botmox_core.testing.repository import make_lease

TABLES = {"leases": "botmox.leases", "agents": "botmox.agents", "commands": "botmox.commands"}


def _seed(backend: PostgresDataBackend, tenant: str) -> dict[str, Any]:
    agent = make_agent(tenant)
    records = {
        "leases": make_lease(tenant),
        "agents": agent,
        "commands": make_command(tenant, agent.id),
    }
    with backend.unit_of_work() as uow:
        uow.agents.add(agent)
        uow.leases.add(records["leases"])
        uow.commands.add(records["commands"])
        uow.commit()
    return records


def _version(sql: psycopg.Connection, aggregate: str, record: Any) -> str:
    row = sql.execute(
        f"select xmin::text from {TABLES[aggregate]} where tenant_id = %s and id = %s",
        (record.tenant_id, record.id),
    ).fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize("aggregate", sorted(TABLES))
def test_an_unchanged_record_is_not_written(
    pg_backend: PostgresDataBackend, sql: psycopg.Connection, aggregate: str
) -> None:
    """Before: the lease ``modify`` rewrote the row whatever ``change`` returned."""
    stored = _seed(pg_backend, "tenant-modify")[aggregate]
    before = _version(sql, aggregate, stored)
    with pg_backend.unit_of_work() as uow:
        got = getattr(uow, aggregate).modify(stored.tenant_id, stored.id, attrs.evolve)
        uow.commit()
    assert got == stored
    assert _version(sql, aggregate, stored) == before, "no new row version"
    field = {"leases": "version", "agents": "name", "commands": "error"}[aggregate]
    with pg_backend.unit_of_work() as uow:
        got = getattr(uow, aggregate).modify(
            stored.tenant_id, stored.id, lambda cur: attrs.evolve(cur, **{field: "changed"})
        )
        uow.commit()
    assert getattr(got, field) == "changed"
    assert _version(sql, aggregate, stored) != before


@pytest.mark.parametrize("aggregate", sorted(TABLES))
@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(lambda cur: {"id": cur.id}, "change must return", id="not-a-model"),
        pytest.param(lambda cur: None, "change must return", id="none"),
        pytest.param(lambda cur: attrs.evolve(cur, tenant_id="other"), "id or tenant", id="tenant"),
        pytest.param(lambda cur: attrs.evolve(cur, id=cur.id + "x"), "id or tenant", id="id"),
    ],
)
def test_a_change_that_breaks_the_rules_is_refused_and_writes_nothing(
    pg_backend: PostgresDataBackend,
    sql: psycopg.Connection,
    aggregate: str,
    change: Callable[[Any], Any],
    message: str,
) -> None:
    """Before: the lease ``modify`` skipped the type check (an ``AttributeError``, a 500)."""
    stored = _seed(pg_backend, "tenant-modify")[aggregate]
    before = _version(sql, aggregate, stored)
    with pytest.raises(BadRequestError, match=message), pg_backend.unit_of_work() as uow:
        getattr(uow, aggregate).modify(stored.tenant_id, stored.id, change)
        uow.commit()
    assert _version(sql, aggregate, stored) == before
    with pg_backend.unit_of_work() as uow:
        assert getattr(uow, aggregate).get(stored.tenant_id, stored.id) == stored
