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

The pieces: :mod:`botmox_core.agent.context` (what a handler sees),
:mod:`botmox_core.agent.execution` (running commands, the journal, results) and
:mod:`botmox_core.agent.connection` (the WebSocket, reconnects, backoff); :class:`Agent` here
registers handlers and ties the pieces together for one :meth:`Agent.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from botmox_core.agent.connection import CLOSE_REPLACED as CLOSE_REPLACED
from botmox_core.agent.connection import FATAL_CLOSE_CODES as FATAL_CLOSE_CODES
from botmox_core.agent.connection import MAX_INFLIGHT as MAX_INFLIGHT
from botmox_core.agent.connection import RETRYABLE_HELLO_ERRORS as RETRYABLE_HELLO_ERRORS
from botmox_core.agent.connection import AgentConnection
from botmox_core.agent.context import CHUNK_BYTES as CHUNK_BYTES
from botmox_core.agent.context import CommandContext, Handler
from botmox_core.agent.execution import AgentStats, CommandExecutor
from botmox_core.agent.journal import CommandJournal
from botmox_core.agent.state import AgentState, load_state
from botmox_core.logging_redaction import install_redaction

__all__ = ["Agent", "AgentStats", "CommandContext", "Handler"]

log = logging.getLogger("botmox.agent")


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
        stopping = stop or asyncio.Event()
        if journal_path is not None:
            path = journal_path
        elif state_path is not None:
            path = state_path.with_name(state_path.name + ".journal.sqlite3")
        else:
            path = Path.home() / ".config" / "botmox" / f"{state.agent_id}.journal.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        journal = CommandJournal(path)
        connection = AgentConnection(
            state,
            stopping=stopping,
            connected=self.connected,
            stats=self.stats,
            concurrency=self.concurrency,
            reconnect_initial=self.reconnect_initial,
            reconnect_max=self.reconnect_max,
        )
        executor = CommandExecutor(
            self.handlers,
            self.stats,
            journal,
            state,
            concurrency=self.concurrency,
            shutdown_grace=self.shutdown_grace,
            stopping=stopping,
            send=connection.send,
        )
        try:
            interrupted = journal.mark_interrupted()
            if interrupted:
                log.warning(
                    "commands interrupted by the last stop, reported failed: %s", interrupted
                )
            journal.prune()
            await connection.serve(executor)
        finally:
            await executor.shutdown()
            journal.close()
