"""Key rings and rotation: lease tokens and download URLs carry a key id; the previous key keeps
verifying until its window is over; retired, unknown, forged and malformed key ids are refused;
ring files with loose permissions are refused or warned about; legacy single-key files keep
working with no action; the ``botmox keys`` commands."""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from botmox_core.backends.signed_urls import DownloadUrlSigner, load_url_keys
from botmox_core.config import load_settings
from botmox_core.errors import (
    BadRequestError,
    ConfigurationError,
    DownloadUrlInvalidError,
    UnauthorizedError,
)
from botmox_core.ops import keys as key_ops
from botmox_core.security import LeaseTokenSigner
from botmox_core.security.key_ring import (
    LEASE_KEYS,
    URL_KEYS,
    KeyRing,
    KeyRingFile,
    KeyState,
)

NOW = datetime.now(UTC).replace(microsecond=0)
LEASE = "lease_" + "cd" * 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(signer: LeaseTokenSigner, minutes: int = 5) -> str:
    return signer.sign(
        lease_id=LEASE,
        tenant_id="t",
        vm_uuid="vm-00000001",
        module="m",
        issued_at=NOW,
        expires_at=NOW + timedelta(minutes=minutes),
    )


def payload_of(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))


def raw_token(private_key: Ed25519PrivateKey, **extra: object) -> str:
    """A token as the pre-ring code made it (no ``kid``), plus ``extra`` payload fields."""
    payload = {
        "lid": LEASE,
        "tid": "t",
        "vm": "vm-00000001",
        "mod": "m",
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(minutes=5)).timestamp()),
        "jti": secrets.token_hex(16),
        **extra,
    }
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return f"bml1.{body}.{_b64(private_key.sign(f'bml1.{body}'.encode()))}"


