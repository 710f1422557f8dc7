"""The agent runtime: connect to the server's agent channel, run registered handlers, stream
their output, report results — and keep doing it across disconnects and restarts.

::

    from botmox_core.agent import Agent, CommandContext

    agent = Agent(concurrency=4)

    @agent.handler("proxmox.start")
    async def start_vm(ctx: CommandContext) -> dict:
        ctx.write(f"starting {ctx.payload['vmid']}\\n")
        return {"started": True}

    agent.run_forever(state_path)          # or: await agent.run(load_state(state_path))

Guarantees (see ``docs/agents.md``): a command id runs at most once per journal (the server
delivers at least once; duplicates are answered from the journal); results are re-sent until
the server confirms them; an agent restarted after a crash reports the commands it was running
as failed instead of running them again; on shutdown running commands get ``shutdown_grace``
seconds to finish, then are handed back to the server (re-queued).

Secrets: a payload value ``{"secret_ref": "<secret id>"}`` reaches the handler as the secret's
plaintext, opened here with the agent's private key (:mod:`botmox_core.agent.secrets`); the
plaintext is registered with the log redaction while the handler runs and scrubbed from its
output, result and error. A reference that does not resolve fails the command with a
``SECRET_...`` code and the handler does not run.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random
import signal
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias

import attrs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from botmox_core.agent.journal import ACCEPTED, FINISHED, CommandJournal
from botmox_core.agent.secrets import SecretResolutionError, resolve_secret_refs, scrub
from botmox_core.agent.state import AgentState, load_state
from botmox_core.errors import ConflictError, UnauthorizedError
from botmox_core.logging_redaction import install_redaction, registered_secrets

__all__ = ["Agent", "AgentStats", "CommandContext", "Handler"]

log = logging.getLogger("botmox.agent")

Handler: TypeAlias = Callable[["CommandContext"], Any]
"""A command handler: sync or async, takes the :class:`CommandContext`, returns a JSON object
(or None, or any JSON value, stored as ``{"value": ...}``); raising fails the command."""

CHUNK_BYTES = 64 * 1024
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


class CommandContext:
    """What a handler gets: the command and a way to stream output.

    Attributes:
        id, command_type, payload, attempt: the command.
        cancelled: set when the server asked to cancel (async handlers are also cancelled at
            their next ``await``; sync handlers should check :attr:`is_cancelled`).
        aborted: the server's ``abort`` (``status``, ``error``) when it settled the command
            without the agent (execution timeout ...); ``cancelled`` is set too.
    """

    def __init__(
        self,
        runtime: Agent,
        command: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.id: str = command["id"]
        self.command_type: str = command["command_type"]
        self.payload: dict[str, Any] = command.get("payload") or {}
        self.attempt: int = int(command.get("attempts") or 1)
        self.cancelled = asyncio.Event()
        self.aborted: tuple[str, str | None] | None = None
        #: False for plain-function handlers: they run in a thread and cannot be interrupted.
        self.interruptible = True
        #: True once the server refused output (``OUTPUT_LIMIT_EXCEEDED``); later writes are
        #: dropped.
        self.output_refused = False
        self._runtime = runtime
        self._loop = loop
        self._pending: list[str] = []
        self._seq = 0
        self.chunks: list[tuple[int, str]] = []
        self._flushing: asyncio.Task[None] | None = None
        #: Plaintexts of the secrets resolved into :attr:`payload` (scrubbed from output).
        self._secrets: list[str] = []

    @property
    def is_cancelled(self) -> bool:
        return self.cancelled.is_set()

    def raise_if_cancelled(self) -> None:
        """For plain (thread) handlers, which cannot be interrupted: stop here when an operator
        cancelled the command (it is then reported ``cancelled``)."""
        if self.cancelled.is_set():
            raise asyncio.CancelledError

    def write(self, text: str) -> None:
        """Append ``text`` to the command's output (sent in chunks, in order). Safe to call
        from the handler's thread too."""
        if not isinstance(text, str):
            raise TypeError("output must be text")
        if not text or self.output_refused:
            return
        text = scrub(text, self._secrets)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._append(text)
        else:
            self._loop.call_soon_threadsafe(self._append, text)

    def _append(self, text: str) -> None:
        self._pending.append(text)
        if self._flushing is None or self._flushing.done():
            self._flushing = self._loop.create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            text = "".join(self._pending)
            self._pending.clear()
            data = text.encode("utf-8", "surrogatepass")
            for start in range(0, len(data), CHUNK_BYTES):
                piece = data[start : start + CHUNK_BYTES].decode("utf-8", "ignore")
                seq = self._seq
                self._seq += 1
                self.chunks.append((seq, piece))
                await self._runtime._send(
                    {"type": "progress", "command_id": self.id, "seq": seq, "data": piece}
                )

    async def flush(self) -> None:
        """Wait until everything written so far was handed to the connection."""
        await asyncio.sleep(0)
        while self._flushing is not None and not self._flushing.done():
            await self._flushing
            await asyncio.sleep(0)


