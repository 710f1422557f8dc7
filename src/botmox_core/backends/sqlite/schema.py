"""The SQLite schema and its forward migrations.

The schema version lives in ``PRAGMA user_version``; ``PRAGMA application_id`` marks the file as
a botmox database, so the backend never writes into a foreign SQLite file. :func:`migrate` runs
the missing migrations in one ``BEGIN IMMEDIATE`` transaction (two processes opening a fresh file
at once apply them once). Migrations are append-only: never edit a released one, add the next.

Constraints mirror the contract: one release per (tenant, module, platform, channel, version)
and per (tenant, object_key); ``sha256`` is 64 lower-case hex; ``size_bytes`` is positive; one
VM per (tenant, vm_uuid); one assignment per (tenant, user, scope) and one tenant default per
(tenant, scope) — two partial unique indexes, because SQLite treats NULLs as distinct in UNIQUE.
Enum columns (roles, statuses, audit events) are checked by the repositories rather than by CHECK
constraints, so a new enum value does not need a table rebuild.

Size: one module because it is one ordered, append-only history: each version's DDL reads after
the one it builds on (version 6 rebuilds what version 3 created), and :func:`migrate` applies
them in that order; split across files, a reader would have to reassemble the order.
"""

from __future__ import annotations

import sqlite3

from botmox_core.errors import DatabaseError

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SORT_INDEXED_FIELDS",
    "check_ownership",
    "migrate",
    "schema_version",
]

#: ``PRAGMA application_id`` of botmox databases (ASCII ``bmox``).
APPLICATION_ID = 0x626D6F78

