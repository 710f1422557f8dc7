"""The agent channel: ``/ws/v1/agents/connect`` and the hub of live agent connections.

The protocol is documented in ``docs/agent-protocol.md``. Per connection the server runs the
receive loop (the handler coroutine) and one *pump* task that waits for wake-ups from the
:class:`~botmox_core.ports.AgentTransport` (enqueue, cancel, revoke) and sends commands. No
threads per socket: repository calls run on the shared worker-thread pool. The command queue
in the repository is the source of truth; wake-ups only say "look again".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread
from litestar import WebSocket, websocket
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import SerializationException, WebSocketDisconnect

from botmox_core.bootstrap import App
from botmox_core.converter import get_converter
from botmox_core.errors import BadRequestError, BotmoxError
from botmox_core.models import Agent, Command
from botmox_core.services.agents import AgentTokenRefusedError
from botmox_core.services.commands import command_view
from botmox_server.bounded_json import decode_bounded
from botmox_server.logs import current_request_id, escape

__all__ = [
    "MAX_FRAME_BYTES",
    "AgentHub",
    "Hub",
    "agent_connect",
    "provide_hub",
    "sweep_forever",
]

log = logging.getLogger("botmox.agents")
T = TypeVar("T")

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
#: A well-formed ``X-Request-Id`` of the upgrade request is kept as the connection's id.
_INBOUND_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _printable(value: object) -> str:
    """``value`` for a log line: cut short, control characters escaped (one record, one line)."""
    return escape(value, 200)


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


class AgentHub:
    """The live agent connections of this server process (one per agent: a new connection
    replaces the old one)."""

    def __init__(self, core: App) -> None:
        self.core = core
        self._sessions: dict[str, AgentSession] = {}

    def connected(self, agent_id: str) -> bool:
        """Whether this process holds a live socket of the agent."""
        return agent_id in self._sessions

    def __len__(self) -> int:
        return len(self._sessions)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a synchronous service call on the worker threads."""
        return await anyio.to_thread.run_sync(partial(fn, *args))

    async def wake(self, agent_id: str) -> None:
        """Tell whichever replica holds the agent's socket to look at its queue."""
        await self.core.transport.publish(agent_id, {"type": "wake"})

    async def cancel(self, agent_id: str, command_id: str) -> None:
        await self.core.transport.publish(agent_id, {"type": "cancel", "command_id": command_id})

    async def abort(self, agent_id: str, command_id: str) -> None:
        """Tell the agent (wherever its socket is) that the server settled a command."""
        await self.core.transport.publish(agent_id, {"type": "abort", "command_id": command_id})

    async def revoked(self, agent_id: str) -> None:
        """Close the agent's socket here and on every replica."""
        session = self._sessions.get(agent_id)
        if session is not None:
            await session.close(CLOSE_REVOKED, "agent revoked")
        await self.core.transport.publish(agent_id, {"type": "revoked"})

    async def _attach(self, session: AgentSession) -> None:
        previous = self._sessions.get(session.agent.id)
        self._sessions[session.agent.id] = session
        if previous is not None:
            await previous.close(CLOSE_REPLACED, "replaced by a newer connection")

    def _detach(self, session: AgentSession) -> None:
        if self._sessions.get(session.agent.id) is session:
            del self._sessions[session.agent.id]


Hub = NamedDependency[AgentHub]
"""The hub of live agent connections (injected)."""


def provide_hub(state: State) -> AgentHub:
    return state.agent_hub  # type: ignore[no-any-return]


def _frame(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **get_converter().unstructure(fields)})


