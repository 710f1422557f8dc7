"""Helpers for the OpenAPI fuzzing e2e (``test_fuzz_openapi.py``): a fuzz target (one real
uvicorn server on the embedded default with two tenants and a token of every role), the
contract's error-envelope check, and hostile request bodies built as raw bytes."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx

from botmox_core.testing.server import (
    RunningServer,
    admin_cli,
    provision_tenant,
    running_server,
)

TENANT = "fuzz-tenant-a"
OTHER_TENANT = "fuzz-tenant-b"
USER = "fuzz-user-1"
MODULE = "farm-bot"
PLATFORM = "win64"
CHANNEL = "stable"
#: A VM registered before any fuzzing; it must still resolve afterwards.
VM_UUID = "fuzz-vm-0000-baseline"

CODE_RE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")
#: Words in a response body that would mean a stack trace or an internal detail leaked.
LEAK_MARKERS = ("Traceback", 'File "', "RecursionError", "sqlite3.", "Exception:")
#: Lines in the server log that mean an unhandled error reached the top.
LOG_MARKERS = ("Traceback", "unhandled error", "Exception in ASGI application")


@attrs.frozen
class FuzzTarget:
    """A running server with two tenants and a token of every role on the first one."""

    server: RunningServer
    client: httpx.Client = attrs.field(repr=False)
    tokens: Mapping[str, str] = attrs.field(repr=False)
    agent_id: str
    command_id: str | None
    lease_id: str
    lease_token: str = attrs.field(repr=False)
    release_id: int

    @property
    def url(self) -> str:
        return self.server.url

    def headers(self, role: str | None) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}

    def call(
        self, method: str, path: str, role: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {**self.headers(role), **kwargs.pop("headers", {})}
        return self.client.request(method, self.url + path, headers=headers, **kwargs)

    def log_size(self) -> int:
        return self.server.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.server.log_path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", errors="replace")


def _ok(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, (response.status_code, response.text[:2000])
    return response.json()["data"]


@contextmanager
def fuzz_target(tmp: Path, env: Mapping[str, str] | None = None) -> Iterator[FuzzTarget]:
    """Start the embedded default (SQLite + localfs) and set it up through the admin CLI and
    the public API: tokens of every role, licence, entitlement, an assigned release, a VM, a
    lease, a registered agent and one command for it."""
    with ExitStack() as stack:
        server = stack.enter_context(
            running_server(
                tmp / "data",
                {
                    "DATA_BACKEND": "sqlite",
                    "BOTMOX_STORAGE": "localfs",
                    # the limiter stays on (its code is fuzzed too) but never trips the fuzzer
                    "BOTMOX_RATE_LIMIT_REQUESTS": "100000000",
                    "BOTMOX_RATE_LIMIT_ADDRESS_REQUESTS": "100000000",
                    # bearer JWTs are decoded too (Supabase Auth style), so forged ones get fuzzed
                    "BOTMOX_JWT_SECRET": "fuzz-jwt-secret-" + "k" * 32,
                    **(env or {}),
                },
            )
        )
        artifact = tmp / "farm-bot-1.0.0.zip"
        artifact.write_bytes(b"fuzz artifact " * 4096)
        tenant = provision_tenant(
            server,
            artifact,
            tenant=TENANT,
            user=USER,
            module=MODULE,
            platform=PLATFORM,
            channel=CHANNEL,
        )

        def token(tenant_id: str, role: str, *user: str) -> str:
            args = ["token", "create", "--tenant", tenant_id, "--role", role]
            if user:
                args += ["--user", user[0]]
            return str(admin_cli(server, *args)["token"])

        tokens = {
            "admin": tenant.admin_token,
            "user": tenant.user_token,
            "api": token(TENANT, "api"),
            "infra": token(TENANT, "infra"),
            "other": token(OTHER_TENANT, "api", USER),
        }
        admin_cli(
            server, "license", "set", "--tenant", OTHER_TENANT, "--status", "active", "--perpetual"
        )
        client = stack.enter_context(httpx.Client(timeout=60))  # one pool: no TLS setup per call
        target = FuzzTarget(server, client, tokens, "", None, "", "", int(tenant.release["id"]))

        pairing = _ok(target.call("POST", "/api/v1/agents/pairings", "admin", json={}), 201)
        agent = _ok(
            target.call(
                "POST",
                "/api/v1/agents/register",
                json={"pairing_code": pairing["pairing_code"], "capabilities": ["proxmox"]},
            ),
            201,
        )
        tokens["agent"] = agent["agent_token"]
        _ok(
            target.call(
                "POST", "/api/v1/agents/heartbeat", "agent", json={"agent_id": agent["id"]}
            ),
            200,
        )
        _ok(
            target.call(
                "POST",
                "/api/v1/vm/register",
                "user",
                json={"vm_uuid": VM_UUID, "vm_name": "baseline", "metadata": {"k": [1, 2]}},
            ),
            201,
        )
        lease = _ok(
            target.call(
                "POST", "/api/v1/license/lease", "user", json={"vm_uuid": VM_UUID, "module": MODULE}
            ),
            201,
        )
        enqueued = target.call(
            "POST",
            "/api/v1/vm-ops/proxmox/status",
            "admin",
            json={"agent_id": agent["id"], "params": {"vmid": 100}},
        )
        command_id = enqueued.json()["data"]["id"] if enqueued.status_code == 202 else None
        yield attrs.evolve(
            target,
            agent_id=agent["id"],
            command_id=command_id,
            lease_id=lease["lease_id"],
            lease_token=lease["token"],
        )


def envelope_problems(response: httpx.Response) -> list[str]:
    """What is wrong with an error response (see :func:`error_problems`)."""
    return error_problems(
        response.status_code, response.headers.get("content-type", ""), response.content
    )


def error_problems(status: int, content_type: str, content: bytes) -> list[str]:
    """What is wrong with an error response, measured against the contract's envelope
    (``{"success": false, "error": {"code": UPPER_SNAKE, "message": str, "details"?}}``, JSON
    content type, no stack trace); empty when it conforms."""
    problems: list[str] = []
    if status >= 500:
        problems.append(f"server error {status}")
    if not content_type.startswith("application/json"):
        problems.append(f"content-type {content_type!r}")
    text = content.decode("utf-8", errors="replace")
    problems.extend(f"body leaks {marker!r}" for marker in LEAK_MARKERS if marker in text)
    try:
        body = json.loads(text) if text else None
    except ValueError:
        return [*problems, f"body is not JSON: {text[:200]!r}"]
    if not isinstance(body, dict) or body.get("success") is not False:
        return [*problems, f"not a failure envelope: {text[:200]!r}"]
    error = body.get("error")
    if not isinstance(error, dict):
        return [*problems, f"error is not an object: {text[:200]!r}"]
    code = error.get("code")
    if not isinstance(code, str) or not CODE_RE.fullmatch(code):
        problems.append(f"error.code {code!r} is not UPPER_SNAKE")
    if not isinstance(error.get("message"), str):
        problems.append(f"error.message {error.get('message')!r} is not a string")
    extra = set(body) - {"success", "error"} | set(error) - {"code", "message", "details"}
    if extra:
        problems.append(f"unexpected envelope keys {sorted(extra)}")
    return problems


def deep_object(depth: int, leaf: str = "1") -> str:
    """``{"a":{"a":...leaf...}}`` nested ``depth`` levels, built as text (never recursion)."""
    return '{"a":' * depth + leaf + "}" * depth


def deep_array(depth: int, leaf: str = "1") -> str:
    """``[[...leaf...]]`` nested ``depth`` levels, built as text."""
    return "[" * depth + leaf + "]" * depth


def body_with(base: Mapping[str, Any], field: str, raw_value: str) -> bytes:
    """``base`` as JSON with ``field`` set to the raw JSON text ``raw_value`` (spliced in, so
    values no JSON encoder would produce — deep nesting, 1e400 — reach the server as is)."""
    rest = {key: value for key, value in base.items() if key != field}
    head = json.dumps(rest)[:-1]
    separator = ", " if rest else ""
    return f'{head}{separator}"{field}": {raw_value}}}'.encode()


@attrs.frozen
class JsonRoute:
    """A route taking a JSON body, with a body the route accepts (or refuses only for what the
    ids name) and the role that may call it."""

    method: str
    path: str
    template: str
    role: str | None
    body: Mapping[str, Any]


#: A command id nobody has (the fuzzing never touches a real command's state through PATCH).
NO_SUCH_ID = "00000000-0000-4000-8000-000000000000"


#: The seed browser's envelope (AES-256-GCM, opaque to the server), for the vault routes.
_SEED_ENVELOPE: dict[str, Any] = {
    "alg": "aes-256-gcm",
    "key_id": "local-browser-key-v1",
    "nonce": "AAAAAAAAAAAAAAAA",
    "ciphertext": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ==",
}


def json_routes(target: FuzzTarget) -> dict[str, JsonRoute]:
    """Every route of the API that takes a JSON body, by name, with a plausible body."""
    agent = target.agent_id
    command = target.command_id or NO_SUCH_ID
    action = {
        "agent_id": agent,
        "params": {"vmid": 100},
        "expires_in_seconds": 60,
        "execution_timeout_seconds": 60,
        "idempotency_key": "fuzz-key",
    }
    routes = [
        (
            "vm/register",
            "POST",
            "/api/v1/vm/register",
            "/api/v1/vm/register",
            "user",
            {
                "vm_uuid": "fuzz-vm-hostile-01",
                "user_id": USER,
                "vm_name": "hostile",
                "project_id": "p1",
                "status": "active",
                "metadata": {"k": "v"},
            },
        ),
        (
            "vm/status",
            "POST",
            "/api/v1/vm/fuzz-vm-absent-0001/status",
            "/api/v1/vm/{vm_uuid}/status",
            "admin",
            {"status": "paused"},
        ),
        (
            "license/lease",
            "POST",
            "/api/v1/license/lease",
            "/api/v1/license/lease",
            "user",
            {
                "vm_uuid": VM_UUID,
                "module": MODULE,
                "user_id": USER,
                "agent_id": agent,
                "runner_id": "runner-1",
                "version": "1.0.0",
            },
        ),
        (
            "license/heartbeat",
            "POST",
            "/api/v1/license/heartbeat",
            "/api/v1/license/heartbeat",
            "user",
            {"lease_id": target.lease_id, "lease_token": target.lease_token},
        ),
        (
            "license/revoke",
            "POST",
            "/api/v1/license/revoke",
            "/api/v1/license/revoke",
            "admin",
            {"lease_id": NO_SUCH_ID, "reason": "fuzz"},
        ),
        (
            "artifacts/releases",
            "POST",
            "/api/v1/artifacts/releases",
            "/api/v1/artifacts/releases",
            "admin",
            {
                "module": MODULE,
                "platform": PLATFORM,
                "version": "9.9.9",
                "object_key": f"{TENANT}/none/absent.bin",
                "sha256": "0" * 64,
                "size_bytes": 1,
                "channel": CHANNEL,
                "status": "draft",
            },
        ),
        (
            "artifacts/assign",
            "POST",
            "/api/v1/artifacts/assign",
            "/api/v1/artifacts/assign",
            "admin",
            {
                "module": MODULE,
                "platform": "fuzz-platform",
                "channel": CHANNEL,
                "release_id": 999_999,
                "user_id": USER,
            },
        ),
        (
            "artifacts/resolve-download",
            "POST",
            "/api/v1/artifacts/resolve-download",
            "/api/v1/artifacts/resolve-download",
            "user",
            {
                "lease_token": "not-a-token",
                "vm_uuid": VM_UUID,
                "module": MODULE,
                "platform": PLATFORM,
                "channel": CHANNEL,
            },
        ),
        (
            "agents/pairings",
            "POST",
            "/api/v1/agents/pairings",
            "/api/v1/agents/pairings",
            "admin",
            {"name": "fuzz", "expires_in_minutes": 15},
        ),
        (
            "agents/register",
            "POST",
            "/api/v1/agents/register",
            "/api/v1/agents/register",
            None,
            {
                "pairing_code": "0" * 32,
                "version": "1.0",
                "platform": "linux",
                "capabilities": ["proxmox"],
                "public_key": "none",
            },
        ),
        (
            "agents/heartbeat",
            "POST",
            "/api/v1/agents/heartbeat",
            "/api/v1/agents/heartbeat",
            "agent",
            {"agent_id": agent},
        ),
        (
            "agents/revoke",
            "POST",
            f"/api/v1/agents/{NO_SUCH_ID}/revoke",
            "/api/v1/agents/{agent_id}/revoke",
            "admin",
            {"reason": "fuzz"},
        ),
        (
            "vm-ops/commands",
            "POST",
            "/api/v1/vm-ops/commands",
            "/api/v1/vm-ops/commands",
            "admin",
            {
                "agent_id": agent,
                "command_type": "fuzz.noop",
                "payload": {"k": 1},
                "expires_in_seconds": 60,
                "execution_timeout_seconds": 60,
                "idempotency_key": "fuzz-key",
            },
        ),
        (
            "vm-ops/proxmox",
            "POST",
            "/api/v1/vm-ops/proxmox/status",
            "/api/v1/vm-ops/proxmox/{action}",
            "admin",
            action,
        ),
        (
            "vm-ops/syncthing",
            "POST",
            "/api/v1/vm-ops/syncthing/status",
            "/api/v1/vm-ops/syncthing/{action}",
            "admin",
            action,
        ),
        (
            "infra/proxmox/login",
            "POST",
            f"/api/v1/infra/proxmox/login?wait=0&agent_id={agent}",
            "/api/v1/infra/proxmox/login",
            "infra",
            {"username": "root@pam"},
        ),
        (
            "infra/proxmox/clone",
            "POST",
            f"/api/v1/infra/proxmox/nodes/pve/qemu/100/clone?wait=0&agent_id={agent}",
            "/api/v1/infra/proxmox/nodes/{node}/qemu/{vmid}/clone",
            "infra",
            {"newid": 150, "name": "fuzz", "full": 1},
        ),
        (
            "infra/proxmox/config",
            "PUT",
            f"/api/v1/infra/proxmox/nodes/pve/qemu/100/config?wait=0&agent_id={agent}",
            "/api/v1/infra/proxmox/nodes/{node}/qemu/{vmid}/config",
            "infra",
            {"cores": 2, "memory": 4096},
        ),
        (
            "infra/proxmox/power",
            "POST",
            f"/api/v1/infra/proxmox/nodes/pve/qemu/100/status/start?wait=0&agent_id={agent}",
            "/api/v1/infra/proxmox/nodes/{node}/qemu/{vmid}/status/{action}",
            "infra",
            {"timeout": 30},
        ),
        (
            "infra/proxmox/sendkey",
            "POST",
            f"/api/v1/infra/proxmox/nodes/pve/qemu/100/sendkey?wait=0&agent_id={agent}",
            "/api/v1/infra/proxmox/nodes/{node}/qemu/{vmid}/sendkey",
            "infra",
            {"key": "ctrl-alt-delete"},
        ),
        (
            "infra/ssh/exec",
            "POST",
            f"/api/v1/infra/ssh/exec?wait=0&agent_id={agent}",
            "/api/v1/infra/ssh/exec",
            "infra",
            {"command": "uptime"},
        ),
        (
            "infra/ssh/test",
            "POST",
            f"/api/v1/infra/ssh/test?wait=0&agent_id={agent}",
            "/api/v1/infra/ssh/test",
            "infra",
            {"timeout": 10},
        ),
        (
            "infra/ssh/vm-config",
            "PUT",
            f"/api/v1/infra/ssh/vm-config/100?wait=0&agent_id={agent}",
            "/api/v1/infra/ssh/vm-config/{vmid}",
            "infra",
            {"content": "cores: 2\n"},
        ),
        (
            "vm-ops/commands/update",
            "PATCH",
            f"/api/v1/vm-ops/commands/{command}",
            "/api/v1/vm-ops/commands/{command_id}",
            "agent",
            {
                "status": "running",
                "result": {"ok": True},
                "error": "none",
                "output": [{"stream": "stdout", "data": "x"}],
            },
        ),
    ]
    absent = "fuzz-absent-record"
    routes += [
        (
            "resources",
            "POST",
            "/api/v1/resources/licenses",
            "/api/v1/resources/{kind}",
            "admin",
            {"id": "fuzz-licence-1", "key": "k-1", "status": "active", "notes": "n"},
        ),
        (
            "resources/update",
            "PATCH",
            f"/api/v1/resources/proxies/{absent}",
            "/api/v1/resources/{kind}/{record_id}",
            "admin",
            {"status": "active", "host": "h"},
        ),
        (
            "workspace",
            "POST",
            "/api/v1/workspace/notes",
            "/api/v1/workspace/{kind}",
            "admin",
            {"title": "t", "content": "c", "tags": ["a"]},
        ),
        (
            "workspace/update",
            "PATCH",
            f"/api/v1/workspace/kanban/{absent}",
            "/api/v1/workspace/{kind}/{record_id}",
            "admin",
            {"title": "t"},
        ),
        (
            "bots",
            "POST",
            "/api/v1/bots",
            "/api/v1/bots",
            "admin",
            {
                "name": "fuzz",
                "project_id": "p1",
                "status": "offline",
                "character": {"name": "c", "level": 1},
            },
        ),
        (
            "bots/update",
            "PATCH",
            f"/api/v1/bots/{absent}",
            "/api/v1/bots/{record_id}",
            "admin",
            {"name": "fuzz"},
        ),
        (
            "bots/ban",
            "POST",
            f"/api/v1/bots/{absent}/lifecycle/ban",
            "/api/v1/bots/{record_id}/lifecycle/ban",
            "admin",
            {"ban_date": "01.01.2026", "ban_reason": "r", "ban_mechanism": "m"},
        ),
        (
            "bots/transition",
            "POST",
            f"/api/v1/bots/{absent}/lifecycle/transition",
            "/api/v1/bots/{record_id}/lifecycle/transition",
            "admin",
            {"status": "farming"},
        ),
        (
            "finance",
            "POST",
            "/api/v1/finance/operations",
            "/api/v1/finance/operations",
            "admin",
            {"type": "income", "category": "sale", "amount": 1.5, "date": 1_700_000_000_000},
        ),
        (
            "finance/update",
            "PATCH",
            f"/api/v1/finance/operations/{absent}",
            "/api/v1/finance/operations/{record_id}",
            "admin",
            {"amount": 2},
        ),
        (
            "settings/put",
            "PUT",
            "/api/v1/settings/fuzz/alerts",
            "/api/v1/settings/{path}",
            "admin",
            {"enabled": True, "level": "x"},
        ),
        (
            "settings/patch",
            "PATCH",
            "/api/v1/settings/fuzz/alerts",
            "/api/v1/settings/{path}",
            "admin",
            {"enabled": False},
        ),
        (
            "secrets",
            "POST",
            "/api/v1/secrets",
            "/api/v1/secrets",
            "admin",
            dict(_SEED_ENVELOPE, label="fuzz"),
        ),
        (
            "secrets/rotate",
            "POST",
            f"/api/v1/secrets/{NO_SUCH_ID}/rotate",
            "/api/v1/secrets/{secret_id}/rotate",
            "admin",
            dict(_SEED_ENVELOPE, expected_version=1),
        ),
        (
            "secrets/bindings",
            "POST",
            "/api/v1/secrets/bindings",
            "/api/v1/secrets/bindings",
            "admin",
            {
                "scope_type": "vm_settings",
                "scope_id": "vmgenerator",
                "field_name": "proxmox.password",
                "secret_ref": NO_SUCH_ID,
            },
        ),
    ]
    return {
        name: JsonRoute(method, path, template, role, body)
        for name, method, path, template, role, body in routes
    }


JSON_ROUTE_NAMES = [
    "vm/register",
    "vm/status",
    "license/lease",
    "license/heartbeat",
    "license/revoke",
    "artifacts/releases",
    "artifacts/assign",
    "artifacts/resolve-download",
    "agents/pairings",
    "agents/register",
    "agents/heartbeat",
    "agents/revoke",
    "vm-ops/commands",
    "vm-ops/proxmox",
    "vm-ops/syncthing",
    "infra/proxmox/login",
    "infra/proxmox/clone",
    "infra/proxmox/config",
    "infra/proxmox/power",
    "infra/proxmox/sendkey",
    "infra/ssh/exec",
    "infra/ssh/test",
    "infra/ssh/vm-config",
    "vm-ops/commands/update",
    "resources",
    "resources/update",
    "workspace",
    "workspace/update",
    "bots",
    "bots/update",
    "bots/ban",
    "bots/transition",
    "finance",
    "finance/update",
    "settings/put",
    "settings/patch",
    "secrets",
    "secrets/rotate",
    "secrets/bindings",
]


@attrs.frozen
class RawResponse:
    """A response read off a plain socket (for request targets no HTTP client would send)."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes


def raw_request(
    target: FuzzTarget,
    method: str,
    request_target: bytes,
    role: str | None = None,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> RawResponse:
    """Send ``request_target`` byte for byte (no normalisation, no length limit) over a new
    loopback connection and read the whole answer (``Connection: close``)."""
    host, port = target.url.removeprefix("http://").split(":")
    lines = [method.encode() + b" " + request_target + b" HTTP/1.1", f"Host: {host}".encode()]
    all_headers = {**target.headers(role), **(headers or {}), "Connection": "close"}
    if body or method in {"POST", "PUT", "PATCH"}:
        all_headers["Content-Length"] = str(len(body))
    lines += [f"{name}: {value}".encode("latin-1") for name, value in all_headers.items()]
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    head, _, content = bytes(received).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = dict(line.split(":", 1) for line in header_lines if ":" in line)
    response_headers = {name.strip().lower(): value.strip() for name, value in parsed.items()}
    if response_headers.get("transfer-encoding", "").lower() == "chunked":
        content = _dechunk(content)
    return RawResponse(int(status_line.split(" ")[1]), response_headers, content)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)
