"""botmox core: models, ports, plugin system, services, runner client and testing kit.

Runner scripts usually need only the client::

    from botmox_core.client import RunnerClient

Operators compose a server from plugins (see :mod:`botmox_server`); plugin authors implement a
port from :mod:`botmox_core.ports` and prove it with :mod:`botmox_core.testing`.
"""

__version__ = "0.1.0"
