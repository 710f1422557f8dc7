"""The botmox server's signed-download route on a real uvicorn: how the conformance kit serves a
storage that declares it cannot presign, as production does."""

from __future__ import annotations

import secrets
import socket
import threading
import time

from botmox_core.backends.signed_urls import DownloadUrlSigner, ServerSignedStorage
from botmox_core.ports.storage import ObjectStorage

__all__ = ["SignedDownloadServer"]


class SignedDownloadServer:
    """The botmox server's signed-download route on a real uvicorn, in a thread.

    Serves whatever :meth:`serve` mounts (a storage with server-signed URLs) with the server's
    own exception handlers, so answers carry the contract's envelopes. Needs ``botmox[server]``.
    Use it as a context manager; it stops the thread it started and closes its socket.
    """

    def __init__(self) -> None:
        try:
            import uvicorn
            from litestar import Litestar

            from botmox_server.errors import EXCEPTION_HANDLERS
            from botmox_server.routes.localfs_download import signed_download_routes
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise RuntimeError(
                "a storage that cannot presign is delivered by the botmox server, and the "
                "conformance suite checks that through it: install botmox[server]"
            ) from exc
        self.app = Litestar(
            route_handlers=signed_download_routes, exception_handlers=EXCEPTION_HANDLERS
        )
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> SignedDownloadServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        self._socket.close()

    def serve(self, storage: ObjectStorage) -> ServerSignedStorage:
        """Mount ``storage`` (which must declare ``presign=False``) wrapped in a
        :class:`ServerSignedStorage` whose URLs point at this server; returns the wrapper."""
        signer = DownloadUrlSigner(base_url=self.base_url, key=secrets.token_bytes(32))
        served = ServerSignedStorage(storage, signer)
        self.app.state.storage = served
        return served