def legacy_pem(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return key


def test_legacy_pem_is_the_rings_first_key_and_old_tokens_keep_verifying(tmp_path: Path) -> None:
    path = tmp_path / "lease-signing.pem"
    old_key = legacy_pem(path)
    pre_ring_token = raw_token(old_key)  # issued by a botmox without key rings
    signer = LeaseTokenSigner.from_file(path)
    assert signer.verify(pre_ring_token).lease_id == LEASE
    legacy_kid = signer.key_id
    assert legacy_kid.startswith("lk-legacy-")
    assert LeaseTokenSigner.from_file(path).key_id == legacy_kid  # derived alike everywhere
    before = sign(signer)
    assert payload_of(before)["kid"] == legacy_kid

    ring = KeyRingFile(path, LEASE_KEYS)
    new, keys = ring.rotate(verify_for=timedelta(minutes=6))
    assert [k.state for k in keys] == [KeyState.VERIFYING, KeyState.ACTIVE]
    assert keys[0].legacy and keys[0].kid == legacy_kid
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("{")

    signer.ring.refresh(force=True)
    after = sign(signer)
    assert payload_of(after)["kid"] == new.kid != legacy_kid
    for token in (pre_ring_token, before, after):  # all verify during the window
        assert signer.verify(token).lease_id == LEASE
    public = {k["kid"]: k for k in signer.public_keys()}
    assert list(public) == [new.kid, legacy_kid]
    assert public[legacy_kid]["state"] == "verifying" and public[legacy_kid]["verify_until"]
    assert signer.public_key_b64() == public[new.kid]["public_key"]

    with pytest.raises(BadRequestError, match="still verifies"):
        ring.retire(legacy_kid)
    retired, keys = ring.retire(legacy_kid, force=True)
    assert [k.kid for k in retired] == [legacy_kid]
    assert "PRIVATE KEY" not in path.read_text().split(new.kid)[0]  # secret erased
    signer.ring.refresh(force=True)
    for token in (pre_ring_token, before):
        with pytest.raises(UnauthorizedError, match="retired"):
            signer.verify(token)
    assert signer.verify(after).lease_id == LEASE
    assert [k["kid"] for k in signer.public_keys()] == [new.kid]


def test_a_verifying_key_stops_by_itself_and_retire_sweeps_it(tmp_path: Path) -> None:
    path = tmp_path / "ring.json"
    ring = KeyRingFile(path, LEASE_KEYS)
    first, _ = ring.rotate(verify_for=timedelta(0), now=NOW - timedelta(hours=2))
    signer = LeaseTokenSigner.from_file(path)
    old = sign(signer)
    assert signer.verify(old).lease_id == LEASE  # remembered as verified from here on
    second, _ = ring.rotate(verify_for=timedelta(minutes=5), now=NOW - timedelta(hours=1))
    signer.ring.refresh(force=True)
    with pytest.raises(UnauthorizedError, match="retired"):  # window over an hour ago
        signer.verify(old)
    with pytest.raises(BadRequestError, match="active"):
        ring.retire(second.kid)
    retired, keys = ring.retire()  # every key past its window
    assert [k.kid for k in retired] == [first.kid]
    assert [k.state for k in keys] == [KeyState.RETIRED, KeyState.ACTIVE]
    assert ring.retire()[0] == []


def test_forged_unknown_and_malformed_key_ids_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ring.json"
    ring = KeyRingFile(path, LEASE_KEYS)
    real, _ = ring.rotate(verify_for=timedelta(minutes=5))
    signer = LeaseTokenSigner.from_file(path)
    attacker = Ed25519PrivateKey.generate()
    with pytest.raises(UnauthorizedError, match="signature"):  # the ring's kid, another key
        signer.verify(raw_token(attacker, kid=real.kid))
    with pytest.raises(UnauthorizedError, match="unknown"):
        signer.verify(raw_token(attacker, kid="lk-20990101-deadbeef"))
    with pytest.raises(UnauthorizedError, match="unknown"):  # no kid and no legacy key
        signer.verify(raw_token(attacker))
    for bad in ("../../etc/passwd", "/etc/shadow", "a" * 65, "", "lk x", "ключ"):
        with pytest.raises(UnauthorizedError, match="malformed"):
            signer.verify(raw_token(attacker, kid=bad))
    for bad_type in (7, ["x"], {"kid": "x"}, True):
        with pytest.raises(UnauthorizedError, match="malformed"):
            signer.verify(raw_token(attacker, kid=bad_type))
    # a payload that is not an object, and a token whose signature part is garbage
    body = _b64(b"[1,2]")
    with pytest.raises(UnauthorizedError):
        signer.verify(f"bml1.{body}.{_b64(attacker.sign(f'bml1.{body}'.encode()))}")
    token = sign(signer)
    with pytest.raises(UnauthorizedError):
        signer.verify(token.rsplit(".", 1)[0] + ".!!!")


def test_ring_file_permissions_are_enforced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if sys.platform == "win32":
        pytest.skip("POSIX permissions")
    path = tmp_path / "lease-signing.pem"
    legacy_pem(path)
    path.chmod(0o666)
    with pytest.raises(ConfigurationError, match="writable by other users"):
        LeaseTokenSigner.from_file(path)
    path.chmod(0o620)
    with pytest.raises(ConfigurationError, match="writable by other users"):
        KeyRingFile(path, LEASE_KEYS).rotate(verify_for=timedelta(minutes=5))
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="botmox.keys"):
        LeaseTokenSigner.from_file(path)
    assert "readable by other users" in caplog.text
    url_file = tmp_path / "localfs-url.key"
    url_file.write_text(secrets.token_hex(32))
    url_file.chmod(0o606)
    with pytest.raises(ConfigurationError, match="writable by other users"):
        load_url_keys(tmp_path)


def test_rotation_keeps_a_read_only_mode_and_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "lease-signing.pem"
    legacy_pem(path)
    path.chmod(0o400)
    inode = path.stat().st_ino
    KeyRingFile(path, LEASE_KEYS).rotate(verify_for=timedelta(minutes=5))
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert path.stat().st_ino != inode  # a new file renamed into place, never rewritten
    assert not [
        p
        for p in tmp_path.iterdir()
        if p.name.startswith(".lease-signing.pem.") and not p.name.endswith(".lock")
    ]


