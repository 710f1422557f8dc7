"""Ports: the ``typing.Protocol`` interfaces services depend on and plugins implement.

* :mod:`~botmox_core.ports.repositories` — one repository per aggregate, grouped in a
  :class:`UnitOfWork` handed out by a :class:`DataBackend`, which declares what it guarantees
  in :class:`BackendCapabilities`.
* :mod:`~botmox_core.ports.agents` — agents and the command queue (optional per backend).
* :mod:`~botmox_core.ports.storage` — :class:`ObjectStorage` for artifacts, declaring
  :class:`StorageCapabilities` (whether it makes its own download URLs).
* :mod:`~botmox_core.ports.transport` — :class:`AgentTransport` for the agent command bus.

Ports are synchronous except the agent transport; the server runs them off the event loop.
"""

from botmox_core.ports.agents import (
    AgentDataBackend,
    AgentRepository,
    AgentUnitOfWork,
    CommandRepository,
    supports_agents,
)
from botmox_core.ports.health import HealthReport
from botmox_core.ports.repositories import (
    ApiTokenRepository,
    AssignmentRepository,
    BackendCapabilities,
    DataBackend,
    DownloadAuditRepository,
    LeaseRepository,
    LicenceRepository,
    ReleaseRepository,
    UnitOfWork,
    VmRepository,
)
from botmox_core.ports.storage import (
    ObjectStorage,
    PresignedUrl,
    PresigningStorage,
    StorageCapabilities,
    presigning,
)
from botmox_core.ports.transport import AgentTransport

__all__ = [
    "AgentDataBackend",
    "AgentRepository",
    "AgentUnitOfWork",
    "CommandRepository",
    "supports_agents",
    "AgentTransport",
    "ApiTokenRepository",
    "AssignmentRepository",
    "BackendCapabilities",
    "DataBackend",
    "DownloadAuditRepository",
    "HealthReport",
    "LeaseRepository",
    "LicenceRepository",
    "ObjectStorage",
    "PresignedUrl",
    "PresigningStorage",
    "ReleaseRepository",
    "StorageCapabilities",
    "UnitOfWork",
    "VmRepository",
    "presigning",
]
