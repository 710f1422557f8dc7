"""A loopback HTTP server speaking the Firebase Realtime Database REST API.

One process-local JSON tree per namespace (``?ns=``), every request applied under one lock,
so each request is atomic as on the real service. See ``docs/rtdb.md`` for what is and is not
emulated.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import re
import socket
import threading
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from botmox_rtdb.testing.ordering import QUERY_PARAMETERS, parse_query, run_query
from botmox_rtdb.testing.push_ids import PushIdGenerator
from botmox_rtdb.testing.rules import LoadedRules, load_rules
from botmox_rtdb.testing.tree import (
    InvalidDataError,
    compute_etag,
    get_node,
    normalise_value,
    parse_path,
    set_node,
    to_wire,
)

__all__ = ["ADMIN_TOKEN", "RtdbEmulator", "emulator_environ", "running_emulator"]

log = logging.getLogger(__name__)

ADMIN_TOKEN = "owner"  # noqa: S105 - the emulator protocol's fixed admin token, not a secret
"""The bearer token firebase-admin sends to an emulator; it grants admin access."""

DEFAULT_RULES: dict[str, Any] = {"rules": {".read": False, ".write": False}}
_RULES_PATH = "/.settings/rules.json"
_UNSUPPORTED_PARAMETERS = frozenset({"startAfter", "endBefore", "format", "callback", "download"})
_INVALID_JSON = "Invalid data; couldn't parse JSON object, array, or value."
_MALFORMED_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


class _RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RtdbEmulator:
    """The emulator: data, rules and a :class:`ThreadingHTTPServer` on a loopback port.

    Use :func:`running_emulator` in tests; :meth:`start`/:meth:`stop` for longer-lived use.
    """

    def __init__(
        self, rules: Mapping[str, Any] | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {}
        self._rules: LoadedRules = load_rules(json.loads(json.dumps(rules or DEFAULT_RULES)))
        self._push_ids = PushIdGenerator()
        self._host = host
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        """Listen and serve in a background thread; return ``host:port``."""
        if self._server is not None:
            return self.host_port
        server = ThreadingHTTPServer((self._host, self._port), _handler_for(self))
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
            name=f"rtdb-emulator-{self.host_port}",
        )
        self._thread.start()
        return self.host_port

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open connection. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:  # keep-alive clients must see the server gone
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def host_port(self) -> str:
        """``host:port`` for ``FIREBASE_DATABASE_EMULATOR_HOST``."""
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def database_url(self, namespace: str = "botmox-test") -> str:
        """A database URL that firebase-admin maps to this emulator (``http://...?ns=``)."""
        return f"http://{self.host_port}/?ns={namespace}"

    # -- out-of-band access (tests) ----------------------------------------------------------

    def read(self, namespace: str, path: str = "/") -> Any:
        """The JSON value at ``path`` in ``namespace``, bypassing HTTP (for test assertions)."""
        with self._lock:
            return to_wire(get_node(self._data.get(namespace), parse_path(path)))

    def write(self, namespace: str, path: str, value: Any) -> None:
        """Replace the value at ``path``, bypassing HTTP (for seeding test data)."""
        segments = parse_path(path)
        with self._lock:
            stored = normalise_value(value, len(segments))
            root = set_node(self._data.get(namespace), segments, stored)
            self._set_root(namespace, root)

    def set_rules(self, document: Mapping[str, Any]) -> None:
        """Replace the security rules (as a ``PUT /.settings/rules.json`` would)."""
        loaded = load_rules(json.loads(json.dumps(document)))
        with self._lock:
            self._rules = loaded

    def reset(self) -> None:
        """Drop every namespace's data."""
        with self._lock:
            self._data.clear()

    # -- request handling (called by the handler) ------------------------------------------

    def _set_root(self, namespace: str, root: Any) -> None:
        if root is None:
            self._data.pop(namespace, None)
        else:
            self._data[namespace] = root

    def handle(
        self,
        method: str,
        raw_path: str,
        params: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> tuple[int, Any, dict[str, str]]:
        """Apply one REST request; return (status, JSON body or ``...`` for none, headers)."""
        namespace = params.get("ns") or headers.get("host", "default").split(".")[0]
        unsupported = _UNSUPPORTED_PARAMETERS & params.keys()
        if unsupported:
            raise _RequestError(
                400, f"{', '.join(sorted(unsupported))}: not supported by the botmox emulator"
            )
        admin = self._is_admin(headers, params)
        if raw_path == _RULES_PATH:
            return self._handle_rules(method, admin, body)
        if not raw_path.endswith(".json"):
            raise _RequestError(404, "Not Found: paths end with .json")
        try:
            segments = parse_path(_decode_path(raw_path[: -len(".json")]))
        except InvalidDataError as exc:
            raise _RequestError(400, f"Invalid path: {exc.message}") from None
        operation = ".read" if method == "GET" else ".write"
        if not admin and not self._rules.public(operation):
            raise _RequestError(401, "Permission denied")
        with self._lock:
            if method == "GET":
                return self._get(namespace, segments, params, headers)
            return self._write(method, namespace, segments, params, headers, body)

    def _is_admin(self, headers: Mapping[str, str], params: Mapping[str, str]) -> bool:
        authorization = headers.get("authorization", "")
        token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
        return token == ADMIN_TOKEN or params.get("auth") == ADMIN_TOKEN

    def _handle_rules(
        self, method: str, admin: bool, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        if not admin:
            raise _RequestError(401, "Permission denied")
        if method == "GET":
            with self._lock:
                return 200, self._rules.document, {}
        if method == "PUT":
            document = _parse_body(body)
            try:
                loaded = load_rules(document)
            except InvalidDataError as exc:
                raise _RequestError(400, exc.message) from None
            with self._lock:
                self._rules = loaded
            return 200, {"status": "ok"}, {}
        raise _RequestError(405, "Method not allowed for rules")

    def _get(
        self,
        namespace: str,
        segments: list[str],
        params: Mapping[str, str],
        headers: Mapping[str, str],
    ) -> tuple[int, Any, dict[str, str]]:
        node = get_node(self._data.get(namespace), segments)
        response_headers: dict[str, str] = {}
        wants_etag = headers.get("x-firebase-etag", "").lower() == "true"
        shallow = params.get("shallow", "").lower() == "true"
        try:
            query = parse_query(params)
        except InvalidDataError as exc:
            raise _RequestError(400, exc.message) from None
        if shallow and query is not None:
            raise _RequestError(400, "Mixing 'shallow' and querying parameters is not supported")
        if wants_etag and (shallow or query is not None):
            raise _RequestError(400, "ETags are not supported with shallow reads or queries")
        silent = params.get("print") == "silent"  # the REST guide: "returns a 204 No Content"
        if query is not None:
            if query.order_by not in ("$key", "$priority"):
                field = ".value" if query.order_by == "$value" else query.order_by
                if field not in self._rules.index_fields(segments):
                    location = "/" + "/".join(segments)
                    raise _RequestError(
                        400,
                        f'Index not defined, add ".indexOn": "{field}", for path '
                        f'"{location}", to the rules',
                    )
            if silent:
                return 204, ..., response_headers
            return 200, to_wire(run_query(node, query)), response_headers
        if_none_match = headers.get("if-none-match")
        # hashing the whole node costs O(size): only when an ETag is asked for
        etag = compute_etag(node) if wants_etag or if_none_match is not None else ""
        if wants_etag or if_none_match is not None:
            # firebase-admin's get_if_changed() sends if-none-match alone and reads the new ETag
            # from the 200 answer.
            response_headers["ETag"] = etag
        if if_none_match is not None and if_none_match == etag:
            return 304, ..., {"ETag": etag}
        if silent:
            return 204, ..., response_headers
        if shallow:
            if isinstance(node, dict):
                return 200, dict.fromkeys(node, True), response_headers
            return 200, node, response_headers
        return 200, to_wire(node), response_headers

    def _write(
        self,
        method: str,
        namespace: str,
        segments: list[str],
        params: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> tuple[int, Any, dict[str, str]]:
        if QUERY_PARAMETERS & params.keys() or "shallow" in params:
            raise _RequestError(400, "Query parameters are only supported on reads")
        root = self._data.get(namespace)
        current = get_node(root, segments)
        if_match = headers.get("if-match")
        if if_match is not None:
            if method not in ("PUT", "DELETE"):
                raise _RequestError(400, "if-match is only supported on PUT and DELETE")
            current_etag = compute_etag(current)
            if if_match != current_etag:
                return 412, to_wire(current), {"ETag": current_etag}
        try:
            if method == "PUT":
                value = normalise_value(_parse_body(body), len(segments))
                root = set_node(root, segments, value)
                result: Any = to_wire(value)
                written = value
            elif method == "DELETE":
                root = set_node(root, segments, None)
                result, written = None, None
            elif method == "PATCH":
                root, result = self._patch(root, segments, _parse_body(body))
                written = get_node(root, segments)
            elif method == "POST":
                value = normalise_value(_parse_body(body), len(segments) + 1)
                if value is None:
                    raise InvalidDataError("Invalid data; cannot push null")
                name = self._push_ids.next_id()
                root = set_node(root, [*segments, name], value)
                result, written = {"name": name}, get_node(root, segments)
            else:
                raise _RequestError(405, f"Method {method} not allowed")
        except InvalidDataError as exc:
            raise _RequestError(400, exc.message) from None
        self._set_root(namespace, root)
        response_headers: dict[str, str] = {}
        if if_match is not None or headers.get("x-firebase-etag", "").lower() == "true":
            response_headers["ETag"] = compute_etag(written)
        if params.get("print") == "silent":
            return 204, ..., response_headers
        return 200, result, response_headers

    def _patch(self, root: Any, segments: list[str], update: Any) -> tuple[Any, Any]:
        if not isinstance(update, dict):
            raise InvalidDataError(
                "Invalid data; couldn't parse JSON object. Are you sending a JSON object with "
                "valid key names?"
            )
        planned: list[tuple[list[str], Any]] = []
        for relative, value in update.items():
            child = parse_path(relative)
            if not child:
                raise InvalidDataError("Invalid data; update paths must not be empty")
            if len(segments) + len(child) > 32:
                raise InvalidDataError("Path is deeper than 32 levels")
            planned.append((child, normalise_value(value, len(segments) + len(child))))
        paths = sorted(tuple(child) for child, _ in planned)
        for shorter, longer in itertools.pairwise(paths):
            if longer[: len(shorter)] == shorter:
                raise InvalidDataError(
                    f"Invalid data; path '{'/'.join(shorter)}' is an ancestor of "
                    f"'{'/'.join(longer)}' in the same update"
                )
        for child, value in planned:
            root = set_node(root, [*segments, *child], value)
        return root, update


def _parse_body(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _RequestError(400, _INVALID_JSON) from None


def _decode_path(raw: str) -> str:
    """The URL path percent-decoded as UTF-8, as the real service decodes it (``a%41`` is the
    key ``aA``; ``%3F`` is ``?``). A ``%`` that starts no escape, or escapes that are not
    UTF-8, are refused rather than guessed at."""
    if _MALFORMED_ESCAPE.search(raw):
        raise InvalidDataError("malformed percent-escape")
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise InvalidDataError("percent-escapes are not UTF-8") from None


def _handler_for(emulator: RtdbEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(_EmulatorRequestHandler):
        pass

    Handler.emulator = emulator
    return Handler


class _EmulatorRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "botmox-rtdb-emulator"
    timeout = 60
    emulator: RtdbEmulator

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.emulator._connections_lock:
            self.emulator._connections.add(self.connection)

    def finish(self) -> None:
        with self.emulator._connections_lock:
            self.emulator._connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("rtdb emulator: " + format, *args)

    def _dispatch(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._respond(400, {"error": "Invalid Content-Length"}, {}, pretty=False)
            return
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        headers = {name.lower(): value for name, value in self.headers.items()}
        override = params.pop("x-http-method-override", headers.get("x-http-method-override"))
        if method == "POST" and override:
            method = override.upper()
        try:
            status, payload, extra = self.emulator.handle(method, split.path, params, headers, body)
        except _RequestError as exc:
            status, payload, extra = exc.status, {"error": exc.message}, {}
        except Exception:  # the emulator must answer, as a server would, not drop the socket
            log.exception("rtdb emulator: internal error")
            status, payload, extra = 500, {"error": "Internal server error"}, {}
        self._respond(status, payload, extra, pretty=params.get("print") == "pretty")

    def _respond(self, status: int, payload: Any, headers: dict[str, str], pretty: bool) -> None:
        data = b""
        if payload is not ... and status not in (204, 304):
            text = json.dumps(payload, indent=2 if pretty else None, ensure_ascii=False)
            try:
                data = text.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates stored from \u escapes: stay JSON
                data = json.dumps(payload, indent=2 if pretty else None).encode("ascii")
        self.send_response(status, HTTPStatus(status).phrase)
        for name, value in headers.items():
            self.send_header(name, value)
        if status not in (204, 304):
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if data:
            self.wfile.write(data)


@contextlib.contextmanager
def running_emulator(
    rules: Mapping[str, Any] | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[str]:
    """Run an emulator for the duration of the ``with`` block; yields ``host:port``.

    Point firebase-admin at it with ``FIREBASE_DATABASE_EMULATOR_HOST=<host:port>`` and any
    ``https://<namespace>.firebaseio.com`` database URL, or with the database URL
    ``http://<host:port>/?ns=<namespace>``. ``rules`` is a ``database.rules.json`` document;
    its ``.indexOn`` entries decide which ``orderBy`` child queries are allowed. The server is
    stopped when the block exits. Use :class:`RtdbEmulator` directly for out-of-band reads.
    """
    emulator = RtdbEmulator(rules=rules, host=host, port=port)
    emulator.start()
    try:
        yield emulator.host_port
    finally:
        emulator.stop()


def emulator_environ(host_port: str, namespace: str = "botmox") -> dict[str, str]:
    """Environment variables that make a botmox process use the RTDB backend on an emulator:
    ``DATA_BACKEND=rtdb``, ``BOTMOX_RTDB_DATABASE_URL`` and ``FIREBASE_DATABASE_EMULATOR_HOST``.
    Each ``namespace`` is a separate, initially empty database."""
    return {
        "DATA_BACKEND": "rtdb",
        "BOTMOX_RTDB_DATABASE_URL": f"https://{namespace}.firebaseio.com",
        "FIREBASE_DATABASE_EMULATOR_HOST": host_port,
    }
