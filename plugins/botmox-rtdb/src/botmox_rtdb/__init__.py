"""botmox-rtdb: the botmox repositories on Firebase Realtime Database (firebase-admin).

Select it with ``DATA_BACKEND=rtdb`` and ``BOTMOX_RTDB_DATABASE_URL``; see ``docs/rtdb.md``
for options, the tree layout (:mod:`botmox_rtdb.layout`), the rules to deploy
(``python -m botmox_rtdb.rules``), what a unit of work guarantees, and the shipped emulator
(:mod:`botmox_rtdb.testing`).
"""

from botmox_rtdb.backend import RtdbBackend, build_backend
from botmox_rtdb.options import RtdbOptions, read_options

__all__ = ["RtdbBackend", "RtdbOptions", "build_backend", "read_options"]
