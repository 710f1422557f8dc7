"""The agent channel: the WebSocket to the server, kept up across disconnects.

:class:`AgentConnection` connects with the agent token, says ``hello`` (dispatch window, the
commands still running), waits for ``welcome``, sends heartbeats and hands every frame to the
:class:`~botmox_core.agent.execution.CommandExecutor`. A lost connection is re-made after a
jittered exponential backoff; a refusal that reconnecting cannot cure (token revoked or
unknown, another process took over the token) ends it with an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from botmox_core.agent.execution import AgentStats, CommandExecutor
from botmox_core.agent.state import AgentState
from botmox_core.errors import ConflictError, UnauthorizedError

__all__ = [
    "CLOSE_REPLACED",
    "FATAL_CLOSE_CODES",
    "MAX_INFLIGHT",
    "RETRYABLE_HELLO_ERRORS",
    "AgentConnection",
]

log = logging.getLogger("botmox.agent")

#: Errors answering ``hello`` after which reconnecting can help.
RETRYABLE_HELLO_ERRORS = {"INTERNAL_ERROR", "SERVICE_UNAVAILABLE", "DATABASE_ERROR"}
#: Close codes after which reconnecting cannot help.
FATAL_CLOSE_CODES = {4401: "unauthorized", 4403: "revoked"}
#: The websockets library's logger: never at DEBUG, whose wire dump would print the token.
_WIRE_LOG = logging.getLogger("botmox.agent.connection")
_WIRE_LOG.setLevel(logging.INFO)
#: Close code when a newer connection of the same agent replaced this one.
CLOSE_REPLACED = 4409
#: The largest dispatch window the server accepts in ``hello``.
MAX_INFLIGHT = 100


class AgentConnection:
    """The agent's connection to the server for one :meth:`~botmox_core.agent.Agent.run`.

    Args:
        state: the paired agent (server URL, agent token).
        stopping: set to stop: the session hands running commands back and returns.
        connected: set while a session is established (the agent's ``connected``).
        stats: counters (``connects`` is counted here).
        concurrency: the agent's handler slots (the ``hello`` window, at most
            :data:`MAX_INFLIGHT`).
        reconnect_initial, reconnect_max: jittered exponential backoff bounds (seconds).
    """

    def __init__(
        self,
        state: AgentState,
        *,
        stopping: asyncio.Event,
        connected: asyncio.Event,
        stats: AgentStats,
        concurrency: int,
        reconnect_initial: float,
        reconnect_max: float,
    ) -> None:
        self.state = state
        self.stats = stats
        self.concurrency = concurrency
        self.reconnect_initial = reconnect_initial
        self.reconnect_max = reconnect_max
        self._stopping = stopping
        self._connected = connected
        self._ws: ClientConnection | None = None

    async def send(self, frame: dict[str, Any]) -> None:
        """Send ``frame`` on the current session; dropped while disconnected (results and
        output are sent again after the next connect, commands are re-delivered)."""
        ws = self._ws
        if ws is None:
            return
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(frame))

    async def serve(self, executor: CommandExecutor) -> None:
        """Connect, run sessions feeding ``executor`` and reconnect, until ``stopping`` is set.

        Raises :class:`UnauthorizedError` when the server refuses the agent for good, and
        :class:`ConflictError` (``AGENT_CONNECTION_REPLACED``) when another process connected
        with the same token.
        """
        failures = 0
        while not self._stopping.is_set():
            try:
                async with connect(
                    self.state.websocket_url,
                    additional_headers={"Authorization": f"Bearer {self.state.agent_token}"},
                    compression=None,
                    max_size=2 * 1024 * 1024,
                    open_timeout=15,
                    ping_interval=20,
                    ping_timeout=20,
                    logger=_WIRE_LOG,
                ) as ws:
                    failures = 0
                    await self._session(ws, executor)
            except InvalidStatus as exc:
                log.warning("server refused the connection: HTTP %s", exc.response.status_code)
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                if code == CLOSE_REPLACED:
                    raise ConflictError(
                        "another process connected with this agent's token; stopping",
                        code="AGENT_CONNECTION_REPLACED",
                    ) from None
                if code in FATAL_CLOSE_CODES:
                    raise UnauthorizedError(
                        f"the server closed the agent channel: {FATAL_CLOSE_CODES[code]}"
                    ) from None
                log.info("agent channel closed (%s); reconnecting", code)
            except (OSError, TimeoutError, WebSocketException) as exc:
                log.info("agent channel unavailable (%s); reconnecting", type(exc).__name__)
            finally:
                self._ws = None
                self._connected.clear()
            if self._stopping.is_set():
                return
            failures += 1
            delay = random.uniform(  # noqa: S311 - jitter, not security
                0, min(self.reconnect_max, self.reconnect_initial * 2 ** min(failures, 16))
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _session(self, ws: ClientConnection, executor: CommandExecutor) -> None:
        await ws.send(
            json.dumps(
                {
                    "type": "hello",
                    "max_inflight": min(self.concurrency, MAX_INFLIGHT),
                    "resume": {"running": executor.running_ids()},
                }
            )
        )
        welcome = json.loads(await ws.recv())
        if welcome.get("type") == "error" and welcome.get("code") not in RETRYABLE_HELLO_ERRORS:
            raise UnauthorizedError(
                f"the server refused the agent: {welcome.get('code')}: {welcome.get('message')}"
            )
        if welcome.get("type") != "welcome":
            raise ConnectionClosed(None, None)
        self._ws = ws
        self.stats.connects += 1
        self._connected.set()
        interval = float(welcome.get("heartbeat_interval_s") or 30)
        await executor.resend_unconfirmed()
        heartbeats = asyncio.create_task(self._heartbeats(ws, interval))
        stopper = asyncio.create_task(self._stopping.wait())
        try:
            while True:
                receiver = asyncio.ensure_future(ws.recv())
                done, _ = await asyncio.wait(
                    {receiver, stopper}, return_when=asyncio.FIRST_COMPLETED
                )
                if receiver not in done:
                    receiver.cancel()
                    with contextlib.suppress(BaseException):
                        await receiver
                    waiting = await executor.hand_back()
                    await self._read_confirmations(ws, executor, waiting)
                    return
                await executor.on_frame(receiver.result())
        finally:
            heartbeats.cancel()
            stopper.cancel()

    @staticmethod
    async def _heartbeats(ws: ClientConnection, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps({"type": "heartbeat"}))

    @staticmethod
    async def _read_confirmations(
        ws: ClientConnection, executor: CommandExecutor, waiting: set[str]
    ) -> None:
        """Read the server's ``result_ack`` frames for ``waiting`` for up to 2 seconds (the
        last step of a graceful shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2
        while waiting:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), remaining))
            except (TimeoutError, ConnectionClosed, ValueError):
                break
            if isinstance(frame, dict) and frame.get("type") == "result_ack":
                command_id = str(frame.get("command_id"))
                executor.result_acked(command_id)
                waiting.discard(command_id)
