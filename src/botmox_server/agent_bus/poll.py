"""The HTTP long-poll for agents that cannot hold a socket (``GET /api/v1/commands/next``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from functools import partial
from typing import Any

from botmox_core.errors import BadRequestError, ForbiddenError, UnauthorizedError
from botmox_core.models import Command
from botmox_core.services.principal import POLL_COMMANDS, Principal
from botmox_server.agent_bus.context import BusContext

__all__ = ["LONG_POLL_DEFAULT_MS", "LONG_POLL_MAX_MS", "next_command"]

LONG_POLL_DEFAULT_MS, LONG_POLL_MAX_MS = 25_000, 60_000


async def next_command(
    bus: BusContext, principal: Principal, agent_id: str | None, timeout_ms: int
) -> Command | None:
    """The calling agent's next command, now ``dispatched`` (the agent acknowledges it with
    ``PATCH ... {status: running}``), or ``None`` after ``timeout_ms``. Waits on the agent's
    wake-ups from the transport, looking at the queue after each; 401 if the agent is revoked
    meanwhile."""
    principal.authorize(POLL_COMMANDS)
    if principal.subject is None:
        raise ForbiddenError(POLL_COMMANDS.refusal)
    if agent_id is not None and agent_id != principal.subject:
        raise ForbiddenError("an agent polls only for itself")
    if not 0 <= timeout_ms <= LONG_POLL_MAX_MS:
        raise BadRequestError(
            f"timeout_ms: must be from 0 to {LONG_POLL_MAX_MS}",
            details=[{"field": "timeout_ms", "message": f"0-{LONG_POLL_MAX_MS}"}],
        )
    core = bus.core
    me, tenant = principal.subject, principal.tenant_id
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_ms / 1000
    messages = core.transport.subscribe(me)
    waiter: asyncio.Future[Any] = asyncio.ensure_future(anext(messages))
    await asyncio.sleep(0)  # let the subscription register before looking at the queue
    try:
        await bus.run(core.agents.touch, tenant, me)
        while True:
            claimed = await bus.run(partial(core.commands.claim, tenant, me, 10**6, limit=1))
            if claimed:
                return claimed[0]
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            done, _ = await asyncio.wait({waiter}, timeout=remaining)
            if not done:
                return None
            message = waiter.result()
            if isinstance(message, Mapping) and message.get("type") == "revoked":
                raise UnauthorizedError("agent revoked")
            waiter = asyncio.ensure_future(anext(messages))
    finally:
        waiter.cancel()
        with contextlib.suppress(BaseException):
            await waiter
        with contextlib.suppress(Exception):
            await messages.aclose()  # type: ignore[attr-defined]