_V1 = (
    """
    CREATE TABLE api_tokens (
        id          TEXT NOT NULL PRIMARY KEY,
        tenant_id   TEXT NOT NULL,
        role        TEXT NOT NULL,
        token_hash  TEXT NOT NULL UNIQUE,
        user_id     TEXT,
        created_at  TEXT NOT NULL,
        expires_at  TEXT,
        revoked_at  TEXT,
        label       TEXT
    ) STRICT
    """,
    "CREATE INDEX api_tokens_by_tenant ON api_tokens (tenant_id, id)",
    """
    CREATE TABLE vms (
        tenant_id   TEXT NOT NULL,
        vm_uuid     TEXT NOT NULL,
        user_id     TEXT NOT NULL,
        status      TEXT NOT NULL,
        vm_name     TEXT,
        project_id  TEXT,
        metadata    TEXT NOT NULL DEFAULT '{}'
            CONSTRAINT vm_metadata_object CHECK (json_type(metadata) = 'object'),
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (tenant_id, vm_uuid)
    ) STRICT
    """,
    """
    CREATE TABLE licences (
        tenant_id   TEXT NOT NULL PRIMARY KEY,
        status      TEXT NOT NULL,
        expires_at  TEXT,
        updated_at  TEXT NOT NULL
    ) STRICT
    """,
    """
    CREATE TABLE entitlements (
        tenant_id   TEXT NOT NULL,
        user_id     TEXT NOT NULL,
        modules     TEXT NOT NULL
            CONSTRAINT entitlement_modules_array CHECK (json_type(modules) = 'array'),
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (tenant_id, user_id)
    ) STRICT
    """,
    """
    CREATE TABLE leases (
        id                   TEXT NOT NULL PRIMARY KEY,
        tenant_id            TEXT NOT NULL,
        user_id              TEXT NOT NULL,
        vm_uuid              TEXT NOT NULL,
        module               TEXT NOT NULL,
        status               TEXT NOT NULL,
        token_hash           TEXT NOT NULL,
        previous_token_hash  TEXT,
        issued_at            TEXT NOT NULL,
        expires_at           TEXT NOT NULL,
        last_heartbeat_at    TEXT,
        version              TEXT,
        agent_id             TEXT,
        runner_id            TEXT,
        revoked_at           TEXT,
        revoke_reason        TEXT
    ) STRICT
    """,
    "CREATE INDEX leases_by_tenant_vm ON leases (tenant_id, vm_uuid)",
    """
    CREATE TABLE releases (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id   TEXT NOT NULL,
        module      TEXT NOT NULL,
        platform    TEXT NOT NULL,
        channel     TEXT NOT NULL,
        version     TEXT NOT NULL,
        object_key  TEXT NOT NULL,
        sha256      TEXT NOT NULL
            CONSTRAINT release_sha256_hex
            CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
        size_bytes  INTEGER NOT NULL
            CONSTRAINT release_size_positive CHECK (size_bytes > 0),
        status      TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        UNIQUE (tenant_id, module, platform, channel, version),
        UNIQUE (tenant_id, object_key)
    ) STRICT
    """,
    "CREATE INDEX releases_by_tenant_module ON releases (tenant_id, module, id)",
    """
    CREATE TABLE assignments (
        tenant_id    TEXT NOT NULL,
        user_id      TEXT,
        module       TEXT NOT NULL,
        platform     TEXT NOT NULL,
        channel      TEXT NOT NULL,
        release_id   INTEGER NOT NULL
            CONSTRAINT assignment_release_id_positive CHECK (release_id > 0),
        assigned_at  TEXT NOT NULL
    ) STRICT
    """,
    """
    CREATE UNIQUE INDEX assignments_user_scope
        ON assignments (tenant_id, user_id, module, platform, channel)
        WHERE user_id IS NOT NULL
    """,
    """
    CREATE UNIQUE INDEX assignments_default_scope
        ON assignments (tenant_id, module, platform, channel)
        WHERE user_id IS NULL
    """,
    """
    CREATE TABLE download_audit (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id       TEXT NOT NULL,
        event           TEXT NOT NULL,
        result          TEXT NOT NULL,
        reason_code     TEXT,
        created_at      TEXT NOT NULL,
        lease_id        TEXT,
        user_id         TEXT,
        vm_uuid         TEXT,
        module          TEXT,
        platform        TEXT,
        channel         TEXT,
        release_id      INTEGER,
        request_ip      TEXT,
        url_expires_at  TEXT,
        metadata        TEXT NOT NULL DEFAULT '{}'
            CONSTRAINT audit_metadata_object CHECK (json_type(metadata) = 'object')
    ) STRICT
    """,
    "CREATE INDEX download_audit_by_tenant ON download_audit (tenant_id, id)",
    "CREATE INDEX download_audit_by_lease ON download_audit (tenant_id, lease_id, id)",
    """
    CREATE TRIGGER download_audit_no_update BEFORE UPDATE ON download_audit
    BEGIN SELECT RAISE(ABORT, 'the download audit is append-only'); END
    """,
    """
    CREATE TRIGGER download_audit_no_delete BEFORE DELETE ON download_audit
    BEGIN SELECT RAISE(ABORT, 'the download audit is append-only'); END
    """,
)