@attrs.define
class AgentStats:
    """Counters of one runtime (for operators and tests).

    Attributes:
        connects: successful connections.
        deliveries: command frames received, per command id.
        runs: handler starts, per command id.
        duplicates: deliveries answered from the journal instead of running.
    """

    connects: int = 0
    deliveries: dict[str, int] = attrs.Factory(dict)
    runs: dict[str, int] = attrs.Factory(dict)
    duplicates: int = 0


class Agent:
    """An agent runtime with handlers registered by :meth:`handler`.

    Args:
        concurrency: handlers running at once (also the server's dispatch window).
        shutdown_grace: seconds running handlers get to finish on shutdown before they are
            cancelled and handed back.
        reconnect_initial, reconnect_max: jittered exponential backoff bounds (seconds).
        capabilities: announced at pairing (``botmox agent pair`` reads them from here).
    """

    def __init__(
        self,
        *,
        concurrency: int = 4,
        shutdown_grace: float = 30.0,
        reconnect_initial: float = 0.5,
        reconnect_max: float = 30.0,
        capabilities: tuple[str, ...] = (),
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.shutdown_grace = shutdown_grace
        self.reconnect_initial = reconnect_initial
        self.reconnect_max = reconnect_max
        self._capabilities = capabilities
        self.handlers: dict[str, Handler] = {}
        self.stats = AgentStats()
        self._ws: ClientConnection | None = None
        self._running: dict[str, tuple[asyncio.Task[None], CommandContext]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._stopping: asyncio.Event | None = None
        self._journal: CommandJournal | None = None
        self._releasing: set[str] = set()
        self._state: AgentState | None = None
        self.connected = asyncio.Event()

    @property
    def capabilities(self) -> tuple[str, ...]:
        """Declared capabilities plus every handled command type."""
        return tuple(dict.fromkeys([*self._capabilities, *self.handlers]))

    def handler(self, command_type: str) -> Callable[[Handler], Handler]:
        """Register the decorated function for ``command_type`` (e.g. ``"proxmox.start"``)."""

        def register(fn: Handler) -> Handler:
            if command_type in self.handlers:
                raise ValueError(f"a handler for {command_type} is already registered")
            self.handlers[command_type] = fn
            return fn

        return register

    # -- running --------------------------------------------------------------------------

    def run_forever(self, state_path: Path, journal_path: Path | None = None) -> None:
        """Run until SIGINT/SIGTERM (graceful shutdown), in a new event loop."""

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(signum, stop.set)
            await self.run(
                load_state(state_path), journal_path=journal_path, stop=stop, state_path=state_path
            )

        asyncio.run(main())

    async def run(
        self,
        state: AgentState,
        *,
        journal_path: Path | None = None,
        stop: asyncio.Event | None = None,
        state_path: Path | None = None,
    ) -> None:
        """Connect and serve commands until ``stop`` is set (then shut down gracefully).

        Raises :class:`UnauthorizedError` when the server refuses the agent for good (token
        revoked or unknown): reconnecting cannot help then.
        """
        install_redaction()
        self._state = state
        self._stopping = stop or asyncio.Event()
        self._slots = asyncio.Semaphore(self.concurrency)
        if journal_path is not None:
            path = journal_path
        elif state_path is not None:
            path = state_path.with_name(state_path.name + ".journal.sqlite3")
        else:
            path = Path.home() / ".config" / "botmox" / f"{state.agent_id}.journal.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._journal = CommandJournal(path)
        try:
            interrupted = self._journal.mark_interrupted()
            if interrupted:
                log.warning(
                    "commands interrupted by the last stop, reported failed: %s", interrupted
                )
            self._journal.prune()
            await self._connect_loop(state)
        finally:
            await self._shutdown()
            self._journal.close()
            self._journal = None

    async def _connect_loop(self, state: AgentState) -> None:
        assert self._stopping is not None
        failures = 0
        while not self._stopping.is_set():
            try:
                async with connect(
                    state.websocket_url,
                    additional_headers={"Authorization": f"Bearer {state.agent_token}"},
                    compression=None,
                    max_size=2 * 1024 * 1024,
                    open_timeout=15,
                    ping_interval=20,
                    ping_timeout=20,
                    logger=_WIRE_LOG,
                ) as ws:
                    failures = 0
                    await self._session(ws)
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
                self.connected.clear()
            if self._stopping.is_set():
                return
            failures += 1
            delay = random.uniform(  # noqa: S311 - jitter, not security
                0, min(self.reconnect_max, self.reconnect_initial * 2 ** min(failures, 16))
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _session(self, ws: ClientConnection) -> None:
        assert self._stopping is not None and self._journal is not None
        await ws.send(
            json.dumps(
                {
                    "type": "hello",
                    "max_inflight": min(self.concurrency, MAX_INFLIGHT),
                    "resume": {"running": sorted(self._running)},
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
        self.connected.set()
        interval = float(welcome.get("heartbeat_interval_s") or 30)
        for entry in self._journal.unconfirmed():  # results the server has not confirmed
            await self._send_result(entry.id, entry.status or "failed", entry.result, entry.error)
        for task_ctx in list(self._running.values()):  # output sent while disconnected
            for seq, data in task_ctx[1].chunks:
                await self._send(
                    {"type": "progress", "command_id": task_ctx[1].id, "seq": seq, "data": data}
                )
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
                    await self._drain(ws)
                    return
                await self._on_frame(receiver.result())
        finally:
            heartbeats.cancel()
            stopper.cancel()

    async def _heartbeats(self, ws: ClientConnection, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps({"type": "heartbeat"}))

    async def _send(self, frame: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None:
            return  # resent after the next connect (results, output) or re-delivered
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(frame))

    async def _send_result(
        self, command_id: str, status: str, result: dict[str, Any] | None, error: str | None
    ) -> None:
        frame: dict[str, Any] = {"type": "result", "command_id": command_id, "status": status}
        if result is not None:
            frame["result"] = result
        if error is not None:
            frame["error"] = error[:4000]
        await self._send(frame)

    # -- frames ---------------------------------------------------------------------------

    async def _on_frame(self, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            log.warning("the server sent a frame that is not JSON")
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "command" and isinstance(frame.get("command"), dict):
            await self._on_command(frame["command"])
        elif kind == "cancel":
            self._on_cancel(str(frame.get("command_id")))
        elif kind == "abort":
            self._on_abort(frame)
        elif kind == "result_ack":
            assert self._journal is not None
            self._journal.result_acked(str(frame.get("command_id")))
        elif kind == "error":
            self._on_error(frame)

    def _on_error(self, frame: dict[str, Any]) -> None:
        command_id = frame.get("command_id")
        code = frame.get("code")
        running_command = self._running.get(command_id) if isinstance(command_id, str) else None
        if code == "OUTPUT_LIMIT_EXCEEDED" and running_command is not None:
            if not running_command[1].output_refused:
                log.warning("command %s: output limit reached; dropping further output", command_id)
            running_command[1].output_refused = True
            return
        log.warning("server error frame: %s %s (%s)", code, frame.get("message"), command_id)
        if isinstance(command_id, str) and code in (
            "INVALID_COMMAND_TRANSITION",
            "COMMAND_NOT_FOUND",
        ):
            # The server already settled the command (timed out, cancelled, revoked ...):
            # stop resending its result and stop running it.
            assert self._journal is not None
            entry = self._journal.get(command_id)
            if entry is not None and entry.state == FINISHED:
                self._journal.result_acked(command_id)
            running = self._running.get(command_id)
            if running is not None and running[1].interruptible:
                running[0].cancel()

    async def _on_command(self, command: dict[str, Any]) -> None:
        assert self._journal is not None and self._stopping is not None
        command_id = str(command.get("id"))
        command_type = str(command.get("command_type"))
        self.stats.deliveries[command_id] = self.stats.deliveries.get(command_id, 0) + 1
        before = self._journal.delivered(command_id, command_type)
        if before is not None and before.state != "released":
            self.stats.duplicates += 1
            log.info(
                "command %s delivered again (%d deliveries): answered from the journal (%s)",
                command_id,
                before.deliveries + 1,
                before.state,
            )
            if before.state == FINISHED:
                await self._send_result(
                    command_id, before.status or "failed", before.result, before.error
                )
            elif command_id in self._running:
                await self._send({"type": "ack", "command_id": command_id})
            elif before.state == ACCEPTED:  # cannot happen after mark_interrupted; be safe
                self._journal.finish(command_id, "failed", error="interrupted")
                await self._send_result(command_id, "failed", None, "interrupted")
            return
        if self._stopping.is_set():
            return  # not accepted: the server re-queues it after the ack timeout
        self._journal.accept(command_id, command_type)
        await self._send({"type": "ack", "command_id": command_id})
        ctx = CommandContext(self, command, asyncio.get_running_loop())
        task = asyncio.create_task(self._execute(ctx))
        self._running[command_id] = (task, ctx)
        task.add_done_callback(partial(self._forget, command_id))

    def _forget(self, command_id: str, _task: asyncio.Task[None]) -> None:
        self._running.pop(command_id, None)
        self._releasing.discard(command_id)

    def _on_cancel(self, command_id: str) -> None:
        running = self._running.get(command_id)
        if running is None:
            return
        task, ctx = running
        ctx.cancelled.set()
        if ctx.interruptible:
            task.cancel()

    def _on_abort(self, frame: dict[str, Any]) -> None:
        """The server settled the command without us (execution timeout ...): stop it and
        never send its result."""
        assert self._journal is not None
        command_id = str(frame.get("command_id"))
        status = str(frame.get("status") or "failed")
        error = frame.get("error") if isinstance(frame.get("error"), str) else None
        log.warning(
            "command %s: the server settled it (%s: %s); stopping", command_id, status, error
        )
        running = self._running.get(command_id)
        if running is not None:
            task, ctx = running
            ctx.aborted = (status, error)
            ctx.cancelled.set()
            if ctx.interruptible:
                task.cancel()
            return
        entry = self._journal.get(command_id)
        if entry is not None and entry.state == FINISHED:
            self._journal.result_acked(command_id)  # stop re-sending a result it would refuse

    async def _execute(self, ctx: CommandContext) -> None:
        assert self._journal is not None and self._slots is not None
        handler = self.handlers.get(ctx.command_type)
        status, result, error = "failed", None, None
        try:
            async with self._slots:
                if handler is None:
                    error = f"this agent has no handler for {ctx.command_type}"
                else:
                    assert self._state is not None
                    ctx.payload, ctx._secrets = await resolve_secret_refs(ctx.payload, self._state)
                    self.stats.runs[ctx.id] = self.stats.runs.get(ctx.id, 0) + 1
                    ctx.interruptible = inspect.iscoroutinefunction(handler)
                    with registered_secrets(ctx._secrets):
                        value = await _call(handler, ctx)
                    status = "succeeded"
                    result = value if isinstance(value, dict) or value is None else {"value": value}
        except asyncio.CancelledError:
            if ctx.aborted is not None:  # settled by the server: record it, send nothing
                self._journal.finish(ctx.id, ctx.aborted[0], error=ctx.aborted[1])
                self._journal.result_acked(ctx.id)
                return
            await ctx.flush()
            if ctx.is_cancelled:
                self._journal.finish(ctx.id, "cancelled", error="cancelled")
                await self._send({"type": "cancel_ack", "command_id": ctx.id})
            elif ctx.id in self._releasing:
                self._journal.release(ctx.id)
                await self._send({"type": "release", "command_id": ctx.id})
            else:
                self._journal.finish(ctx.id, "failed", error="stopped by the server")
            return
        except SecretResolutionError as exc:  # its text never carries secret material
            log.warning("command %s: %s", ctx.id, exc)
            error = str(exc)
        except Exception as exc:  # a handler's failure is the command's failure
            error = scrub(f"{type(exc).__name__}: {exc}", ctx._secrets)
        if ctx.aborted is not None:  # a plain handler finished after the server's abort
            self._journal.finish(ctx.id, ctx.aborted[0], error=ctx.aborted[1])
            self._journal.result_acked(ctx.id)
            return
        await ctx.flush()
        try:
            json.dumps(result)
        except (TypeError, ValueError):
            status, result, error = "failed", None, "the handler returned a non-JSON result"
        result = scrub(result, ctx._secrets)  # a handler never echoes a secret back
        ctx._secrets = []
        self._journal.finish(ctx.id, status, result, error)
        await self._send_result(ctx.id, status, result, error)

    async def _drain(self, ws: ClientConnection) -> None:
        """Graceful shutdown while connected: give running handlers ``shutdown_grace``
        seconds, then cancel and hand back the rest, and read the server's confirmations."""
        assert self._journal is not None
        pending = [task for task, _ in self._running.values()]
        if pending:
            log.info(
                "shutting down: waiting up to %.0f s for %d command(s)",
                self.shutdown_grace,
                len(pending),
            )
            await asyncio.wait(pending, timeout=self.shutdown_grace)
        uninterruptible = [task for task, ctx in self._running.values() if not ctx.interruptible]
        if uninterruptible:  # plain handlers cannot be stopped: let them finish and report
            log.info("waiting for %d handler(s) that cannot be interrupted", len(uninterruptible))
            await asyncio.wait(uninterruptible)
        leftovers = list(self._running.items())
        for command_id, (task, _ctx) in leftovers:
            self._releasing.add(command_id)
            task.cancel()
        if leftovers:
            await asyncio.wait([task for _, (task, _) in leftovers], timeout=5)
        waiting = {command_id for command_id, _ in leftovers}
        waiting.update(entry.id for entry in self._journal.unconfirmed())
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
                self._journal.result_acked(command_id)
                waiting.discard(command_id)

    async def _shutdown(self) -> None:
        """Shutdown without a connection: running handlers are cancelled and recorded as
        failed (reported on the next start), never silently re-run."""
        tasks = [task for task, _ in self._running.values()]
        for task, ctx in self._running.values():
            if ctx.interruptible:
                task.cancel()
        if tasks:
            await asyncio.wait(tasks)


async def _call(handler: Handler, ctx: CommandContext) -> Any:
    if inspect.iscoroutinefunction(handler):
        return await handler(ctx)
    result = await asyncio.to_thread(handler, ctx)
    if inspect.isawaitable(result):
        return await result
    return result
