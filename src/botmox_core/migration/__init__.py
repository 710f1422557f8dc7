"""Migration between data backends, parity reports and the cutover's write freeze
(``botmox migrate``, ``botmox parity``, ``botmox cutover``; docs/cutover.md).

* :mod:`~botmox_core.migration.canonical` — a record's canonical form and hash;
* :mod:`~botmox_core.migration.streams` — what is copied, per tenant, through the ports;
* :mod:`~botmox_core.migration.engine` — the copy (merge by key, batches, checkpoints, lock);
* :mod:`~botmox_core.migration.parity` — bucketed hash comparison, record-level report;
* :mod:`~botmox_core.migration.control` — lock, checkpoints and the write freeze entries;
* :mod:`~botmox_core.migration.endpoints` — a backend built from the server's settings.
"""

from botmox_core.migration.engine import MigrationOptions, MigrationReport, migrate
from botmox_core.migration.parity import ParityReport, parity

__all__ = ["MigrationOptions", "MigrationReport", "ParityReport", "migrate", "parity"]
