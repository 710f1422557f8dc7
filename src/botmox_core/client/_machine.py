"""A stable ``vm_uuid`` for the machine a runner runs on.

Order: ``BOTMOX_VM_UUID`` if set; else an id derived from the systemd/D-Bus machine id (hashed
with an application key, as systemd recommends, so the raw machine id never leaves the host);
else a random UUID generated once and kept in ``$XDG_CONFIG_HOME/botmox/vm-uuid``
(``~/.config/botmox/vm-uuid``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import uuid
from pathlib import Path

from botmox_core.client._errors import LocalFileError
from botmox_core.errors import BadRequestError

__all__ = ["VM_UUID_PATTERN", "machine_vm_uuid"]

VM_UUID_PATTERN = re.compile(r"[A-Za-z0-9:_-]{8,128}")
_MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
_APP_KEY = b"botmox-runner-vm-uuid"


def _config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "botmox"


def machine_vm_uuid(
    machine_id_files: tuple[Path, ...] = _MACHINE_ID_FILES, config_dir: Path | None = None
) -> str:
    """This machine's ``vm_uuid`` (see the module docstring for where it comes from)."""
    configured = os.environ.get("BOTMOX_VM_UUID", "").strip()
    if configured:
        if not VM_UUID_PATTERN.fullmatch(configured):
            raise BadRequestError("BOTMOX_VM_UUID must be 8-128 characters of [A-Za-z0-9:_-]")
        return configured.lower()
    for path in machine_id_files:
        try:
            machine_id = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if re.fullmatch(r"[0-9a-fA-F]{32}", machine_id):
            digest = hmac.new(bytes.fromhex(machine_id), _APP_KEY, hashlib.sha256).digest()
            return str(uuid.UUID(bytes=digest[:16], version=4))
    stored = (config_dir or _config_dir()) / "vm-uuid"
    try:
        value = stored.read_text(encoding="ascii").strip().lower()
        if VM_UUID_PATTERN.fullmatch(value):
            return value
    except (OSError, UnicodeDecodeError):
        pass
    value = str(uuid.uuid4())
    try:
        stored.parent.mkdir(parents=True, exist_ok=True)
        tmp = stored.with_name("vm-uuid.tmp")
        tmp.write_text(value + "\n", encoding="ascii")
        os.replace(tmp, stored)
    except OSError as exc:
        raise LocalFileError(f"cannot store the generated vm_uuid in {stored}: {exc}") from exc
    return value
