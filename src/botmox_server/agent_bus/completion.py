"""Waiting for a command's final state (``?wait=`` on ``/api/v1/vm-ops`` and
``/api/v1/infra``) without holding a thread per request.

The database is the truth: the wait reads the command, then sleeps on the event loop until a
``settled`` wake-up for the command arrives through the agent transport (published by the
replica that stored the result: :func:`settled_channel`) or a backoff timer fires (0.1 s,
doubling, at most 2 s), and reads again. A wake-up lost between replicas (the transports
deliver at most once) therefore delays the answer by at most the backoff, never loses it; a
replica that did not store the result still sees it in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from functools import partial
from typing import Any

from botmox_core.models import Command
from botmox_core.services.principal import Principal
from botmox_server.agent_bus.context import BusContext

__all__ = ["BACKOFF_FIRST", "BACKOFF_MAX", "settled_channel", "wait_until_final"]

BACKOFF_FIRST, BACKOFF_MAX = 0.1, 2.0


def settled_channel(command_id: str) -> str:
    """The transport key a command's ``settled`` wake-up is published on (the transports key
    by any string; agent ids start with ``agt_``, so the two never meet)."""
    return "command:" + command_id


async def wait_until_final(
    bus: BusContext, principal: Principal, command: Command, seconds: float
) -> Command:
    """``command`` as stored once it is final, or as it stands after ``seconds``."""
    if command.status.is_final or seconds <= 0:
        return command
    core = bus.core
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    messages: AsyncIterator[Mapping[str, Any]] = core.transport.subscribe(
        settled_channel(command.id)
    )
    waiter: asyncio.Future[Any] = asyncio.ensure_future(anext(messages))
    await asyncio.sleep(0)  # the subscription is registered before the first read
    read = partial(core.commands.get, principal, command.id, with_output=False)
    backoff = BACKOFF_FIRST
    try:
        while True:
            current, _ = await bus.run(read)
            remaining = deadline - loop.time()
            if current.status.is_final or remaining <= 0:
                return current
            done, _ = await asyncio.wait({waiter}, timeout=min(backoff, remaining))
            if done:
                try:
                    waiter.result()
                    waiter = asyncio.ensure_future(anext(messages))
                except Exception:  # the transport stopped: the backoff alone from here on
                    waiter = loop.create_future()
            else:
                backoff = min(backoff * 2, BACKOFF_MAX)
    finally:
        waiter.cancel()
        with contextlib.suppress(BaseException):
            await waiter
        with contextlib.suppress(Exception):
            await messages.aclose()  # type: ignore[attr-defined]
