"""The vault on a real PostgreSQL: the conformance kit, row-level security with two tenants
connected as Supabase's ``authenticated`` role, the database's own refusals (a binding to
another tenant's secret), errors that never carry ciphertext, and a ``pg_dump`` of the schema
that holds the ciphertext but never the plaintext (the kit's at-rest check, fed the dump)."""

from __future__ import annotations

import json
import secrets
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest
from botmox_supabase.backend import PostgresDataBackend
from botmox_supabase.vault_repositories import VAULT_TABLES
from psycopg import errors as pg_errors

from botmox_core.errors import (
    BadRequestError,
    DatabaseError,
    DuplicateError,
)
from botmox_core.ops.backup import postgres_tool
from botmox_core.ports.vault import VaultUnitOfWork, supports_vault
from botmox_core.testing.vault import (
    RawVaultDump,
    VaultAtRestConformance,
    VaultRepositoryConformance,
    envelope_texts,
    make_aes_envelope,
    make_binding,
    make_secret,
    make_version,
)


class TestSupabaseVault(
    VaultRepositoryConformance[PostgresDataBackend], VaultAtRestConformance[PostgresDataBackend]
):
    concurrency_threads = 6

    @pytest.fixture
    def backend(
        self, database_url: str, make_backend: Callable[..., PostgresDataBackend]
    ) -> PostgresDataBackend:
        return make_backend(database_url)

    @pytest.fixture
    def second_backend(
        self, database_url: str, make_backend: Callable[..., PostgresDataBackend]
    ) -> PostgresDataBackend:
        return make_backend(database_url)

    @pytest.fixture
    def raw_vault_dump(self, database_url: str, tmp_path: Path) -> RawVaultDump:
        """The schema's dump, plain and custom format (as `botmox backup` takes it, read back
        through pg_restore)."""

        def dump() -> list[bytes]:
            plain = tmp_path / "botmox.sql"
            custom = tmp_path / "botmox.pgdump"
            for form, target in (("plain", plain), ("custom", custom)):
                done = subprocess.run(
                    [
                        postgres_tool("pg_dump"),
                        f"--format={form}",
                        "--schema=botmox",
                        f"--file={target}",
                        f"--dbname={database_url}",
                    ],
                    capture_output=True,
                    timeout=120,
                    check=False,
                )
                assert done.returncode == 0, done.stderr
            restored = subprocess.run(
                [postgres_tool("pg_restore"), "--file=-", str(custom)],
                capture_output=True,
                timeout=120,
                check=True,
            ).stdout
            return [plain.read_bytes(), restored]

        return dump


def _write(backend: PostgresDataBackend, action: Callable[[VaultUnitOfWork], Any]) -> Any:
    assert supports_vault(backend)
    with backend.unit_of_work() as uow:
        result = action(uow)
        uow.commit()
    return result


def _store(backend: PostgresDataBackend, tenant: str, **changes: Any) -> Any:
    secret = make_secret(tenant, **changes)
    version = make_version(secret)

    def add(uow: VaultUnitOfWork) -> None:
        uow.secrets.add(secret)
        uow.secrets.add_version(version)

    _write(backend, add)
    return secret, version


# -- row-level security ----------------------------------------------------------------------


def _as_authenticated(conn: psycopg.Connection[Any], tenant: str) -> None:
    """What PostgREST does per request: claims as a transaction-local setting, then the role."""
    claims = {"sub": "user-1", "role": "authenticated", "tenant_id": tenant}
    conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
    conn.execute("set local role authenticated")


@pytest.fixture
def two_tenants(pg_backend: PostgresDataBackend) -> dict[str, Any]:
    """Tenants A and B, each with a secret (two versions), a binding, stored by the backend."""
    stored: dict[str, Any] = {}
    for name in ("a", "b"):
        tenant = f"tenant-{name}-{secrets.token_hex(4)}"
        secret, first = _store(pg_backend, tenant)
        second = make_version(attrs.evolve(secret, version=2), make_aes_envelope())
        _write(pg_backend, lambda uow, v=second: uow.secrets.add_version(v))
        binding = make_binding(tenant, secret.id)
        _write(pg_backend, lambda uow, b=binding: uow.bindings.upsert(b))
        stored[name] = {"tenant": tenant, "secret": secret, "versions": (first, second)}
    return stored


