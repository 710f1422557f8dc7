"""Export and import of one tenant's domain data as JSON lines (``botmox data export|import``;
the format the migration tool reuses). See docs/domains.md, "Export and import".

The format (``botmox-domain-data``, version 1) is UTF-8 text, one compact JSON object per line:

1. a header: ``{"kind": "header", "format": "botmox-domain-data", "version": 1, "tenant": ...,
   "source_backend": ..., "exported_at": <epoch ms>}``;
2. the items, one per line, in this order:
   ``{"kind": "settings", "tree": {...}}`` (when the tenant has a tree),
   ``{"kind": "aggregate", "key": "daily_stats", "value": {...}}`` (per stored aggregate),
   ``{"kind": "record", "collection": "bots", "id": ..., "data": {...}}`` (per collection, in
   id order), ``{"kind": "lifecycle_log", "id", "bot_id", "type", "message", "timestamp",
   "details"}`` and ``{"kind": "archive", "id", "bot_id", "reason", "archived_at",
   "ban_details", "snapshot"}`` (oldest first);
3. a trailer: ``{"kind": "trailer", "items": N, "counts": {...}, "sha256": ...}``: how many
   item lines, per kind and collection, and the SHA-256 of every byte before the trailer line
   (header and items, newlines included), so a truncated or altered file is detected.

Export reads through the repository ports page by page (bounded memory). Import checks the
whole file first (JSON, kinds, ids, keys, depth, sizes: the rules the services apply; then the
trailer) and writes nothing when it finds a problem, unless told to go on; then it writes
through the ports with upsert semantics, so importing the same file twice changes nothing the
second time: a record is added when absent, replaced when different (``created_at`` and
``updated_at`` kept exactly as exported) and left alone when equal; log and archive entries are
appended when absent; aggregates and the settings tree are replaced when different.
"""

from __future__ import annotations

from botmox_core.services.domains.transfer.export import PAGE_SIZE as PAGE_SIZE
from botmox_core.services.domains.transfer.export import export_tenant, export_to_path
from botmox_core.services.domains.transfer.format import AGGREGATES as AGGREGATES
from botmox_core.services.domains.transfer.format import ARCHIVE as ARCHIVE
from botmox_core.services.domains.transfer.format import (
    FORMAT,
    VERSION,
    ExportReport,
    ImportReport,
    LineError,
    TransferError,
    TransferProgress,
    Writable,
)
from botmox_core.services.domains.transfer.format import LOG as LOG
from botmox_core.services.domains.transfer.format import MAX_LINE_BYTES as MAX_LINE_BYTES
from botmox_core.services.domains.transfer.format import MAX_LISTED_ERRORS as MAX_LISTED_ERRORS
from botmox_core.services.domains.transfer.format import SETTINGS as SETTINGS
from botmox_core.services.domains.transfer.importing import BATCH_SIZE as BATCH_SIZE
from botmox_core.services.domains.transfer.importing import import_tenant, readable_path
from botmox_core.services.domains.transfer.lines import _Bad as _Bad
from botmox_core.services.domains.transfer.lines import _item as _item

__all__ = [
    "ExportReport",
    "FORMAT",
    "ImportReport",
    "LineError",
    "TransferError",
    "TransferProgress",
    "VERSION",
    "Writable",
    "export_tenant",
    "export_to_path",
    "import_tenant",
    "readable_path",
]
