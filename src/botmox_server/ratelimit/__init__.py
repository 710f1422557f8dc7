"""Rate limiting per the v1 contract: 429 ``RATE_LIMITED`` with ``Retry-After`` and the
``RateLimit-Limit`` / ``RateLimit-Remaining`` / ``RateLimit-Reset`` headers.

* :mod:`.gate` — buckets (authenticated token, else client address), exemptions, the ASGI gate.
* :mod:`.addresses` — the client address, with trusted proxies for ``X-Forwarded-For``.
* :mod:`.counters` — fixed-window counters: in memory, or shared by replicas through a
  :class:`~botmox_core.ports.ratelimit.RateLimitStore` (``postgres`` from botmox-supabase).

:func:`install_rate_limiter` puts the gate in front of a built application; settings are the
``rate_limit_*`` fields of :class:`~botmox_core.config.Settings` (``BOTMOX_RATE_LIMIT_*``).
Operator documentation: ``docs/rate-limits.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botmox_core.errors import ConfigurationError
from botmox_core.plugin.spec import RateLimitStoreFactory
from botmox_server.ratelimit.addresses import ClientAddressResolver
from botmox_server.ratelimit.counters import Decision, LocalCounter, SharedCounter
from botmox_server.ratelimit.gate import Counter, IdentityCache, RateLimiter, RateLimitGate

if TYPE_CHECKING:
    from litestar import Litestar

    from botmox_core.bootstrap import App
    from botmox_core.plugin import PluginRegistry

__all__ = [
    "MEMORY_STORE",
    "Decision",
    "RateLimitGate",
    "RateLimiter",
    "build_rate_limiter",
    "install_rate_limiter",
    "rate_limit_store_factories",
    "select_rate_limit_store",
]

MEMORY_STORE = "memory"


def rate_limit_store_factories(registry: PluginRegistry) -> dict[str, RateLimitStoreFactory]:
    """The shared stores plugins registered (``botmox_register_rate_limit_stores``)."""
    found: dict[str, RateLimitStoreFactory] = {}

    def register(name: str, factory: RateLimitStoreFactory) -> None:
        if not isinstance(name, str) or not name or name == MEMORY_STORE:
            raise ConfigurationError(f"rate limit store name {name!r} is empty or reserved")
        if not callable(factory):
            raise ConfigurationError(f"rate limit store {name!r}: factory is not callable")
        if name in found:
            raise ConfigurationError(f"rate limit store {name!r} is registered twice")
        found[name] = factory

    registry.manager.hook.botmox_register_rate_limit_stores(register=register)
    return found


def select_rate_limit_store(configured: str | None, backend: Any, installed: set[str]) -> str:
    """``configured`` (``BOTMOX_RATE_LIMIT_STORE``) when set; else the data backend's
    ``preferred_rate_limit_store`` when that store is installed; else ``memory``."""
    if configured:
        return configured
    preferred = getattr(backend, "preferred_rate_limit_store", None)
    if isinstance(preferred, str) and preferred in installed:
        return preferred
    return MEMORY_STORE


def build_rate_limiter(core: App, authenticate: Callable[[str], Any]) -> RateLimiter:
    """The limiter the settings of ``core`` describe (enabled or not: callers check)."""
    settings = core.settings
    factories = rate_limit_store_factories(core.registry)
    name = select_rate_limit_store(settings.rate_limit_store, core.backend, set(factories))
    counter: Counter
    if name == MEMORY_STORE:
        counter = LocalCounter(settings.rate_limit_window_seconds)
    elif name in factories:
        counter = SharedCounter(factories[name](settings), settings.rate_limit_window_seconds)
    else:
        known = ", ".join(sorted({MEMORY_STORE, *factories}))
        raise ConfigurationError(f"unknown rate limit store {name!r} (installed: {known})")
    return RateLimiter(
        counter,
        IdentityCache(authenticate),
        ClientAddressResolver(settings.rate_limit_trusted_proxies),
        token_limit=settings.rate_limit_requests,
        address_limit=settings.rate_limit_address_requests,
        window=settings.rate_limit_window_seconds,
    )


def install_rate_limiter(app: Litestar, core: App) -> Litestar:
    """Put the rate-limit gate in front of ``app`` (around routing, so unknown paths count
    too) and tie its store to the app's lifespan. Does nothing when
    ``settings.rate_limit_enabled`` is false."""
    if not core.settings.rate_limit_enabled:
        return app
    limiter = build_rate_limiter(core, app.state["authenticator"].authenticate)
    app.asgi_handler = RateLimitGate(app.asgi_handler, limiter)
    app.on_startup.append(limiter.start)
    app.on_shutdown.append(limiter.close)  # shutdown hooks run in reverse: before the core closes
    app.state["rate_limiter"] = limiter
    return app
