"""The agent channel's frames: limits, close codes, and the checks every frame passes before
anything acts on it (size, JSON depth, field types). See ``docs/agent-protocol.md``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from litestar.exceptions import SerializationException

from botmox_core.converter import get_converter
from botmox_core.errors import BadRequestError
from botmox_server.bounded_json import decode_bounded
from botmox_server.logs import escape

__all__ = [
    "CLOSE_BAD_HELLO",
    "CLOSE_REPLACED",
    "CLOSE_REVOKED",
    "CLOSE_UNAUTHORIZED",
    "HELLO_TIMEOUT",
    "MAX_FRAME_BYTES",
    "MAX_INFLIGHT_DEFAULT",
    "MAX_INFLIGHT_LIMIT",
    "MAX_RESUME_IDS",
    "REFUSAL_CODES",
    "FrameError",
    "check_fields",
    "decode_frame",
    "encode_frame",
    "parse_hello",
]

#: Largest text frame the handler reads; larger frames get an error frame (uvicorn itself
#: closes the connection for frames over its ``ws_max_size``, 16 MiB by default).
MAX_FRAME_BYTES = 1024 * 1024
HELLO_TIMEOUT = 10.0
MAX_INFLIGHT_DEFAULT, MAX_INFLIGHT_LIMIT = 4, 100
#: Close codes (4000–4999 are the application's).
CLOSE_UNAUTHORIZED, CLOSE_REVOKED, CLOSE_REPLACED, CLOSE_BAD_HELLO = 4401, 4403, 4409, 4400
#: The ``error`` frame's code before a 4401 close, per refusal reason.
REFUSAL_CODES = {
    "missing": "AGENT_TOKEN_MISSING",
    "unknown": "AGENT_TOKEN_UNKNOWN",
    "expired": "AGENT_TOKEN_EXPIRED",
    "revoked": "AGENT_REVOKED",
    "not_active": "AGENT_NOT_ACTIVE",
}
#: Most command ids of ``hello.resume.running`` the server looks at.
MAX_RESUME_IDS = 1000


class FrameError(Exception):
    """A frame the protocol refuses: answered with an ``error`` frame ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def decode_frame(text: str) -> dict[str, Any]:
    """One text frame as a JSON object with a string ``type``, bounded in size (UTF-8 bytes)
    and depth before anything else looks at it; :class:`FrameError` otherwise."""
    if len(text) > MAX_FRAME_BYTES:
        raise FrameError("FRAME_TOO_LARGE", f"frames are limited to {MAX_FRAME_BYTES} bytes")
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_FRAME_BYTES:
        raise FrameError("FRAME_TOO_LARGE", f"frames are limited to {MAX_FRAME_BYTES} bytes")
    try:
        frame = decode_bounded(raw, what="frame")
    except BadRequestError as exc:  # nested past the depth limit
        raise FrameError("BAD_FRAME", exc.message) from None
    except (SerializationException, ValueError):
        raise FrameError("BAD_FRAME", "frame is not valid JSON") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise FrameError("BAD_FRAME", "a frame is a JSON object with a string 'type'")
    return frame


#: Fields each agent frame must carry, with their JSON types (``None`` in a tuple: optional).
_FRAME_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "heartbeat": {},
    "ack": {"command_id": (str,)},
    "cancel_ack": {"command_id": (str,)},
    "release": {"command_id": (str,)},
    "progress": {"command_id": (str,), "seq": (int,), "data": (str,)},
    "result": {
        "command_id": (str,),
        "status": (str,),
        "result": (dict, type(None)),
        "error": (str, type(None)),
    },
}


def check_fields(kind: str, frame: Mapping[str, Any]) -> None:
    """``BAD_FRAME`` naming the first field of a ``kind`` frame that is missing or of the
    wrong JSON type (values are checked later: a negative ``seq`` is ``BAD_REQUEST``)."""
    for field, types in _FRAME_FIELDS.get(kind, {}).items():
        value = frame.get(field)
        if field not in frame and type(None) in types:
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            wanted = " or ".join(_JSON_TYPE_NAMES[t] for t in types)
            raise FrameError("BAD_FRAME", f"{kind}.{field}: must be {wanted}")


_JSON_TYPE_NAMES = {str: "a string", int: "an integer", dict: "an object", type(None): "null"}


def parse_hello(text: str) -> dict[str, Any]:
    """The ``hello`` frame, checked field by field; :class:`FrameError` (then close 4400)."""
    hello = decode_frame(text)
    if hello["type"] != "hello":
        raise FrameError(
            "BAD_FRAME", "the first frame must be hello, not '" + escape(hello["type"], 40) + "'"
        )
    token = hello.get("token")
    if token is not None and not isinstance(token, str):
        raise FrameError("BAD_FRAME", "hello.token: must be a string")
    inflight = hello.get("max_inflight")
    if inflight is not None and (
        isinstance(inflight, bool)
        or not isinstance(inflight, int)
        or not 1 <= inflight <= MAX_INFLIGHT_LIMIT
    ):
        raise FrameError(
            "BAD_FRAME", f"hello.max_inflight: must be an integer from 1 to {MAX_INFLIGHT_LIMIT}"
        )
    resume = hello.get("resume")
    if resume is not None:
        running = resume.get("running") if isinstance(resume, dict) else None
        if not isinstance(resume, dict) or not (
            running is None
            or (isinstance(running, list) and all(isinstance(i, str) for i in running))
        ):
            raise FrameError(
                "BAD_FRAME", "hello.resume: must be an object whose running is a list of ids"
            )
    return hello


def encode_frame(kind: str, **fields: Any) -> str:
    """A server frame as JSON text (``fields`` unstructured with the shared converter)."""
    return json.dumps({"type": kind, **get_converter().unstructure(fields)})
