"""The composition root: settings + plugins → backends → services.

The server and the admin CLI both call :func:`bootstrap`, so they act on the same configured
backends.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import attrs

from botmox_core.backends.signed_urls import (
    DownloadUrlSigner,
    ServerSignedStorage,
    load_url_keys,
    url_key_ring_path,
)
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
from botmox_core.services.domains import DomainServices
from botmox_core.services.principal import Clock, utcnow
from botmox_core.services.vault import VaultService

log = logging.getLogger("botmox.config")

EMBEDDED_DATA_BACKEND = "sqlite"
"""The data backend whose data lives in the data directory (one machine, one key file)."""


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
        domains: the domain data services (resources, workspace, bots, finance, settings;
            501 ``DOMAINS_NOT_SUPPORTED`` when the data backend has no domain data).
        vault: the secret vault (501 ``VAULT_NOT_SUPPORTED`` when the data backend has no
            vault repositories).
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
    domains: DomainServices
    vault: VaultService
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
    """The lease signing key ring: ``lease_signing_key_file`` (``BOTMOX_LEASE_SIGNING_KEY_FILE``)
    or ``<data_dir>/lease-signing.pem``, created on first use as a single PEM key (the ring's
    legacy key; ``botmox keys rotate --lease`` turns the file into a ring).

    A key created here on a shared data backend (not the embedded SQLite one) is logged as a
    warning: replicas that each create their own refuse each other's lease tokens.
    """
    path = settings.lease_signing_key_path
    fresh = not path.exists()
    signer = LeaseTokenSigner.from_file(path)
    if fresh and settings.data_backend != EMBEDDED_DATA_BACKEND:
        log.warning(
            "created a new lease signing key at %s for the %s data backend; every replica "
            "must use the same key (set BOTMOX_LEASE_SIGNING_KEY_FILE, or "
            "lease_signing_key_file in the config file, to one shared file), or replicas "
            "refuse each other's lease tokens",
            path,
            settings.data_backend,
        )
    return signer


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
    try:
        transport = registry.agent_transports.get(
            select_agent_transport(settings, backend, registry)
        )(settings)
    except BaseException:
        backend.close()
        storage.close()
        raise
    agents = AgentService(
        backend,
        offline_after_seconds=settings.agent_offline_seconds,
        token_ttl_days=settings.agent_token_ttl_days,
        clock=clock,
    )
    commands = CommandService(
        agents,
        ack_timeout_seconds=settings.command_ack_timeout_seconds,
        max_attempts=settings.command_max_attempts,
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
        domains=DomainServices.build(backend, clock),
        vault=VaultService(
            backend, keep_old_ciphertexts=settings.vault_keep_old_ciphertexts, clock=clock
        ),
        command_sweep_interval=settings.command_sweep_interval_seconds,
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
    ``localfs`` URL key ring, see :func:`load_url_keys`) and serves its objects. Closes ``storage``
    when it fails.
    """
    try:
        _declared(storage, StorageCapabilities, "storage")
        if storage.capabilities.presign:
            return storage
        options = settings.plugin_options("localfs")
        configured = options.get("url_key")
        ring_path = url_key_ring_path(settings.data_dir, options.get("url_key_file"))
        fresh = not configured and not ring_path.exists()
        key = load_url_keys(settings.data_dir, configured, options.get("url_key_file"))
        if fresh and settings.data_backend != EMBEDDED_DATA_BACKEND:
            log.warning(
                "created a new download URL key in %s for storage %r; every replica must use "
                "the same key (set BOTMOX_LOCALFS_URL_KEY_FILE to one shared ring file, or "
                "BOTMOX_LOCALFS_URL_KEY), or replicas refuse each other's download URLs",
                ring_path,
                storage.name,
            )
        return ServerSignedStorage(storage, DownloadUrlSigner(base_url=settings.base_url, key=key))
    except BaseException:
        storage.close()
        raise


def select_agent_transport(
    configured: Settings | Mapping[str, str], backend: DataBackend, registry: PluginRegistry
) -> str:
    """The ``agent_transport`` setting (``BOTMOX_AGENT_TRANSPORT``) when set; else the transport
    the data backend declares it prefers (``capabilities.preferred_agent_transport``, e.g.
    ``postgres`` for Supabase) when that transport is installed; else ``inprocess``.
    ``configured`` is the settings, or an environment mapping."""
    if isinstance(configured, Settings):
        chosen = configured.agent_transport
    else:
        chosen = configured.get("BOTMOX_AGENT_TRANSPORT")
    if chosen:
        return chosen
    preferred = backend.capabilities.preferred_agent_transport
    if preferred is not None and preferred in registry.agent_transports.factories:
        return preferred
    return "inprocess"
