"""The botmox repositories on Firebase Realtime Database (layout: :mod:`botmox_rtdb.layout`).

Each repository stages its writes in the :class:`~botmox_rtdb.write_buffer.WriteBuffer` of its
unit of work (:mod:`botmox_rtdb.unit_of_work`), which applies them at commit; see those modules
for exactly what is atomic.

One module per aggregate, like the conformance kit (:mod:`botmox_core.testing.repository`):
:mod:`~botmox_rtdb.repositories.tokens`, :mod:`~botmox_rtdb.repositories.vms`,
:mod:`~botmox_rtdb.repositories.licences`, :mod:`~botmox_rtdb.repositories.leases`,
:mod:`~botmox_rtdb.repositories.releases`, :mod:`~botmox_rtdb.repositories.assignments`,
:mod:`~botmox_rtdb.repositories.audit`; every class is re-exported here.
"""

from __future__ import annotations

from botmox_rtdb.queries import query_string_value
from botmox_rtdb.repositories.assignments import RtdbAssignmentRepository
from botmox_rtdb.repositories.audit import RtdbDownloadAuditRepository
from botmox_rtdb.repositories.leases import RtdbLeaseRepository
from botmox_rtdb.repositories.licences import RtdbLicenceRepository
from botmox_rtdb.repositories.releases import RtdbReleaseRepository
from botmox_rtdb.repositories.tokens import RtdbApiTokenRepository
from botmox_rtdb.repositories.vms import RtdbVmRepository

__all__ = [
    "RtdbApiTokenRepository",
    "RtdbAssignmentRepository",
    "RtdbDownloadAuditRepository",
    "RtdbLeaseRepository",
    "RtdbLicenceRepository",
    "RtdbReleaseRepository",
    "RtdbVmRepository",
    "query_string_value",
]
