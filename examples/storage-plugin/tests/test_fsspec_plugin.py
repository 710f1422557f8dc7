"""The example plugin is found through the botmox entry point and configured from settings."""

import io

import pytest
from botmox_fsspec_storage import FsspecStorage

from botmox_core.backends.signed_urls import ServerSignedStorage
from botmox_core.bootstrap import bootstrap
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


def test_declares_that_it_cannot_presign_and_is_served_by_the_server(tmp_path):
    env = {
        "BOTMOX_DATA_DIR": str(tmp_path / "data"),
        "BOTMOX_PLUGINS": "fsspec",
        "BOTMOX_STORAGE": "fsspec",
        "BOTMOX_FSSPEC_URL": f"file://{tmp_path}/objects",
    }
    core = bootstrap(load_settings(environ=env))
    try:
        assert FsspecStorage.capabilities.presign is False
        assert isinstance(core.storage, ServerSignedStorage)
        assert isinstance(core.storage.inner, FsspecStorage)
        core.storage.put("a.bin", io.BytesIO(b"x"))
        url = core.storage.presign_download("a.bin", ttl_seconds=60).url
        assert url.startswith(f"{core.settings.base_url}/api/v1/storage/fsspec/a.bin?expires=")
    finally:
        core.close()


@pytest.mark.parametrize("key", ["../outside", "/etc/passwd", "a/../../b", ""])
def test_keys_cannot_escape_the_root(tmp_path, key):
    storage = FsspecStorage(f"file://{tmp_path}/root")
    with pytest.raises(BadRequestError):
        storage.put(key, io.BytesIO(b"x"))
    assert not (tmp_path / "outside").exists()
