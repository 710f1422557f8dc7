"""botmox-fsspec-storage: an example third-party botmox storage plugin.

Stores artifacts on any `fsspec <https://filesystem-spec.readthedocs.io>`_ filesystem (local
files, memory, SFTP, cloud stores ...). It is the worked example of
``docs/writing-a-storage-plugin.md``: a plain synchronous class implementing
:class:`botmox_core.ports.ObjectStorage`, a hook that registers a factory, an entry point, and
tests that subclass the conformance suite.
"""

from botmox_fsspec_storage.storage import FsspecStorage

__all__ = ["FsspecStorage"]
