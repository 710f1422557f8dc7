"""The server's command sweeper: enforces the command timeouts and tells agents about it."""

from __future__ import annotations

import asyncio
import logging

from botmox_core.errors import BotmoxError
from botmox_server.agent_bus.context import BusContext

__all__ = ["sweep_forever"]

log = logging.getLogger("botmox.agents")


async def sweep_forever(bus: BusContext) -> None:
    """Every ``command_sweep_interval`` seconds: one sweep, then a wake-up for every agent
    that got re-queued commands and an ``abort`` for every command settled without its
    agent. Failures are logged and the next round tries again."""
    core = bus.core
    while True:
        await asyncio.sleep(core.command_sweep_interval)
        if not core.agents.supported:
            continue
        try:
            report = await bus.run(core.commands.sweep)
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
            await bus.wake(agent_id)
        for _tenant, agent_id, command_id in report.settled:
            await bus.abort(agent_id, command_id)
