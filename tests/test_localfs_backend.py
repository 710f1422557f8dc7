"""``localfs`` specifics the shared conformance suite cannot know: key rules, the URL signing
key, URL verification, atomic replacement under concurrency, error mapping, health, registration."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pluggy
import pytest

from botmox_core.backends import localfs
from botmox_core.backends.localfs import (
    URL_KEY_FILE,
    LocalFsStorage,
    create_localfs_storage,
    load_url_key,
    validate_object_key,
)
from botmox_core.config import load_settings
from botmox_core.errors import (
    ArtifactObjectNotFoundError,
    BadRequestError,
    ConfigurationError,
    DownloadUrlInvalidError,
    StorageError,
)
from botmox_core.plugin import BUILTIN_PLUGINS, spec

KEY = b"k" * 32


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[LocalFsStorage]:
    store = LocalFsStorage(tmp_path / "objects", base_url="http://vm-gw.example:8000/", url_key=KEY)
    yield store
    store.close()


def _query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


# -- keys -------------------------------------------------------------------------------------

INVALID_KEYS = [
    "",
    "/abs.bin",
    "a//b",
    "a/./b",
    "a/../b",
    "..",
    ".",
    "a/",
    "a b",
    "a\\b",
    "mod\x00.bin",
    "ünï.bin",
    "a?b",
    "a%2Fb",
    "x" * 1025,
]


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_invalid_keys_are_refused_everywhere(storage: LocalFsStorage, key: str) -> None:
    calls = [
        lambda: storage.put(key, io.BytesIO(b"x")),
        lambda: storage.head(key),
        lambda: storage.open(key),
        lambda: storage.delete(key),
        lambda: storage.presign_download(key, ttl_seconds=60),
    ]
    for call in calls:
        with pytest.raises(BadRequestError) as caught:
            call()
        assert caught.value.code == "INVALID_KEY"
        assert caught.value.status == 400
    assert list(storage.root.iterdir()) == [], "nothing may be written for an invalid key"


def test_non_string_key_is_refused() -> None:
    with pytest.raises(BadRequestError) as caught:
        validate_object_key(b"bytes-key")
    assert caught.value.code == "INVALID_KEY"


@pytest.mark.parametrize(
    "key", ["a", "x" * 1024, "..a/b..", "A-Z_0.9/-x", "mods/tool/1.0.0/linux-x64.tar.gz"]
)
def test_valid_keys_round_trip(storage: LocalFsStorage, key: str) -> None:
    storage.put(key, io.BytesIO(key.encode()))
    with storage.open(key) as stream:
        assert stream.read() == key.encode()
    assert storage.head(key) is not None


def test_head_follows_every_change_of_a_remembered_object(
    storage: LocalFsStorage, tmp_path: Path
) -> None:
    """head parses a metadata file once, then stats it: every put, delete or edit is seen."""
    key = "bots/fishing.zip"
    storage.put(key, io.BytesIO(b"a" * 100))
    first = storage.head(key)
    assert first is not None and storage.head(key) == first  # the second comes from memory
    storage.put(key, io.BytesIO(b"b" * 100))  # same size, other bytes
    second = storage.head(key)
    assert second is not None and second.sha256 == hashlib.sha256(b"b" * 100).hexdigest()
    assert second.sha256 != first.sha256
    storage.delete(key)
    assert storage.head(key) is None
    storage.put(key, io.BytesIO(b"c" * 7))
    assert storage.head(key).size_bytes == 7  # type: ignore[union-attr]
    (meta,) = storage.root.glob("*/*.meta.json")
    meta.write_text("{not json")  # edited in place by hand
    with pytest.raises(StorageError, match="corrupt"):
        storage.head(key)
    other = LocalFsStorage(storage.root, base_url="http://x.example/", url_key=KEY)  # a replica
    meta.unlink()
    assert other.head(key) is None and storage.head(key) is None
    other.close()


def test_metadata_never_collides_with_object_keys(storage: LocalFsStorage) -> None:
    digest = hashlib.sha256(b"release").hexdigest()
    lookalikes = ["release", "release.meta.json", f"{digest}.meta.json", f"{digest[:2]}/.lock"]
    for key in lookalikes:
        storage.put(key, io.BytesIO(key.encode()))
    for key in lookalikes:
        with storage.open(key) as stream:
            assert stream.read() == key.encode()


# -- the URL signing key ------------------------------------------------------------------------


def test_url_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    first = load_url_key(tmp_path)
    path = tmp_path / URL_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 32
    assert bytes.fromhex(path.read_text().strip()) == first
    assert load_url_key(tmp_path) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == [URL_KEY_FILE], "no temp files left"


def test_url_key_created_concurrently_is_the_same_everywhere(tmp_path: Path) -> None:
    """Processes starting at once all end up with one key (atomic hard-link creation)."""
    script = (
        "import sys, time; from pathlib import Path\n"
        "from botmox_core.backends.localfs import load_url_key\n"
        "start = float(sys.argv[2])\n"
        "time.sleep(max(0.0, start - time.time()))\n"
        "print(load_url_key(Path(sys.argv[1])).hex())\n"
    )
    start = str(time.time() + 1.5)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / "data"), start],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    keys: list[str] = []
    for process in processes:
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        keys.append(out.strip())
    threads_keys: list[bytes] = []
    barrier = threading.Barrier(8)

    def load_in_thread(directory: Path) -> None:
        barrier.wait()
        threads_keys.append(load_url_key(directory))

    threads = [
        threading.Thread(target=load_in_thread, args=(tmp_path / "threads",)) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1 and len(keys[0]) == 64
    assert bytes.fromhex(keys[0]) == load_url_key(tmp_path / "data")
    assert len(set(threads_keys)) == 1 and len(threads_keys) == 8
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [URL_KEY_FILE]


def test_configured_url_key_wins_and_is_shared_by_replicas(tmp_path: Path) -> None:
    environ = {"BOTMOX_LOCALFS_URL_KEY": "ab" * 32}
    one = create_localfs_storage(load_settings(environ=environ, data_dir=tmp_path / "one"))
    two = create_localfs_storage(load_settings(environ=environ, data_dir=tmp_path / "two"))
    own = create_localfs_storage(load_settings(environ={}, data_dir=tmp_path / "three"))
    assert not (tmp_path / "one" / URL_KEY_FILE).exists()
    query = _query(one.presign_download("a.bin", ttl_seconds=60).url)
    two.verify_download("a.bin", query["expires"], query["signature"])
    with pytest.raises(DownloadUrlInvalidError):
        own.verify_download("a.bin", query["expires"], query["signature"])


@pytest.mark.parametrize("value", ["not-hex", "abcd", "zz" * 32])
def test_bad_configured_url_key_is_a_configuration_error(tmp_path: Path, value: str) -> None:
    settings = load_settings(environ={"BOTMOX_LOCALFS_URL_KEY": value}, data_dir=tmp_path)
    with pytest.raises(ConfigurationError) as caught:
        create_localfs_storage(settings)
    assert value not in caught.value.message


def test_corrupt_url_key_file_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / URL_KEY_FILE).write_text("short\n")
    with pytest.raises(ConfigurationError):
        load_url_key(tmp_path)


def test_factory_uses_data_dir_root_option_and_public_url(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"BOTMOX_LOCALFS_ROOT": str(tmp_path / "elsewhere")},
        data_dir=tmp_path / "data",
        public_url="https://botmox.example/",
    )
    store = create_localfs_storage(settings)
    assert store.root == tmp_path / "elsewhere"
    assert store.presign_download("m.bin", ttl_seconds=60).url.startswith(
        "https://botmox.example/api/v1/storage/localfs/m.bin?expires="
    )
    default = create_localfs_storage(load_settings(environ={}, data_dir=tmp_path / "d2"))
    assert default.root == tmp_path / "d2" / "objects"
    assert default.root.is_dir()


def test_repr_shows_no_key(storage: LocalFsStorage) -> None:
    assert KEY.hex() not in repr(storage) and "kkkk" not in repr(storage)


# -- presigning and verification -------------------------------------------------------------


def test_presigned_url_shape(storage: LocalFsStorage) -> None:
    now = 1_800_000_000.7
    presigned = storage.presign_download("mods/a-1.0.zip", ttl_seconds=120, now=now)
    parts = urlsplit(presigned.url)
    assert f"{parts.scheme}://{parts.netloc}" == "http://vm-gw.example:8000"
    assert parts.path == "/api/v1/storage/localfs/mods/a-1.0.zip"
    query = _query(presigned.url)
    assert query["expires"] == "1800000120"
    assert len(query["signature"]) == 64 and int(query["signature"], 16) >= 0
    assert presigned.expires_at.timestamp() == 1_800_000_120
    assert presigned.expires_at.tzinfo is not None


@pytest.mark.parametrize("ttl", [0, -5, True, 1.5])
def test_presign_needs_positive_whole_ttl(storage: LocalFsStorage, ttl: object) -> None:
    with pytest.raises(BadRequestError):
        storage.presign_download("a.bin", ttl_seconds=ttl)  # type: ignore[arg-type]


def test_verify_accepts_until_expiry_then_says_expired(storage: LocalFsStorage) -> None:
    query = _query(storage.presign_download("a.bin", ttl_seconds=60, now=1000).url)
    expires, signature = query["expires"], query["signature"]
    storage.verify_download("a.bin", expires, signature, now=1000)
    storage.verify_download("a.bin", int(expires), signature, now=1060)
    with pytest.raises(DownloadUrlInvalidError) as caught:
        storage.verify_download("a.bin", expires, signature, now=1061)
    assert caught.value.code == "DOWNLOAD_URL_EXPIRED"
    assert caught.value.status == 403
    assert caught.value.message == "download URL has expired"


@pytest.mark.parametrize(
    ("key", "expires", "signature"),
    [
        ("b.bin", None, None),  # other key
        ("a.bin", "1061", None),  # extended expiry
        ("a.bin", None, "0" * 64),  # wrong signature
        ("a.bin", None, ""),
        ("a.bin", None, "ä" * 64),  # non-ASCII
        ("a.bin", "-1", None),
        ("a.bin", "1e3", None),
        ("a.bin", "", None),
        ("a.bin", "9" * 40, None),
        ("../a.bin", None, None),
    ],
)
def test_verify_refuses_forgeries(
    storage: LocalFsStorage, key: str, expires: str | None, signature: str | None
) -> None:
    query = _query(storage.presign_download("a.bin", ttl_seconds=60, now=1000).url)
    with pytest.raises(DownloadUrlInvalidError) as caught:
        storage.verify_download(
            key,
            query["expires"] if expires is None else expires,
            query["signature"] if signature is None else signature,
            now=1000,
        )
    assert caught.value.code == "DOWNLOAD_URL_INVALID"
    assert query["signature"] not in caught.value.message


def test_signature_is_checked_before_expiry(storage: LocalFsStorage) -> None:
    """A forged URL is 'invalid', never 'expired' (no oracle on expiry of forgeries)."""
    with pytest.raises(DownloadUrlInvalidError) as caught:
        storage.verify_download("a.bin", "5", "0" * 64, now=1000)
    assert caught.value.code == "DOWNLOAD_URL_INVALID"


# -- reads, writes, failures ------------------------------------------------------------------


@pytest.mark.parametrize(("start", "end"), [(-1, None), (5, 4), (11, None), (12, 20)])
def test_invalid_ranges_are_bad_requests(
    storage: LocalFsStorage, start: int, end: int | None
) -> None:
    storage.put("r.bin", io.BytesIO(b"0123456789"))
    with pytest.raises(BadRequestError) as caught:
        storage.open("r.bin", start=start, end=end)
    assert caught.value.code == "INVALID_RANGE"


def test_range_edges(storage: LocalFsStorage) -> None:
    storage.put("r.bin", io.BytesIO(b"0123456789"))
    with storage.open("r.bin", start=10) as stream:
        assert stream.read() == b""
    with storage.open("r.bin", start=8, end=500) as stream:
        assert stream.read() == b"89"


def test_size_mismatch_is_refused_and_stores_nothing(storage: LocalFsStorage) -> None:
    with pytest.raises(BadRequestError) as caught:
        storage.put("s.bin", io.BytesIO(b"12345"), size=6)
    assert caught.value.code == "SIZE_MISMATCH"
    assert storage.head("s.bin") is None
    assert _stray_files(storage) == []


def test_text_stream_is_refused(storage: LocalFsStorage) -> None:
    with pytest.raises(BadRequestError):
        storage.put("t.bin", io.StringIO("text"))  # type: ignore[arg-type]
    assert storage.head("t.bin") is None


def test_failed_upload_leaves_no_temporary_files(storage: LocalFsStorage) -> None:
    class Broken(io.RawIOBase):
        calls = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            self.calls += 1
            if self.calls > 2:
                raise ConnectionResetError("peer went away")
            buffer[: len(buffer)] = b"\1" * len(buffer)
            return len(buffer)

    storage.put("u.bin", io.BytesIO(b"original"))
    with pytest.raises(ConnectionResetError):  # the source's own error, not a storage error
        storage.put("u.bin", Broken())  # type: ignore[arg-type]
    with storage.open("u.bin") as stream:
        assert stream.read() == b"original"
    assert _stray_files(storage) == []


def _stray_files(storage: LocalFsStorage) -> list[str]:
    return [p.name for p in storage.root.rglob(".tmp-*")]


def test_one_blob_per_object_after_replacements_and_none_after_delete(
    storage: LocalFsStorage,
) -> None:
    for n in range(5):
        storage.put("v.bin", io.BytesIO(bytes([n]) * 100))
    digest = hashlib.sha256(b"v.bin").hexdigest()
    shard = storage.root / digest[:2]
    assert len(list(shard.glob(f"{digest}.*.blob"))) == 1
    storage.delete("v.bin")
    assert list(shard.glob(f"{digest}.*")) == []


def test_objects_persist_across_instances(storage: LocalFsStorage) -> None:
    storage.put("p/q.bin", io.BytesIO(b"persisted"), content_type="text/plain")
    again = LocalFsStorage(storage.root, base_url="http://x", url_key=KEY)
    info = again.head("p/q.bin")
    assert info is not None and info.content_type == "text/plain"
    assert info.sha256 == hashlib.sha256(b"persisted").hexdigest()


def test_concurrent_replacement_never_shows_a_mixed_object(storage: LocalFsStorage) -> None:
    versions = {bytes([n]) * (300_000 + n * 1000) for n in range(4)}
    storage.put("hot.bin", io.BytesIO(next(iter(versions))))
    stop = threading.Event()
    seen: list[bytes] = []
    errors: list[BaseException] = []

    def write(payload: bytes) -> None:
        try:
            for _ in range(15):
                storage.put("hot.bin", io.BytesIO(payload))
        except BaseException as exc:
            errors.append(exc)

    def read() -> None:
        try:
            while not stop.is_set():
                info, file = storage.open_with_info("hot.bin")
                with file:
                    data = file.read()
                assert len(data) == info.size_bytes
                assert hashlib.sha256(data).hexdigest() == info.sha256
                seen.append(data)
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(v,)) for v in versions]
    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in [*writers, *readers]:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()
    assert errors == []
    assert seen and all(data in versions for data in seen)
    digest = hashlib.sha256(b"hot.bin").hexdigest()
    assert len(list((storage.root / digest[:2]).glob(f"{digest}.*.blob"))) == 1


def test_file_system_errors_become_storage_errors(storage: LocalFsStorage) -> None:
    digest = hashlib.sha256(b"blocked.bin").hexdigest()
    (storage.root / digest[:2]).write_bytes(b"a file where the shard directory belongs")
    with pytest.raises(StorageError) as caught:
        storage.put("blocked.bin", io.BytesIO(b"x"))
    assert caught.value.code == "STORAGE_ERROR" and caught.value.status == 502
    assert str(storage.root) not in caught.value.message


def test_corrupt_metadata_is_a_storage_error(storage: LocalFsStorage) -> None:
    storage.put("c.bin", io.BytesIO(b"x"))
    digest = hashlib.sha256(b"c.bin").hexdigest()
    (storage.root / digest[:2] / f"{digest}.meta.json").write_text("{not json")
    with pytest.raises(StorageError):
        storage.head("c.bin")


def test_missing_blob_is_a_storage_error_not_not_found(storage: LocalFsStorage) -> None:
    storage.put("m.bin", io.BytesIO(b"x"))
    digest = hashlib.sha256(b"m.bin").hexdigest()
    for blob in (storage.root / digest[:2]).glob(f"{digest}.*.blob"):
        blob.unlink()
    with pytest.raises(StorageError):
        storage.open("m.bin")


def test_open_missing_is_not_found(storage: LocalFsStorage) -> None:
    with pytest.raises(ArtifactObjectNotFoundError) as caught:
        storage.open_with_info("nothing.bin")
    assert caught.value.status == 404


# -- health and registration ------------------------------------------------------------------


def test_health_fails_when_root_is_gone_or_not_a_directory(storage: LocalFsStorage) -> None:
    assert storage.check_health().ok
    os.rmdir(storage.root)
    report = storage.check_health()
    assert not report.ok and report.detail == "object directory is missing"
    storage.root.write_bytes(b"")
    assert not storage.check_health().ok
    assert str(storage.root) not in (storage.check_health().detail or "")


def test_health_fails_when_root_is_not_writable(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions; covered by the not-a-directory test")
    store = LocalFsStorage(tmp_path / "ro", base_url="http://x", url_key=KEY)
    os.chmod(store.root, 0o500)
    try:
        report = store.check_health()
    finally:
        os.chmod(store.root, 0o700)
    assert not report.ok and "not writable" in (report.detail or "")


def test_registered_as_builtin_storage_plugin(tmp_path: Path) -> None:
    assert "botmox_core.backends.localfs" in BUILTIN_PLUGINS
    manager = pluggy.PluginManager(spec.PROJECT)
    manager.add_hookspecs(spec)
    manager.register(localfs)
    manager.check_pending()
    registered: dict[str, object] = {}
    manager.hook.botmox_register_storages(register=registered.__setitem__)
    assert list(registered) == ["localfs"]
    factory = registered["localfs"]
    assert callable(factory)
    built = factory(load_settings(environ={}, data_dir=tmp_path))
    assert isinstance(built, LocalFsStorage)
    assert built.check_health().ok


def test_abandoned_temporary_files_are_cleaned_up(storage: LocalFsStorage) -> None:
    storage.put("crash.bin", io.BytesIO(b"v1"))
    shard = storage.root / hashlib.sha256(b"crash.bin").hexdigest()[:2]
    abandoned, in_progress = shard / ".tmp-abandoned", shard / ".tmp-in-progress"
    abandoned.write_bytes(b"half an upload")
    in_progress.write_bytes(b"still uploading")
    two_days_ago = time.time() - 2 * 86400
    os.utime(abandoned, (two_days_ago, two_days_ago))
    storage.put("crash.bin", io.BytesIO(b"v2"))
    assert not abandoned.exists()
    assert in_progress.exists()