#: Version 2: the agent command bus (agents, commands, command output chunks).
_V2 = (
    """
    CREATE TABLE agents (
        id                 TEXT NOT NULL PRIMARY KEY,
        tenant_id          TEXT NOT NULL,
        name               TEXT,
        status             TEXT NOT NULL,
        created_at         TEXT NOT NULL,
        pairing_code_hash  TEXT UNIQUE,
        pairing_expires_at TEXT NOT NULL,
        version            TEXT,
        platform           TEXT,
        capabilities       TEXT NOT NULL DEFAULT '[]'
            CONSTRAINT agent_capabilities_array CHECK (json_type(capabilities) = 'array'),
        public_key         TEXT,
        token_hash         TEXT UNIQUE,
        token_expires_at   TEXT,
        registered_at      TEXT,
        last_seen_at       TEXT,
        revoked_at         TEXT,
        revoke_reason      TEXT
    ) STRICT
    """,
    "CREATE INDEX agents_by_tenant ON agents (tenant_id, created_at)",
    """
    CREATE TABLE commands (
        id                        TEXT NOT NULL PRIMARY KEY,
        tenant_id                 TEXT NOT NULL,
        agent_id                  TEXT NOT NULL,
        command_type              TEXT NOT NULL,
        payload                   TEXT NOT NULL DEFAULT '{}'
            CONSTRAINT command_payload_object CHECK (json_type(payload) = 'object'),
        status                    TEXT NOT NULL,
        queued_at                 TEXT NOT NULL,
        expires_at                TEXT NOT NULL,
        updated_at                TEXT NOT NULL,
        execution_timeout_seconds INTEGER NOT NULL
            CONSTRAINT command_timeout_positive CHECK (execution_timeout_seconds > 0),
        run_deadline_at           TEXT,
        idempotency_key           TEXT,
        attempts                  INTEGER NOT NULL DEFAULT 0,
        max_attempts              INTEGER NOT NULL DEFAULT 5,
        dispatched_at             TEXT,
        started_at                TEXT,
        finished_at               TEXT,
        cancel_requested_at       TEXT,
        result                    TEXT
            CONSTRAINT command_result_object CHECK (result IS NULL OR json_type(result) = 'object'),
        error                     TEXT,
        output_bytes              INTEGER NOT NULL DEFAULT 0,
        created_by                TEXT
    ) STRICT
    """,
    """
    CREATE UNIQUE INDEX commands_idempotency
        ON commands (tenant_id, agent_id, idempotency_key)
        WHERE idempotency_key IS NOT NULL
    """,
    "CREATE INDEX commands_by_agent ON commands (tenant_id, agent_id, status, queued_at)",
    "CREATE INDEX commands_by_tenant ON commands (tenant_id, queued_at)",
    "CREATE INDEX commands_by_status ON commands (status, expires_at)",
    """
    CREATE TABLE command_output (
        tenant_id   TEXT NOT NULL,
        command_id  TEXT NOT NULL,
        seq         INTEGER NOT NULL CONSTRAINT output_seq_natural CHECK (seq >= 0),
        data        TEXT NOT NULL,
        PRIMARY KEY (tenant_id, command_id, seq)
    ) STRICT, WITHOUT ROWID
    """,
)

#: Version 3: domain data (record collections, bot lifecycle log and ban archive, finance
#: aggregates, settings trees); see :mod:`botmox_core.backends.sqlite.domains`.
_V3 = (
    """
    CREATE TABLE domain_records (
        tenant_id     TEXT NOT NULL,
        collection    TEXT NOT NULL,
        id            TEXT NOT NULL,
        data          TEXT NOT NULL
            CONSTRAINT domain_record_object CHECK (json_type(data) = 'object'),
        search        TEXT NOT NULL,
        sort_keys     TEXT NOT NULL DEFAULT '{}',
        UNIQUE (tenant_id, collection, id)
    ) STRICT
    """,
    # A list reads only this covering index (the filter, the sort keys, the ids) until it has
    # chosen its page: no table row is read for a record that is not on the page.
    """
    CREATE INDEX domain_records_search
        ON domain_records (tenant_id, collection, search, sort_keys, id)
    """,
    """
    CREATE TABLE bot_lifecycle_log (
        tenant_id  TEXT NOT NULL,
        id         TEXT NOT NULL,
        bot_id     TEXT NOT NULL,
        type       TEXT NOT NULL,
        message    TEXT NOT NULL,
        details    TEXT NOT NULL DEFAULT '{}'
            CONSTRAINT log_details_object CHECK (json_type(details) = 'object'),
        timestamp  INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, id)
    ) STRICT, WITHOUT ROWID
    """,
    "CREATE INDEX bot_lifecycle_log_by_time ON bot_lifecycle_log (tenant_id, timestamp, id)",
    """
    CREATE INDEX bot_lifecycle_log_by_bot
        ON bot_lifecycle_log (tenant_id, bot_id, timestamp, id)
    """,
    """
    CREATE TABLE bot_archive (
        tenant_id    TEXT NOT NULL,
        id           TEXT NOT NULL,
        bot_id       TEXT NOT NULL,
        reason       TEXT NOT NULL,
        archived_at  INTEGER NOT NULL,
        ban_details  TEXT NOT NULL DEFAULT '{}'
            CONSTRAINT archive_ban_details_object CHECK (json_type(ban_details) = 'object'),
        snapshot     TEXT NOT NULL DEFAULT '{}'
            CONSTRAINT archive_snapshot_object CHECK (json_type(snapshot) = 'object'),
        PRIMARY KEY (tenant_id, id)
    ) STRICT, WITHOUT ROWID
    """,
    "CREATE INDEX bot_archive_by_time ON bot_archive (tenant_id, archived_at, id)",
    "CREATE INDEX bot_archive_by_bot ON bot_archive (tenant_id, bot_id, archived_at, id)",
    """
    CREATE TABLE domain_aggregates (
        tenant_id  TEXT NOT NULL,
        key        TEXT NOT NULL,
        value      TEXT NOT NULL
            CONSTRAINT aggregate_object CHECK (json_type(value) = 'object'),
        PRIMARY KEY (tenant_id, key)
    ) STRICT, WITHOUT ROWID
    """,
    """
    CREATE TABLE domain_settings (
        tenant_id  TEXT NOT NULL PRIMARY KEY,
        tree       TEXT NOT NULL
            CONSTRAINT settings_object CHECK (json_type(tree) = 'object')
    ) STRICT
    """,
)

