"""The one place where psycopg and pool errors become botmox errors.

* unique violation → :class:`DuplicateError` (409) whose message names the broken rule;
* check, not-null, foreign-key and data errors, and text psycopg cannot encode (lone
  surrogates) → :class:`BadRequestError` (400), a foreign-key violation with the rule it broke;
* the commands' final-state guard (a finished command changing state) →
  :class:`InvalidCommandTransitionError` (409);
* connection loss, ``OperationalError``, admin shutdown, pool timeout →
  :class:`ServiceUnavailableError` (503);
* serialization failures and deadlocks, and every other database error → :class:`DatabaseError`
  (502, retryable).

Messages carry the SQLSTATE and the constraint name, never the connection string or a password.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg_pool
from psycopg import errors as pg_errors

from botmox_core.errors import (
    BadRequestError,
    BotmoxError,
    DatabaseError,
    DuplicateError,
    InvalidCommandTransitionError,
    ServiceUnavailableError,
)

__all__ = ["FOREIGN_KEY_RULES", "UNIQUE_RULES", "map_database_error", "map_database_errors"]

# Constraint name → the contract's uniqueness rule, as told to the caller.
UNIQUE_RULES: dict[str, str] = {
    "api_tokens_pkey": "an API token with this id already exists",
    "api_tokens_token_hash_key": "an API token with this hash already exists",
    "vms_pkey": "a VM with this vm_uuid is already registered for the tenant",
    "licences_pkey": "the tenant already has a licence",
    "entitlements_pkey": "the user already has an entitlement",
    "leases_pkey": "a lease with this id already exists",
    "releases_pkey": "a release with this id already exists",
    "releases_scope_version_key": (
        "a release of this module, platform, channel and version already exists for the tenant"
    ),
    "releases_object_key_key": "a release with this object_key already exists for the tenant",
    "releases_tenant_id_key": "a release with this id already exists",
    "assignments_scope_key": "an assignment for this user (or default) and scope already exists",
    "download_audit_pkey": "an audit entry with this id already exists",
    "agents_pkey": "an agent with this id already exists",
    "agents_tenant_id_key": "an agent with this id already exists",
    "agents_pairing_code_hash_key": "this pairing code is already in use",
    "agents_token_hash_key": "an agent with this token hash already exists",
    "commands_pkey": "a command with this id already exists",
    "commands_tenant_id_key": "a command with this id already exists",
    "commands_idempotency_key": (
        "a command with this idempotency key already exists for the agent"
    ),
    "command_output_pkey": "this output chunk of the command is already stored",
    # domain data (records are per tenant, collection and id)
    "resources_licenses_pkey": "a licence record with this id already exists",
    "resources_proxies_pkey": "a proxy record with this id already exists",
    "resources_subscriptions_pkey": "a subscription record with this id already exists",
    "workspace_notes_pkey": "a note with this id already exists",
    "workspace_calendar_events_pkey": "a calendar event with this id already exists",
    "workspace_kanban_tasks_pkey": "a kanban task with this id already exists",
    "bots_pkey": "a bot with this id already exists",
    "finance_operations_pkey": "a finance operation with this id already exists",
    "bot_lifecycle_log_pkey": "a lifecycle log entry with this id already exists",
    "bot_archive_pkey": "an archive entry with this id already exists",
    "finance_aggregates_pkey": "this finance aggregate already exists for the tenant",
    "app_settings_pkey": "the tenant already has a settings tree",
    # kept by triggers from the collection tables: a duplicate there is refused first
    "domain_search_pkey": "a record with this id already exists in the collection",
    "rate_limit_counters_pkey": "this rate-limit window is already counted",
    # the vault (secrets are per tenant and id; versions per secret; bindings per field)
    "vault_secrets_pkey": "a secret with this id already exists",
    "vault_secret_versions_pkey": "this version of the secret already exists",
    "vault_bindings_pkey": "this field of the scope is already bound to a secret",
    "control_pkey": "a control entry with this key already exists",
}

# Constraint name → what a foreign-key violation means to the caller.
FOREIGN_KEY_RULES: dict[str, str] = {
    "assignments_release_fkey": "the assigned release does not exist for the tenant",
    "command_output_command_fkey": "the output's command does not exist for the tenant",
    "vault_secret_versions_secret_fkey": "the version's secret does not exist for the tenant",
    "vault_bindings_secret_fkey": "the bound secret (secret_ref) does not exist for the tenant",
}

#: Raised by the commands' final-state guard trigger (a final state was to change).
TRANSITION_CONSTRAINT = "commands_final_state_check"

_UNAVAILABLE_STATES = {
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now
    "53300",  # too_many_connections
}


def _constraint(exc: psycopg.Error) -> str | None:
    try:
        return exc.diag.constraint_name
    except Exception:  # diag may be unavailable on a broken connection
        return None


def _connection_lost(exc: psycopg.Error) -> bool:
    state = exc.sqlstate
    if state is None:  # raised by libpq/psycopg itself: no server answer at all
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return state.startswith("08") or state in _UNAVAILABLE_STATES


def map_database_error(exc: BaseException, action: str) -> BotmoxError:
    """The botmox error for ``exc``, raised while doing ``action`` (e.g. ``"lease add"``)."""
    if isinstance(exc, BotmoxError):
        return exc
    if isinstance(exc, UnicodeEncodeError):
        return BadRequestError(f"{action} refused: text is not valid Unicode (lone surrogate)")
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return ServiceUnavailableError(
            f"database unavailable during {action}: no connection in time"
        )
    if isinstance(exc, psycopg_pool.PoolClosed):
        return ServiceUnavailableError(f"database unavailable during {action}: backend closed")
    if isinstance(exc, pg_errors.UniqueViolation):
        name = _constraint(exc)
        rule = UNIQUE_RULES.get(name or "", f"uniqueness rule {name or 'unknown'} violated")
        return DuplicateError(rule, details={"constraint": name} if name else None)
    if isinstance(exc, pg_errors.ForeignKeyViolation):
        name = _constraint(exc)
        return BadRequestError(
            FOREIGN_KEY_RULES.get(name or "", f"{action} refers to a missing record ({name})"),
            details={"constraint": name} if name else None,
        )
    if isinstance(exc, pg_errors.CheckViolation) and _constraint(exc) == TRANSITION_CONSTRAINT:
        return InvalidCommandTransitionError(
            exc.diag.message_primary or "illegal command state change",
            details={"constraint": TRANSITION_CONSTRAINT},
        )
    if isinstance(exc, pg_errors.IntegrityError | pg_errors.DataError):
        name = _constraint(exc)
        what = f"constraint {name}" if name else f"SQLSTATE {exc.sqlstate}"
        return BadRequestError(
            f"{action} refused by the database: {what}",
            details={"constraint": name} if name else None,
        )
    if isinstance(exc, psycopg.Error) and _connection_lost(exc):
        return ServiceUnavailableError(f"database unavailable during {action}: connection lost")
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate or type(exc).__name__
        return DatabaseError(f"database error during {action} ({state})")
    raise TypeError(f"not a database error: {type(exc).__name__}")


@contextmanager
def map_database_errors(action: str) -> Iterator[None]:
    """Re-raise any psycopg or pool error inside the block as a botmox error."""
    try:
        yield
    except (
        psycopg.Error,
        psycopg_pool.PoolTimeout,
        psycopg_pool.PoolClosed,
        UnicodeEncodeError,
    ) as exc:
        raise map_database_error(exc, action) from exc
