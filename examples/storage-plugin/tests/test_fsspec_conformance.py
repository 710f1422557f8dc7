"""The whole botmox object-storage conformance suite, in a few lines per filesystem, with no
capability switched off: the storage cannot presign, so the suite serves its downloads through
the botmox server's signed-URL route, as production does."""

import json
import uuid

import fsspec
import pytest
from botmox_fsspec_storage import FsspecStorage

from botmox_core.testing import ObjectStorageConformance


class TestLocalFiles(ObjectStorageConformance):
    @pytest.fixture
    def storage(self, tmp_path):
        store = FsspecStorage(f"file://{tmp_path}/artifacts")
        yield store
        store.close()

    @pytest.fixture
    def raw_read(self, tmp_path):
        def read(key):
            entry = json.loads((tmp_path / "artifacts" / "index" / f"{key}.json").read_text())
            return (tmp_path / "artifacts" / "blobs" / entry["etag"]).read_bytes()

        return read


class TestMemory(ObjectStorageConformance):
    @pytest.fixture
    def root(self):
        root = f"/botmox-{uuid.uuid4().hex}"
        yield root
        fsspec.filesystem("memory").rm(root, recursive=True)

    @pytest.fixture
    def storage(self, root):
        store = FsspecStorage(f"memory://{root}")
        yield store
        store.close()

    @pytest.fixture
    def raw_read(self, root):
        memory = fsspec.filesystem("memory")

        def read(key):
            entry = json.loads(memory.cat_file(f"{root}/index/{key}.json"))
            return memory.cat_file(f"{root}/blobs/{entry['etag']}")

        return read
