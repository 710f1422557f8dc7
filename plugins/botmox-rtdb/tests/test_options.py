"""Options, credentials, the plugin registration and the shipped command-line entry points."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import requests
from botmox_rtdb import RtdbBackend, build_backend, read_options
from botmox_rtdb.options import load_credential
from botmox_rtdb.rules import rules_document
from botmox_rtdb.testing import RtdbEmulator
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from botmox_core.config import load_settings
from botmox_core.errors import ConfigurationError

KEY_MARKER = "MIIEvSECRETKEYMATERIAL"


def options_for(environ: dict[str, str]) -> Any:
    return read_options(load_settings(environ))


# -- database URL -----------------------------------------------------------------------------


def test_missing_database_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="BOTMOX_RTDB_DATABASE_URL"):
        options_for({})


@pytest.mark.parametrize("url", ["ftp://x.firebaseio.com", "not a url", "https://",
                                 "http://127.0.0.1:9000/"])
def test_malformed_database_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError):
        options_for({"BOTMOX_RTDB_DATABASE_URL": url})


def test_firebase_database_url_is_accepted_too() -> None:
    options = options_for({"FIREBASE_DATABASE_URL": "https://proj-default-rtdb.firebaseio.com/"})
    assert options.database_url == "https://proj-default-rtdb.firebaseio.com"
    assert not options.emulator


def test_emulator_host_turns_the_url_into_an_emulator_url() -> None:
    options = options_for({"BOTMOX_RTDB_DATABASE_URL": "https://proj.firebaseio.com",
                           "FIREBASE_DATABASE_EMULATOR_HOST": "127.0.0.1:9000"})
    assert options.database_url == "http://127.0.0.1:9000/?ns=proj" and options.emulator
    options = options_for({"BOTMOX_RTDB_DATABASE_URL": "http://127.0.0.1:9000/?ns=x"})
    assert options.emulator
    with pytest.raises(ConfigurationError):
        options_for({"BOTMOX_RTDB_DATABASE_URL": "https://proj.firebaseio.com",
                     "BOTMOX_RTDB_EMULATOR_HOST": "http://127.0.0.1:9000"})


def test_options_come_from_the_toml_file_too(tmp_path: Path) -> None:
    config = tmp_path / "botmox.toml"
    config.write_text('[plugins.rtdb]\ndatabase_url = "https://filed.firebaseio.com"\n'
                      'http_timeout = 5\n')
    options = read_options(load_settings({}, config_file=config))
    assert options.database_url == "https://filed.firebaseio.com" and options.http_timeout == 5


@pytest.mark.parametrize("timeout", ["soon", "0", "-1"])
def test_bad_timeout_is_a_configuration_error(timeout: str) -> None:
    with pytest.raises(ConfigurationError, match="http_timeout"):
        options_for({"BOTMOX_RTDB_DATABASE_URL": "https://p.firebaseio.com",
                     "BOTMOX_RTDB_HTTP_TIMEOUT": timeout})


# -- credentials ------------------------------------------------------------------------------


def _service_account(private_key: str) -> dict[str, str]:
    return {
        "type": "service_account",
        "project_id": "botmox-test",
        "private_key_id": "0" * 40,
        "private_key": private_key,
        "client_email": "botmox@botmox-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def _real_private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _credential_error(tmp_path: Path, content: str | None) -> ConfigurationError:
    path = tmp_path / "key.json"
    if content is not None:
        path.write_text(content)
    options = options_for({"BOTMOX_RTDB_DATABASE_URL": "https://p.firebaseio.com",
                           "BOTMOX_RTDB_CREDENTIALS": str(path)})
    with pytest.raises(ConfigurationError) as caught:
        load_credential(options)
    return caught.value


def test_missing_credentials_file(tmp_path: Path) -> None:
    assert "does not exist" in _credential_error(tmp_path, None).message


def test_credentials_file_that_is_not_json(tmp_path: Path) -> None:
    error = _credential_error(tmp_path, f"-----BEGIN PRIVATE KEY-----{KEY_MARKER}")
    assert "not valid JSON" in error.message and KEY_MARKER not in error.message


def test_credentials_of_the_wrong_type(tmp_path: Path) -> None:
    document = {**_service_account(KEY_MARKER), "type": "authorized_user"}
    error = _credential_error(tmp_path, json.dumps(document))
    assert "service_account" in error.message and KEY_MARKER not in error.message
    assert "not a service-account key" in _credential_error(tmp_path, "[1, 2]").message


def test_credentials_missing_fields(tmp_path: Path) -> None:
    document = _service_account(KEY_MARKER)
    del document["client_email"]
    error = _credential_error(tmp_path, json.dumps(document))
    assert "client_email" in error.message and KEY_MARKER not in error.message


def test_credentials_with_a_malformed_key(tmp_path: Path) -> None:
    pem = f"-----BEGIN PRIVATE KEY-----\n{KEY_MARKER}\n-----END PRIVATE KEY-----\n"
    error = _credential_error(tmp_path, json.dumps(_service_account(pem)))
    assert "malformed" in error.message
    assert KEY_MARKER not in error.message and KEY_MARKER not in repr(error)
    assert error.__cause__ is None and error.__suppress_context__  # SDK text never printed


def test_a_valid_service_account_works_against_the_emulator(
    tmp_path: Path, emulator: RtdbEmulator
) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(_service_account(_real_private_key())))
    backend = build_backend(load_settings({
        "BOTMOX_RTDB_DATABASE_URL": "https://withkey.firebaseio.com",
        "BOTMOX_RTDB_CREDENTIALS": str(path),
        "FIREBASE_DATABASE_EMULATOR_HOST": emulator.host_port,
    }))
    try:
        assert backend.check_health().ok
        assert "PRIVATE" not in repr(backend) and str(path) not in repr(backend)
    finally:
        backend.close()


# -- plugin registration ----------------------------------------------------------------------


def test_entry_point_registers_the_rtdb_backend(emulator: RtdbEmulator) -> None:
    found = [ep for ep in entry_points(group="botmox") if ep.name == "rtdb"]
    assert [ep.value for ep in found] == ["botmox_rtdb.plugin"]
    module = found[0].load()
    registered: dict[str, Any] = {}
    module.botmox_register_data_backends(register=registered.__setitem__)
    assert list(registered) == ["rtdb"]
    backend = registered["rtdb"](load_settings({
        "DATA_BACKEND": "rtdb",
        "BOTMOX_RTDB_DATABASE_URL": "https://viaplugin.firebaseio.com",
        "FIREBASE_DATABASE_EMULATOR_HOST": emulator.host_port,
    }))
    try:
        assert isinstance(backend, RtdbBackend) and backend.check_health().ok
    finally:
        backend.close()


# -- command-line entry points ----------------------------------------------------------------


def test_rules_command_prints_the_rules_document() -> None:
    done = subprocess.run([sys.executable, "-m", "botmox_rtdb.rules"], capture_output=True,
                          text=True, timeout=60, check=True)
    document = json.loads(done.stdout)
    assert document == rules_document()
    tenant_rules = document["rules"]["tenants"]["$tenant_id"]
    assert tenant_rules["artifact_releases"][".indexOn"] == ["module", "version"]
    assert tenant_rules["download_audit"][".indexOn"] == ["id", "lease_id"]


def test_emulator_command_serves_until_terminated(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": {"x": {".indexOn": "k"}}}))
    process = subprocess.Popen(
        [sys.executable, "-m", "botmox_rtdb.testing", "--rules", str(rules)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        host_port = process.stdout.readline().strip()
        base = f"http://{host_port}"
        headers = {"Authorization": "Bearer owner"}
        assert requests.put(f"{base}/x/a.json?ns=cli", json={"k": 2}, headers=headers,
                            timeout=10).status_code == 200
        response = requests.get(f'{base}/x.json?ns=cli&orderBy="k"', headers=headers, timeout=10)
        assert response.json() == {"a": {"k": 2}}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
    assert process.returncode == 0