def test_each_tenant_reads_only_its_own_vault_rows(
    database_url: str, two_tenants: dict[str, Any]
) -> None:
    a, b = two_tenants["a"], two_tenants["b"]
    with psycopg.connect(database_url) as conn:
        _as_authenticated(conn, a["tenant"])
        for table in VAULT_TABLES:
            seen = conn.execute(f"select tenant_id from botmox.{table}").fetchall()
            assert seen and {t for (t,) in seen} == {a["tenant"]}, table
            (count,) = conn.execute(
                f"select count(*) from botmox.{table} where tenant_id = %s",
                (b["tenant"],),
            ).fetchone() or (None,)
            assert count == 0, table
        ids = conn.execute("select id, label, version from botmox.vault_secrets").fetchall()
        assert ids == [(a["secret"].id, a["secret"].label, 1)]
        versions = conn.execute(
            "select secret_id, version, alg, recipients from botmox.vault_secret_versions"
            " order by version"
        ).fetchall()
        assert [(s, v) for s, v, _, _ in versions] == [(a["secret"].id, 1), (a["secret"].id, 2)]


def test_envelopes_are_not_readable_by_users(
    database_url: str, two_tenants: dict[str, Any]
) -> None:
    a = two_tenants["a"]
    with psycopg.connect(database_url) as conn:
        for statement in (
            "select envelope from botmox.vault_secret_versions",
            "select * from botmox.vault_secret_versions",
            "select envelope::text from botmox.vault_secret_versions where version = 1",
        ):
            with pytest.raises(pg_errors.InsufficientPrivilege), conn.transaction():
                _as_authenticated(conn, a["tenant"])
                conn.execute(statement)


def test_users_cannot_write_the_vault_even_with_every_privilege(
    database_url: str, two_tenants: dict[str, Any]
) -> None:
    a, b = two_tenants["a"], two_tenants["b"]
    before = _vault_dump(database_url)
    writes = [
        "update botmox.vault_secrets set label = 'x' where tenant_id = %(t)s",
        "update botmox.vault_secret_versions set envelope = null where tenant_id = %(t)s",
        "update botmox.vault_bindings set secret_ref = secret_ref where tenant_id = %(t)s",
        "delete from botmox.vault_bindings where tenant_id = %(t)s",
        "delete from botmox.vault_secrets where tenant_id = %(t)s",
    ]
    with psycopg.connect(database_url) as conn:
        for tenant in (a["tenant"], b["tenant"]):
            for statement in writes:
                # The shipped grants: refused outright.
                with pytest.raises(pg_errors.InsufficientPrivilege), conn.transaction():
                    _as_authenticated(conn, a["tenant"])
                    conn.execute(statement, {"t": tenant})
                # Every privilege granted (Supabase's defaults on `public`): RLS alone leaves
                # no row to touch, because there is no write policy.
                with conn.transaction(force_rollback=True):
                    for table in VAULT_TABLES:
                        conn.execute(f"grant all on botmox.{table} to authenticated")
                    _as_authenticated(conn, a["tenant"])
                    assert conn.execute(statement, {"t": tenant}).rowcount == 0
        with pytest.raises(pg_errors.InsufficientPrivilege), conn.transaction():
            _as_authenticated(conn, a["tenant"])
            conn.execute(
                "insert into botmox.vault_bindings (tenant_id, scope_type, scope_id, field_name,"
                " id, secret_ref, created_at, updated_at) values (%s, 'vm', 'x', 'y', 'z', %s,"
                " now(), now())",
                (a["tenant"], a["secret"].id),
            )
    assert _vault_dump(database_url) == before


def test_anon_gets_nothing(database_url: str, two_tenants: dict[str, Any]) -> None:
    with psycopg.connect(database_url) as conn:
        for table in VAULT_TABLES:
            with pytest.raises(pg_errors.InsufficientPrivilege), conn.transaction():
                conn.execute("set local role anon")
                conn.execute(f"select 1 from botmox.{table}")


def _vault_dump(dsn: str) -> list[Any]:
    with psycopg.connect(dsn) as conn:
        return [
            conn.execute(f"select * from botmox.{table} order by 1, 2, 3").fetchall()
            for table in VAULT_TABLES
        ]


# -- the database's own rules, errors without ciphertext --------------------------------------


