"""Command execution: what the agent does with the frames the server sends — run each command's
handler once (the journal answers duplicates), stream its output, report its result, and obey
``cancel``, ``abort`` and ``error`` frames.

:class:`CommandExecutor` knows nothing of sockets: it sends frames through the ``send``
coroutine it is given (the connection's, which drops a frame while disconnected; results and
output are sent again by :meth:`CommandExecutor.resend_unconfirmed` after the next connect).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import attrs

from botmox_core.agent.context import CommandContext, Handler, call_handler
from botmox_core.agent.journal import ACCEPTED, FINISHED, CommandJournal
from botmox_core.agent.secrets import SecretResolutionError, resolve_secret_refs, scrub
from botmox_core.agent.state import AgentState
from botmox_core.logging_redaction import registered_secrets

__all__ = ["AgentStats", "CommandExecutor"]

log = logging.getLogger("botmox.agent")


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


class CommandExecutor:
    """Runs the commands of one :meth:`~botmox_core.agent.Agent.run`, at most ``concurrency``
    handlers at once, recording each in ``journal``.

    Args:
        handlers: the handler per command type (the agent's, shared).
        stats: counters to update (the agent's, shared).
        journal: the command journal (at-most-once execution, unconfirmed results).
        state: the agent's state (its private key opens ``secret_ref`` payload values).
        concurrency: handlers running at once.
        shutdown_grace: seconds running handlers get to finish in :meth:`hand_back`.
        stopping: set when the agent shuts down; no command is accepted after that.
        send: sends one frame on the current connection (or drops it while disconnected).
    """

    def __init__(
        self,
        handlers: dict[str, Handler],
        stats: AgentStats,
        journal: CommandJournal,
        state: AgentState,
        *,
        concurrency: int,
        shutdown_grace: float,
        stopping: asyncio.Event,
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        self.handlers = handlers
        self.stats = stats
        self.journal = journal
        self.state = state
        self.shutdown_grace = shutdown_grace
        self._stopping = stopping
        self._slots = asyncio.Semaphore(concurrency)
        self._send_frame = send
        self._running: dict[str, tuple[asyncio.Task[None], CommandContext]] = {}
        self._releasing: set[str] = set()

    def running_ids(self) -> list[str]:
        """Ids of the commands running now, sorted (the ``resume`` of a ``hello``)."""
        return sorted(self._running)

    async def _send(self, frame: dict[str, Any]) -> None:
        await self._send_frame(frame)

    async def send_result(
        self, command_id: str, status: str, result: dict[str, Any] | None, error: str | None
    ) -> None:
        """Send a command's ``result`` frame (the error cut to 4000 characters)."""
        frame: dict[str, Any] = {"type": "result", "command_id": command_id, "status": status}
        if result is not None:
            frame["result"] = result
        if error is not None:
            frame["error"] = error[:4000]
        await self._send(frame)

    async def resend_unconfirmed(self) -> None:
        """After a connect: send again the results the server has not confirmed, then the
        output of running commands (some of it was written while disconnected)."""
        for entry in self.journal.unconfirmed():
            await self.send_result(entry.id, entry.status or "failed", entry.result, entry.error)
        for task_ctx in list(self._running.values()):
            for seq, data in task_ctx[1].chunks:
                await self._send(
                    {"type": "progress", "command_id": task_ctx[1].id, "seq": seq, "data": data}
                )

    def result_acked(self, command_id: str) -> None:
        """The server confirmed the result of ``command_id``: stop re-sending it."""
        self.journal.result_acked(command_id)

    # -- frames ---------------------------------------------------------------------------

    async def on_frame(self, raw: str | bytes) -> None:
        """Act on one frame from the server (unknown or malformed frames are ignored)."""
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
            self.journal.result_acked(str(frame.get("command_id")))
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
            entry = self.journal.get(command_id)
            if entry is not None and entry.state == FINISHED:
                self.journal.result_acked(command_id)
            running = self._running.get(command_id)
            if running is not None and running[1].interruptible:
                running[0].cancel()

    async def _on_command(self, command: dict[str, Any]) -> None:
        command_id = str(command.get("id"))
        command_type = str(command.get("command_type"))
        self.stats.deliveries[command_id] = self.stats.deliveries.get(command_id, 0) + 1
        before = self.journal.delivered(command_id, command_type)
        if before is not None and before.state != "released":
            self.stats.duplicates += 1
            log.info(
                "command %s delivered again (%d deliveries): answered from the journal (%s)",
                command_id,
                before.deliveries + 1,
                before.state,
            )
            if before.state == FINISHED:
                await self.send_result(
                    command_id, before.status or "failed", before.result, before.error
                )
            elif command_id in self._running:
                await self._send({"type": "ack", "command_id": command_id})
            elif before.state == ACCEPTED:  # cannot happen after mark_interrupted; be safe
                self.journal.finish(command_id, "failed", error="interrupted")
                await self.send_result(command_id, "failed", None, "interrupted")
            return
        if self._stopping.is_set():
            return  # not accepted: the server re-queues it after the ack timeout
        self.journal.accept(command_id, command_type)
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
        entry = self.journal.get(command_id)
        if entry is not None and entry.state == FINISHED:
            self.journal.result_acked(command_id)  # stop re-sending a result it would refuse

    # -- running a command ----------------------------------------------------------------

    async def _execute(self, ctx: CommandContext) -> None:
        handler = self.handlers.get(ctx.command_type)
        status, result, error = "failed", None, None
        try:
            async with self._slots:
                if handler is None:
                    error = f"this agent has no handler for {ctx.command_type}"
                else:
                    ctx.payload, ctx._secrets = await resolve_secret_refs(ctx.payload, self.state)
                    self.stats.runs[ctx.id] = self.stats.runs.get(ctx.id, 0) + 1
                    ctx.interruptible = inspect.iscoroutinefunction(handler)
                    with registered_secrets(ctx._secrets):
                        value = await call_handler(handler, ctx)
                    status = "succeeded"
                    result = value if isinstance(value, dict) or value is None else {"value": value}
        except asyncio.CancelledError:
            if ctx.aborted is not None:  # settled by the server: record it, send nothing
                self.journal.finish(ctx.id, ctx.aborted[0], error=ctx.aborted[1])
                self.journal.result_acked(ctx.id)
                return
            await ctx.flush()
            if ctx.is_cancelled:
                self.journal.finish(ctx.id, "cancelled", error="cancelled")
                await self._send({"type": "cancel_ack", "command_id": ctx.id})
            elif ctx.id in self._releasing:
                self.journal.release(ctx.id)
                await self._send({"type": "release", "command_id": ctx.id})
            else:
                self.journal.finish(ctx.id, "failed", error="stopped by the server")
            return
        except SecretResolutionError as exc:  # its text never carries secret material
            log.warning("command %s: %s", ctx.id, exc)
            error = str(exc)
        except Exception as exc:  # a handler's failure is the command's failure
            error = scrub(f"{type(exc).__name__}: {exc}", ctx._secrets)
        if ctx.aborted is not None:  # a plain handler finished after the server's abort
            self.journal.finish(ctx.id, ctx.aborted[0], error=ctx.aborted[1])
            self.journal.result_acked(ctx.id)
            return
        await ctx.flush()
        try:
            json.dumps(result)
        except (TypeError, ValueError):
            status, result, error = "failed", None, "the handler returned a non-JSON result"
        result = scrub(result, ctx._secrets)  # a handler never echoes a secret back
        ctx._secrets = []
        self.journal.finish(ctx.id, status, result, error)
        await self.send_result(ctx.id, status, result, error)

    # -- stopping -------------------------------------------------------------------------

    async def hand_back(self) -> set[str]:
        """Graceful shutdown while connected: give running handlers ``shutdown_grace``
        seconds, then cancel and hand back (``release``) the rest. Returns the command ids
        whose confirmation the server still owes (released ones and unconfirmed results)."""
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
        waiting.update(entry.id for entry in self.journal.unconfirmed())
        return waiting

    async def shutdown(self) -> None:
        """Shutdown without a connection: running handlers are cancelled and recorded as
        failed (reported on the next start), never silently re-run."""
        tasks = [task for task, _ in self._running.values()]
        for task, ctx in self._running.values():
            if ctx.interruptible:
                task.cancel()
        if tasks:
            await asyncio.wait(tasks)
