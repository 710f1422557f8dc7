"""The botmox agent runtime: runs next to the infrastructure and executes commands the server
queues for it (Proxmox, Syncthing, ...).

Pair once with ``botmox agent pair --server URL --code CODE``, then run your handlers with
``botmox agent run --app my_agent.py:agent``. See ``docs/agents.md`` and ``examples/agent.py``.
Needs the ``agent`` extra (``pip install 'botmox[agent]'``, the ``websockets`` client).
"""

from botmox_core.agent.journal import CommandJournal, JournalEntry
from botmox_core.agent.runtime import Agent, AgentStats, CommandContext, Handler
from botmox_core.agent.state import AgentState, default_state_path, load_state, pair, save_state

__all__ = [
    "Agent",
    "AgentState",
    "AgentStats",
    "CommandContext",
    "CommandJournal",
    "Handler",
    "JournalEntry",
    "default_state_path",
    "load_state",
    "pair",
    "save_state",
]
