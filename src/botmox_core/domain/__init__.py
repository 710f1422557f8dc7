"""Domain rules that hold whatever the storage or the transport: pure functions and frozen
values over the models. The services call them; they call no service.

Among them: the command state machine (:mod:`botmox_core.domain.commands`), when an agent
counts as online (:mod:`botmox_core.domain.agents`), and the domain data contract
(:mod:`~botmox_core.domain.records`, :mod:`~botmox_core.domain.listing`,
:mod:`~botmox_core.domain.patching`)."""