#: Version 4: the secret vault (secrets, their versions with the stored envelopes, bindings);
#: see :mod:`botmox_core.backends.sqlite.vault`.
_V4 = (
    """
    CREATE TABLE vault_secrets (
        tenant_id   TEXT NOT NULL,
        id          TEXT NOT NULL,
        label       TEXT NOT NULL,
        alg         TEXT NOT NULL,
        version     INTEGER NOT NULL CONSTRAINT secret_version_positive CHECK (version >= 1),
        key_id      TEXT,
        recipients  TEXT NOT NULL DEFAULT '[]'
            CONSTRAINT secret_recipients_array CHECK (json_type(recipients) = 'array'),
        aad_meta    TEXT NOT NULL DEFAULT '{}'
            CONSTRAINT secret_aad_meta_object CHECK (json_type(aad_meta) = 'object'),
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        rotated_at  TEXT,
        created_by  TEXT,
        PRIMARY KEY (tenant_id, id)
    ) STRICT, WITHOUT ROWID
    """,
    """
    CREATE TABLE vault_secret_versions (
        tenant_id   TEXT NOT NULL,
        secret_id   TEXT NOT NULL,
        version     INTEGER NOT NULL CONSTRAINT secret_version_positive CHECK (version >= 1),
        alg         TEXT NOT NULL,
        recipients  TEXT NOT NULL DEFAULT '[]'
            CONSTRAINT version_recipients_array CHECK (json_type(recipients) = 'array'),
        key_id      TEXT,
        created_at  TEXT NOT NULL,
        created_by  TEXT,
        envelope    TEXT
            CONSTRAINT version_envelope_object
            CHECK (envelope IS NULL OR json_type(envelope) = 'object'),
        PRIMARY KEY (tenant_id, secret_id, version)
    ) STRICT, WITHOUT ROWID
    """,
    """
    CREATE TABLE vault_bindings (
        tenant_id   TEXT NOT NULL,
        scope_type  TEXT NOT NULL,
        scope_id    TEXT NOT NULL,
        field_name  TEXT NOT NULL,
        id          TEXT NOT NULL,
        secret_ref  TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (tenant_id, scope_type, scope_id, field_name)
    ) STRICT, WITHOUT ROWID
    """,
    "CREATE INDEX vault_bindings_by_time ON vault_bindings (tenant_id, created_at, id)",
    "CREATE INDEX vault_bindings_by_secret ON vault_bindings (tenant_id, secret_ref)",
)

#: Version 5: the deployment's control entries (write freeze, migration lock and checkpoints);
#: see :mod:`botmox_core.backends.sqlite.control`.
_V5 = (
    """
    CREATE TABLE control (
        key         TEXT NOT NULL PRIMARY KEY,
        value       TEXT NOT NULL
            CONSTRAINT control_value_object CHECK (json_type(value) = 'object'),
        updated_at  TEXT NOT NULL
    ) STRICT, WITHOUT ROWID
    """,
)

