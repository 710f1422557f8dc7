"""The rate limiter on the request path: which bucket a request counts against, which requests
are exempt, and the ASGI gate that answers 429 ``RATE_LIMITED`` or adds ``RateLimit-*`` headers.

**Buckets.** A request whose bearer token authenticates counts against that token (bucket
``t:`` + a domain-separated sha256 of the token); any other request — no token, or one that does
not authenticate — against its client address (``a:`` + a hash of the address, see
:mod:`.addresses`). So an attacker rotating made-up tokens gets no fresh bucket per token: all of
them share the attacker's address. Whether a token authenticates is learnt by authenticating it
once (off the event loop, with the server's own :class:`~botmox_server.auth.Authenticator`) and
remembered for ``IDENTITY_TTL`` seconds (unknown tokens for ``UNKNOWN_TTL``); a 401 from a route
forgets it at once. The remembered answer only picks the bucket: every route still
authenticates every request itself.

**Exempt** (never counted, no headers): the health probes, CORS preflights (``OPTIONS``),
WebSocket connections, and a valid agent token on the agent-bus routes (``POST
/api/v1/agents/heartbeat``, ``GET /api/v1/commands/next``, ``PATCH
/api/v1/vm-ops/commands/{id}``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

import anyio.to_thread
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from botmox_core.errors import UnauthorizedError
from botmox_core.models import Role
from botmox_core.services import Principal
from botmox_server.ratelimit.addresses import ClientAddressResolver, address_bucket
from botmox_server.ratelimit.counters import Decision

__all__ = [
    "RATE_LIMITED_BODY",
    "Counter",
    "IdentityCache",
    "RateLimitGate",
    "RateLimiter",
    "bucket_digest",
]

log = logging.getLogger("botmox.ratelimit")

IDENTITY_TTL = 30.0
UNKNOWN_TTL = 10.0
MAX_IDENTITIES = 100_000
MAX_LOGGED_BUCKETS = 10_000
HEALTH_PATHS = frozenset({"/api/v1/health", "/api/v1/health/live", "/api/v1/health/ready"})
_AGENT_BUS = (
    ("POST", re.compile(r"/api/v1/agents/heartbeat/?")),
    ("GET", re.compile(r"/api/v1/commands/next/?")),
    ("PATCH", re.compile(r"/api/v1/vm-ops/commands/[^/]+/?")),
)
RATE_LIMITED_BODY = json.dumps(
    {
        "success": False,
        "error": {"code": "RATE_LIMITED", "message": "Too many requests. Please try again later."},
    },
    separators=(",", ":"),
).encode()
_INBOUND_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def bucket_digest(text: str) -> str:
    """A short one-way id for a token or address (never the sha256 the token tables use)."""
    data = b"botmox-rate-limit\0" + text.encode("utf-8", "replace")
    return hashlib.sha256(data).hexdigest()[:32]


def is_agent_bus(method: str, path: str) -> bool:
    return any(method == m and pattern.fullmatch(path) for m, pattern in _AGENT_BUS)


class Counter(Protocol):
    name: str

    async def ahit(self, bucket: str, limit: int, now: float) -> Decision: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class IdentityCache:
    """Remembers, per token digest, whether the token authenticated and as which kind."""

    def __init__(self, authenticate: Callable[[str], Principal]) -> None:
        self._authenticate = authenticate
        #: digest -> (is agent, or None when the token did not authenticate; expiry, monotonic)
        self._known: dict[str, tuple[bool | None, float]] = {}

    async def identify(self, header: str, digest: str, now: float) -> bool | None:
        """``True`` for a valid agent token, ``False`` for any other valid token, ``None`` when
        the token does not authenticate (or cannot be checked right now)."""
        known = self._known.get(digest)
        if known is not None and known[1] > now:
            return known[0]
        try:
            principal = await anyio.to_thread.run_sync(self._authenticate, header)
        except UnauthorizedError:
            self._remember(digest, None, now + UNKNOWN_TTL)
            return None
        except Exception as exc:  # e.g. the database is down: count by address, remember nothing
            log.debug("rate limit: token check failed (%s)", type(exc).__name__)
            return None
        is_agent = principal.role is Role.AGENT
        self._remember(digest, is_agent, now + IDENTITY_TTL)
        return is_agent

    def forget(self, digest: str) -> None:
        self._known.pop(digest, None)

    def _remember(self, digest: str, kind: bool | None, expires: float) -> None:
        if len(self._known) >= MAX_IDENTITIES:
            now = time.monotonic()
            self._known = {k: v for k, v in self._known.items() if v[1] > now}
            if len(self._known) >= MAX_IDENTITIES:
                self._known = {}
        self._known[digest] = (kind, expires)


class RateLimiter:
    """Decides per request: exempt (``None``) or a :class:`Decision` against its bucket."""

    def __init__(
        self,
        counter: Counter,
        identities: IdentityCache,
        addresses: ClientAddressResolver,
        *,
        token_limit: int,
        address_limit: int,
        window: int,
    ) -> None:
        self.counter = counter
        self.identities = identities
        self.addresses = addresses
        self.token_limit = token_limit
        self.address_limit = address_limit
        self.window = window
        self._over: set[str] = set()
        self._over_window = -1
        self._peer_buckets: dict[str | None, str] = {}

    async def start(self) -> None:
        await self.counter.start()

    async def close(self) -> None:
        await self.counter.close()

    async def check(self, scope: HTTPScope) -> tuple[Decision, str, str | None] | None:
        """``None`` when the request is exempt; else the decision, the bucket and, when the
        request was counted against a token, the token's digest (so a 401 can forget it)."""
        method = scope["method"]
        path = scope["path"]
        if method == "OPTIONS" or path in HEALTH_PATHS:
            return None
        header = None
        forwarded: list[str] = []
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                forwarded.append(value.decode("latin-1"))
        now = time.monotonic()
        if header and header[:7].lower() == "bearer ":
            digest = bucket_digest(header[7:].strip())
            is_agent = await self.identities.identify(header, digest, now)
            if is_agent is not None:
                if is_agent and is_agent_bus(method, path):
                    return None
                bucket = "t:" + digest
                decision = await self.counter.ahit(bucket, self.token_limit, time.time())
                return decision, bucket, digest
        client = scope.get("client")
        peer = client[0] if client else None
        known = self._peer_buckets.get(peer) if not forwarded else None
        if known is None:
            address = self.addresses.resolve(peer, forwarded)
            known = "a:" + bucket_digest(address_bucket(address))
            if not forwarded:  # the common case: remember the peer's bucket
                if len(self._peer_buckets) >= MAX_IDENTITIES:
                    self._peer_buckets = {}
                self._peer_buckets[peer] = known
        bucket = known
        decision = await self.counter.ahit(bucket, self.address_limit, time.time())
        return decision, bucket, None

    def first_refusal(self, bucket: str) -> bool:
        """True the first time ``bucket`` is refused in the current window (logged at INFO
        then; later refusals at DEBUG, so an attack does not flood the log)."""
        window = int(time.time() // self.window)
        if window != self._over_window:
            self._over_window, self._over = window, set()
        if bucket in self._over or len(self._over) >= MAX_LOGGED_BUCKETS:
            return False
        self._over.add(bucket)
        return True


def _headers(decision: Decision, window: int) -> list[tuple[bytes, bytes]]:
    return [
        (b"ratelimit-limit", str(decision.limit).encode()),
        (b"ratelimit-remaining", str(decision.remaining).encode()),
        (b"ratelimit-reset", str(decision.reset).encode()),
        (b"ratelimit-policy", f"{decision.limit};w={window}".encode()),
    ]


class RateLimitGate:
    """ASGI wrapper around the whole application (so unknown paths count too)."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        try:
            checked = await self.limiter.check(scope)
        except Exception:  # the limiter must never take a request down with it
            log.exception("rate limiter failed; request let through")
            checked = None
        if checked is None:
            await self.app(scope, receive, send)
            return
        decision, bucket, digest = checked
        extra = _headers(decision, self.limiter.window)
        if not decision.allowed:
            await self._refuse(scope, send, decision, extra, bucket)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] == 401 and digest is not None:
                    self.limiter.identities.forget(digest)
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _refuse(
        self,
        scope: HTTPScope,
        send: Send,
        decision: Decision,
        extra: list[tuple[bytes, bytes]],
        bucket: str,
    ) -> None:
        state: dict[str, Any] = scope.setdefault("state", {})
        request_id = state.get("request_id")
        if not request_id:
            inbound = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
            request_id = inbound if _INBOUND_ID.fullmatch(inbound) else secrets.token_hex(8)
        log.log(
            logging.INFO if self.limiter.first_refusal(bucket) else logging.DEBUG,
            "429 %s %s: bucket %s over its limit of %d, retry in %d s request_id=%s",
            scope["method"],
            scope["path"].encode("unicode_escape").decode("ascii")[:200],
            bucket,
            decision.limit,
            decision.reset,
            request_id,
        )
        start: Any = {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(RATE_LIMITED_BODY)).encode()),
                (b"retry-after", str(max(1, math.ceil(decision.reset))).encode()),
                (b"x-request-id", str(request_id).encode("ascii", "replace")),
                *extra,
            ],
        }
        await send(start)
        await send({"type": "http.response.body", "body": RATE_LIMITED_BODY, "more_body": False})
