"""Values for firebase-admin queries (``equal_to``, ``start_at``, ``end_at``) that reach the
server exactly as meant."""

from __future__ import annotations

import json
from urllib.parse import quote

__all__ = ["query_string_value"]


def query_string_value(value: str) -> str:
    """The argument to give ``Query.equal_to`` so the server receives exactly ``value``.

    firebase-admin JSON-encodes query values but does not URL-encode them, so ``&``, ``+``,
    ``%``, ``#`` or ``=`` in a value would corrupt the query string. Passing the JSON-escaped
    body of the string already percent-encoded (which JSON encoding leaves alone) makes the
    server decode it back to the intended JSON string.
    """
    return quote(json.dumps(value)[1:-1], safe="")