def test_a_running_signer_picks_up_a_rotation_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "lease-signing.pem"
    legacy_pem(path)
    replica_a = LeaseTokenSigner.from_file(path)
    replica_b = LeaseTokenSigner.from_file(path)
    new, _ = KeyRingFile(path, LEASE_KEYS).rotate(verify_for=timedelta(minutes=5))
    replica_a.ring.refresh(force=True)  # A re-read the file (its once-a-second check)
    token = sign(replica_a)
    assert payload_of(token)["kid"] == new.kid
    # B has not looked at the file yet: an unknown kid makes it re-read before refusing
    assert replica_b.verify(token).lease_id == LEASE
    assert replica_b.key_id == new.kid


def test_a_broken_ring_file_keeps_the_keys_in_use(tmp_path: Path) -> None:
    path = tmp_path / "ring.json"
    KeyRingFile(path, LEASE_KEYS).rotate(verify_for=timedelta(minutes=5))
    signer = LeaseTokenSigner.from_file(path)
    token = sign(signer)
    path.write_text('{"botmox_key_ring": 1, "kind": "lease", "keys": []}')
    signer.ring.refresh(force=True)
    assert signer.verify(token).lease_id == LEASE
    for text in ("{", '{"botmox_key_ring": 1, "kind": "url", "keys": []}', "[]"):
        path.write_text(text)
        with pytest.raises(ConfigurationError):
            LeaseTokenSigner.from_file(path)
    entry = {"kid": "../x", "state": "active", "secret": None}
    path.write_text(json.dumps({"botmox_key_ring": 1, "kind": "lease", "keys": [entry]}))
    with pytest.raises(ConfigurationError, match="bad key id"):
        LeaseTokenSigner.from_file(path)


def test_download_urls_carry_the_key_id_and_legacy_urls_keep_working(tmp_path: Path) -> None:
    (tmp_path / "localfs-url.key").write_text(secrets.token_hex(32) + "\n")
    (tmp_path / "localfs-url.key").chmod(0o600)
    signer = DownloadUrlSigner(base_url="http://x", key=load_url_keys(tmp_path))
    now = NOW.timestamp()

    def params(url: str) -> tuple[str, str]:
        query = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
        return query["expires"], query["signature"]

    legacy_url = signer.sign("localfs", "a/b.zip", ttl_seconds=120, now=now).url
    expires, legacy_sig = params(legacy_url)
    assert "." not in legacy_sig and len(legacy_sig) == 64  # as before key rings
    ring = KeyRingFile(tmp_path / "localfs-url.key", URL_KEYS)
    new, keys = ring.rotate(verify_for=timedelta(minutes=6))
    signer.ring.refresh(force=True)
    expires2, new_sig = params(signer.sign("localfs", "a/b.zip", ttl_seconds=120, now=now).url)
    assert new_sig.startswith(new.kid + ".")
    assert signer.verify("localfs", "a/b.zip", expires, legacy_sig, now=now) == "a/b.zip"
    assert signer.verify("localfs", "a/b.zip", expires2, new_sig, now=now) == "a/b.zip"
    digest = new_sig.split(".", 1)[1]
    for forged in (
        f"{keys[0].kid}.{digest}",  # the new signature under the legacy key's id
        f"uk-20990101-00000000.{digest}",
        f"../../localfs-url.key.{digest}",
        f"{new.kid}.{legacy_sig}",
    ):
        with pytest.raises(DownloadUrlInvalidError):
            signer.verify("localfs", "a/b.zip", expires2, forged, now=now)
    ring.retire(keys[0].kid, force=True)
    signer.ring.refresh(force=True)
    with pytest.raises(DownloadUrlInvalidError, match="retired"):
        signer.verify("localfs", "a/b.zip", expires, legacy_sig, now=now)
    assert signer.verify("localfs", "a/b.zip", expires2, new_sig, now=now) == "a/b.zip"


