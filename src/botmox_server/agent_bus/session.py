"""One agent socket: the hello handshake, the receive loop and the per-connection *pump*.

Per connection the server runs the receive loop (the handler coroutine) and one pump task that
waits for wake-ups from the :class:`~botmox_core.ports.AgentTransport` (enqueue, cancel, abort,
revoke) and sends commands. No threads per socket: repository calls run on the shared
worker-thread pool (:meth:`BusContext.run`). The command queue in the repository is the source
of truth; wake-ups only say "look again".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

from botmox_core.errors import BotmoxError
from botmox_core.models import Agent, Command
from botmox_core.services.agents import AgentTokenRefusedError
from botmox_server.agent_bus.context import BusContext
from botmox_server.agent_bus.frames import (
    CLOSE_BAD_HELLO,
    CLOSE_REVOKED,
    CLOSE_UNAUTHORIZED,
    HELLO_TIMEOUT,
    MAX_FRAME_BYTES,
    MAX_INFLIGHT_DEFAULT,
    MAX_RESUME_IDS,
    REFUSAL_CODES,
    FrameError,
    check_fields,
    decode_frame,
    encode_frame,
    parse_hello,
)
from botmox_server.agent_bus.views import command_view
from botmox_server.logs import current_request_id, escape

__all__ = ["AgentSession", "serve_connection"]

log = logging.getLogger("botmox.agents")

#: A well-formed ``X-Request-Id`` of the upgrade request is kept as the connection's id.
_INBOUND_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _printable(value: object) -> str:
    """``value`` for a log line: cut short, control characters escaped (one record, one line)."""
    return escape(value, 200)


class AgentSession:
    """One authenticated agent socket.

    ``delivered`` holds the ids whose ``command`` frame went out on this connection and
    ``cancels_sent`` those that got a ``cancel``: a cancel request reaches the agent once per
    connection, after the command it names.
    """

    __slots__ = (
        "agent",
        "bus",
        "cancels_sent",
        "closed",
        "connection_id",
        "delivered",
        "max_inflight",
        "pump",
        "send_lock",
        "socket",
    )

    def __init__(
        self,
        bus: BusContext,
        socket: WebSocket[Any, Any, Any],
        agent: Agent,
        connection_id: str = "-",
    ) -> None:
        self.bus = bus
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
            await self.socket.send_text(encode_frame(kind, **fields))

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
        core = self.bus.core
        claimed = await self.bus.run(
            core.commands.claim, self.tenant, self.agent.id, self.max_inflight
        )
        await self.send_commands(claimed)

    async def run_pump(self) -> None:
        """Wake-ups from the transport → deliveries, cancel requests, aborts, revocation."""
        transport = self.bus.core.transport
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
            for command in await self.bus.run(
                self.bus.core.commands.settled, self.tenant, self.agent.id, [command_id]
            ):
                await self.send_abort(command)
        else:
            await self.deliver()

    async def start(self, hello: Mapping[str, Any]) -> None:
        """Answer ``hello``: welcome, re-send unfinished commands, abort the ones the agent
        still runs that the server settled meanwhile, deliver queued ones."""
        inflight = hello.get("max_inflight")
        self.max_inflight = MAX_INFLIGHT_DEFAULT if inflight is None else int(inflight)
        core = self.bus.core
        await self.bus.run(core.agents.touch, self.tenant, self.agent.id)
        await self.send(
            "welcome",
            agent_id=self.agent.id,
            heartbeat_interval_s=core.agents.heartbeat_interval_seconds,
            max_frame_bytes=MAX_FRAME_BYTES,
            max_inflight=self.max_inflight,
        )
        unfinished = await self.bus.run(core.commands.in_flight, self.tenant, self.agent.id)
        await self.send_commands(unfinished, redelivery=True)
        resume = hello.get("resume") or {}
        running = [i for i in resume.get("running") or () if i not in self.delivered]
        if running:
            settled = await self.bus.run(
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
        core = self.bus.core
        await self.bus.run(core.agents.touch, self.tenant, self.agent.id)
        await self.send("heartbeat_ack", server_time=core.agents.now())
        await self.deliver()

    async def _on_ack(self, frame: dict[str, Any]) -> None:
        command = await self.bus.run(
            self.bus.core.commands.ack, self.tenant, self.agent.id, frame["command_id"]
        )
        self.delivered.add(command.id)  # the agent holds it, whichever connection sent it
        if command.cancel_requested_at is not None:
            await self.send_cancel(command.id)

    async def _on_progress(self, frame: dict[str, Any]) -> None:
        await self.bus.run(
            self.bus.core.commands.append_output,
            self.tenant,
            self.agent.id,
            frame["command_id"],
            frame["seq"],
            frame["data"],
        )

    async def _on_result(self, frame: dict[str, Any]) -> None:
        command = await self.bus.run(
            partial(
                self.bus.core.commands.finish,
                self.tenant,
                self.agent.id,
                frame["command_id"],
                status=frame["status"],
                result=frame.get("result"),
                error=frame.get("error"),
            )
        )
        self._settled(command.id)
        await self.bus.settled(command.id)
        await self.send("result_ack", command_id=command.id, status=command.status.value)
        await self.deliver()

    async def _on_cancel_ack(self, frame: dict[str, Any]) -> None:
        command = await self.bus.run(
            self.bus.core.commands.cancel_ack, self.tenant, self.agent.id, frame["command_id"]
        )
        self._settled(command.id)
        await self.bus.settled(command.id)
        await self.send("result_ack", command_id=command.id, status=command.status.value)
        await self.deliver()

    async def _on_release(self, frame: dict[str, Any]) -> None:
        command = await self.bus.run(
            self.bus.core.commands.hand_back, self.tenant, self.agent.id, frame["command_id"]
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
    bus: BusContext, socket: WebSocket[Any, Any, Any], connection_id: str
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
        agent = await bus.run(bus.core.agents.agent_for_token, token)
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
        await socket.send_text(encode_frame("error", code=code, message=message))
    with contextlib.suppress(Exception):
        await socket.close(code=close_code, reason=message[:100])


async def serve_connection(bus: BusContext, socket: WebSocket[Any, Any, Any]) -> None:
    """Run one agent socket to its end (see ``docs/agent-protocol.md``): accept, read and
    authenticate ``hello``, then answer frames until either side closes. Every server-side
    failure is logged with the connection's request id and the agent id (never a token or a
    frame)."""
    connection_id = _connection_id(socket)
    current_request_id.set(connection_id)  # every record of this connection carries it
    await socket.accept()
    session: AgentSession | None = None
    try:
        authenticated = await _authenticate(bus, socket, connection_id)
        if authenticated is None:
            return
        agent, hello = authenticated
        session = AgentSession(bus, socket, agent, connection_id)
        await bus.hub.attach(session)
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
            bus.hub.detach(session)
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
