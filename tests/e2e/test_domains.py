"""Every domain route (docs/domains.md) over a real uvicorn server, on each data backend stack:
the embedded SQLite default, Supabase (PostgreSQL with its schema and RLS) and Firebase RTDB (the
emulator, with tenant A as the configured legacy tenant on the seed's global paths and tenant B
under ``tenants/``). Bad input is refused alike everywhere and writes nothing."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any
from urllib.parse import urlsplit

import attrs
import httpx
import pytest

from botmox_core.testing.server import RunningServer, admin_cli, running_server
from tests.e2e.conftest import stack_env

TENANT, OTHER_TENANT = "tenant-a", "tenant-b"
DOMAIN_STACKS = ["embedded", "supabase", "rtdb"]

KIND_BODIES: dict[str, dict[str, Any]] = {
    "/api/v1/resources/licenses": {"key": "KEY-1", "type": "bot", "status": "active"},
    "/api/v1/resources/proxies": {"ip": "10.0.0.1", "port": 8080, "type": "socks5", "bot_id": None},
    "/api/v1/resources/subscriptions": {"type": "wow", "status": "active", "auto_renew": True},
    "/api/v1/workspace/notes": {"title": "Note", "content": "# hi\n", "tags": ["a"]},
    "/api/v1/workspace/calendar": {"title": "Raid", "date": "2026-12-01"},
    "/api/v1/workspace/kanban": {"title": "Task", "status": "todo", "order": 3},
    "/api/v1/bots": {"name": "Thrall", "status": "offline", "character": {"level": 60}},
    "/api/v1/finance/operations": {
        "type": "income",
        "category": "sale",
        "amount": 12.5,
        "currency": "USD",
        "date": 1_764_000_000_000,
        "bot_id": None,
        "project_id": None,
        "gold_price_at_time": None,
    },
}


@attrs.frozen
class DomainStack:
    name: str
    server: RunningServer
    token: str
    other_token: str

    def call(
        self, method: str, path: str, *, token: str | None = "", **kwargs: Any
    ) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        chosen = self.token if token == "" else token
        if chosen is not None:
            headers["Authorization"] = f"Bearer {chosen}"
        return httpx.request(method, self.server.url + path, headers=headers, timeout=30, **kwargs)

    def raw(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        """A request with ``path`` sent exactly as given (no client-side normalising of ``..``)."""
        split = urlsplit(self.server.url)
        connection = http.client.HTTPConnection(split.hostname, split.port, timeout=30)
        try:
            headers = {"Authorization": f"Bearer {self.token}"}
            if body is not None:
                headers["Content-Type"] = "application/json"
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()


@pytest.fixture(scope="module", params=DOMAIN_STACKS)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DomainStack]:
    tmp = tmp_path_factory.mktemp(f"domains-{request.param}")
    with ExitStack() as stack:
        env = stack_env(request.param, stack, tmp)
        if request.param == "rtdb":
            env["BOTMOX_RTDB_LEGACY_TENANT"] = TENANT
        server = stack.enter_context(running_server(tmp / "data", env))
        token = admin_cli(server, "token", "create", "--tenant", TENANT, "--role", "api")["token"]
        other = admin_cli(server, "token", "create", "--tenant", OTHER_TENANT, "--role", "api")[
            "token"
        ]
        found = DomainStack(request.param, server, token, other)
        probe = found.call("GET", "/api/v1/bots")
        if probe.status_code == 501 and request.param != "embedded":
            pytest.fail(f"the {request.param} backend does not store domain data yet: {probe.text}")
        yield found


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is True
    return body["data"]


def refused(response: httpx.Response, status: int = 400, code: str | None = None) -> Any:
    code = code or {400: "BAD_REQUEST", 404: "NOT_FOUND"}[status]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == code, body
    return body["error"]


# -- auth --------------------------------------------------------------------------------------


def test_auth_verify_and_whoami(stack: DomainStack) -> None:
    assert ok(stack.call("GET", "/api/v1/auth/verify")) == {"valid": True}
    me = ok(stack.call("GET", "/api/v1/auth/whoami"))
    assert me["tenant_id"] == TENANT and me["role"] == "api" and me["roles"] == ["api"]
    assert stack.token not in json.dumps(me)
    refused(stack.call("GET", "/api/v1/auth/verify", token=None), 401, "UNAUTHORIZED")
    refused(stack.call("GET", "/api/v1/bots", token="bmx_forged"), 401, "UNAUTHORIZED")


# -- the eight collections ---------------------------------------------------------------------


@pytest.mark.parametrize("path", list(KIND_BODIES))
def test_collection_routes(stack: DomainStack, path: str) -> None:
    body = KIND_BODIES[path]
    created = ok(stack.call("POST", path, json=body), 201)
    rid = created["id"]
    assert {key: created[key] for key in body} == body
    assert created["created_at"] == created["updated_at"] > 0
    assert ok(stack.call("GET", f"{path}/{rid}")) == created
    listed = stack.call("GET", path)
    assert ok(listed) == [created]
    assert listed.json()["meta"] == {"total": 1, "page": 1, "limit": 50}

    named = ok(
        stack.call("POST", path, json={**body, "id": " fixed-id ", "extra": {"k": [1]}}), 201
    )
    assert named["id"] == "fixed-id" and named["extra"] == {"k": [1]}  # passthrough
    refused(stack.call("POST", path, json={**body, "id": "fixed-id"}), 409, "DUPLICATE")

    patched = ok(
        stack.call(
            "PATCH",
            f"{path}/fixed-id",
            json={"extra/k": None, "extra/n": 2, "note": "x", "id": "fixed-id", "created_at": 1},
        )
    )
    assert patched["extra"] == {"n": 2} and patched["note"] == "x"
    assert patched["created_at"] == named["created_at"]
    assert ok(stack.call("GET", f"{path}/fixed-id")) == patched

    # another tenant sees none of it
    other_list = stack.call("GET", path, token=stack.other_token)
    assert ok(other_list) == [] and other_list.json()["meta"]["total"] == 0
    for method, kwargs in (("GET", {}), ("PATCH", {"json": {"note": "y"}}), ("DELETE", {})):
        refused(
            stack.call(method, f"{path}/fixed-id", token=stack.other_token, **kwargs),
            404,
            "NOT_FOUND",
        )
    refused(stack.call("PATCH", f"{path}/missing", json={"note": "y"}), 404, "NOT_FOUND")

    for entity_id in (rid, "fixed-id"):
        assert ok(stack.call("DELETE", f"{path}/{entity_id}")) == {"id": entity_id, "deleted": True}
        refused(stack.call("GET", f"{path}/{entity_id}"), 404, "NOT_FOUND")
        refused(stack.call("DELETE", f"{path}/{entity_id}"), 404, "NOT_FOUND")
    assert ok(stack.call("GET", path)) == []


def test_not_found_messages_and_unknown_kinds(stack: DomainStack) -> None:
    assert (
        refused(stack.call("GET", "/api/v1/resources/licenses/nope"), 404, "NOT_FOUND")["message"]
        == "Resource not found"
    )
    assert (
        refused(stack.call("GET", "/api/v1/workspace/notes/nope"), 404, "NOT_FOUND")["message"]
        == "Workspace entity not found"
    )
    assert refused(stack.call("GET", "/api/v1/bots/nope"), 404)["message"] == "Bot not found"
    assert (
        refused(stack.call("GET", "/api/v1/finance/operations/nope"), 404)["message"]
        == "Finance operation not found"
    )
    assert refused(stack.call("GET", "/api/v1/resources/virtual_machines"))["message"] == (
        "Invalid resource kind"
    )
    assert (
        refused(stack.call("POST", "/api/v1/workspace/notes_index", json={"a": 1}))["message"]
        == "Invalid workspace kind"
    )


def test_list_query_over_http(stack: DomainStack) -> None:
    names = ["Zed", "alpha", "Beta", "farm-gamma", "Farm-delta", "omega"]
    for index, name in enumerate(names):
        ok(
            stack.call("POST", "/api/v1/bots", json={"id": f"q{index}", "name": name, "n": index}),
            201,
        )
    try:
        page = stack.call(
            "GET",
            "/api/v1/bots",
            params={"q": " FARM ", "sort": "name", "order": "desc", "limit": 1},
        )
        assert [bot["name"] for bot in ok(page)] == ["farm-gamma"]
        assert page.json()["meta"] == {"total": 2, "page": 1, "limit": 1}
        second = ok(
            stack.call(
                "GET",
                "/api/v1/bots",
                params={"q": "farm", "sort": "name", "order": "desc", "limit": 1, "page": 2},
            )
        )
        assert [bot["name"] for bot in second] == ["Farm-delta"]
        by_number = ok(
            stack.call("GET", "/api/v1/bots", params={"sort": "n", "order": "desc", "limit": 2})
        )
        assert [bot["id"] for bot in by_number] == ["q5", "q4"]
        past = stack.call("GET", "/api/v1/bots", params={"page": 50, "limit": 200})
        assert ok(past) == [] and past.json()["meta"] == {"total": 6, "page": 50, "limit": 200}
        for params in (
            {"limit": 201},
            {"limit": 0},
            {"page": 0},
            {"page": "x"},
            {"order": "sideways"},
            {"sort": "a.b"},
            {"q": "farm\n"},
            {"q": "x" * 201},
        ):
            refused(stack.call("GET", "/api/v1/bots", params=params))
    finally:
        for index in range(len(names)):
            stack.call("DELETE", f"/api/v1/bots/q{index}")


# -- bot lifecycle -----------------------------------------------------------------------------


def test_bot_lifecycle_routes(stack: DomainStack) -> None:
    base = "/api/v1/bots/life-1"
    ok(
        stack.call(
            "POST",
            "/api/v1/bots",
            json={"id": "life-1", "project_id": "wow_tbc", "character": {"level": 70}},
        ),
        201,
    )
    try:
        assert ok(stack.call("GET", f"{base}/lifecycle")) is None
        assert ok(stack.call("GET", f"{base}/lifecycle/transitions")) == []
        assert ok(stack.call("GET", f"{base}/lifecycle/is-banned")) == {"banned": False}
        moved = ok(stack.call("POST", f"{base}/lifecycle/transition", json={"status": "farming"}))
        assert moved["status"] == "farming"
        assert moved["lifecycle"]["current_stage"] == "farming"
        assert ok(stack.call("GET", f"{base}/lifecycle"))["previous_status"] == "offline"
        transitions = ok(stack.call("GET", f"{base}/lifecycle/transitions"))
        assert [(t["from"], t["to"]) for t in transitions] == [("create", "farming")]
        error = refused(
            stack.call("POST", f"{base}/lifecycle/transition", json={"status": "banned"})
        )
        assert error["message"] == "Use /lifecycle/ban endpoint for ban transitions"
        refused(stack.call("POST", f"{base}/lifecycle/unban"))  # not banned
        refused(
            stack.call(
                "POST",
                f"{base}/lifecycle/ban",
                json={"ban_date": "2026-01-01", "ban_reason": "r", "ban_mechanism": "other"},
            )
        )
        banned = ok(
            stack.call(
                "POST",
                f"{base}/lifecycle/ban",
                json={"ban_date": "01.02.2026", "ban_reason": "botting", "ban_mechanism": "ip_ban"},
            )
        )
        assert banned["status"] == "banned"
        assert banned["lifecycle"]["ban_details"]["ban_timestamp"] == 1_769_904_000_000
        assert ok(stack.call("GET", f"{base}/lifecycle/is-banned")) == {"banned": True}
        restored = ok(stack.call("POST", f"{base}/lifecycle/unban"))
        assert restored["status"] == "farming"
        assert restored["lifecycle"]["ban_details"]["unbanned_at"] > 0
        assert ok(stack.call("GET", base)) == restored
        for suffix in ("lifecycle", "lifecycle/transitions", "lifecycle/is-banned"):
            refused(stack.call("GET", f"{base}/{suffix}", token=stack.other_token), 404)
        refused(
            stack.call(
                "POST",
                f"{base}/lifecycle/transition",
                json={"status": "leveling"},
                token=stack.other_token,
            ),
            404,
        )
        refused(stack.call("POST", "/api/v1/bots/missing/lifecycle/unban"), 404)
    finally:
        stack.call("DELETE", base)


def test_finance_aggregates_answer_empty_objects(stack: DomainStack) -> None:
    assert ok(stack.call("GET", "/api/v1/finance/daily-stats")) == {}
    assert ok(stack.call("GET", "/api/v1/finance/gold-price-history")) == {}


# -- settings ----------------------------------------------------------------------------------


def test_settings_routes(stack: DomainStack) -> None:
    assert ok(stack.call("GET", "/api/v1/settings", token=stack.other_token)) == {}
    assert ok(stack.call("GET", "/api/v1/settings/alerts")) is None
    assert ok(stack.call("PUT", "/api/v1/settings/alerts", json={"warning_days": 7})) == {
        "warning_days": 7
    }
    assert ok(
        stack.call("PATCH", "/api/v1/settings/settings/alerts", json={"updated_by": "me"})
    ) == {
        "warning_days": 7,
        "updated_by": "me",
    }
    assert (
        ok(stack.call("PUT", "/api/v1/settings/projects/wow_tbc/gold_price_usd", json=0.25)) == 0.25
    )
    assert ok(stack.call("PATCH", "/api/v1/settings/vmgenerator/task_logs", json=["a", 1])) == [
        "a",
        1,
    ]
    tree = ok(stack.call("GET", "/api/v1/settings"))
    assert tree["alerts"] == {"warning_days": 7, "updated_by": "me"}
    assert tree["projects"] == {"wow_tbc": {"gold_price_usd": 0.25}}
    assert ok(stack.call("GET", "/api/v1/settings/vmgenerator/task_logs")) == ["a", 1]
    assert ok(stack.call("GET", "/api/v1/settings", token=stack.other_token)) == {}
    error = refused(stack.call("PUT", "/api/v1/settings/alerts", json={"warning_days": 0}))
    assert error["details"] == [{"field": "alerts.warning_days", "message": "must be at least 1"}]
    refused(stack.call("PUT", "/api/v1/settings/alerts", json={}))
    assert ok(stack.call("GET", "/api/v1/settings/alerts")) == {
        "warning_days": 7,
        "updated_by": "me",
    }


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/api/v1/settings/alerts/../x", "Invalid path segment: .."),
        ("/api/v1/settings/settings/../x", "Invalid path segment: .."),
        ("/api/v1/settings/%2e%2e/x", "Invalid path segment: .."),
        ("/api/v1/settings/a/./b", "Invalid path segment: ."),
        ("/api/v1/settings/a%23b", "Invalid path segment: a#b"),
        ("/api/v1/settings/a$b", "Invalid path segment: a$b"),
        ("/api/v1/settings/a%5B0%5D", "Invalid path segment: a[0]"),
        ("/api/v1/settings/alerts%0A", "control characters are not allowed"),
    ],
)
def test_invalid_settings_paths_are_400_with_the_reason(
    stack: DomainStack, path: str, reason: str
) -> None:
    for method, body in (("GET", None), ("PUT", b'{"a": 1}'), ("PATCH", b'{"a": 1}')):
        status, answer = stack.raw(method, path, body)
        assert status == 400, answer
        assert answer["error"]["message"] == "Invalid settings path"
        assert answer["error"]["details"]["reason"] == reason


def test_settings_look_alikes_stay_literal_keys(stack: DomainStack) -> None:
    path = "/api/v1/settings/%EF%BC%8E%EF%BC%8E/probe"  # fullwidth full stops
    assert ok(stack.call("PUT", path, json="v", token=stack.other_token)) == "v"
    tree = ok(stack.call("GET", "/api/v1/settings", token=stack.other_token))
    assert tree.get("．．") == {"probe": "v"}
    ok(stack.call("PUT", path, json=None, token=stack.other_token))


# -- attacks -----------------------------------------------------------------------------------


def test_bad_ids_bodies_and_sizes_are_400_and_write_nothing(stack: DomainStack) -> None:
    before = stack.call("GET", "/api/v1/workspace/notes").json()["meta"]["total"]
    for raw_id in ("bad%0A", "bad%00", "a.b", "a%20b", "%E2%80%8Bzw", "x" * 129):
        status, answer = stack.raw("GET", f"/api/v1/workspace/notes/{raw_id}")
        assert status == 400 and answer["error"]["details"][0]["field"] == "id", answer
        status, _ = stack.raw("PATCH", f"/api/v1/workspace/notes/{raw_id}", b'{"a": 1}')
        assert status == 400
    for body in (
        {"id": "ba\nd"},
        {"id": "bad\u0000"},
        {"id": "a/b"},
        {"id": "a$b"},
        {"meta": {"bad.key": 1}},
        {"meta": {"bad/key": 1}},
        {"meta": {"": 1}},
        {"title": "nul\u0000"},
        {"content": "x" * (300 * 1024)},
        {"big": 2**62},
    ):
        refused(stack.call("POST", "/api/v1/workspace/notes", json=body))
    for raw_body in (b"", b"{}", b"null", b"[]", b'"text"'):
        status, answer = stack.raw("POST", "/api/v1/workspace/notes", raw_body)
        assert status == 400, answer
    status, answer = stack.raw("POST", "/api/v1/workspace/notes", b"{}")
    assert answer["error"]["message"] == "body: Notes payload must not be empty"
    deep: Any = "leaf"
    for _ in range(40):
        deep = {"d": deep}
    refused(stack.call("POST", "/api/v1/workspace/notes", json={"deep": deep}))
    very_deep = b'{"deep": ' + b'{"d": ' * 5000 + b"1" + b"}" * 5001
    status, answer = stack.raw("POST", "/api/v1/workspace/notes", very_deep)
    assert status == 400, answer
    refused(
        stack.call("POST", "/api/v1/workspace/notes", content=b"x" * (2 * 1024 * 1024)),
        413,
        "PAYLOAD_TOO_LARGE",
    )
    assert stack.call("GET", "/api/v1/workspace/notes").json()["meta"]["total"] == before


def test_patch_cannot_move_ids_or_timestamps(stack: DomainStack) -> None:
    created = ok(
        stack.call("POST", "/api/v1/workspace/kanban", json={"id": "k-1", "title": "t"}), 201
    )
    try:
        refused(stack.call("PATCH", "/api/v1/workspace/kanban/k-1", json={"id": "k-2"}))
        refused(stack.call("PATCH", "/api/v1/workspace/kanban/k-1", json={"status": "later"}))
        refused(stack.call("PATCH", "/api/v1/workspace/kanban/k-1", json={"a/../b": 1}))
        refused(stack.call("PATCH", "/api/v1/workspace/kanban/k-1", json={}))
        kept = ok(stack.call("GET", "/api/v1/workspace/kanban/k-1"))
        assert kept == created
        patched = ok(
            stack.call(
                "PATCH",
                "/api/v1/workspace/kanban/k-1",
                json={"created_at": 0, "updated_at": 0, "created_at/x": 1, "title": "u"},
            )
        )
        assert patched["created_at"] == created["created_at"]
        assert patched["updated_at"] >= created["updated_at"] and patched["title"] == "u"
        refused(stack.call("GET", "/api/v1/workspace/kanban/k-2"), 404)
    finally:
        stack.call("DELETE", "/api/v1/workspace/kanban/k-1")


def test_rtdb_layout_legacy_tenant_on_global_paths(stack: DomainStack) -> None:
    """On RTDB the legacy tenant's records sit at the seed's paths and another tenant's under
    ``tenants/{tenant}/`` (read straight from the emulator, not through the server)."""
    if stack.name != "rtdb":
        pytest.skip("the RTDB path layout only")
    ok(stack.call("POST", "/api/v1/bots", json={"id": "layout-a", "name": "a"}), 201)
    ok(stack.call("POST", "/api/v1/workspace/notes", json={"id": "layout-n", "title": "n"}), 201)
    ok(
        stack.call(
            "POST", "/api/v1/bots", json={"id": "layout-b", "name": "b"}, token=stack.other_token
        ),
        201,
    )
    try:
        host = stack.server.env["FIREBASE_DATABASE_EMULATOR_HOST"]
        namespace = urlsplit(stack.server.env["BOTMOX_RTDB_DATABASE_URL"]).hostname.split(".")[0]

        def read(path: str) -> Any:
            answer = httpx.get(
                f"http://{host}/{path}.json",
                params={"ns": namespace},
                headers={"Authorization": "Bearer owner"},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            return answer.json()

        assert read("bots/layout-a")["name"] == "a"
        assert read("workspace/notes_v2/layout-n")["title"] == "n"
        assert read(f"tenants/{OTHER_TENANT}/bots/layout-b")["name"] == "b"
        assert read("bots/layout-b") is None
    finally:
        stack.call("DELETE", "/api/v1/bots/layout-a")
        stack.call("DELETE", "/api/v1/workspace/notes/layout-n")
        stack.call("DELETE", "/api/v1/bots/layout-b", token=stack.other_token)
