"""What a command handler sees: :class:`CommandContext` (the command, cancellation, output) and
the :data:`Handler` type.

Output written with :meth:`CommandContext.write` is scrubbed of the command's secrets, cut into
``progress`` frames of at most :data:`CHUNK_BYTES` and handed to the runtime in order; the
chunks are kept so they can be sent again after a reconnect.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any, Protocol, TypeAlias

from botmox_core.agent.secrets import scrub

__all__ = ["CHUNK_BYTES", "CommandContext", "FrameSender", "Handler", "call_handler"]

Handler: TypeAlias = Callable[["CommandContext"], Any]
"""A command handler: sync or async, takes the :class:`CommandContext`, returns a JSON object
(or None, or any JSON value, stored as ``{"value": ...}``); raising fails the command."""

CHUNK_BYTES = 64 * 1024


class FrameSender(Protocol):
    """What a :class:`CommandContext` hands its output frames to (the runtime's executor)."""

    async def _send(self, frame: dict[str, Any]) -> None:
        """Send ``frame`` on the current connection (dropped when there is none)."""


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
        runtime: FrameSender,
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


async def call_handler(handler: Handler, ctx: CommandContext) -> Any:
    """Run ``handler``: awaited when it is a coroutine function, else in a worker thread (an
    awaitable it returns is awaited too)."""
    if inspect.iscoroutinefunction(handler):
        return await handler(ctx)
    result = await asyncio.to_thread(handler, ctx)
    if inspect.isawaitable(result):
        return await result
    return result
