"""Row-level security, exercised for real: connected as Supabase's ``authenticated`` role with
tenant A's JWT claims (``request.jwt.claims`` + ``SET ROLE``, as PostgREST does), no query on any
table returns a row of tenant B, and inserts/updates/deletes of tenant B's rows are refused —
with the shipped grants, and even with every table privilege granted (as Supabase grants on
``public`` by default), because there is no write policy at all."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg import sql

HASH = "0123456789abcdef" * 4

# table -> (insert of one row for %(tenant)s with unique %(key)s, update touching %(tenant)s rows)
TABLES: dict[str, tuple[str, str]] = {
    "api_tokens": (
        "insert into botmox.api_tokens (id, tenant_id, role, token_hash, created_at)"
        " values (%(key)s, %(tenant)s, 'admin', %(hash)s, now())",
        "update botmox.api_tokens set revoked_at = null, label = 'x' where tenant_id = %(tenant)s",
    ),
    "vms": (
        "insert into botmox.vms (tenant_id, vm_uuid, user_id, status, created_at, updated_at)"
        " values (%(tenant)s, %(key)s, 'user-1', 'revoked', now(), now())",
        "update botmox.vms set status = 'active' where tenant_id = %(tenant)s",
    ),
    "licences": (
        "insert into botmox.licences (tenant_id, status, updated_at)"
        " values (%(tenant)s, 'suspended', now())",
        "update botmox.licences set status = 'active' where tenant_id = %(tenant)s",
    ),
    "entitlements": (
        "insert into botmox.entitlements (tenant_id, user_id, modules, updated_at)"
        " values (%(tenant)s, %(key)s, '{fishing}', now())",
        "update botmox.entitlements set modules = '{*}' where tenant_id = %(tenant)s",
    ),
    "leases": (
        "insert into botmox.leases (id, tenant_id, user_id, vm_uuid, module, status, token_hash,"
        " issued_at, expires_at) values (%(key)s, %(tenant)s, 'user-1', 'vm-00001', 'fishing',"
        " 'revoked', %(hash)s, now(), now() + interval '5 minutes')",
        "update botmox.leases set status = 'active' where tenant_id = %(tenant)s",
    ),
    "releases": (
        "insert into botmox.releases (tenant_id, module, platform, channel, version, object_key,"
        " sha256, size_bytes, status, created_at) values (%(tenant)s, 'fishing', 'windows',"
        " 'stable', %(key)s, %(key)s, %(hash)s, 10, 'disabled', now())",
        "update botmox.releases set status = 'active' where tenant_id = %(tenant)s",
    ),
    "assignments": (
        "insert into botmox.assignments (tenant_id, user_id, module, platform, channel,"
        " release_id, assigned_at) values (%(tenant)s, %(key)s, 'fishing', 'windows', 'stable',"
        " (select min(id) from botmox.releases where tenant_id = %(tenant)s), now())",
        "update botmox.assignments set release_id = 999 where tenant_id = %(tenant)s",
    ),
    "download_audit": (
        "insert into botmox.download_audit (tenant_id, event, result, created_at)"
        " values (%(tenant)s, 'resolve_denied', 'denied', now())",
        "update botmox.download_audit set result = 'allowed' where tenant_id = %(tenant)s",
    ),
    "agents": (
        "insert into botmox.agents (id, tenant_id, status, created_at, pairing_expires_at,"
        " token_hash) values (%(key)s, %(tenant)s, 'active', now(), now(), %(hash)s)",
        "update botmox.agents set status = 'pending' where tenant_id = %(tenant)s",
    ),
    "commands": (
        "insert into botmox.commands (id, tenant_id, agent_id, command_type, status, queued_at,"
        " expires_at, updated_at, execution_timeout_seconds) values (%(key)s, %(tenant)s,"
        " (select min(id) from botmox.agents where tenant_id = %(tenant)s), 'proxmox.start',"
        " 'queued', now(), now() + interval '5 minutes', now(), 60)",
        "update botmox.commands set status = 'dispatched' where tenant_id = %(tenant)s",
    ),
    "command_output": (
        "insert into botmox.command_output (tenant_id, command_id, seq, data) values"
        " (%(tenant)s, (select min(id) from botmox.commands where tenant_id = %(tenant)s),"
        " (select count(*) from botmox.command_output where tenant_id = %(tenant)s),"
        " convert_to(%(key)s, 'UTF8'))",
        "update botmox.command_output set data = '\\x00' where tenant_id = %(tenant)s",
    ),
}

# The domain data tables (migration 20261201000000): eight collections, the bot history, the
# finance aggregates and the settings tree.
for _collection in (
    "resources_licenses",
    "resources_proxies",
    "resources_subscriptions",
    "workspace_notes",
    "workspace_calendar_events",
    "workspace_kanban_tasks",
    "bots",
    "finance_operations",
):
    TABLES[_collection] = (
        f"insert into botmox.{_collection} (tenant_id, id, data, search) values"
        " (%(tenant)s, %(key)s, '{\"name\": \"x\"}', '\x1fx\x1f')",
        f"update botmox.{_collection} set data = '{{}}' where tenant_id = %(tenant)s",
    )
# The narrow search table (migration 20261205000000): filled by the collection tables' triggers
# (the rows above put two per tenant and collection there), and here two more of its own.
TABLES["domain_search"] = (
    "insert into botmox.domain_search (tenant_id, collection, id, search) values"
    " (%(tenant)s, 'bots', %(key)s, '\x1fx\x1f')",
    "update botmox.domain_search set search = '' where tenant_id = %(tenant)s",
)
TABLES.update(
    {
        "bot_lifecycle_log": (
            "insert into botmox.bot_lifecycle_log (tenant_id, id, bot_id, type, message,"
            " timestamp_ms) values (%(tenant)s, %(key)s, 'bot-1', 'ban', 'banned', 1)",
            "update botmox.bot_lifecycle_log set message = 'x' where tenant_id = %(tenant)s",
        ),
        "bot_archive": (
            "insert into botmox.bot_archive (tenant_id, id, bot_id, archived_at_ms)"
            " values (%(tenant)s, %(key)s, 'bot-1', 1)",
            "update botmox.bot_archive set reason = 'x' where tenant_id = %(tenant)s",
        ),
        "finance_aggregates": (
            "insert into botmox.finance_aggregates (tenant_id, key, data) values (%(tenant)s,"
            " (select case when count(*) = 0 then 'daily_stats' else 'gold_price_history' end"
            " from botmox.finance_aggregates where tenant_id = %(tenant)s), '{}')",
            "update botmox.finance_aggregates set data = '{}' where tenant_id = %(tenant)s",
        ),
        "app_settings": (
            "insert into botmox.app_settings (tenant_id, data) values (%(tenant)s, '{}')",
            "update botmox.app_settings set data = '{}' where tenant_id = %(tenant)s",
        ),
    }
)
# The vault (migration 20261202000000): secrets, their versions, bindings (in this order: a
# version and a binding reference a secret of their tenant).
TABLES.update(
    {
        "vault_secrets": (
            "insert into botmox.vault_secrets (tenant_id, id, label, alg, version, created_at,"
            " updated_at) values (%(tenant)s, gen_random_uuid()::text, %(key)s, 'aes-256-gcm', 1,"
            " now(), now())",
            "update botmox.vault_secrets set label = 'x' where tenant_id = %(tenant)s",
        ),
        "vault_secret_versions": (
            "insert into botmox.vault_secret_versions (tenant_id, secret_id, version, alg,"
            " created_at, envelope) values (%(tenant)s, (select min(id) from botmox.vault_secrets"
            " where tenant_id = %(tenant)s), (select count(*) + 1 from"
            " botmox.vault_secret_versions where tenant_id = %(tenant)s), 'aes-256-gcm', now(),"
            " '{}')",
            "update botmox.vault_secret_versions set envelope = null where tenant_id = %(tenant)s",
        ),
        "vault_bindings": (
            "insert into botmox.vault_bindings (tenant_id, scope_type, scope_id, field_name, id,"
            " secret_ref, created_at, updated_at) values (%(tenant)s, 'vm_settings',"
            " 'vmgenerator', %(key)s, %(key)s, (select min(id) from botmox.vault_secrets where"
            " tenant_id = %(tenant)s), now(), now())",
            "update botmox.vault_bindings set scope_id = 'x' where tenant_id = %(tenant)s",
        ),
    }
)
#: Tables holding one row per tenant.
SINGLE_ROW = {"licences", "app_settings"}


def _params(tenant: str) -> dict[str, str]:
    return {"tenant": tenant, "key": f"k-{secrets.token_hex(6)}", "hash": secrets.token_hex(32)}


def _dump(conn: psycopg.Connection[Any], table: str, tenant: str) -> list[tuple[Any, ...]]:
    query = sql.SQL("select * from {} where tenant_id = %s order by 1, 2").format(
        sql.Identifier("botmox", table)
    )
    return conn.execute(query, (tenant,)).fetchall()


@pytest.fixture
def tenants(database_url: str) -> Iterator[tuple[str, str]]:
    """Tenants A and B, each with two rows in every table (written as the superuser)."""
    a, b = f"tenant-a-{secrets.token_hex(4)}", f"tenant-b-{secrets.token_hex(4)}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        for table, (insert, _) in TABLES.items():
            for tenant in (a, b):
                for _ in range(1 if table in SINGLE_ROW else 2):
                    conn.execute(insert.encode(), _params(tenant))
    yield a, b


def _as_authenticated(conn: psycopg.Connection[Any], claims: dict[str, Any]) -> None:
    """What PostgREST does per request: claims as a transaction-local setting, then the role."""
    conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
    conn.execute("set local role authenticated")


def _claims(tenant: str, *, in_app_metadata: bool = False) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": "user-1", "role": "authenticated", "aud": "authenticated"}
    if in_app_metadata:
        claims["app_metadata"] = {"tenant_id": tenant}
    else:
        claims["tenant_id"] = tenant
    return claims


def _refused(conn: psycopg.Connection[Any], statement: str, params: dict[str, str]) -> int:
    """Run ``statement`` in a savepoint; the rows it touched, or -1 when the database refused."""
    try:
        with conn.transaction():
            return conn.execute(statement.encode(), params).rowcount
    except pg_errors.InsufficientPrivilege:
        return -1


@pytest.mark.parametrize("table", sorted(TABLES))
def test_authenticated_tenant_sees_and_writes_only_its_own_rows(
    table: str, database_url: str, tenants: tuple[str, str]
) -> None:
    a, b = tenants
    insert, update = TABLES[table]
    with psycopg.connect(database_url, autocommit=True) as admin:
        b_before = _dump(admin, table, b)
        a_before = _dump(admin, table, a)
    assert b_before and a_before

    with psycopg.connect(database_url) as conn:
        # Reads: tenant A's rows, none of B's, whichever JWT shape carries the tenant.
        for claims in (_claims(a), _claims(a, in_app_metadata=True)):
            with conn.transaction(force_rollback=True):
                _as_authenticated(conn, claims)
                seen = conn.execute(
                    sql.SQL("select tenant_id from {}").format(sql.Identifier("botmox", table))
                ).fetchall()
                assert sorted(t for (t,) in seen) == [a] * len(a_before)
                filtered = conn.execute(
                    sql.SQL("select count(*) from {} where tenant_id = %s").format(
                        sql.Identifier("botmox", table)
                    ),
                    (b,),
                ).fetchone()
                assert filtered == (0,)

        # Writes with the shipped grants: refused.
        delete = f"delete from botmox.{table} where tenant_id = %(tenant)s"
        with conn.transaction(force_rollback=True):
            _as_authenticated(conn, _claims(a))
            assert _refused(conn, insert, _params(b)) == -1
            assert _refused(conn, update, {"tenant": b}) == -1
            assert _refused(conn, delete, {"tenant": b}) == -1

        # Writes with every privilege granted (Supabase's default grants on `public`): row-level
        # security alone still refuses tenant B's rows (and, read-only model, A's as well).
        with conn.transaction(force_rollback=True):
            conn.execute(
                sql.SQL("grant all on {} to authenticated").format(sql.Identifier("botmox", table))
            )
            _as_authenticated(conn, _claims(a))
            assert _refused(conn, insert, _params(b)) == -1
            assert _refused(conn, insert, _params(a)) == -1
            assert _refused(conn, update, {"tenant": b}) == 0
            assert _refused(conn, delete, {"tenant": b}) == 0

    with psycopg.connect(database_url, autocommit=True) as admin:
        assert _dump(admin, table, b) == b_before
        assert _dump(admin, table, a) == a_before
        grants = admin.execute(
            "select privilege_type from information_schema.role_table_grants"
            " where table_schema = 'botmox' and table_name = %s and grantee = 'authenticated'",
            (table,),
        ).fetchall()
        assert set(grants) <= {("SELECT",)}


@pytest.mark.parametrize(
    "claims",
    [
        {},
        {"sub": "user-1", "role": "authenticated"},
        {"sub": "user-1", "user_metadata": {"tenant_id": "{b}"}},
        {"sub": "user-1", "tenant_id": ""},
    ],
    ids=["no-claims", "no-tenant", "user-metadata-is-not-trusted", "empty-tenant"],
)
def test_without_a_trusted_tenant_claim_nothing_is_visible(
    claims: dict[str, Any], database_url: str, tenants: tuple[str, str]
) -> None:
    _, b = tenants
    claims = json.loads(json.dumps(claims).replace("{b}", b))
    with psycopg.connect(database_url) as conn:
        _as_authenticated(conn, claims)
        for table in TABLES:
            count = conn.execute(
                sql.SQL("select count(*) from {}").format(sql.Identifier("botmox", table))
            ).fetchone()
            assert count == (0,), table


def test_anon_gets_nothing(database_url: str, tenants: tuple[str, str]) -> None:
    with psycopg.connect(database_url) as conn:
        for table in TABLES:
            with pytest.raises(pg_errors.InsufficientPrivilege), conn.transaction():
                conn.execute("set local role anon")
                conn.execute(sql.SQL("select 1 from {}").format(sql.Identifier("botmox", table)))


def test_token_hashes_are_not_readable_by_users(
    database_url: str, tenants: tuple[str, str]
) -> None:
    a, _ = tenants
    with psycopg.connect(database_url) as conn:
        _as_authenticated(conn, _claims(a))
        rows = conn.execute("select id, role, label from botmox.api_tokens").fetchall()
        assert len(rows) == 2
        with pytest.raises(pg_errors.InsufficientPrivilege):
            conn.execute("select token_hash from botmox.api_tokens")


def test_agent_credential_hashes_are_not_readable_by_users(
    database_url: str, tenants: tuple[str, str]
) -> None:
    a, _ = tenants
    with psycopg.connect(database_url) as conn:
        _as_authenticated(conn, _claims(a))
        rows = conn.execute("select id, status, last_seen_at from botmox.agents").fetchall()
        assert len(rows) == 2
        for column in ("token_hash", "pairing_code_hash"):
            with pytest.raises(pg_errors.InsufficientPrivilege), conn.transaction():
                conn.execute(f"select {column} from botmox.agents")


def test_service_role_bypasses_rls_and_sees_every_tenant(
    database_url: str, tenants: tuple[str, str]
) -> None:
    a, b = tenants
    with psycopg.connect(database_url) as conn:
        conn.execute("set local role service_role")
        for table in TABLES:
            seen = {
                t
                for (t,) in conn.execute(
                    sql.SQL("select tenant_id from {}").format(sql.Identifier("botmox", table))
                ).fetchall()
            }
            assert {a, b} <= seen, table


def test_policies_evaluate_the_claim_once_per_statement(database_url: str) -> None:
    """The tenant function is wrapped in ``(select ...)`` (an InitPlan), and every policy
    column is the leading column of an index."""
    with psycopg.connect(database_url) as conn:
        policies = conn.execute(
            "select tablename, qual from pg_policies where schemaname = 'botmox'"
        ).fetchall()
        assert {t for t, _ in policies} == set(TABLES)
        for table, qual in policies:
            assert "( SELECT botmox.jwt_tenant_id()" in qual, (table, qual)
        _as_authenticated(conn, _claims("tenant-x"))
        plan = "\n".join(
            row[0] for row in conn.execute("explain select * from botmox.leases").fetchall()
        )
        assert "InitPlan" in plan
        conn.rollback()
        leading = {
            table
            for (table,) in conn.execute(
                "select c.relname from pg_index i join pg_class c on c.oid = i.indrelid"
                " join pg_attribute a on a.attrelid = c.oid and a.attnum = i.indkey[0]"
                " where c.relnamespace = 'botmox'::regnamespace and a.attname = 'tenant_id'"
            ).fetchall()
        }
        assert leading >= set(TABLES)


def test_list_indexes_read_only_the_tenants_rows(database_url: str) -> None:
    """As tenant A, the list's statements through the words trigram index (``q=vm-17``,
    migration 20261206000000) and the ``level`` sort index see A's bots only, whichever tenant
    they name, and so does a bare query on the indexed expression."""
    from botmox_supabase import domain_listing

    from botmox_core.domain.listing import ListQuery, search_text
    from botmox_core.domain.records import Collection

    a, b = f"tenant-a-{secrets.token_hex(4)}", f"tenant-b-{secrets.token_hex(4)}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        for tenant, bots in ((a, 3), (b, 5)):
            for index in range(bots):
                data = {"name": f"{tenant}-{index}", "vm_name": "vm-17", "level": index}
                admin.execute(
                    "insert into botmox.bots (tenant_id, id, data, search) values (%s, %s, %s, %s)",
                    (tenant, f"b{index}", json.dumps(data), search_text(f"b{index}", data)),
                )
    params = {
        "pattern": domain_listing.like_pattern("vm-17"),
        "words": domain_listing.like_pattern(domain_listing.search_words("vm-17")),
        "q": "vm-17",
        "max_ids": 100,
        "limit": 50,
        "offset": 0,
    }
    by_level = domain_listing.list_statement(
        Collection.BOTS, ListQuery(q="vm-17", sort="level", descending=True)
    )
    with psycopg.connect(database_url) as conn:
        _as_authenticated(conn, _claims(a))
        conn.execute("set local enable_seqscan = off")
        # factor 0: the page among the matching ids; 1e9: in sort-index order.
        for factor in (0.0, 1e9):
            for tenant, seen in ((a, 3), (b, 0)):
                got = conn.execute(
                    by_level, {**params, "tenant": tenant, "factor": factor}
                ).fetchall()
                assert got[0] == (None, None, seen)
                assert [r[0] for r in got[1:]] == [f"b{i}" for i in reversed(range(seen))]
        rows = conn.execute(
            "select distinct tenant_id from botmox.domain_search"
            " where botmox.domain_search_words(search) like '%vmq17%'"
        ).fetchall()
        assert rows == [(a,)]


def test_tenant_rows_estimate_tells_a_tenant_nothing_of_another(database_url: str) -> None:
    """``botmox.domain_tenant_rows`` (migration 20261208000000) is granted to ``authenticated``.
    As tenant A it names no tenant's share, A's own or B's: ``pg_stats`` hides the statistics of a
    table whose row-level security applies to the caller, so every tenant gets the table-wide
    upper bound (``pg_class.reltuples``, which PostgreSQL shows every role). The server's role
    sees the shares. An unknown or hostile table name is no table."""
    a, b = f"tenant-a-{secrets.token_hex(4)}", f"tenant-b-{secrets.token_hex(4)}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        for tenant, bots in ((a, 30), (b, 10)):
            for index in range(bots):
                admin.execute(
                    "insert into botmox.bots (tenant_id, id, data, search)"
                    " values (%s, %s, '{}', '')",
                    (tenant, f"b{index}"),
                )
        admin.execute("analyze botmox.bots")
    with psycopg.connect(database_url) as conn:
        conn.execute("set local role service_role")
        estimate = "select botmox.domain_tenant_rows(%s, %s)"
        assert conn.execute(estimate, ("bots", b)).fetchone() == (10,)
        conn.rollback()
        _as_authenticated(conn, _claims(a))
        for tenant in (a, b, "nobody"):
            assert conn.execute(estimate, ("bots", tenant)).fetchone() == (40,)
        for name in ["bots\n", "bots; select 1", "../bots", "pg_authid"]:
            assert conn.execute(estimate, (name, a)).fetchone() == (None,)
