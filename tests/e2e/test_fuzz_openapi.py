"""Property-based fuzzing of the whole HTTP API (issue 9, "Must show").

One real uvicorn server on the embedded default (SQLite + local files), two tenants, a token of
every role. Schemathesis drives every operation of the server's own ``/api/v1/openapi.json`` with
each role's token (schema-valid and schema-violating requests); hand-written hostile requests go
beyond the schema: bodies nested 1,000 and 100,000 levels deep, a 50 MB body, 1 MB strings in
every string field, control characters and look-alikes in every path parameter and id, wrong
content types, non-UTF-8 bytes, duplicate keys, out-of-range numbers. Every answer must be below
500, every error must be the contract's envelope with a JSON content type and no stack trace,
and afterwards the tenant's lists still answer 200 and the server log holds no traceback.

Deterministic (Hypothesis ``derandomize``, no example database): a CI failure reproduces
locally with the same command. ``BOTMOX_FUZZ_EXAMPLES`` scales the example counts (default 1;
e.g. 10 for a deeper local run).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from tests.e2e.fuzz_support import (
    CHANNEL,
    JSON_ROUTE_NAMES,
    LOG_MARKERS,
    MODULE,
    NO_SUCH_ID,
    PLATFORM,
    TENANT,
    USER,
    VM_UUID,
    FuzzTarget,
    JsonRoute,
    RawResponse,
    body_with,
    deep_array,
    deep_object,
    envelope_problems,
    error_problems,
    fuzz_target,
    json_routes,
    raw_request,
)

pytestmark = pytest.mark.e2e

SCALE = max(1, int(os.environ.get("BOTMOX_FUZZ_EXAMPLES", "1")))
#: Examples per operation and generation mode, by role: the roles that reach the most code get
#: the most (a CI budget of about a minute for the schema-driven part on 2 cores).
EXAMPLES = {"admin": 12, "user": 10, "agent": 8, "infra": 4, "api": 4, "other": 4, None: 4}
ROLES = list(EXAMPLES)
MB = 1024 * 1024


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    with fuzz_target(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


@pytest.fixture(scope="module")
def openapi(target: FuzzTarget) -> dict[str, Any]:
    response = httpx.get(target.url + "/api/v1/openapi.json", timeout=30)
    assert response.status_code == 200, response.text[:2000]
    document: dict[str, Any] = response.json()
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    return document


@pytest.fixture(autouse=True)
def clean_log_and_healthy_tenant(target: FuzzTarget) -> Iterator[None]:
    """After every test: no traceback or unhandled error in what the server logged during it,
    and the tenant's lists still answer 200."""
    offset = target.log_size()
    yield
    logged = target.log_since(offset)
    leaked = [line for line in logged.splitlines() if any(m in line for m in LOG_MARKERS)]
    assert not leaked, "server log:\n" + logged[-6000:]
    assert_tenant_healthy(target)