def test_a_binding_to_another_tenants_secret_is_refused_by_the_database(
    pg_backend: PostgresDataBackend, two_tenants: dict[str, Any]
) -> None:
    a, b = two_tenants["a"], two_tenants["b"]
    for ref in (b["secret"].id, str(uuid.uuid4())):
        with pytest.raises(BadRequestError) as caught:
            _write(
                pg_backend,
                lambda uow, r=ref: uow.bindings.upsert(
                    make_binding(a["tenant"], r, field_name="f")
                ),
            )
        assert caught.value.message == (
            "the bound secret (secret_ref) does not exist for the tenant"
        )
        assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_errors_never_carry_the_envelope(
    pg_backend: PostgresDataBackend, two_tenants: dict[str, Any]
) -> None:
    a = two_tenants["a"]
    secret = a["secret"]
    # A version of a secret that does not exist: a foreign-key violation whose psycopg detail
    # would quote the row; and a malformed stored envelope read back.
    orphan = make_version(make_secret(a["tenant"]))
    with pytest.raises(BadRequestError) as caught:
        _write(pg_backend, lambda uow: uow.secrets.add_version(orphan))
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    text = f"{caught.value.message} {caught.value.details}"
    for value in envelope_texts(orphan.envelope):
        assert value not in text
    with pytest.raises(DuplicateError) as duplicate:
        _write(pg_backend, lambda uow: uow.secrets.add_version(a["versions"][0]))
    assert all(v not in duplicate.value.message for v in envelope_texts(a["versions"][0].envelope))

    with psycopg.connect(pg_backend.options.database_url, autocommit=True) as conn:
        conn.execute(
            "update botmox.vault_secret_versions set envelope = jsonb_set(envelope,"
            " '{recipients,0,enc}', '\"bm90IGJhc2U2NA\"') where tenant_id = %s and version = 1",
            (a["tenant"],),
        )
    with pytest.raises(DatabaseError) as malformed, pg_backend.unit_of_work() as uow:
        assert supports_vault(pg_backend)
        uow.secrets.get_version(a["tenant"], secret.id, 1)
    assert malformed.value.message == "a stored secret envelope is malformed"
    assert malformed.value.__cause__ is None


def test_constraints_refuse_bad_vault_rows(sql: psycopg.Connection[Any]) -> None:
    from botmox_supabase.error_mapping import map_database_errors

    sid = str(uuid.uuid4())
    sql.execute(
        "insert into botmox.vault_secrets (tenant_id, id, label, alg, version, created_at,"
        " updated_at) values ('t', %s, 'l', 'aes-256-gcm', 1, now(), now())",
        (sid,),
    )
    bad = [
        # secret ids are canonical UUID text; labels 1-200; allow-listed algorithms
        "insert into botmox.vault_secrets (tenant_id, id, label, alg, version, created_at,"
        " updated_at) values ('t', 'not-a-uuid', 'l', 'aes-256-gcm', 1, now(), now())",
        "insert into botmox.vault_secrets (tenant_id, id, label, alg, version, created_at,"
        " updated_at) values ('t', upper(gen_random_uuid()::text), 'l', 'aes-256-gcm', 1, now(),"
        " now())",
        "insert into botmox.vault_secrets (tenant_id, id, label, alg, version, created_at,"
        " updated_at) values ('t', gen_random_uuid()::text, '', 'aes-256-gcm', 1, now(), now())",
        "insert into botmox.vault_secrets (tenant_id, id, label, alg, version, created_at,"
        " updated_at) values ('t', gen_random_uuid()::text, 'l', 'rot13', 1, now(), now())",
        "insert into botmox.vault_secrets (tenant_id, id, label, alg, version, created_at,"
        " updated_at) values ('t', gen_random_uuid()::text, 'l', 'aes-256-gcm', 0, now(), now())",
        f"insert into botmox.vault_secret_versions (tenant_id, secret_id, version, alg,"
        f" created_at, envelope) values ('t', '{sid}', 1, 'aes-256-gcm', now(), '[1]')",
        "insert into botmox.vault_secret_versions (tenant_id, secret_id, version, alg,"
        f" created_at) values ('other', '{sid}', 1, 'aes-256-gcm', now())",
        "insert into botmox.vault_bindings (tenant_id, scope_type, scope_id, field_name, id,"
        f" secret_ref, created_at, updated_at) values ('t', 'robot', 's', 'f', 'i', '{sid}',"
        " now(), now())",
        "insert into botmox.vault_bindings (tenant_id, scope_type, scope_id, field_name, id,"
        f" secret_ref, created_at, updated_at) values ('t', 'vm', E'a\\nb', 'f', 'i', '{sid}',"
        " now(), now())",
        "insert into botmox.vault_bindings (tenant_id, scope_type, scope_id, field_name, id,"
        f" secret_ref, created_at, updated_at) values ('t', 'vm', 's', repeat('f', 201), 'i',"
        f" '{sid}', now(), now())",
    ]
    for statement in bad:
        with pytest.raises(BadRequestError), map_database_errors("insert"):
            sql.execute(statement.encode())
