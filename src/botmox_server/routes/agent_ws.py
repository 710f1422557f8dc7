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
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread
from litestar import WebSocket, websocket
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect

from botmox_core.bootstrap import App
from botmox_core.converter import get_converter
from botmox_core.errors import BotmoxError, UnauthorizedError
from botmox_core.models import Agent, Command
from botmox_core.services.commands import command_view

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
    """One authenticated agent socket."""

    __slots__ = ("agent", "closed", "hub", "max_inflight", "pump", "send_lock", "socket")

    def __init__(self, hub: AgentHub, socket: WebSocket[Any, Any, Any], agent: Agent) -> None:
        self.hub = hub
        self.socket = socket
        self.agent = agent
        self.send_lock = asyncio.Lock()
        self.max_inflight = MAX_INFLIGHT_DEFAULT
        self.pump: asyncio.Task[None] | None = None
        self.closed = False

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

    async def send_commands(self, commands: Sequence[Command], redelivery: bool = False) -> None:
        for command in commands:
            await self.send("command", command=command_view(command), redelivery=redelivery)

    async def deliver(self) -> None:
        """Dispatch queued commands within the agent's window."""
        core = self.hub.core
        claimed = await self.hub.run(
            core.commands.claim, self.tenant, self.agent.id, self.max_inflight
        )
        await self.send_commands(claimed)

    async def run_pump(self) -> None:
        """Wake-ups from the transport → deliveries, cancel requests, revocation."""
        transport = self.hub.core.transport
        messages = transport.subscribe(self.agent.id)
        try:
            async for message in messages:
                await self._on_wakeup(message)
                if self.closed:
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("agent %s: the delivery pump failed; closing", self.agent.id)
            await self.close(1011, "server error")
        finally:
            with contextlib.suppress(Exception):
                await messages.aclose()  # type: ignore[attr-defined]

    async def _on_wakeup(self, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        if kind == "revoked":
            await self.close(CLOSE_REVOKED, "agent revoked")
        elif kind == "cancel":
            await self.send("cancel", command_id=message.get("command_id"))
        else:
            await self.deliver()

    async def start(self, hello: Mapping[str, Any]) -> None:
        """Answer ``hello``: welcome, re-send unfinished commands, deliver queued ones."""
        inflight = hello.get("max_inflight", MAX_INFLIGHT_DEFAULT)
        if isinstance(inflight, int) and not isinstance(inflight, bool):
            self.max_inflight = max(1, min(MAX_INFLIGHT_LIMIT, inflight))
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
        for command in unfinished:
            if command.cancel_requested_at is not None:
                await self.send("cancel", command_id=command.id)
        self.pump = asyncio.create_task(self.run_pump())
        await self.deliver()

    async def handle(self, text: str) -> None:
        """One frame from the agent. Never raises for bad input: answers an error frame."""
        if len(text) > MAX_FRAME_BYTES:
            await self.error("FRAME_TOO_LARGE", f"frames are limited to {MAX_FRAME_BYTES} bytes")
            return
        try:
            frame = json.loads(text)
        except ValueError:
            await self.error("BAD_FRAME", "frame is not valid JSON")
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self.error("BAD_FRAME", "a frame is a JSON object with a string 'type'")
            return
        kind = frame["type"]
        command_id = frame.get("command_id")
        handler = self._handlers().get(kind)
        if handler is None:
            await self.error("UNKNOWN_FRAME_TYPE", f"unknown frame type {kind[:40]!r}")
            return
        try:
            await handler(frame)
        except BotmoxError as exc:
            await self.error(exc.code, exc.message, command_id)
        except (TypeError, ValueError, KeyError) as exc:
            await self.error(
                "BAD_FRAME", f"malformed {kind} frame: {type(exc).__name__}", command_id
            )

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
            self.hub.core.commands.ack, self.tenant, self.agent.id, frame.get("command_id")
        )
        if command.cancel_requested_at is not None:
            await self.send("cancel", command_id=command.id)

    async def _on_progress(self, frame: dict[str, Any]) -> None:
        await self.hub.run(
            self.hub.core.commands.append_output,
            self.tenant,
            self.agent.id,
            frame.get("command_id"),
            frame.get("seq"),
            frame.get("data"),
        )

    async def _on_result(self, frame: dict[str, Any]) -> None:
        command = await self.hub.run(
            partial(
                self.hub.core.commands.finish,
                self.tenant,
                self.agent.id,
                frame.get("command_id"),
                status=frame.get("status"),
                result=frame.get("result"),
                error=frame.get("error"),
            )
        )
        await self.send("result_ack", command_id=command.id, status=command.status.value)
        await self.deliver()

    async def _on_cancel_ack(self, frame: dict[str, Any]) -> None:
        command = await self.hub.run(
            self.hub.core.commands.cancel_ack, self.tenant, self.agent.id, frame.get("command_id")
        )
        await self.send("result_ack", command_id=command.id, status=command.status.value)
        await self.deliver()

    async def _on_release(self, frame: dict[str, Any]) -> None:
        command = await self.hub.run(
            self.hub.core.commands.hand_back, self.tenant, self.agent.id, frame.get("command_id")
        )
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


