"""Compose a botmox server in code instead of through ``botmox serve``.

Useful to embed botmox in another ASGI stack, or to pick backends programmatically. Here:
the embedded SQLite repository and local storage in a temporary directory, a tenant set up
through the services, and uvicorn serving the app.

    python examples/server_composition.py --port 8765
"""

from __future__ import annotations

import argparse
import tempfile

import uvicorn

from botmox_core.bootstrap import bootstrap
from botmox_core.config import load_settings
from botmox_server import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--data-dir", default=None, help="default: a new temporary directory")
    args = parser.parse_args()

    settings = load_settings(
        data_dir=args.data_dir or tempfile.mkdtemp(prefix="botmox-"),
        port=args.port,
        data_backend="sqlite",  # any registered backend: "supabase", "rtdb", ...
        storage="localfs",  # or "s3", "minio", a third-party storage ...
    )
    core = bootstrap(settings)  # plugins loaded, backends built, services wired
    token = core.tokens.create("demo", "admin").secret
    core.licences.set_licence("demo", "active", None)
    print(f"admin token for tenant 'demo' (shown once): {token}")
    print(f"data in {settings.data_dir}; OpenAPI at {settings.base_url}/api/v1/openapi.json")

    app = create_app(core=core)  # the same app `botmox serve` runs
    uvicorn.run(app, host=settings.host, port=settings.port, access_log=False)


if __name__ == "__main__":
    main()
