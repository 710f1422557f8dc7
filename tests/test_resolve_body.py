"""The resolve-download route decodes its own body (``botmox_server.resolve_body``): bad bodies
get the 400s every other route gives, the caller is authenticated before the body is read, the
OpenAPI document still describes the body, and the event-loop path answers like the thread
path (a backend that is not local: the same app with ``local_reads`` turned off)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

testing = pytest.importorskip("litestar.testing", reason="needs [server]")

from botmox_core.config import load_settings  # noqa: E402
from botmox_server.app import create_app  # noqa: E402
from tests.test_resolve_guarantees import (  # noqa: E402
    BASE_URL,
    MODULE,
    PLATFORM,
    _audit_rows,
    _lease,
    _provision,
)

PATH = "/api/v1/artifacts/resolve-download"
VM = "vm-good-0001"


@attrs.define
class Served:
    client: Any
    core: Any
    headers: dict[str, str]
    body: dict[str, str]


@pytest.fixture(params=["event-loop", "worker-thread"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    settings = load_settings(
        environ={"BOTMOX_PLUGINS": "none"}, data_dir=tmp_path, public_url=BASE_URL
    )
    app = create_app(settings)
    core = app.state.core
    if request.param == "worker-thread":  # what a backend behind a network gets
        core.downloads._local = False
    assert core.downloads.runs_locally is (request.param == "event-loop")
    token, principal = _provision(core)
    body = {
        "lease_token": _lease(core, principal, VM),
        "vm_uuid": VM,
        "module": MODULE,
        "platform": PLATFORM,
        "channel": "stable",
    }
    with testing.TestClient(app, base_url=BASE_URL) as client:
        yield Served(client, core, {"Authorization": f"Bearer {token}"}, body)


def _post(served: Served, content: str | bytes, headers: dict[str, str] | None = None) -> Any:
    return served.client.post(
        PATH,
        content=content,
        headers={
            "Content-Type": "application/json",
            **(served.headers if headers is None else headers),
        },
    )


def _error(response: Any) -> tuple[int, str, str | None]:
    envelope = response.json()
    assert envelope["success"] is False
    details = envelope["error"].get("details") or [{}]
    return response.status_code, envelope["error"]["code"], details[0].get("field")


def test_a_good_body_resolves_and_is_audited_once(served: Served) -> None:
    answer = _post(served, json.dumps(served.body))
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["download_url"].startswith(BASE_URL)
    without_channel = {k: v for k, v in served.body.items() if k != "channel"}
    assert _post(served, json.dumps({**without_channel, "extra": [1]})).status_code == 200
    assert len(_audit_rows(served.core)) == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lease_token": 5}, "lease_token"),
        ({"vm_uuid": None}, "vm_uuid"),
        ({"module": ["farm-bot"]}, "module"),
        ({"channel": True}, "channel"),
        ({"platform": {"os": "linux"}}, "platform"),
    ],
)
def test_a_field_of_the_wrong_type_is_a_400_naming_it(
    served: Served, change: dict[str, Any], field: str
) -> None:
    assert _error(_post(served, json.dumps({**served.body, **change}))) == (
        400,
        "BAD_REQUEST",
        field,
    )
    assert _audit_rows(served.core) == []  # refused before any check: nothing to audit


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("", "body"),
        ("   \n", "body"),
        ("[1, 2]", "body"),
        ('"text"', "body"),
        ("null", "body"),
        ('{"vm_uuid": "vm-good-0001"}', "lease_token"),
        ('{"lease_token": "x"' + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "body"),
    ],
)
def test_bodies_that_are_not_the_object_are_400s(served: Served, content: str, field: str) -> None:
    assert _error(_post(served, content)) == (400, "BAD_REQUEST", field)


@pytest.mark.parametrize("content", ["{nope", b"\xff\xfe{}", '{"lease_token": "x"'])
def test_malformed_json_is_a_400(served: Served, content: str | bytes) -> None:
    status, code, _ = _error(_post(served, content))
    assert (status, code) == (400, "BAD_REQUEST")


def test_the_caller_is_checked_before_the_body(served: Served) -> None:
    for content in ("", "{nope", json.dumps({"lease_token": 5}), json.dumps(served.body)):
        for headers in ({}, {"Authorization": "Bearer bmx_" + "A" * 43}):
            assert _error(_post(served, content, headers))[:2] == (401, "UNAUTHORIZED")
    assert _audit_rows(served.core) == []


def test_the_openapi_document_describes_the_body(served: Served) -> None:
    document = served.client.get("/api/v1/openapi.json").json()
    operation = document["paths"][PATH]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert operation["requestBody"]["required"] is True
    assert set(schema["properties"]) == {"lease_token", "vm_uuid", "module", "platform", "channel"}
    assert sorted(schema["required"]) == ["lease_token", "module", "platform", "vm_uuid"]
    assert all(prop["type"] == "string" for prop in schema["properties"].values())
