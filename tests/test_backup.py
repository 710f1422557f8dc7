"""Embedded backup and restore in-process: --force moves the previous installation aside, a
failure mid-restore leaves the target exactly as it was, mismatched archives are refused."""

from __future__ import annotations

import io
import secrets
from pathlib import Path

import pytest

from botmox_core.backends.localfs import LocalFsStorage
from botmox_core.bootstrap import bootstrap
from botmox_core.config import load_settings
from botmox_core.errors import StorageError
from botmox_core.models import Role
from botmox_core.ops import backup as backup_ops

ENV = {"DATA_BACKEND": "sqlite", "BOTMOX_STORAGE": "localfs"}


def installation(data: Path, objects: int = 3) -> tuple[object, LocalFsStorage]:
    settings = load_settings(environ=ENV, data_dir=data)
    app = bootstrap(settings)
    app.tokens.create(tenant_id="tenant", role=Role.ADMIN)  # a record: the target is not empty
    storage = app.storage
    for index in range(objects):
        storage.put(f"t/obj-{index}.bin", io.BytesIO(secrets.token_bytes(1000 + index)))
    app.close()
    return settings, LocalFsStorage(
        backup_ops.localfs_root(settings), base_url="http://x", url_key=bytes(32)
    )


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        # SQLite's shared-memory and WAL files appear when the emptiness check reads the database
        if path.is_file() and not path.name.endswith((".log", "-shm", "-wal"))
    }


def test_force_replaces_and_moves_the_previous_installation_aside(tmp_path: Path) -> None:
    source_settings, source_storage = installation(tmp_path / "a")
    archive = tmp_path / "a.tar"
    manifest = backup_ops.create_backup(source_settings, source_storage, archive)
    assert len(manifest["objects"]) == 3
    with pytest.raises(backup_ops.BackupError, match="exists"):
        backup_ops.create_backup(source_settings, source_storage, archive)
    target_settings, target_storage = installation(tmp_path / "b", objects=1)
    with pytest.raises(backup_ops.BackupError, match="not empty"):
        backup_ops.restore_backup(target_settings, None, archive)
    result = backup_ops.restore_backup(target_settings, None, archive, force=True)
    assert result["objects_before"] == 1
    assert any(".pre-restore-" in path for path in result["moved_aside"])
    before = backup_ops.snapshot(source_settings, source_storage)
    after = backup_ops.snapshot(target_settings, target_storage)
    assert before == after


def test_a_failing_restore_leaves_the_target_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source_settings, source_storage = installation(tmp_path / "a")
    archive = tmp_path / "a.tar.gz"
    backup_ops.create_backup(source_settings, source_storage, archive)
    target_settings, _ = installation(tmp_path / "b", objects=1)
    target = tmp_path / "b"
    original = files_of(target)
    calls = {"n": 0}
    real_put = LocalFsStorage.put

    def failing_put(self: LocalFsStorage, *args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise StorageError("disk full (injected)")
        return real_put(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(LocalFsStorage, "put", failing_put)
    with pytest.raises(StorageError, match="injected"):
        backup_ops.restore_backup(target_settings, None, archive, force=True)
    assert files_of(target) == original  # nothing moved, nothing left behind

    # a failure after the database was swapped in: everything is moved back
    monkeypatch.setattr(LocalFsStorage, "put", real_put)
    real_restore_keys = backup_ops._restore_keys

    def failing_keys(*args: object, **kwargs: object) -> None:
        raise OSError("injected while restoring keys")

    monkeypatch.setattr(backup_ops.restore, "_restore_keys", failing_keys)
    with pytest.raises(OSError, match="injected"):
        backup_ops.restore_backup(target_settings, None, archive, force=True)
    assert files_of(target) == original
    monkeypatch.setattr(backup_ops.restore, "_restore_keys", real_restore_keys)


def test_an_archive_of_another_backend_is_refused(tmp_path: Path) -> None:
    source_settings, source_storage = installation(tmp_path / "a", objects=0)
    archive = tmp_path / "a.tar"
    backup_ops.create_backup(source_settings, source_storage, archive)
    other = load_settings(environ={"DATA_BACKEND": "supabase"}, data_dir=tmp_path / "c")
    with pytest.raises(backup_ops.BackupError, match="sqlite data backend"):
        backup_ops.restore_backup(other, None, archive)
    not_tar = tmp_path / "x.tar"
    not_tar.write_bytes(b"hello")
    with pytest.raises(backup_ops.BackupError, match="not a backup archive"):
        backup_ops.verify_archive(not_tar)
