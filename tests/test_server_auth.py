"""Bearer authentication on the server: API tokens and JWTs (HS256, Supabase Auth claims)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from litestar.testing import TestClient

from botmox_core.bootstrap import bootstrap
from botmox_core.config import load_settings
from botmox_server import create_app

SECRET = "test-jwt-secret-with-enough-length-32b"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        {"BOTMOX_DATA_DIR": str(tmp_path), "BOTMOX_PLUGINS": "none", "BOTMOX_JWT_SECRET": SECRET}
    )
    core = bootstrap(settings)
    core.licences.set_licence("acme", "active", None)
    with TestClient(create_app(core=core)) as test_client:
        test_client.app.state.admin = core.tokens.create("acme", "admin").secret  # type: ignore[attr-defined]
        yield test_client


def supabase_jwt(**claims: object) -> str:
    now = int(time.time())
    payload = {
        "sub": "alice",
        "aud": "authenticated",
        "iss": "supabase",
        "role": "authenticated",
        "exp": now + 300,
        "iat": now,
        "app_metadata": {"tenant_id": "acme"},
    }
    payload.update(claims)
    return jwt.encode(payload, SECRET, algorithm="HS256")


def register(client: TestClient, token: str) -> object:
    return client.post(
        "/api/v1/vm/register",
        json={"vm_uuid": "vm-00000001"},
        headers={"Authorization": f"Bearer {token}"},
    )


def test_supabase_jwt_acts_as_its_user_in_its_tenant(client: TestClient) -> None:
    r = register(client, supabase_jwt())
    assert r.status_code == 201, r.text
    assert r.json()["data"]["user_id"] == "alice" and r.json()["data"]["tenant_id"] == "acme"


def test_tenant_claim_at_top_level(client: TestClient) -> None:
    r = register(client, supabase_jwt(tenant_id="acme", app_metadata={}))
    assert r.status_code == 201


@pytest.mark.parametrize(
    "token",
    [
        supabase_jwt(exp=int(time.time()) - 10),
        supabase_jwt(aud="anon"),
        supabase_jwt(iss="someone-else"),
        supabase_jwt(app_metadata={}),
        supabase_jwt(app_metadata={"tenant_id": "acme", "botmox_role": "emperor"}),
        jwt.encode(
            {"sub": "alice", "exp": int(time.time()) + 60}, "wrong-secret-of-32-bytes-length!"
        ),
        "not-a-token",
        "bmx_" + "A" * 43,
    ],
)
def test_bad_tokens_are_401_envelopes(client: TestClient, token: str) -> None:
    r = register(client, token)
    assert r.status_code == 401
    assert r.json() == {
        "success": False,
        "error": {"code": "UNAUTHORIZED", "message": r.json()["error"]["message"]},
    }


def test_role_from_app_metadata_gates_operator_routes(client: TestClient) -> None:
    body = {"lease_id": "lease_" + "0" * 32, "reason": "x"}
    user = client.post(
        "/api/v1/license/revoke", json=body, headers={"Authorization": f"Bearer {supabase_jwt()}"}
    )
    assert user.status_code == 403 and user.json()["error"]["code"] == "FORBIDDEN"
    admin_jwt = supabase_jwt(app_metadata={"tenant_id": "acme", "botmox_role": "admin"})
    admin = client.post(
        "/api/v1/license/revoke", json=body, headers={"Authorization": f"Bearer {admin_jwt}"}
    )
    assert admin.status_code == 404 and admin.json()["error"]["code"] == "LEASE_NOT_FOUND"


def test_missing_or_wrong_scheme(client: TestClient) -> None:
    assert client.post("/api/v1/vm/register", json={}).status_code == 401
    r = client.post(
        "/api/v1/vm/register",
        json={"vm_uuid": "vm-00000001"},
        headers={"Authorization": "Basic abc"},
    )
    assert r.status_code == 401


def test_request_id_is_returned_and_kept(client: TestClient) -> None:
    r = client.get("/api/v1/health/live", headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert len(client.get("/api/v1/health/live").headers["x-request-id"]) == 16


def _b64(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("part", ["header", "payload"])
def test_a_forged_jwt_nested_past_the_recursion_limit_is_401(client: TestClient, part: str) -> None:
    """The header (and, for some libraries, the payload) of a JWT is parsed before its
    signature is checked: 3,000 levels of nesting must be a 401, not a RecursionError 500."""
    deep = _b64(b"[" * 3000 + b"]" * 3000)
    header = _b64(b'{"alg":"HS256","typ":"JWT"}')
    payload = _b64(b'{"sub":"x"}')
    token = f"{deep}.{payload}.sig" if part == "header" else f"{header}.{deep}.sig"
    r = register(client, token)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "UNAUTHORIZED"
