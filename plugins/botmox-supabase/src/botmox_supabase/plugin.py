"""Hook implementations that plug the Supabase backend, its agent transport and rate-limit
store, and ``botmox db`` into botmox.

Registered through the ``botmox`` entry-point group (``supabase = "botmox_supabase.plugin"``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botmox_core.plugin import hookimpl

if TYPE_CHECKING:
    import click

    from botmox_core.config import Settings
    from botmox_core.ports import AgentTransport, DataBackend
    from botmox_core.ports.ratelimit import RateLimitStore

BACKEND_NAME = "supabase"
TRANSPORT_NAME = "postgres"
RATE_LIMIT_STORE_NAME = "postgres"


def build_data_backend(settings: Settings) -> DataBackend:
    """Build the Supabase backend from ``settings.plugin_options("supabase")``."""
    from botmox_supabase.backend import PostgresDataBackend
    from botmox_supabase.options import SupabaseOptions

    return PostgresDataBackend(SupabaseOptions.from_settings(settings))


@hookimpl
def botmox_register_data_backends(register: Callable[[str, Any], None]) -> None:
    """Register the ``supabase`` data backend."""
    register(BACKEND_NAME, build_data_backend)


def build_agent_transport(settings: Settings) -> AgentTransport:
    """Build the ``postgres`` agent transport (LISTEN/NOTIFY) from the ``supabase`` options."""
    from botmox_supabase.transport import PostgresTransport

    return PostgresTransport.from_settings(settings)


@hookimpl
def botmox_register_agent_transports(register: Callable[[str, Any], None]) -> None:
    """Register the ``postgres`` agent transport (``BOTMOX_AGENT_TRANSPORT=postgres``)."""
    register(TRANSPORT_NAME, build_agent_transport)


def build_rate_limit_store(settings: Settings) -> RateLimitStore:
    """Build the ``postgres`` rate-limit store (counters shared by replicas) from the
    ``supabase`` options."""
    from botmox_supabase.ratelimit import PostgresRateLimitStore

    return PostgresRateLimitStore.from_settings(settings)


@hookimpl
def botmox_register_rate_limit_stores(register: Callable[[str, Any], None]) -> None:
    """Register the ``postgres`` rate-limit store (``BOTMOX_RATE_LIMIT_STORE=postgres``; the
    default on ``DATA_BACKEND=supabase``)."""
    register(RATE_LIMIT_STORE_NAME, build_rate_limit_store)


@hookimpl
def botmox_register_commands(register: Callable[[str, click.Command], None]) -> None:
    """Add the ``botmox db`` command group (``botmox db migrate``)."""
    from botmox_supabase.cli import db_group

    register("db", db_group)
