"""The example plugin is found through the botmox entry point and configured from settings."""

import io

import pytest
from botmox_fsspec_storage import FsspecStorage

from botmox_core.config import load_settings
from botmox_core.errors import BadRequestError, ConfigurationError
from botmox_core.plugin import load_registry


def test_registered_and_selected_by_configuration(tmp_path):
    env = {"BOTMOX_STORAGE": "fsspec", "BOTMOX_FSSPEC_URL": f"file://{tmp_path}/objects"}
    settings = load_settings(environ=env)
    storage = load_registry(environ=env).storages.get(settings.storage)(settings)
    assert isinstance(storage, FsspecStorage)
    assert storage.check_health().ok
    storage.close()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "BOTMOX_FSSPEC_URL is required"),
        ({"BOTMOX_FSSPEC_URL": "nosuchproto://x"}, "fsspec cannot open"),
        ({"BOTMOX_FSSPEC_URL": "memory://x", "BOTMOX_FSSPEC_STORAGE_OPTIONS": "{"}, "not valid"),
        ({"BOTMOX_FSSPEC_URL": "memory://x", "BOTMOX_FSSPEC_ROOT": "y"}, "unknown option"),
    ],
)
def test_bad_configuration(env, message):
    settings = load_settings(environ=env)
    factory = load_registry(environ={}).storages.get("fsspec")
    with pytest.raises(ConfigurationError, match=message):
        factory(settings)


def test_presigning_needs_a_filesystem_that_signs(tmp_path):
    storage = FsspecStorage(f"file://{tmp_path}")
    storage.put("a.bin", io.BytesIO(b"x"))
    with pytest.raises(ConfigurationError, match="cannot sign download URLs"):
        storage.presign_download("a.bin", ttl_seconds=60)


@pytest.mark.parametrize("key", ["../outside", "/etc/passwd", "a/../../b", ""])
def test_keys_cannot_escape_the_root(tmp_path, key):
    storage = FsspecStorage(f"file://{tmp_path}/root")
    with pytest.raises(BadRequestError):
        storage.put(key, io.BytesIO(b"x"))
    assert not (tmp_path / "outside").exists()