def assert_tenant_healthy(target: FuzzTarget) -> None:
    """The tenant's lists and the VM registered before the fuzzing answer 200 with sane bodies;
    the other tenant's lists still answer too and hold nothing of the first tenant's."""
    agents = target.call("GET", "/api/v1/agents", "admin")
    assert agents.status_code == 200, agents.text[:2000]
    body = agents.json()
    assert body["success"] is True and isinstance(body["data"], list)
    assert body["meta"]["total"] >= 1
    agent = target.call("GET", f"/api/v1/agents/{target.agent_id}", "admin")
    assert agent.status_code == 200, agent.text[:2000]
    assert agent.json()["data"]["id"] == target.agent_id

    commands = target.call("GET", "/api/v1/vm-ops/commands", "admin")
    assert commands.status_code == 200, commands.text[:2000]
    listed = commands.json()["data"]
    assert isinstance(listed, list)
    if target.command_id is not None:
        for_agent = target.call(
            "GET", "/api/v1/vm-ops/commands", "admin", params={"agent_id": target.agent_id}
        )
        assert for_agent.status_code == 200, for_agent.text[:2000]
        one = target.call("GET", f"/api/v1/vm-ops/commands/{target.command_id}", "admin")
        assert one.status_code == 200, one.text[:2000]

    audit = target.call("GET", "/api/v1/artifacts/audit", "admin")
    assert audit.status_code == 200, audit.text[:2000]
    assert isinstance(audit.json()["data"], list)

    vm = target.call("GET", f"/api/v1/vm/{VM_UUID}/resolve", "user")
    assert vm.status_code == 200, vm.text[:2000]
    assert vm.json()["data"]["vm_uuid"] == VM_UUID

    for path in ("/api/v1/agents", "/api/v1/vm-ops/commands", "/api/v1/artifacts/audit"):
        other = target.call("GET", path, "other")
        assert other.status_code in (200, 403), other.text[:2000]
        if other.status_code == 200:
            assert target.agent_id not in other.text
    assert target.call("GET", f"/api/v1/vm/{VM_UUID}/resolve", "other").status_code == 404


# --- schema-driven -------------------------------------------------------------------------


def _operations(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in openapi["paths"].items()
        for method in item
        if method in {"get", "put", "post", "patch", "delete", "head", "options"}
    ]


def _response_problems(
    method: str, path: str, status: int, headers: Any, content: bytes
) -> list[str]:
    content_type = (headers.get("content-type") or [""])[0]
    if status >= 400:
        if method == "HEAD":  # no body to hold an envelope
            return [f"server error {status}"] if status >= 500 else []
        return error_problems(status, content_type, content)
    if status in (204, 304) or method == "HEAD" or path.startswith("/api/v1/storage/"):
        return []
    if not content_type.startswith("application/json"):
        return [f"success with content-type {content_type!r}"]
    body = json.loads(content)
    if path.startswith("/api/v1/health"):
        return [] if isinstance(body, dict) else [f"health body {content[:200]!r}"]
    if not (isinstance(body, dict) and body.get("success") is True and "data" in body):
        return [f"not a success envelope: {content[:200]!r}"]
    return []


def _fuzz_operation(
    target: FuzzTarget,
    operation: Any,
    mode: GenerationMode,
    role: str | None,
    failures: dict[tuple[str, str, str], str],
    session: requests.Session,
) -> None:
    """Run one operation's examples in one generation mode; problems go into ``failures``
    (one entry per operation, mode and kind of problem, with a curl command reproducing it)."""
    headers = target.headers(role)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES[role] * SCALE,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        if case.path == "/api/v1/commands/next":  # a bounded long-poll (default 25 s)
            case.query = case.query if isinstance(case.query, dict) else {}
            wait = case.query.get("timeout_ms", 0)
            if isinstance(wait, int) and not isinstance(wait, bool) and wait >= 0:
                case.query["timeout_ms"] = min(wait, 20)
        response = case.call(base_url=target.url, session=session, headers=headers, timeout=60)
        problems = _response_problems(
            case.method.upper(),
            case.path,
            response.status_code,
            response.headers,
            response.content,
        )
        for problem in problems:
            key = (f"{case.method.upper()} {case.path}", mode.value, problem)
            failures.setdefault(key, case.as_curl_command(headers=headers))

    check()


@pytest.mark.parametrize("role", ROLES, ids=[str(role) for role in ROLES])
def test_every_operation_with_every_role(
    target: FuzzTarget, openapi: dict[str, Any], role: str | None
) -> None:
    """Schemathesis over every operation of the live OpenAPI document with this role's token,
    schema-valid and schema-violating: never a 5xx, every error the contract's envelope."""
    schema = schemathesis.openapi.from_dict(openapi)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} == set(_operations(openapi))
    failures: dict[tuple[str, str, str], str] = {}
    session = requests.Session()  # one connection pool for every example

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(target, operation, mode, role, failures, session)

    report = "\n".join(
        f"{op} [{mode}] {problem}\n    {curl}" for (op, mode, problem), curl in failures.items()
    )
    assert not failures, f"{len(failures)} problem(s) with role {role}:\n{report}"