async def _authenticate(
    hub: AgentHub, socket: WebSocket[Any, Any, Any]
) -> tuple[Agent, dict[str, Any]] | None:
    """Read ``hello`` and authenticate with the Authorization header or its ``token``."""
    try:
        text = await asyncio.wait_for(_receive_text(socket), HELLO_TIMEOUT)
    except TimeoutError:
        await _refuse(socket, CLOSE_BAD_HELLO, "BAD_FRAME", "expected a hello frame")
        return None
    if text is None:
        return None
    try:
        hello = json.loads(text) if len(text) <= MAX_FRAME_BYTES else None
    except ValueError:
        hello = None
    if not isinstance(hello, dict) or hello.get("type") != "hello":
        await _refuse(socket, CLOSE_BAD_HELLO, "BAD_FRAME", "the first frame must be hello")
        return None
    header = socket.headers.get("authorization")
    token = hello.get("token")
    if header:
        scheme, _, value = header.partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else None
    try:
        if not isinstance(token, str):
            raise UnauthorizedError("missing agent token")
        agent = await hub.run(hub.core.agents.agent_for_token, token)
    except BotmoxError as exc:
        await _refuse(socket, CLOSE_UNAUTHORIZED, exc.code, exc.message)
        return None
    return agent, hello


async def _refuse(
    socket: WebSocket[Any, Any, Any], close_code: int, code: str, message: str
) -> None:
    with contextlib.suppress(Exception):
        await socket.send_text(_frame("error", code=code, message=message))
    with contextlib.suppress(Exception):
        await socket.close(code=close_code, reason=message[:100])


@websocket("/ws/v1/agents/connect")
async def agent_connect(socket: WebSocket[Any, Any, Any], hub: Hub) -> None:
    """The agent channel (see ``docs/agent-protocol.md``)."""
    await socket.accept()
    authenticated = await _authenticate(hub, socket)
    if authenticated is None:
        return
    agent, hello = authenticated
    session = AgentSession(hub, socket, agent)
    await hub._attach(session)
    try:
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
            except Exception:  # one agent's bad luck never takes the handler down
                log.exception("agent %s: frame handling failed", agent.id)
                await session.error("INTERNAL_ERROR", "the server could not handle this frame")
    except (WebSocketDisconnect, ConnectionError):
        pass
    except BotmoxError as exc:
        log.warning("agent %s: %s (%s)", agent.id, exc.code, exc.message)
        await session.close(1011, exc.code)
    finally:
        session.closed = True
        hub._detach(session)
        if session.pump is not None:
            session.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await session.pump


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
