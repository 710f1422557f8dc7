"""Test helpers of the pack: the FAKE Proxmox VE API (:mod:`botmox_proxmox.fake_pve`) served
over loopback HTTPS with a throwaway certificate, and a real SSH server (asyncssh's) on
loopback. Both run in threads of the test process and are stopped when their block ends."""

from __future__ import annotations

import http.server
import ipaddress
import json
import secrets
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

from botmox_proxmox.fake_pve import FakeProxmox, FakeResponse

__all__ = [
    "FakeProxmox",
    "FakeResponse",
    "SshServer",
    "self_signed_certificate",
    "serve_https",
    "serve_ssh",
]


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for ``127.0.0.1`` (``cert.pem``, ``key.pem``); the cert is its
    own CA bundle (``BOTMOX_PROXMOX_VERIFY_SSL=<cert.pem>``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-proxmox")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@contextmanager
def serve_https(fake: FakeProxmox, certfile: Path, keyfile: Path) -> Iterator[str]:
    """Serve ``fake`` on a loopback HTTPS port; yields ``host:port``. Stopped on exit."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return  # requests may carry tickets in cookies: never print them

        def _answer(self) -> None:
            parts = urlsplit(self.path)
            if not parts.path.startswith("/api2/json/"):
                self.send_error(404)
                return
            params = dict(parse_qsl(parts.query))
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                params.update(dict(parse_qsl(self.rfile.read(length).decode())))
            answer = fake.handle(
                self.command,
                unquote(parts.path[len("/api2/json") :]),
                params,
                dict(self.headers.items()),
            )
            document = dict(answer.body)
            if answer.status >= 400:
                document.setdefault("message", answer.reason + "\n")
            body = json.dumps(document).encode()
            self.send_response(answer.status, answer.reason)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="fake-proxmox", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@attrs.define
class SshServer:
    """A real SSH server (asyncssh's) on loopback, for tests.

    Attributes:
        port: where it listens on 127.0.0.1.
        known_hosts: a known_hosts file holding its host key.
        commands: every command a client asked to run, as received.
    """

    port: int
    known_hosts: Path
    commands: list[str] = attrs.Factory(list)


@contextmanager
def serve_ssh(
    root: Path,
    *,
    username: str = "root",
    password: str | None = None,
    authorized_key: str | None = None,
) -> Iterator[SshServer]:
    """Run an SSH server on a loopback port in a thread of its own until the block ends.

    Commands run for real through ``/bin/sh -c`` in ``root`` (as an sshd would run them);
    SFTP is served with ``root`` as its ``/``. Authentication: ``password`` and/or the OpenSSH
    public key ``authorized_key`` for ``username``.
    """
    import asyncio

    import asyncssh

    host_key = asyncssh.generate_private_key("ssh-ed25519")
    allowed_key = None if authorized_key is None else asyncssh.import_public_key(authorized_key)
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    state: dict[str, Any] = {}

    class Server(asyncssh.SSHServer):
        def begin_auth(self, user: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return password is not None

        def validate_password(self, user: str, given: str) -> bool:
            return (
                user == username
                and password is not None
                and secrets.compare_digest(given.encode(), password.encode())
            )

        def public_key_auth_supported(self) -> bool:
            return allowed_key is not None

        def validate_public_key(self, user: str, key: asyncssh.SSHKey) -> bool:
            return (
                user == username
                and allowed_key is not None
                and key.export_public_key() == allowed_key.export_public_key()
            )

    async def run_command(process: asyncssh.SSHServerProcess[str]) -> None:
        command = process.command or ""
        record.commands.append(command)
        child = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            cwd=root,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await child.communicate()
        process.stdout.write(out.decode(errors="replace"))
        process.stderr.write(err.decode(errors="replace"))
        process.exit(child.returncode or 0)

    async def start() -> None:
        state["server"] = await asyncssh.create_server(
            Server,
            "127.0.0.1",
            0,
            server_host_keys=[host_key],
            process_factory=run_command,
            sftp_factory=lambda channel: asyncssh.SFTPServer(channel, chroot=str(root).encode()),
        )
        ready.set()

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=main, name="test-sshd", daemon=True)
    thread.start()
    if not ready.wait(15):
        raise RuntimeError("the test SSH server did not start")
    port = state["server"].sockets[0].getsockname()[1]
    known_hosts = root.parent / f"known_hosts-{port}"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key.export_public_key().decode().strip()}\n")
    record = SshServer(port=port, known_hosts=known_hosts)
    try:
        yield record
    finally:

        async def stop() -> None:
            state["server"].close()
            await state["server"].wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