def test_pinned_url_key_cannot_rotate_and_says_how(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"BOTMOX_LOCALFS_URL_KEY": secrets.token_hex(32)}, data_dir=tmp_path
    )
    with pytest.raises(BadRequestError, match="BOTMOX_LOCALFS_URL_KEY_FILE"):
        key_ops.rotate(settings, "url")
    listed = key_ops.list_keys(settings)
    assert listed["url"]["pinned"] and listed["url"]["keys"][0]["state"] == "active"
    ring_file = tmp_path / "shared" / "url.ring"
    settings = load_settings(
        environ={"BOTMOX_LOCALFS_URL_KEY_FILE": str(ring_file)}, data_dir=tmp_path
    )
    result = key_ops.rotate(settings, "url")
    assert result["file"] == str(ring_file.absolute()) and ring_file.exists()
    assert load_url_keys(tmp_path, None, str(ring_file)).active()[0].kid == result["kid"]


def test_default_windows_follow_the_ttls(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"BOTMOX_LEASE_TTL_SECONDS": "600", "BOTMOX_DOWNLOAD_URL_TTL_SECONDS": "120"},
        data_dir=tmp_path,
    )
    assert key_ops.default_verify_for(settings, "lease") == timedelta(seconds=660)
    assert key_ops.default_verify_for(settings, "url") == timedelta(seconds=180)
    legacy_pem(tmp_path / "lease-signing.pem")
    result = key_ops.rotate(settings, "lease", now=NOW)
    (demoted,) = result["demoted"]
    assert demoted["verify_until"] == (NOW + timedelta(seconds=660)).isoformat().replace(
        "+00:00", "Z"
    )


def test_in_memory_ring_needs_exactly_one_active_key() -> None:
    with pytest.raises(ConfigurationError):
        KeyRing(URL_KEYS, [])


def _botmox(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("botmox")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTMOX_", "DATA_BACKEND"))}
    return subprocess.run(
        [str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_keys_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    legacy_pem(data / "lease-signing.pem")
    listed = json.loads(
        _botmox("keys", "list", "--data-dir", str(data), "--json", cwd=tmp_path).stdout
    )
    (legacy,) = listed["lease"]["keys"]
    assert legacy["legacy"] and legacy["state"] == "active" and "secret" not in legacy
    assert listed["url"]["keys"] == []
    done = _botmox("keys", "rotate", "--data-dir", str(data), cwd=tmp_path)
    assert done.returncode != 0 and "--lease or --url" in done.stderr
    rotated = json.loads(
        _botmox("keys", "--data-dir", str(data), "rotate", "--lease", "--json", cwd=tmp_path).stdout
    )
    assert rotated["demoted"][0]["kid"] == legacy["kid"]
    refused = _botmox(
        "keys", "retire", "--lease", legacy["kid"], "--data-dir", str(data), cwd=tmp_path
    )
    assert refused.returncode == 1 and "still verifies" in refused.stderr
    assert "Traceback" not in refused.stderr
    retired = _botmox(
        "keys", "retire", "--lease", legacy["kid"], "--force", "--data-dir", str(data), cwd=tmp_path
    )
    assert retired.returncode == 0 and legacy["kid"] in retired.stdout
    text = _botmox("keys", "list", "--data-dir", str(data), cwd=tmp_path).stdout
    assert f"{rotated['kid']}  active" in text and "retired" in text
    url = _botmox("keys", "rotate", "--url", "--data-dir", str(data), cwd=tmp_path)
    assert url.returncode == 0 and "new active key uk-" in url.stdout
    unknown = _botmox("keys", "retire", "--url", "uk-nope", "--data-dir", str(data), cwd=tmp_path)
    assert unknown.returncode == 1 and "no url key" in unknown.stderr
