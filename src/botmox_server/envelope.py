"""The contract's success envelope."""

from __future__ import annotations

from typing import Any

from litestar import Response

from botmox_core.converter import get_converter


def ok(data: Any, status: int = 200, meta: dict[str, Any] | None = None) -> Response[Any]:
    """``{"success": true, "data": ..., "meta"?: ...}`` with ``data`` unstructured to JSON types."""
    body: dict[str, Any] = {"success": True, "data": get_converter().unstructure(data)}
    if meta is not None:
        body["meta"] = meta
    return Response(body, status_code=status)
