"""botmox server: the Bot-Mox v1 HTTP contract on Litestar + uvicorn.

Run it with ``botmox serve`` (zero config: embedded SQLite + local files in ``./.botmox``), or
mount :func:`create_app` in your own ASGI stack.
"""

from botmox_server.app import create_app

__all__ = ["create_app"]