#: Fields whose listing order has an index of its own (version 6): a list sorted by one of
#: them walks that index in order and stops at its page. Their index names are
#: ``domain_records_by_<field>``.
SORT_INDEXED_FIELDS = ("name", "status", "level", "created_at", "updated_at")


def _sort_index(field: str) -> str:
    return (
        f"CREATE INDEX domain_records_by_{field} ON domain_records"
        f" (tenant_id, collection, json_extract(sort_keys, '$.\"{field}\"'), id)"
    )


#: Version 6: listing without scanning a tenant's whole collection (see
#: :mod:`botmox_core.backends.sqlite.records`). Each (tenant, collection) gets a partition
#: number, and a record's integer key ``seq`` is ``partition << 32 | n``, so one partition's
#: records are one ``seq`` range. ``domain_records`` is rebuilt with ``seq`` as its INTEGER
#: PRIMARY KEY (a plain rowid may change on VACUUM) and ``search`` and ``sort_keys`` before
#: ``data`` (a large ``data`` spills to overflow pages a filter need not read); an FTS5
#: trigram index over ``search`` (rowid = ``seq``, case-sensitive: ``search`` and ``q`` are
#: ASCII-lower-cased already) finds the records holding ``q`` within one ``seq`` range;
#: triggers keep it, and each partition's record count, exact in the writing transaction;
#: indexes on the listing order of the commonly sorted fields.
_V6 = (
    """
    CREATE TABLE domain_partitions (
        id          INTEGER PRIMARY KEY
            CONSTRAINT partition_id_range CHECK (id BETWEEN 1 AND 2147483647),
        tenant_id   TEXT NOT NULL,
        collection  TEXT NOT NULL,
        records     INTEGER NOT NULL DEFAULT 0,
        UNIQUE (tenant_id, collection)
    ) STRICT
    """,
    """
    INSERT INTO domain_partitions (tenant_id, collection)
        SELECT DISTINCT tenant_id, collection FROM domain_records ORDER BY 1, 2
    """,
    """
    CREATE TABLE domain_records_v6 (
        seq           INTEGER PRIMARY KEY,
        tenant_id     TEXT NOT NULL,
        collection    TEXT NOT NULL,
        id            TEXT NOT NULL,
        search        TEXT NOT NULL,
        sort_keys     TEXT NOT NULL DEFAULT '{}',
        data          TEXT NOT NULL
            CONSTRAINT domain_record_object CHECK (json_type(data) = 'object')
    ) STRICT
    """,
    """
    INSERT INTO domain_records_v6 (seq, tenant_id, collection, id, search, sort_keys, data)
        SELECT (p.id << 32) + row_number() OVER (PARTITION BY p.id ORDER BY r.rowid),
               r.tenant_id, r.collection, r.id, r.search, r.sort_keys, r.data
        FROM domain_records AS r JOIN domain_partitions AS p USING (tenant_id, collection)
    """,
    "DROP TABLE domain_records",
    "ALTER TABLE domain_records_v6 RENAME TO domain_records",
    # One id per (tenant, collection), and the order of a list by id.
    "CREATE UNIQUE INDEX domain_records_by_id ON domain_records (tenant_id, collection, id)",
    """
    UPDATE domain_partitions SET records = (
        SELECT count(*) FROM domain_records
        WHERE seq BETWEEN domain_partitions.id << 32 AND (domain_partitions.id << 32) + 4294967295
    )
    """,
    # As in version 3: a filter shorter than a trigram scans this covering index.
    """
    CREATE INDEX domain_records_search
        ON domain_records (tenant_id, collection, search, sort_keys, id)
    """,
    *(_sort_index(field) for field in SORT_INDEXED_FIELDS),
    """
    CREATE VIRTUAL TABLE domain_records_fts USING fts5(
        search, content='domain_records', content_rowid='seq',
        tokenize='trigram case_sensitive 1', columnsize=0
    )
    """,
    "INSERT INTO domain_records_fts (domain_records_fts) VALUES ('rebuild')",
    # A record's seq must lie in its own partition's range (writers compute it; see add()).
    """
    CREATE TRIGGER domain_records_seq_in_partition BEFORE INSERT ON domain_records
    WHEN new.seq IS NULL OR new.seq & 4294967295 = 0 OR new.seq >> 32 IS NOT (
        SELECT id FROM domain_partitions
        WHERE tenant_id = new.tenant_id AND collection = new.collection
    )
    BEGIN
        SELECT RAISE(ABORT, 'domain_records.seq outside its (tenant, collection) partition');
    END
    """,
    """
    CREATE TRIGGER domain_records_keep_partition
    BEFORE UPDATE OF seq, tenant_id, collection ON domain_records
    WHEN new.seq IS NOT old.seq OR new.tenant_id IS NOT old.tenant_id
        OR new.collection IS NOT old.collection
    BEGIN
        SELECT RAISE(ABORT, 'a domain record keeps its seq, tenant and collection');
    END
    """,
    """
    CREATE TRIGGER domain_records_inserted AFTER INSERT ON domain_records BEGIN
        INSERT INTO domain_records_fts (rowid, search) VALUES (new.seq, new.search);
        UPDATE domain_partitions SET records = records + 1 WHERE id = new.seq >> 32;
    END
    """,
    """
    CREATE TRIGGER domain_records_deleted AFTER DELETE ON domain_records BEGIN
        INSERT INTO domain_records_fts (domain_records_fts, rowid, search)
            VALUES ('delete', old.seq, old.search);
        UPDATE domain_partitions SET records = records - 1 WHERE id = old.seq >> 32;
    END
    """,
    """
    CREATE TRIGGER domain_records_search_changed AFTER UPDATE OF search ON domain_records
    WHEN new.search IS NOT old.search
    BEGIN
        INSERT INTO domain_records_fts (domain_records_fts, rowid, search)
            VALUES ('delete', old.seq, old.search);
        INSERT INTO domain_records_fts (rowid, search) VALUES (new.seq, new.search);
    END
    """,
)