class AgentSession:
    """One authenticated agent socket.

    ``delivered`` holds the ids whose ``command`` frame went out on this connection and
    ``cancels_sent`` those that got a ``cancel``: a cancel request reaches the agent once per
    connection, after the command it names.
    """

    __slots__ = (
        "agent",
        "cancels_sent",
        "closed",
        "connection_id",
        "delivered",
        "hub",
        "max_inflight",
        "pump",
        "send_lock",
        "socket",
    )

    def __init__(
        self,
        hub: AgentHub,
        socket: WebSocket[Any, Any, Any],
        agent: Agent,
        connection_id: str = "-",
    ) -> None:
        self.hub = hub
        self.socket = socket
        self.agent = agent
        self.connection_id = connection_id
        self.send_lock = asyncio.Lock()
        self.max_inflight = MAX_INFLIGHT_DEFAULT
        self.pump: asyncio.Task[None] | None = None
        self.closed = False
        self.delivered: set[str] = set()
        self.cancels_sent: set[str] = set()

    @property
    def tenant(self) -> str:
        return self.agent.tenant_id

    async def send(self, kind: str, **fields: Any) -> None:
        if self.closed:
            return
        async with self.send_lock:
            await self.socket.send_text(_frame(kind, **fields))

    async def error(self, code: str, message: str, command_id: Any = None) -> None:
        fields: dict[str, Any] = {"code": code, "message": message}
        if isinstance(command_id, str) and len(command_id) <= 64:
            fields["command_id"] = command_id
        with contextlib.suppress(Exception):
            await self.send("error", **fields)

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            await self.socket.close(code=code, reason=reason)

    def _settled(self, command_id: str) -> None:
        """Forget a command the agent is done with (bounded per-connection memory)."""
        self.delivered.discard(command_id)
        self.cancels_sent.discard(command_id)

    async def send_commands(self, commands: Sequence[Command], redelivery: bool = False) -> None:
        """``command`` frames; ``redelivery`` is true for a command sent before (after a
        reconnect, a restart or the acknowledgement timeout)."""
        for command in commands:
            await self.send(
                "command",
                command=command_view(command),
                redelivery=redelivery or command.attempts > 1,
            )
            self.delivered.add(command.id)
            if command.cancel_requested_at is not None:
                await self.send_cancel(command.id)

    async def send_cancel(self, command_id: str) -> None:
        """A ``cancel`` for a command this connection delivered, once per connection. A cancel
        for one not delivered yet waits: the agent's ``ack`` of it brings the cancel."""
        if command_id in self.cancels_sent or command_id not in self.delivered:
            return
        self.cancels_sent.add(command_id)
        await self.send("cancel", command_id=command_id)

    async def send_abort(self, command: Command) -> None:
        """Tell the agent the server settled ``command`` without it (timed out, dead-lettered,
        expired ...): stop running it, do not send its result."""
        self._settled(command.id)
        await self.send(
            "abort", command_id=command.id, status=command.status.value, error=command.error
        )

    async def deliver(self) -> None:
        """Dispatch queued commands within the agent's window."""
        core = self.hub.core
        claimed = await self.hub.run(
            core.commands.claim, self.tenant, self.agent.id, self.max_inflight
        )
        await self.send_commands(claimed)

    async def run_pump(self) -> None:
        """Wake-ups from the transport → deliveries, cancel requests, aborts, revocation."""
        transport = self.hub.core.transport
        messages = transport.subscribe(self.agent.id)
        try:
            async for message in messages:
                await self._on_wakeup(message)
                if self.closed:
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception(
                "agent channel: the delivery pump failed (%s); closing 1011 agent_id=%s "
                "request_id=%s",
                type(exc).__name__,
                self.agent.id,
                self.connection_id,
            )
            await self.close(1011, "server error")
        finally:
            with contextlib.suppress(Exception):
                await messages.aclose()  # type: ignore[attr-defined]

    async def _on_wakeup(self, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        command_id = message.get("command_id")
        if kind == "revoked":
            await self.close(CLOSE_REVOKED, "agent revoked")
        elif kind == "cancel" and isinstance(command_id, str):
            await self.send_cancel(command_id)
        elif kind == "abort" and isinstance(command_id, str):
            for command in await self.hub.run(
                self.hub.core.commands.settled, self.tenant, self.agent.id, [command_id]
            ):
                await self.send_abort(command)
        else:
            await self.deliver()

    async def start(self, hello: Mapping[str, Any]) -> None:
        """Answer ``hello``: welcome, re-send unfinished commands, abort the ones the agent
        still runs that the server settled meanwhile, deliver queued ones."""
        inflight = hello.get("max_inflight")
        self.max_inflight = MAX_INFLIGHT_DEFAULT if inflight is None else int(inflight)
        core = self.hub.core
        await self.hub.run(core.agents.touch, self.tenant, self.agent.id)
        await self.send(
            "welcome",
            agent_id=self.agent.id,
            heartbeat_interval_s=core.agents.heartbeat_interval_seconds,
            max_frame_bytes=MAX_FRAME_BYTES,
            max_inflight=self.max_inflight,
        )
        unfinished = await self.hub.run(core.commands.in_flight, self.tenant, self.agent.id)
        await self.send_commands(unfinished, redelivery=True)
        resume = hello.get("resume") or {}
        running = [i for i in resume.get("running") or () if i not in self.delivered]
        if running:
            settled = await self.hub.run(
                core.commands.settled, self.tenant, self.agent.id, running[:MAX_RESUME_IDS]
            )
            for command in settled:
                await self.send_abort(command)
        self.pump = asyncio.create_task(self.run_pump())
        await self.deliver()

    async def handle(self, text: str) -> None:
        """One frame from the agent. Never raises for bad input: answers an error frame."""
        try:
            frame = decode_frame(text)
        except FrameError as exc:
            await self.error(exc.code, exc.message)
            return
        kind = frame["type"]
        command_id = frame.get("command_id")
        handler = self._handlers().get(kind)
        if handler is None:
            await self.error("UNKNOWN_FRAME_TYPE", f"unknown frame type {kind[:40]!r}")
            return
        try:
            check_fields(kind, frame)
            await handler(frame)
        except FrameError as exc:
            await self.error(exc.code, exc.message, command_id)
        except BotmoxError as exc:
            await self.error(exc.code, exc.message, command_id)

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {
            "heartbeat": self._on_heartbeat,
            "ack": self._on_ack,
            "progress": self._on_progress,
            "result": self._on_result,
            "cancel_ack": self._on_cancel_ack,
            "release": self._on_release,
            "hello": self._on_second_hello,
        }

    async def _on_heartbeat(self, frame: dict[str, Any]) -> None:
        core = self.hub.core
        await self.hub.run(core.agents.touch, self.tenant, self.agent.id)
        await self.send("heartbeat_ack", server_time=core.agents.now())
        await self.deliver()

    async def _on_ack(self, frame: dict[str, Any]) -> None:
        command = await self.hub.run(
            self.hub.core.commands.ack, self.tenant, self.agent.id, frame["command_id"]
        )
        self.delivered.add(command.id)  # the agent holds it, whichever connection sent it
        if command.cancel_requested_at is not None:
            await self.send_cancel(command.id)

    async def _on_progress(self, frame: dict[str, Any]) -> None:
        await self.hub.run(
            self.hub.core.commands.append_output,
            self.tenant,
            self.agent.id,
            frame["command_id"],
            frame["seq"],
            frame["data"],
        )

    async def _on_result(self, frame: dict[str, Any]) -> None:
        command = await self.hub.run(
            partial(
                self.hub.core.commands.finish,
                self.tenant,
                self.agent.id,
                frame["command_id"],
                status=frame["status"],
                result=frame.get("result"),
                error=frame.get("error"),
            )
        )
        self._settled(command.id)
        await self.send("result_ack", command_id=command.id, status=command.status.value)
        await self.deliver()

    async def _on_cancel_ack(self, frame: dict[str, Any]) -> None:
        command = await self.hub.run(
            self.hub.core.commands.cancel_ack, self.tenant, self.agent.id, frame["command_id"]
        )
        self._settled(command.id)
        await self.send("result_ack", command_id=command.id, status=command.status.value)
        await self.deliver()

    async def _on_release(self, frame: dict[str, Any]) -> None:
        command = await self.hub.run(
            self.hub.core.commands.hand_back, self.tenant, self.agent.id, frame["command_id"]
        )
        self._settled(command.id)
        await self.send("result_ack", command_id=command.id, status=command.status.value)

    async def _on_second_hello(self, frame: dict[str, Any]) -> None:
        await self.error("BAD_FRAME", "hello is only valid as the first frame")


async def _receive_text(socket: WebSocket[Any, Any, Any]) -> str | None:
    """The next text frame; ``None`` when the client disconnected. Binary frames become ``""``
    (answered as bad frames)."""
    message = await socket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    text = message.get("text")
    if text is None:
        return ""
    return str(text)


def _connection_id(socket: WebSocket[Any, Any, Any]) -> str:
    """The upgrade request's well-formed ``X-Request-Id``, else a fresh random id."""
    inbound = socket.headers.get("x-request-id", "")
    return inbound if _INBOUND_ID.fullmatch(inbound) else secrets.token_hex(8)


def _log_refusal(
    connection_id: str, close_code: int, code: str, reason: str, agent_id: str | None = None
) -> None:
    log.warning(
        "agent channel refused: close=%d code=%s agent_id=%s request_id=%s: %s",
        close_code,
        code,
        agent_id or "-",
        connection_id,
        _printable(reason),
    )


async def _authenticate(
    hub: AgentHub, socket: WebSocket[Any, Any, Any], connection_id: str
) -> tuple[Agent, dict[str, Any]] | None:
    """Read ``hello`` and authenticate with the Authorization header or its ``token``."""
    try:
        text = await asyncio.wait_for(_receive_text(socket), HELLO_TIMEOUT)
    except TimeoutError:
        await _refuse(socket, connection_id, CLOSE_BAD_HELLO, "BAD_FRAME", "expected a hello frame")
        return None
    if text is None:
        return None
    try:
        if text == "":
            raise FrameError("BAD_FRAME", "binary frames are not part of the protocol")
        hello = parse_hello(text)
    except FrameError as exc:
        await _refuse(socket, connection_id, CLOSE_BAD_HELLO, exc.code, exc.message)
        return None
    header = socket.headers.get("authorization")
    token = hello.get("token")
    if header:
        scheme, _, value = header.partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else None
    try:
        if not token:
            raise AgentTokenRefusedError("missing agent token", reason="missing")
        agent = await hub.run(hub.core.agents.agent_for_token, token)
    except AgentTokenRefusedError as exc:
        code = REFUSAL_CODES.get(exc.reason, exc.code)
        await _refuse(
            socket, connection_id, CLOSE_UNAUTHORIZED, code, exc.message, agent_id=exc.agent_id
        )
        return None
    except BotmoxError as exc:  # the backend failed: retryable
        log.warning(
            "agent channel: authentication failed: %s (%s) request_id=%s",
            exc.code,
            _printable(exc.message),
            connection_id,
        )
        await _refuse(socket, connection_id, 1011, exc.code, exc.message, logged=True)
        return None
    return agent, hello


async def _refuse(
    socket: WebSocket[Any, Any, Any],
    connection_id: str,
    close_code: int,
    code: str,
    message: str,
    *,
    agent_id: str | None = None,
    logged: bool = False,
) -> None:
    if not logged:
        _log_refusal(connection_id, close_code, code, message, agent_id)
    with contextlib.suppress(Exception):
        await socket.send_text(_frame("error", code=code, message=message))
    with contextlib.suppress(Exception):
        await socket.close(code=close_code, reason=message[:100])


@websocket("/ws/v1/agents/connect")
async def agent_connect(socket: WebSocket[Any, Any, Any], hub: Hub) -> None:
    """The agent channel (see ``docs/agent-protocol.md``). Every server-side failure is
    logged with the connection's request id and the agent id (never a token or a frame)."""
    connection_id = _connection_id(socket)
    current_request_id.set(connection_id)  # every record of this connection carries it
    await socket.accept()
    session: AgentSession | None = None
    try:
        authenticated = await _authenticate(hub, socket, connection_id)
        if authenticated is None:
            return
        agent, hello = authenticated
        session = AgentSession(hub, socket, agent, connection_id)
        await hub._attach(session)
        await session.start(hello)
        while not session.closed:
            text = await _receive_text(socket)
            if text is None:
                break
            if text == "":
                await session.error("BAD_FRAME", "binary frames are not part of the protocol")
                continue
            try:
                await session.handle(text)
            except WebSocketDisconnect:
                break
            except Exception as exc:  # one agent's bad luck never takes the handler down
                log.exception(
                    "agent channel: frame handling failed (%s) agent_id=%s request_id=%s",
                    type(exc).__name__,
                    agent.id,
                    connection_id,
                )
                await session.error("INTERNAL_ERROR", "the server could not handle this frame")
    except (WebSocketDisconnect, ConnectionError):
        pass
    except BotmoxError as exc:
        log.warning(
            "agent channel: closing 1011: %s (%s) agent_id=%s request_id=%s",
            exc.code,
            _printable(exc.message),
            session.agent.id if session else "-",
            connection_id,
        )
        await _close(socket, session, 1011, exc.code)
    except Exception as exc:
        log.exception(
            "agent channel: unexpected failure (%s); closing 1011 agent_id=%s request_id=%s",
            type(exc).__name__,
            session.agent.id if session else "-",
            connection_id,
        )
        await _close(socket, session, 1011, "server error")
    finally:
        if session is not None:
            session.closed = True
            hub._detach(session)
            if session.pump is not None:
                session.pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await session.pump


async def _close(
    socket: WebSocket[Any, Any, Any], session: AgentSession | None, code: int, reason: str
) -> None:
    if session is not None:
        await session.close(code, reason)
        return
    with contextlib.suppress(Exception):
        await socket.close(code=code, reason=reason)


async def sweep_forever(hub: AgentHub) -> None:
    """The server's sweeper: every ``command_sweep_interval`` seconds enforce the command
    timeouts and wake agents whose commands were re-queued."""
    core = hub.core
    while True:
        await asyncio.sleep(core.command_sweep_interval)
        if not core.agents.supported:
            continue
        try:
            report = await hub.run(core.commands.sweep)
        except BotmoxError as exc:
            log.warning("command sweep failed: %s (%s)", exc.code, exc.message)
            continue
        except Exception:
            log.exception("command sweep failed")
            continue
        if report.changed:
            log.info(
                "command sweep: %d expired, %d re-queued, %d dead-lettered, %d timed out, "
                "%d failed (agent lost)",
                len(report.expired),
                len(report.requeued),
                len(report.dead_lettered),
                len(report.timed_out),
                len(report.lost),
            )
        for _tenant, agent_id in report.wake:
            await hub.wake(agent_id)
        for _tenant, agent_id, command_id in report.settled:
            await hub.abort(agent_id, command_id)