# --- hostile requests beyond the schema ------------------------------------------------------


class Findings:
    """Problems collected over many requests, reported together (one failing request does not
    hide the others)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def check(
        self,
        label: str,
        response: httpx.Response,
        statuses: tuple[int, ...] | None = None,
        codes: tuple[str, ...] | None = None,
    ) -> None:
        """``response`` must be below 500, an envelope when an error, and (when given) have one
        of ``statuses`` and one of ``codes``."""
        status = response.status_code
        problems = envelope_problems(response) if status >= 400 else []
        if status < 400 and statuses is None:
            body = response.json() if response.content else None
            if not (isinstance(body, dict) and body.get("success") is True):
                problems.append(f"not a success envelope: {response.text[:200]!r}")
        if statuses is not None and status not in statuses:
            problems.append(f"status {status}, expected one of {statuses}")
        if codes is not None and status >= 400 and not problems:
            code = response.json()["error"]["code"]
            if code not in codes:
                problems.append(f"code {code}, expected one of {codes}")
        for problem in problems:
            self.items.append(f"{label}: {problem} — {response.text[:300]!r}")

    def assert_none(self) -> None:
        assert not self.items, f"{len(self.items)} problem(s):\n" + "\n".join(self.items)


def _send(
    target: FuzzTarget, route: JsonRoute, content: bytes, content_type: str = "application/json"
) -> httpx.Response:
    return target.call(
        route.method,
        route.path,
        route.role,
        content=content,
        headers={"Content-Type": content_type},
    )


def _route(target: FuzzTarget, name: str) -> JsonRoute:
    return json_routes(target)[name]


def test_hostile_routes_cover_every_json_body(target: FuzzTarget, openapi: dict[str, Any]) -> None:
    """The hand-written hostile cases reach every operation that takes a JSON body, with every
    field the OpenAPI document declares for it."""
    routes = json_routes(target)
    assert sorted(routes) == sorted(JSON_ROUTE_NAMES)
    by_template = {(route.method, route.template): route for route in routes.values()}
    components = openapi.get("components", {}).get("schemas", {})
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            route = by_template.get((method.upper(), path))
            assert route is not None, f"no hostile cases for {method.upper()} {path}"
            schema = content["application/json"]["schema"]
            if "$ref" in schema:
                schema = components[schema["$ref"].rsplit("/", 1)[-1]]
            if schema.get("properties"):  # free-form bodies (domain records) have none
                assert set(schema["properties"]) == set(route.body), (path, schema)


DEPTHS = [17, 200, 1_000, 100_000]


@pytest.mark.parametrize("name", JSON_ROUTE_NAMES)
def test_deeply_nested_bodies(target: FuzzTarget, name: str) -> None:
    """Bodies nested 17 (just past the limit), 200, 1,000 and 100,000 levels deep — the whole
    body, and each field in turn — are refused with 400 BAD_REQUEST, nothing stored."""
    route = _route(target, name)
    findings = Findings()
    for depth in DEPTHS:
        for shape, build in (("object", deep_object), ("array", deep_array)):
            findings.check(  # the whole body one level deeper: a field holds `depth` levels
                f"{name} body {shape}×{depth + 1}",
                _send(target, route, build(depth + 1).encode()),
                (400,),
                ("BAD_REQUEST",),
            )
            for field in route.body:
                findings.check(
                    f"{name} {field}={shape}×{depth}",
                    _send(target, route, body_with(route.body, field, build(depth))),
                    (400,),
                    ("BAD_REQUEST",),
                )
    findings.assert_none()


#: A settings path holds any JSON value, and the tenant's settings tree may hold 2 MiB
#: (docs/domains.md): a 1 MB value there is legitimately stored, and a bare array is a value.
SETTINGS_ROUTES = {"settings/put", "settings/patch"}


@pytest.mark.parametrize("name", JSON_ROUTE_NAMES)
def test_huge_strings(target: FuzzTarget, name: str) -> None:
    """A 1 MB string (just under the 1 MiB body limit) in each field, directly and nested in a
    container, is refused with a 4xx envelope or ignored (a success that does not carry it: not
    stored); a body over the limit gets 413."""
    route = _route(target, name)
    findings = Findings()
    huge = json.dumps("x" * 1_000_000)
    for field in route.body:
        for label, raw in (
            ("string", huge),
            ("in object", '{"k": ' + huge + "}"),
            ("in array", "[" + huge + "]"),
        ):
            response = _send(target, route, body_with(route.body, field, raw))
            findings.check(f"{name} {field}=1MB {label}", response)
            stored = response.status_code < 400 and len(response.content) > 64 * 1024
            if stored and name not in SETTINGS_ROUTES:
                findings.items.append(f"{name} {field}=1MB {label}: accepted and echoed")
        findings.check(
            f"{name} {field}=1.1MB string",
            _send(target, route, body_with(route.body, field, json.dumps("y" * (MB + MB // 10)))),
            (413,),
            ("PAYLOAD_TOO_LARGE",),
        )
    findings.assert_none()


def _chunks(total: int, size: int = MB) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        chunk = min(size, total - sent)
        yield b" " * chunk
        sent += chunk


@pytest.mark.parametrize("name", JSON_ROUTE_NAMES)
def test_fifty_megabyte_body(target: FuzzTarget, name: str) -> None:
    """A 50 MB body — with a Content-Length, and chunked without one — is refused with 413
    PAYLOAD_TOO_LARGE (or the connection closed after the 413 was sent), never a 5xx."""
    route = _route(target, name)
    findings = Findings()
    big = b'{"k": "' + b"z" * (50 * MB) + b'"}'
    for label, content in (("content-length", big), ("chunked", _chunks(50 * MB))):
        try:
            response = target.call(
                route.method,
                route.path,
                route.role,
                content=content,
                headers={"Content-Type": "application/json"},
            )
        except httpx.TransportError as exc:  # the server may close while the client still sends
            findings.items.append(f"{name} 50MB {label}: {exc!r}")
            continue
        findings.check(f"{name} 50MB {label}", response, (413,), ("PAYLOAD_TOO_LARGE",))
    findings.assert_none()


NUMBERS = [
    "1e400",
    "-1e400",
    "-0",
    "-0.0",
    "18446744073709551616",
    "-18446744073709551617",
    "9007199254740993",
    "1e-400",
    "0.5",
    "1E2",
    "NaN",
    "Infinity",
    "-Infinity",
    "true",
    "null",
    '"1"',
    "[]",
    "{}",
]


@pytest.mark.parametrize("name", JSON_ROUTE_NAMES)
def test_odd_numbers_and_types_in_every_field(target: FuzzTarget, name: str) -> None:
    """1e400, -0, 2**64, NaN literals, booleans, null and wrong types in each field: a 4xx
    envelope (or success where the value is acceptable), never a 5xx."""
    route = _route(target, name)
    findings = Findings()
    for field in route.body:
        for raw in NUMBERS:
            findings.check(
                f"{name} {field}={raw}", _send(target, route, body_with(route.body, field, raw))
            )
    findings.assert_none()


LOOKALIKES = [
    "\x00",
    "a\x00b",
    "x\n",
    "x\r\n",
    "\n",
    "\r",
    "\t",
    "\x1b[31m",
    "\x7f",
    "\u202e",
    "\ufeff",
    "\u200b",
    "\ud7ff",
    "ｆｕｚｚ",
    "fuzz-vm-0000-b\u0430seline",
    "１２３",
    "٣",
    "..",
    "../..",
    "%00",
    "%2e%2e",
    "/",
    "\\",
    "'; DROP TABLE vms; --",
    '"',
    "{}",
    "*",
    "$",
    "#",
    "[",
    "?",
    " ",
    "",
    "é" * 5,
    "\U0001f600",
]


@pytest.mark.parametrize("name", JSON_ROUTE_NAMES)
def test_control_characters_and_lookalikes_in_every_field(target: FuzzTarget, name: str) -> None:
    """Control characters, NUL, a trailing newline, Unicode look-alikes and path tricks in each
    field (ids included): a 4xx envelope or a success envelope, never a 5xx."""
    route = _route(target, name)
    findings = Findings()
    for field in route.body:
        original = route.body[field]
        values = [*LOOKALIKES]
        if isinstance(original, str):
            values += [original + "\n", original + "\x00", "\x00" + original, original + "\r"]
        for value in values:
            findings.check(
                f"{name} {field}={value!r}",
                _send(target, route, body_with(route.body, field, json.dumps(value))),
            )
    findings.assert_none()


MALFORMED: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("whitespace", b"  \n"),
    ("null", b"null"),
    ("array", b"[]"),
    ("string", b'"body"'),
    ("number", b"1"),
    ("truncated", b'{"a": '),
    ("trailing garbage", b'{"a": 1} x'),
    ("two documents", b"{}{}"),
    ("non-UTF-8", b'{"a": "\xff\xfe\xc0\xaf"}'),
    ("lone surrogate escape", b'{"a": "\\ud800"}'),
    ("NUL byte", b'{"a": "\x00"}'),
    ("UTF-8 BOM", b"\xef\xbb\xbf{}"),
    ("UTF-16", "{}".encode("utf-16")),
    ("single quotes", b"{'a': 1}"),
    ("comment", b'{"a": 1 /* c */}'),
    ("trailing comma", b'{"a": 1,}'),
    ("bare key", b"{a: 1}"),
]


@pytest.mark.parametrize("name", JSON_ROUTE_NAMES)
def test_malformed_json(target: FuzzTarget, name: str) -> None:
    """Bodies that are not JSON, not UTF-8, or not an object get 400 BAD_REQUEST; duplicate
    keys are decoded one way or refused, never a 5xx."""
    route = _route(target, name)
    findings = Findings()
    for label, content in MALFORMED:
        # an empty body is a valid "no body" for routes whose fields are all optional
        lenient = ("empty", "whitespace", "null")
        if name in SETTINGS_ROUTES:
            lenient += ("array", "string", "number")
        statuses = None if label in lenient else (400,)
        findings.check(f"{name} {label}", _send(target, route, content), statuses)
    for field, value in route.body.items():
        duplicate = body_with(route.body, field, json.dumps(value))[:-1] + b', "'
        duplicate += field.encode() + b'": ' + deep_object(1_000).encode() + b"}"
        findings.check(
            f"{name} duplicate {field} (last deep)", _send(target, route, duplicate), (400,)
        )
        twice = body_with(route.body, field, json.dumps(value))[:-1] + b', "'
        twice += field.encode() + b'": ' + json.dumps(value).encode() + b"}"
        findings.check(f"{name} duplicate {field}", _send(target, route, twice))
    findings.assert_none()


CONTENT_TYPES = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/xml",
    "application/octet-stream",
    "application/json; charset=utf-16",
    "application/json; charset=latin-1",
    "application/merge-patch+json",
    "",
    "*/*",
]


@pytest.mark.parametrize("name", JSON_ROUTE_NAMES)
def test_wrong_content_types(target: FuzzTarget, name: str) -> None:
    """A JSON body under another content type (or none): a 4xx envelope or the JSON read as
    JSON, never a 5xx."""
    route = _route(target, name)
    findings = Findings()
    content = json.dumps(dict(route.body)).encode()
    for content_type in CONTENT_TYPES:
        findings.check(f"{name} {content_type!r}", _send(target, route, content, content_type))
    response = target.call(
        route.method,
        route.path,
        route.role,
        content=b"a=1&b=2",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    findings.check(f"{name} a form", response, (400, 401, 403, 404, 415))
    findings.assert_none()


# --- path parameters, query parameters and the Authorization header ---------------------------


def _sane_parameters(target: FuzzTarget) -> dict[str, str]:
    """A plausible value for each parameter name the API uses (the others stay sane while one
    is hostile)."""
    return {
        "vm_uuid": VM_UUID,
        "release_id": str(target.release_id),
        "user_id": USER,
        "module": MODULE,
        "agent_id": target.agent_id,
        "action": "status",
        "target": "fuzz",
        "node": "pve",
        "vmid": "100",
        "upid": "UPID:pve:00000001:00000001:00000001:qmstart:100:root@pam:",
        "type": "vm",
        "purge": "true",
        "wait": "0",
        "command_id": target.command_id or NO_SUCH_ID,
        "key": f"{TENANT}/x.bin",
        "storage_name": "localfs",
        "kind": "licenses",
        "record_id": "fuzz-absent-record",
        "path": "fuzz/alerts",
        "sort": "name",
        "order": "asc",
        "q": "x",
        "storage": "localfs",
        "platform": PLATFORM,
        "channel": CHANNEL,
        "timeout_ms": "0",
        "limit": "5",
        "page": "1",
        "status": "active",
        "lease_id": target.lease_id,
        "version": "9.9.9",
        "filename": "a.bin",
        "sha256": "0" * 64,
        "expires": "1",
        "signature": "x",
        "secret_id": NO_SUCH_ID,
        "scope_type": "vm_settings",
        "scope_id": "vmgenerator",
    }


def _parameters(operation: dict[str, Any], where: str) -> list[str]:
    return [p["name"] for p in operation.get("parameters", []) if p["in"] == where]


#: Hostile values as they go on the wire (already percent-encoded); ``{}`` is the sane value.
HOSTILE_SEGMENTS = [
    "%00",
    "a%00b",
    "{}%00",
    "{}%0a",
    "{}%0d%0a",
    "{}%0aINFO%20botmox.access:%20forged",
    "%ff",
    "{}%ff",
    "%c0%ae%c0%ae",
    "%e2%80%ae{}",
    "{}%e2%80%8b",
    "%ef%bb%bf{}",
    "fuzz-vm-0000-b%d0%b0seline",
    "%ef%bd%86%ef%bd%95%ef%bd%9a%ef%bd%9a",
    "%d9%a3",
    "%2e%2e",
    "..",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%5c",
    "%20",
    "%20{}",
    "%25",
    "%zz",
    "%1b%5b31m",
    "%7f",
    "-1",
    "0",
    "-0",
    "1e400",
    "18446744073709551616",
    "NaN",
    "%27--",
    "{}%3b",
    "%f0%9f%98%80",
    "x" * 10_000,
    "x" * 65_000,
]


def _fill(template: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


def _raw_check(
    findings: Findings,
    label: str,
    response: RawResponse,
    method: str,
    allowed: tuple[int, ...] | None = None,
) -> None:
    status = response.status_code
    if status >= 400 and method != "HEAD":
        problems = error_problems(
            status, response.headers.get("content-type", ""), response.content
        )
    else:
        problems = [f"server error {status}"] if status >= 500 else []
    if allowed is not None and status not in allowed:
        problems.append(f"status {status}, expected one of {allowed}")
    findings.items.extend(f"{label}: {p} — {response.content[:300]!r}" for p in problems)


def _operations_with(openapi: dict[str, Any], where: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
        if _parameters(operation, where)
    ]


def _role_for(method: str, path: str) -> str:
    if path == "/api/v1/commands/next" or (method == "PATCH" and "commands" in path):
        return "agent"
    return "admin"


def test_hostile_path_parameters(target: FuzzTarget, openapi: dict[str, Any]) -> None:
    """Control characters, NUL, a trailing newline, invalid percent-encoding and UTF-8, Unicode
    look-alikes, traversal and 10-65 KB values in every path parameter of every operation: a
    4xx envelope (or the sane answer), never a 5xx. The request target goes on the wire byte
    for byte."""
    findings = Findings()
    sane = _sane_parameters(target)
    operations = _operations_with(openapi, "path")
    assert len(operations) >= 10
    for method, path, operation in operations:
        names = _parameters(operation, "path")
        query = "&".join(f"{q}={sane[q]}" for q in _parameters(operation, "query") if q in sane)
        for name in names:
            for hostile in HOSTILE_SEGMENTS:
                value = hostile.replace("{}", sane[name])
                request_target = _fill(path, {**sane, name: value}) + (f"?{query}" if query else "")
                label = f"{method} {path} {name}={value[:60]!r}"
                _raw_check(
                    findings,
                    label,
                    raw_request(
                        target,
                        method,
                        request_target.encode(),
                        _role_for(method, path),
                        body=b"{}" if method in {"POST", "PATCH"} else b"",
                        headers={"Content-Type": "application/json"},
                    ),
                    method,
                )
    findings.assert_none()


def test_hostile_query_parameters(target: FuzzTarget, openapi: dict[str, Any]) -> None:
    """The same hostile values in every query parameter of every operation, each parameter
    also repeated, empty, and given without a value: a 4xx envelope or a sane answer."""
    findings = Findings()
    sane = _sane_parameters(target)
    operations = _operations_with(openapi, "query")
    assert len(operations) >= 5
    for method, path, operation in operations:
        base = _fill(path, sane)
        names = _parameters(operation, "query")
        for name in names:
            others = [f"{q}={sane[q]}" for q in names if q != name and q in sane]
            variants = [f"{name}={h.replace('{}', sane.get(name, 'x'))}" for h in HOSTILE_SEGMENTS]
            variants += [f"{name}=", name, f"{name}=1&{name}=2", f"{name}[]=1", f"{name}=%26%3d"]
            for variant in variants:
                request_target = f"{base}?{'&'.join([*others, variant])}"
                _raw_check(
                    findings,
                    f"{method} {path} {variant[:60]!r}",
                    raw_request(
                        target,
                        method,
                        request_target.encode(),
                        _role_for(method, path),
                        body=b"" if method == "GET" else b"{}",
                        headers={"Content-Type": "application/json"},
                    ),
                    method,
                )
    findings.assert_none()


def test_request_targets_past_the_http_parser_limit(target: FuzzTarget) -> None:
    """A 1 MB path or query string, raw non-ASCII bytes in the request line, and control
    characters in a header never reach the application: uvicorn's HTTP parser refuses them
    itself (request targets over 64 KiB included) with a plain-text 400 — not the envelope, as
    the server process answers before botmox runs. Never a 5xx, and the server keeps serving."""
    for request_target in (
        b"/api/v1/vm/" + b"x" * MB + b"/resolve",
        b"/api/v1/agents?status=" + b"x" * MB,
        b"/api/v1/" + b"%00" * (MB // 3),
        b"/api/v1/vm/\xff\xfe/resolve",  # raw bytes the HTTP grammar does not allow
    ):
        response = raw_request(target, "GET", request_target, "admin")
        assert response.status_code == 400, response.content[:300]
    for header in ("Bearer bmx_\x7f", "Bearer \x00", "Bearer a\rb"):  # forbidden in headers
        response = raw_request(target, "GET", b"/api/v1/agents", headers={"Authorization": header})
        assert response.status_code == 400, response.content[:300]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


AUTHORIZATION = [
    "",
    "Bearer",
    "Bearer ",
    "bearer",
    "Basic Zm9vOmJhcg==",
    "Bearer bmx_",
    "Bearer agt_",
    "Bearer " + "x" * 8_000,
    "Bearer " + "x" * MB,
    "Bearer a.b.c",
    "Bearer ..",
    "Bearer " + _b64(b'{"alg":"none"}') + "." + _b64(b'{"tenant_id":"t"}') + ".",
    "Bearer " + _b64(deep_array(2_900).encode()) + "." + _b64(b"{}") + ".c2ln",
    "Bearer " + _b64(b'{"alg":"HS256"}') + "." + _b64(deep_object(1_500).encode()) + ".c2ln",
    "Bearer " + _b64(b"\xff\xfe") + "." + _b64(b"\xff") + ".c2ln",
    "Bearer \u00e9\u00e9",
    "Bearer  bmx_x",
    "Bearer\tbmx_x",
    "Token x",
]


def test_hostile_authorization_headers(target: FuzzTarget, openapi: dict[str, Any]) -> None:
    """Forged, malformed, oversized and deeply nested bearer tokens (opaque, agent and JWT
    shaped; the server has a JWT secret) on every operation: 401 UNAUTHORIZED envelopes, or
    the route's answer where it needs no token — never a 5xx."""
    findings = Findings()
    sane = _sane_parameters(target)
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            query = [f"{q}={sane[q]}" for q in _parameters(operation, "query") if q in sane]
            request_target = (_fill(path, sane) + "?" + "&".join(query)).encode()
            public = operation.get("security") == [{}] or path.startswith(
                ("/api/v1/health", "/api/v1/license/public-key", "/api/v1/storage/")
            )
            for header in AUTHORIZATION:
                response = raw_request(
                    target,
                    method.upper(),
                    request_target,
                    None,
                    body=b"{}" if method in {"post", "patch"} else b"",
                    headers={"Authorization": header, "Content-Type": "application/json"},
                )
                label = f"{method.upper()} {path} Authorization={header[:40]!r}"
                _raw_check(findings, label, response, method.upper(), None if public else (401,))
    findings.assert_none()


