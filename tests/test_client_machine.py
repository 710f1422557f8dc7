"""Where the default ``vm_uuid`` comes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from botmox_core.client import machine_vm_uuid
from botmox_core.client._machine import VM_UUID_PATTERN
from botmox_core.errors import BadRequestError


def test_env_override_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BOTMOX_VM_UUID", "VM-Farm-0042")
    assert machine_vm_uuid(config_dir=tmp_path) == "vm-farm-0042"
    monkeypatch.setenv("BOTMOX_VM_UUID", "bad uuid!")
    with pytest.raises(BadRequestError):
        machine_vm_uuid(config_dir=tmp_path)


def test_derived_from_machine_id_without_revealing_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("BOTMOX_VM_UUID", raising=False)
    machine_id = tmp_path / "machine-id"
    machine_id.write_text("0123456789abcdef0123456789abcdef\n")
    first = machine_vm_uuid((machine_id,), config_dir=tmp_path / "cfg")
    assert first == machine_vm_uuid((machine_id,), config_dir=tmp_path / "cfg")  # stable
    assert VM_UUID_PATTERN.fullmatch(first)
    assert "0123456789abcdef" not in first.replace("-", "")
    machine_id.write_text("fedcba9876543210fedcba9876543210\n")
    assert machine_vm_uuid((machine_id,), config_dir=tmp_path / "cfg") != first
    assert not (tmp_path / "cfg").exists()  # nothing stored when a machine id exists


def test_generated_and_persisted_without_machine_id(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("BOTMOX_VM_UUID", raising=False)
    missing = (tmp_path / "no-machine-id",)
    first = machine_vm_uuid(missing, config_dir=tmp_path / "cfg")
    assert (tmp_path / "cfg" / "vm-uuid").read_text().strip() == first
    assert machine_vm_uuid(missing, config_dir=tmp_path / "cfg") == first
