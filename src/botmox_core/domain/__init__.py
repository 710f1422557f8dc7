"""Domain rules that hold whatever the storage or the transport: the command state machine
(:mod:`botmox_core.domain.commands`) and when an agent counts as online
(:mod:`botmox_core.domain.agents`). Pure functions and frozen values over the models; the
services call them, they call no service."""
