"""A loopback Firebase Realtime Database REST emulator, shipped for tests and local runs.

No Google emulator can be installed everywhere botmox is tested, so the plugin ships its own:
a real HTTP server that the real firebase-admin client talks to through
``FIREBASE_DATABASE_EMULATOR_HOST``. It implements the REST semantics the plugin relies on
(reads, writes, push ids, shallow reads, ordered and filtered queries with the real ordering
rules, ETags and conditional writes, ``print=silent``, ``.indexOn`` checks, key and depth
limits). Every known difference from the real service is listed in ``docs/rtdb.md``.

::

    from botmox_rtdb.testing import running_emulator

    with running_emulator(rules=rules_document()) as host_port:
        os.environ["FIREBASE_DATABASE_EMULATOR_HOST"] = host_port
        ...

Run one from a shell with ``python -m botmox_rtdb.testing --port 9000``.
"""

from botmox_rtdb.testing.push_ids import PushIdGenerator
from botmox_rtdb.testing.server import (
    ADMIN_TOKEN,
    RtdbEmulator,
    emulator_environ,
    running_emulator,
)

__all__ = [
    "ADMIN_TOKEN",
    "PushIdGenerator",
    "RtdbEmulator",
    "emulator_environ",
    "running_emulator",
]
