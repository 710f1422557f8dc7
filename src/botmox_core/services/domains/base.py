"""What every domain service shares: the backend's domain support, the clock in epoch
milliseconds, record ids and body limits."""

from __future__ import annotations

from typing import Any, cast

from botmox_core.domain.records import RECORD_ID_PATTERN
from botmox_core.errors import DomainsNotSupportedError
from botmox_core.ports import DataBackend
from botmox_core.ports.domains import DomainDataBackend, DomainUnitOfWork, supports_domains
from botmox_core.ports.repositories import read_unit_of_work
from botmox_core.services.domains.rules import invalid
from botmox_core.services.principal import Clock, utcnow

__all__ = [
    "MAX_RECORD_BYTES",
    "MAX_SETTINGS_BYTES",
    "DomainService",
    "record_id",
]

#: A record's ``data`` as compact UTF-8 JSON.
MAX_RECORD_BYTES = 256 * 1024
#: A tenant's whole settings tree as compact UTF-8 JSON.
MAX_SETTINGS_BYTES = 2 * 1024 * 1024


def record_id(value: Any, field: str = "id", *, trim: bool = False) -> str:
    """A record id (:data:`RECORD_ID_PATTERN`: 1-128 of ``A-Z a-z 0-9 _ : @ -``). A body's
    ``id`` is trimmed first (``trim``); an id from the URL is taken as it is, so a trailing
    newline or a control character is refused."""
    if isinstance(value, str) and trim:
        value = value.strip()
    if not isinstance(value, str) or not RECORD_ID_PATTERN.fullmatch(value):
        raise invalid(field, "must be 1-128 characters of A-Z a-z 0-9 _ : @ -")
    return value


class DomainService:
    """Base of the domain services: the backend (501 ``DOMAINS_NOT_SUPPORTED`` when it has no
    domain repositories) and the clock."""

    def __init__(self, backend: DataBackend, clock: Clock = utcnow) -> None:
        self._backend = backend
        self._clock = clock

    @property
    def supported(self) -> bool:
        """Whether the data backend declares domain data."""
        return supports_domains(self._backend)

    def _domains(self) -> DomainDataBackend:
        backend = self._backend
        if not supports_domains(backend):
            raise DomainsNotSupportedError(
                f"the {backend.name} data backend does not store domain data (resources, "
                "workspace, bots, finance, settings)"
            )
        return backend

    def _unit(self) -> DomainUnitOfWork:
        """A new unit of work with the domain repositories."""
        return self._domains().unit_of_work()

    def _read_unit(self) -> DomainUnitOfWork:
        """A new unit that only reads, with the domain repositories: the backend's read unit
        (:func:`~botmox_core.ports.repositories.read_unit_of_work`), so the reads the web client
        polls with take no write lock (SQLite: a reader connection, not the writer's queue) and
        cost no ``BEGIN``/``ROLLBACK`` round trips (PostgreSQL: autocommit). Each read in it
        sees what was committed before it ran; on PostgreSQL two reads in one read unit may see
        two different moments."""
        return cast(DomainUnitOfWork, read_unit_of_work(self._domains()))

    def now_ms(self) -> int:
        """The service clock in epoch milliseconds."""
        return int(self._clock().timestamp() * 1000)
