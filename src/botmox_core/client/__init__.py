"""The runner client: register a VM, hold a licence lease, fetch a verified artifact.

::

    from botmox_core.client import RunnerClient

    with RunnerClient("https://botmox.example.com", token) as client:
        result = client.fetch("farm-bot", "windows-x64", "stable", "bin/farm-bot.zip")

:class:`RunnerClient` (sync, httpx.Client) and :class:`AsyncRunnerClient` (asyncio,
httpx.AsyncClient) share one implementation of request building, envelope parsing, error mapping
and retry policy (:mod:`botmox_core.client._rules`) and of the resumable verified download
(:mod:`botmox_core.client._download`). Failures raise the :mod:`botmox_core.errors` class for the
server's error code, plus the client-only errors listed in :mod:`botmox_core.client._errors`.
See ``docs/runner-client.md``. :class:`VaultClient` seals secrets locally to agents' public
keys and sends only envelopes (``docs/vault.md``).
"""

from typing import TYPE_CHECKING, Any

from botmox_core.client._download import CHUNK_SIZE, PartialDownload
from botmox_core.client._errors import (
    InvalidResponseError,
    LocalFileError,
    NetworkError,
    ServerError,
)
from botmox_core.client._lease import Lease
from botmox_core.client._machine import machine_vm_uuid
from botmox_core.client._models import (
    DownloadResult,
    FetchResult,
    LeaseGrant,
    RegisteredVm,
    ResolvedDownload,
)
from botmox_core.client._redact import redact_url
from botmox_core.client._rules import RetryPolicy, parse_retry_after
from botmox_core.client._sync import LeaseSession, ProgressCallback, RunnerClient

if TYPE_CHECKING:
    from botmox_core.client._async import AsyncLeaseSession, AsyncRunnerClient
    from botmox_core.client._vault import VaultClient

#: Imported on first use, so that ``botmox runner fetch`` (sync client only) does not load asyncio
#: and the vault's cryptography at start-up.
_LAZY = {
    "AsyncLeaseSession": "botmox_core.client._async",
    "AsyncRunnerClient": "botmox_core.client._async",
    "VaultClient": "botmox_core.client._vault",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CHUNK_SIZE",
    "AsyncLeaseSession",
    "AsyncRunnerClient",
    "DownloadResult",
    "FetchResult",
    "InvalidResponseError",
    "Lease",
    "LeaseGrant",
    "LeaseSession",
    "LocalFileError",
    "NetworkError",
    "PartialDownload",
    "ProgressCallback",
    "RegisteredVm",
    "ResolvedDownload",
    "RetryPolicy",
    "RunnerClient",
    "ServerError",
    "VaultClient",
    "machine_vm_uuid",
    "parse_retry_after",
    "redact_url",
]
