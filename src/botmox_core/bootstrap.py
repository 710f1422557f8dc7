"""The composition root: settings + plugins → backends → services.

The server and the admin CLI both call :func:`bootstrap`, so they act on the same configured
backends.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import attrs

from botmox_core.backends.signed_urls import DownloadUrlSigner, ServerSignedStorage, load_url_key
from botmox_core.config import Settings
from botmox_core.errors import ConfigurationError
from botmox_core.plugin import PluginRegistry, load_registry
from botmox_core.ports import (
    AgentTransport,
    BackendCapabilities,
    DataBackend,
    HealthReport,
    ObjectStorage,
    StorageCapabilities,
)
from botmox_core.security import LeaseTokenSigner
from botmox_core.services import (
    DownloadService,
    LeaseService,
    LicenceAdmin,
    ReleaseService,
    TokenService,
    VmRegistry,
)
from botmox_core.services.agents import AgentService
from botmox_core.services.commands import CommandService
from botmox_core.services.principal import Clock, utcnow


@attrs.define
class App:
    """Everything one botmox process runs on.

    Attributes:
        settings: resolved configuration.
        registry: what the plugins registered.
        backend: the selected repository backend.
        storage: the selected object storage.
        signer: the lease token signer.
        tokens, vms, licences, leases, releases, downloads: the services.
        transport: the agent transport (wake-ups for the replica holding an agent's socket).
        agents, commands: the agent command bus (``agents.supported`` is False when the data
            backend has no agent repositories; their calls then raise 501).
        command_sweep_interval: seconds between the server's command sweeps.
    """

    settings: Settings
    registry: PluginRegistry
    backend: DataBackend
    storage: ObjectStorage
    signer: LeaseTokenSigner
    tokens: TokenService
    vms: VmRegistry
    licences: LicenceAdmin
    leases: LeaseService
    releases: ReleaseService
    downloads: DownloadService
    transport: AgentTransport
    agents: AgentService
    commands: CommandService
    command_sweep_interval: float = 1.0

    def health(self) -> dict[str, HealthReport]:
        """Health of every dependency, by role (``data_backend``, ``storage``)."""
        return {
            "data_backend": _safe_health(self.backend),
            "storage": _safe_health(self.storage),
        }

    def close(self) -> None:
        self.backend.close()
        self.storage.close()


def _safe_health(component: DataBackend | ObjectStorage) -> HealthReport:
    try:
        return component.check_health()
    except Exception as exc:  # a health check must report, never raise
        return HealthReport(component.name, False, f"health check failed: {type(exc).__name__}")


def load_signer(settings: Settings) -> LeaseTokenSigner:
    """The lease signing key: ``BOTMOX_LEASE_SIGNING_KEY_FILE`` or ``<data_dir>/lease-signing.pem``
    (created on first use)."""
    path = settings.environ.get("BOTMOX_LEASE_SIGNING_KEY_FILE")
    return LeaseTokenSigner.from_file(
        Path(path) if path else settings.data_dir / "lease-signing.pem"
    )


def bootstrap(
    settings: Settings,
    *,
    registry: PluginRegistry | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Clock = utcnow,
) -> App:
    """Build the configured backends and every service."""
    registry = registry or load_registry(settings.environ if environ is None else environ)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(settings.data_dir, 0o700)
    except OSError as exc:
        raise ConfigurationError(f"data dir {settings.data_dir}: {exc.strerror}") from exc
    backend = registry.data_backends.get(settings.data_backend)(settings)
    try:
        _declared(backend, BackendCapabilities, "data backend")
        storage = deliverable_storage(registry.storages.get(settings.storage)(settings), settings)
    except BaseException:
        backend.close()
        raise
    signer = load_signer(settings)
    environ = settings.environ
    try:
        transport = registry.agent_transports.get(
            select_agent_transport(environ, backend, registry)
        )(settings)
    except BaseException:
        backend.close()
        storage.close()
        raise
    agents = AgentService(
        backend,
        offline_after_seconds=_int_option(environ, "BOTMOX_AGENT_OFFLINE_SECONDS", 120, 1),
        token_ttl_days=_int_option(environ, "BOTMOX_AGENT_TOKEN_TTL_DAYS", 365, 1),
        clock=clock,
    )
    commands = CommandService(
        agents,
        ack_timeout_seconds=_int_option(environ, "BOTMOX_COMMAND_ACK_TIMEOUT_SECONDS", 30, 1),
        max_attempts=_int_option(environ, "BOTMOX_COMMAND_MAX_ATTEMPTS", 5, 1),
        clock=clock,
    )
    return App(
        settings=settings,
        registry=registry,
        backend=backend,
        storage=storage,
        signer=signer,
        tokens=TokenService(backend, clock),
        vms=VmRegistry(backend, clock),
        licences=LicenceAdmin(backend, clock),
        leases=LeaseService(backend, signer, ttl_seconds=settings.lease_ttl_seconds, clock=clock),
        releases=ReleaseService(backend, storage, clock),
        downloads=DownloadService(
            backend, storage, signer, url_ttl_seconds=settings.download_url_ttl_seconds, clock=clock
        ),
        transport=transport,
        agents=agents,
        commands=commands,
        command_sweep_interval=_float_option(environ, "BOTMOX_COMMAND_SWEEP_INTERVAL_SECONDS", 1.0),
    )


def _declared(component: DataBackend | ObjectStorage, kind: type[object], role: str) -> None:
    """Refuse a backend or storage that does not declare its capabilities (a plugin written
    before they existed) with an error naming it, instead of failing later mid-request."""
    try:
        declared = component.capabilities
    except AttributeError:
        declared = None
    if not isinstance(declared, kind):
        raise ConfigurationError(
            f"{role} {component.name!r} does not declare its capabilities: give its class "
            f"`capabilities = {kind.__name__}(...)` (see docs/writing-a-plugin.md)"
        )


def deliverable_storage(storage: ObjectStorage, settings: Settings) -> ObjectStorage:
    """``storage`` ready to hand out download URLs.

    A storage declaring ``capabilities.presign`` is returned as it is; one that cannot presign
    is wrapped in :class:`ServerSignedStorage`, so the server signs its URLs (with the
    ``localfs`` URL key, see :func:`load_url_key`) and serves its objects. Closes ``storage``
    when it fails.
    """
    try:
        _declared(storage, StorageCapabilities, "storage")
        if storage.capabilities.presign:
            return storage
        key = load_url_key(settings.data_dir, settings.plugin_options("localfs").get("url_key"))
        return ServerSignedStorage(storage, DownloadUrlSigner(base_url=settings.base_url, key=key))
    except BaseException:
        storage.close()
        raise


def select_agent_transport(
    environ: Mapping[str, str], backend: DataBackend, registry: PluginRegistry
) -> str:
    """``BOTMOX_AGENT_TRANSPORT`` when set; else the transport the data backend declares it
    prefers (``capabilities.preferred_agent_transport``, e.g. ``postgres`` for Supabase) when
    that transport is installed; else ``inprocess``."""
    chosen = environ.get("BOTMOX_AGENT_TRANSPORT")
    if chosen:
        return chosen
    preferred = backend.capabilities.preferred_agent_transport
    if preferred is not None and preferred in registry.agent_transports.factories:
        return preferred
    return "inprocess"


def _int_option(environ: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}")
    return value


def _float_option(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from None
    if not 0.05 <= value <= 3600:
        raise ConfigurationError(f"{name} must be between 0.05 and 3600 seconds")
    return value
