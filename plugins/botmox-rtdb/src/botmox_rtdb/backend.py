"""The RTDB :class:`~botmox_core.ports.DataBackend`: one named firebase-admin app per backend."""

from __future__ import annotations

import threading
import time
import uuid

import firebase_admin
from firebase_admin import db

from botmox_core.config import Settings
from botmox_core.errors import BotmoxError, ConfigurationError
from botmox_core.ports.health import HealthReport
from botmox_core.ports.repositories import BackendCapabilities
from botmox_rtdb import layout
from botmox_rtdb.domain_repositories import DomainLayout
from botmox_rtdb.options import RtdbOptions, load_credential, read_options
from botmox_rtdb.sdk_errors import map_rtdb_errors
from botmox_rtdb.unit_of_work import RtdbReadUnitOfWork, RtdbUnitOfWork

__all__ = ["RtdbBackend", "build_backend"]


class RtdbBackend:
    """Repositories on Firebase Realtime Database.

    Each instance owns a firebase-admin app of its own name, so several backends (say, two
    projects, or a test's fresh database) coexist in one process; :meth:`close` deletes it.
    Capability: a unit of work is not atomic across records — see
    :mod:`botmox_rtdb.unit_of_work` for exactly what is.
    """

    name = "rtdb"
    #: Writes are buffered until commit (so rollback discards them), but a commit is not atomic
    #: across records (docs/rtdb.md, "Units of work"); timestamps are stored as the shared
    #: converter writes them, with milliseconds; no agent repositories (yet); domain data at
    #: the seed's paths (:mod:`botmox_rtdb.domain_repositories`); the vault at
    #: ``tenants/{tenant}/vault`` (:mod:`botmox_rtdb.vault_repositories`).
    capabilities = BackendCapabilities(
        agents=False,
        rollback=True,
        multi_record_transactions=False,
        microsecond_timestamps=False,
        validates_release_values=True,
        domains=True,
        control=True,
        vault=True,
    )

    def __init__(self, options: RtdbOptions) -> None:
        credential = load_credential(options)
        self.options = options
        self._lock = threading.Lock()
        try:
            self._app: firebase_admin.App | None = firebase_admin.initialize_app(
                credential,
                {"databaseURL": options.database_url, "httpTimeout": options.http_timeout},
                name=f"botmox-rtdb-{uuid.uuid4().hex}",
            )
        except ValueError as exc:
            raise ConfigurationError(f"rtdb: firebase-admin refused the options: {exc}") from None

    def __repr__(self) -> str:
        kind = "emulator" if self.options.emulator else "firebase"
        return f"RtdbBackend({kind}, open={self._app is not None})"

    @property
    def app(self) -> firebase_admin.App:
        """The firebase-admin app; :class:`ConfigurationError` once closed."""
        if self._app is None:
            raise ConfigurationError("rtdb: the backend is closed")
        return self._app

    def unit_of_work(self) -> RtdbUnitOfWork:
        """A new unit of work (buffers writes until commit)."""
        return RtdbUnitOfWork(self.app, DomainLayout(self.options.legacy_tenant))

    def read_unit_of_work(self) -> RtdbReadUnitOfWork:
        """A unit that only reads (:class:`~botmox_core.ports.repositories.ReadingBackend`):
        reads go straight to the database as in any unit; its ``commit`` is refused."""
        return RtdbReadUnitOfWork(self.app, DomainLayout(self.options.legacy_tenant))

    def check_health(self) -> HealthReport:
        """A shallow read of ``botmox_meta``; ``ok`` with the round-trip latency."""
        started = time.perf_counter()
        try:
            with map_rtdb_errors("health check"):
                db.reference(layout.META, app=self.app).get(shallow=True)
        except BotmoxError as exc:
            return HealthReport(name=self.name, ok=False, detail=exc.message,
                                latency_ms=(time.perf_counter() - started) * 1000)
        detail = "firebase_ready (emulator)" if self.options.emulator else "firebase_ready"
        return HealthReport(name=self.name, ok=True, detail=detail,
                            latency_ms=(time.perf_counter() - started) * 1000)

    def close(self) -> None:
        """Delete the firebase-admin app and its HTTP sessions. Idempotent."""
        with self._lock:
            app, self._app = self._app, None
        if app is not None:
            firebase_admin.delete_app(app)


def build_backend(settings: Settings) -> RtdbBackend:
    """The plugin factory: an :class:`RtdbBackend` from ``settings`` (see
    :mod:`botmox_rtdb.options`)."""
    return RtdbBackend(read_options(settings))
