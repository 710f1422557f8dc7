"""Request bodies of the v1 routes (attrs classes: Litestar decodes them and documents them in
OpenAPI). Field rules beyond types are checked by the services."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.define
class RegisterVmBody:
    vm_uuid: str
    user_id: str | None = None
    vm_name: str | None = None
    project_id: str | None = None
    status: str | None = None
    metadata: dict[str, Any] | None = None


@attrs.define
class LeaseBody:
    vm_uuid: str
    module: str
    user_id: str | None = None
    agent_id: str | None = None
    runner_id: str | None = None
    version: str | None = None


@attrs.define
class VmStatusBody:
    status: str


@attrs.define
class HeartbeatBody:
    lease_id: str
    lease_token: str | None = None


@attrs.define
class RevokeBody:
    lease_id: str
    reason: str | None = None


@attrs.define
class ReleaseBody:
    module: str
    platform: str
    version: str
    object_key: str
    sha256: str
    size_bytes: int
    channel: str = "stable"
    status: str | None = None


@attrs.define
class AssignBody:
    module: str
    platform: str
    channel: str
    release_id: int
    user_id: str | None = None
