"""The body of ``POST /api/v1/artifacts/resolve-download``, decoded by its handler.

Resolve-download is the hot path of every VM boot, so its handler takes the raw request and
decodes the body itself in one typed :mod:`msgspec` pass, after authenticating the caller
(a bad bearer token is a 401 whatever the body holds). The answers for bad bodies are the ones
Litestar gives every other route -- 400 ``BAD_REQUEST`` naming the field, in the contract's
envelope -- and the body is documented in OpenAPI as if Litestar had decoded it
(:class:`ResolveDownloadOperation`).

Depth needs no separate scan here: every field is a string, so a nested value is refused at its
first bracket, and an unknown field nested past the decoder's limit is a 400 like everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec
from litestar.exceptions import ClientException, ValidationException
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)

from botmox_core.services import validation as check

__all__ = ["ResolveDownloadOperation", "ResolveDownloadRequest", "decode_resolve_body"]


class ResolveDownloadRequest(msgspec.Struct):
    """What a runner sends to resolve a download (unknown fields are ignored)."""

    lease_token: str
    vm_uuid: str
    module: str
    platform: str
    channel: str = "stable"


_AT_FIELD = re.compile(r"^(?P<message>.*) - at `\$\.(?P<field>[A-Za-z_]{1,32})`$", re.DOTALL)


def decode_resolve_body(raw: bytes) -> ResolveDownloadRequest:
    """The decoded body; 400 ``BAD_REQUEST`` (Litestar's validation error, so the envelope and
    ``details`` are those of every route) when it is not a JSON object of these string fields."""
    if not raw.strip():
        raise ValidationException(
            "request body is empty",
            extra=[{"key": "body", "message": "a JSON object is required", "source": "body"}],
        )
    try:
        return msgspec.json.decode(raw, type=ResolveDownloadRequest)
    except msgspec.ValidationError as exc:
        text = str(exc)
        at = _AT_FIELD.match(text)
        field, message = (at["field"], at["message"]) if at else ("body", text)
        raise ValidationException(
            text, extra=[{"key": field, "message": message, "source": "body"}]
        ) from None
    except msgspec.DecodeError as exc:
        raise ClientException(str(exc)) from None
    except RecursionError:
        raise check.invalid(
            "body", f"must nest at most {check.MAX_JSON_DEPTH} levels deep"
        ) from None


_STRING = Schema(type=OpenAPIType.STRING)
_BODY_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    title="ResolveDownloadBody",
    properties={
        "lease_token": _STRING,
        "vm_uuid": _STRING,
        "module": _STRING,
        "platform": _STRING,
        "channel": Schema(type=OpenAPIType.STRING, default="stable"),
    },
    required=["lease_token", "module", "platform", "vm_uuid"],
)


@dataclass
class ResolveDownloadOperation(Operation):
    """The route's OpenAPI operation with its JSON request body (the handler reads the body
    itself, so Litestar cannot infer it)."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={"application/json": OpenAPIMediaType(schema=_BODY_SCHEMA)}, required=True
        )