#: Forward migrations: entry ``n`` takes a database from version ``n`` to ``n + 1``.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3, _V4, _V5, _V6)

#: The schema version this code reads and writes.
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(connection: sqlite3.Connection) -> int:
    """The database's ``PRAGMA user_version``."""
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


def check_ownership(connection: sqlite3.Connection, database: str) -> int:
    """The database's schema version, after checking (read-only) that it is empty or a botmox
    database this code can use; :class:`DatabaseError` otherwise."""
    # One statement, so one snapshot: another process may be migrating the file right now.
    version, application_id, tables = connection.execute(
        "SELECT (SELECT user_version FROM pragma_user_version),"
        " (SELECT application_id FROM pragma_application_id),"
        " (SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%')"
    ).fetchone()
    if application_id not in (0, APPLICATION_ID):
        raise DatabaseError(
            f"the SQLite {database} belongs to another application "
            f"(application_id {application_id:#x}); refusing to use it"
        )
    if version > SCHEMA_VERSION:
        raise DatabaseError(
            f"the SQLite {database} has schema version {version}, newer than this botmox "
            f"supports ({SCHEMA_VERSION}); upgrade botmox"
        )
    if application_id == 0 and tables:
        raise DatabaseError(
            f"the SQLite {database} already holds tables not created by botmox; "
            "refusing to migrate it (point botmox at a new file)"
        )
    return int(version)


def migrate(connection: sqlite3.Connection, database: str = "database") -> int:
    """Bring the schema to :data:`SCHEMA_VERSION` and return the version found before.

    ``connection`` must be in autocommit mode (``isolation_level=None``) and outside a
    transaction. Raises :class:`DatabaseError` for a foreign or newer database; sqlite3 errors
    propagate for the caller to translate.
    """
    if check_ownership(connection, database) == SCHEMA_VERSION:
        return SCHEMA_VERSION
    connection.execute("BEGIN IMMEDIATE")
    try:
        found = check_ownership(connection, database)  # another process may have migrated
        for statements in MIGRATIONS[found:]:
            for statement in statements:
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return found
