"""An example botmox agent: Proxmox and Syncthing handlers next to the infrastructure.

Pair once, then run it::

    botmox agent pair --server http://127.0.0.1:8000 --code <pairing code> --app examples/agent.py
    botmox agent run --app examples/agent.py:agent

The handlers below only *describe* what they would do (they call no real Proxmox API): replace
their bodies with calls to your Proxmox/Syncthing clients. ``ctx.write`` streams output to the
server (visible in ``GET /api/v1/vm-ops/commands/{id}``); the returned dict is the result;
raising fails the command; ``ctx.cancelled`` is set when an operator cancels it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from botmox_core.agent import Agent, CommandContext

agent = Agent(concurrency=4, shutdown_grace=30)


@agent.handler("proxmox.status")
async def proxmox_status(ctx: CommandContext) -> dict[str, Any]:
    vmid = int(ctx.payload.get("vmid", 0))
    ctx.write(f"querying the status of VM {vmid}\n")
    return {"vmid": vmid, "status": "unknown (example agent)"}


@agent.handler("proxmox.start")
async def proxmox_start(ctx: CommandContext) -> dict[str, Any]:
    vmid = int(ctx.payload["vmid"])
    for step in ("checking the VM", "starting the VM", "waiting for the guest agent"):
        ctx.write(f"{step} {vmid}\n")
        await asyncio.sleep(0.1)  # cancellation lands here when an operator cancels
    return {"vmid": vmid, "started": True}


@agent.handler("syncthing.scan")
def syncthing_scan(ctx: CommandContext) -> dict[str, Any]:
    """Sync handlers run in a worker thread; ``ctx.write`` is thread-safe."""
    folder = str(ctx.payload.get("folder", "default"))
    ctx.write(f"rescanning folder {folder}\n")
    return {"folder": folder, "scanned": True}


if __name__ == "__main__":
    from botmox_core.agent.state import default_state_path

    agent.run_forever(default_state_path())
