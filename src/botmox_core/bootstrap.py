"""The composition root: settings + plugins → backends → services.

The server and the admin CLI both call :func:`bootstrap`, so they act on the same configured
backends.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import attrs

from botmox_core.config import Settings
from botmox_core.converter import get_converter
from botmox_core.errors import ConfigurationError
from botmox_core.plugin import PluginRegistry, load_registry
from botmox_core.ports import DataBackend, HealthReport, ObjectStorage
from botmox_core.security import LeaseTokenSigner
from botmox_core.services import (
    DownloadService,
    LeaseService,
    LicenceAdmin,
    ReleaseService,
    TokenService,
    VmRegistry,
)
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


_configured_converters: set[int] = set()


def configure_shared_converter(registry: PluginRegistry) -> None:
    """Let plugins extend the shared converter (``botmox_configure_converter``), once per
    process and plugin manager."""
    key = id(registry.manager)
    if key not in _configured_converters:
        _configured_converters.add(key)
        registry.manager.hook.botmox_configure_converter(converter=get_converter())


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
    configure_shared_converter(registry)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(settings.data_dir, 0o700)
    except OSError as exc:
        raise ConfigurationError(f"data dir {settings.data_dir}: {exc.strerror}") from exc
    backend = registry.data_backends.get(settings.data_backend)(settings)
    try:
        storage = registry.storages.get(settings.storage)(settings)
    except BaseException:
        backend.close()
        raise
    signer = load_signer(settings)
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
    )