def test_validation_errors_name_the_field(target: FuzzTarget) -> None:
    """Decoding failures name the field or parameter in the message and in ``details``
    (``[{field, message, source}]``): a missing query parameter, a missing body field (not
    Litestar's ``data``), a wrong type; the query string is never echoed."""
    cases = [
        (
            "GET",
            f"/api/v1/artifacts/assign/{USER}/{MODULE}?channel=stable&sig=SECRET",
            None,
            "platform",
            "query",
        ),
        (
            "POST",
            "/api/v1/artifacts/releases/upload?platform=win64&version=1.0.0",
            b"x",
            "module",
            "query",
        ),
        ("POST", "/api/v1/vm/register", b"{}", "vm_uuid", "body"),
        ("POST", "/api/v1/vm/register", b'{"vm_uuid": 5}', "vm_uuid", "body"),
        ("GET", "/api/v1/agents?limit=x", None, "limit", "query"),
        ("GET", "/api/v1/agents?page=1e400", None, "page", "query"),
        (
            "POST",
            "/api/v1/agents/register",
            b'{"pairing_code": "x", "capabilities": [1]}',
            "capabilities[0]",
            "body",
        ),
    ]
    for method, path, content, field, source in cases:
        response = target.call(
            method, path, "admin", content=content, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, (path, response.text)
        assert not envelope_problems(response), envelope_problems(response)
        error = response.json()["error"]
        assert error["code"] == "BAD_REQUEST"
        assert error["message"].startswith(f"{field}: "), (path, error)
        assert error["details"][0]["field"] == field, (path, error)
        assert error["details"][0]["source"] == source, (path, error)
        assert "SECRET" not in response.text
