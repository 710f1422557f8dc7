"""The core's agent runtime run in a thread of the test process (its own event loop), started
and stopped by the test; a failure of the runtime is kept in ``error`` for the test to raise."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path

from botmox_core.agent import Agent, AgentState


class AgentInThread:
    """Runs ``runtime`` with ``state`` until :meth:`stop`; ``finished`` is set when it ends."""

    def __init__(self, runtime: Agent, state: AgentState, journal: Path) -> None:
        self.runtime = runtime
        self.state = state
        self.journal = journal
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="agent", daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self.runtime.run(self.state, journal_path=self.journal, stop=self._stop)

        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced by the test
            self.error = exc
            self._ready.set()
        finally:
            self.finished.set()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self.finished.is_set():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=20)
        assert not self._thread.is_alive(), "agent runtime did not stop"
