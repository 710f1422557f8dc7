"""The conformance suite every botmox backend passes (``pip install botmox[testing]``).

Subclass a mixin, provide its backend fixture, run plain ``pytest``::

    import pytest
    from botmox_core.testing import ObjectStorageConformance

    class TestMyStore(ObjectStorageConformance):
        @pytest.fixture
        def storage(self, tmp_path):
            yield MyStore(tmp_path)

Mixins:

* :class:`RepositoryConformance` — fixture ``backend`` yields a fresh, empty
  :class:`~botmox_core.ports.DataBackend`.
* :class:`ObjectStorageConformance` — fixture ``storage`` yields a fresh, empty
  :class:`~botmox_core.ports.ObjectStorage`.
* :class:`AgentRepositoryConformance` — fixture ``backend`` yields a fresh, empty backend whose
  units of work carry the agent and command repositories (:mod:`botmox_core.ports.agents`).
* :class:`DomainRepositoryConformance` — fixture ``backend`` yields a fresh, empty backend that
  declares ``capabilities.domains`` (:mod:`botmox_core.ports.domains`; one mixin per domain
  repository in :mod:`botmox_core.testing.domains`).
* :class:`VaultRepositoryConformance` — fixture ``backend`` yields a fresh, empty backend that
  declares ``capabilities.vault`` (:mod:`botmox_core.ports.vault`; in
  :mod:`botmox_core.testing.vault`).

What a backend can do is read from its declaration (``backend.capabilities`` /
``storage.capabilities``): the tests of every claimed capability run, the others skip with the
reason. Class-level flags still override the declaration for older test suites.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AgentRepositoryConformance",
    "DomainRepositoryConformance",
    "ObjectStorageConformance",
    "RepositoryConformance",
    "VaultRepositoryConformance",
]


def __getattr__(name: str) -> Any:
    if name == "RepositoryConformance":
        from botmox_core.testing.repository import RepositoryConformance

        return RepositoryConformance
    if name == "ObjectStorageConformance":
        from botmox_core.testing.storage import ObjectStorageConformance

        return ObjectStorageConformance
    if name == "AgentRepositoryConformance":
        from botmox_core.testing.agents import AgentRepositoryConformance

        return AgentRepositoryConformance
    if name == "DomainRepositoryConformance":
        from botmox_core.testing.domains import DomainRepositoryConformance

        return DomainRepositoryConformance
    if name == "VaultRepositoryConformance":
        from botmox_core.testing.vault import VaultRepositoryConformance

        return VaultRepositoryConformance
    raise AttributeError(name)
