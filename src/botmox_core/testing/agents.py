"""Conformance suite for the agent command bus repositories (``uow.agents``, ``uow.commands``).

A backend that supports agents subclasses :class:`AgentRepositoryConformance` next to
:class:`~botmox_core.testing.RepositoryConformance`, with the same ``backend`` fixture::

    class TestMyBackendAgents(AgentRepositoryConformance):
        @pytest.fixture
        def backend(self, tmp_path):
            backend = MyBackend(tmp_path / "db")
            yield backend
            backend.close()

``second_backend`` (another instance on the same store) enables the cross-instance claim test.
The claim tests are what a multi-replica backend must pass: no command is ever claimed twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import attrs
import httpx
import pytest

from botmox_core.errors import BotmoxError, DuplicateError
from botmox_core.models import Agent, AgentStatus, Command, CommandStatus
from botmox_core.ports import DataBackend
from botmox_core.ports.agents import AgentUnitOfWork, supports_agents

__all__ = [
    "AgentProcess",
    "AgentRepositoryConformance",
    "ServerProcess",
    "make_agent",
    "make_command",
]

T = TypeVar("T")
T0 = datetime(2026, 11, 24, 12, 0, 0, 250000, tzinfo=UTC)


def _uid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_agent(tenant_id: str, **changes: Any) -> Agent:
    """A valid active agent with every optional field filled; ``changes`` replace fields."""
    agent = Agent(
        id=_uid("agt"),
        tenant_id=tenant_id,
        status=AgentStatus.ACTIVE,
        created_at=T0,
        pairing_expires_at=_at(900),
        name="agent one",
        pairing_code_hash=None,
        version="1.2.3",
        platform="linux-x86_64",
        capabilities=("proxmox.start", "syncthing.scan"),
        public_key="BbrdBancAsyVmb8Yr4/0iymwwM1dmGieKDZG0OoJ2Ao=",
        token_hash=uuid.uuid4().hex + uuid.uuid4().hex,
        token_expires_at=_at(86400),
        registered_at=_at(10),
        last_seen_at=_at(20),
        revoked_at=None,
        revoke_reason=None,
    )
    return attrs.evolve(agent, **changes)


def make_command(tenant_id: str, agent_id: str, **changes: Any) -> Command:
    """A valid queued command; ``changes`` replace fields."""
    command = Command(
        id=_uid("cmd"),
        tenant_id=tenant_id,
        agent_id=agent_id,
        command_type="proxmox.start",
        status=CommandStatus.QUEUED,
        queued_at=T0,
        expires_at=_at(300),
        updated_at=T0,
        payload={"vmid": 101, "nested": {"list": [1, "two", None]}, "ünï": "✓"},
        execution_timeout_seconds=600,
        idempotency_key=None,
        attempts=0,
        max_attempts=5,
        created_by="tok_1",
    )
    return attrs.evolve(command, **changes)


class AgentRepositoryConformance:
    """Pytest mixin: what ``uow.agents`` and ``uow.commands`` of a backend must do.

    Capability flags:
        claim_threads, claims_per_thread: size of the concurrent claim test.
    """

    claim_threads: ClassVar[int] = 4
    commands_to_claim: ClassVar[int] = 60

    @pytest.fixture
    def backend(self) -> Iterator[DataBackend]:
        raise NotImplementedError(
            f"{type(self).__name__} must define a `backend` fixture yielding a fresh, empty "
            "DataBackend whose units of work carry `agents` and `commands`"
        )

    @pytest.fixture
    def second_backend(self, backend: DataBackend) -> Iterator[DataBackend]:
        pytest.skip(f"{type(self).__name__} has no `second_backend` fixture")

    @pytest.fixture
    def tenant(self) -> str:
        return _uid("tenant_a")

    @pytest.fixture
    def other_tenant(self) -> str:
        return _uid("tenant_b")

    @staticmethod
    def committed(backend: DataBackend, action: Callable[[AgentUnitOfWork], T]) -> T:
        with backend.unit_of_work() as uow:
            result = action(uow)  # type: ignore[arg-type]
            uow.commit()
        return result

    @staticmethod
    def read(backend: DataBackend, action: Callable[[AgentUnitOfWork], T]) -> T:
        with backend.unit_of_work() as uow:
            return action(uow)  # type: ignore[arg-type]

    def _agent(self, backend: DataBackend, tenant: str, **changes: Any) -> Agent:
        agent = make_agent(tenant, **changes)
        self.committed(backend, lambda uow: uow.agents.add(agent))
        return agent

    def _command(self, backend: DataBackend, tenant: str, agent_id: str, **changes: Any) -> Command:
        command = make_command(tenant, agent_id, **changes)
        self.committed(backend, lambda uow: uow.commands.add(command))
        return command

    @staticmethod
    def _scan(
        backend: DataBackend, name: str, tenant: str, after: str | None, limit: int
    ) -> list[Any]:
        with backend.unit_of_work() as uow:
            return list(getattr(uow, name).scan(tenant, after=after, limit=limit))

    # -- agents -------------------------------------------------------------------------------

    def test_backend_supports_agents(self, backend: DataBackend) -> None:
        assert supports_agents(backend), "units of work must carry `agents` and `commands`"

    def test_agent_round_trip(self, backend: DataBackend, tenant: str) -> None:
        agent = self._agent(backend, tenant)
        assert self.read(backend, lambda uow: uow.agents.get(tenant, agent.id)) == agent

    def test_agent_and_command_scan_one_tenant_by_id_page_by_page(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        ids = ["agt-b", "agt-a", "agt-ü", "agt-Z", "agt-10"]
        for owner in (other_tenant, tenant):
            for agent_id in ids:
                self._agent(backend, owner, id=f"{agent_id}-{owner}")
                self._command(backend, owner, f"{agent_id}-{owner}", id=f"cmd-{agent_id}-{owner}")
        for name in ("agents", "commands"):
            found: list[Any] = []
            after: str | None = None
            for _ in range(20):
                page = self._scan(backend, name, tenant, after, 2)
                found += page
                if len(page) < 2:
                    break
                after = page[-1].id
            got = [record.id for record in found]
            assert len(got) == len(ids), f"{name}.scan found {got}"
            assert got == sorted(got), f"{name}.scan order (code points): {got}"
            assert all(r.tenant_id == tenant for r in found), f"{name}.scan: another tenant's"
            empty = self._scan(backend, name, tenant, None, 0)
            assert list(empty) == [], f"{name}.scan with limit 0"

    def test_agent_pending_round_trip(self, backend: DataBackend, tenant: str) -> None:
        agent = self._agent(
            backend,
            tenant,
            status=AgentStatus.PENDING,
            pairing_code_hash="c" * 64,
            token_hash=None,
            capabilities=(),
            public_key=None,
            registered_at=None,
            last_seen_at=None,
            token_expires_at=None,
            name=None,
        )
        assert self.read(backend, lambda uow: uow.agents.get(tenant, agent.id)) == agent
        found = self.read(backend, lambda uow: uow.agents.get_by_pairing_hash("c" * 64))
        assert found == agent

    def test_agent_lookup_by_token_hash(self, backend: DataBackend, tenant: str) -> None:
        agent = self._agent(backend, tenant)
        token_hash = agent.token_hash
        assert token_hash is not None
        found = self.read(backend, lambda uow: uow.agents.get_by_token_hash(token_hash))
        assert found == agent
        assert self.read(backend, lambda uow: uow.agents.get_by_token_hash("0" * 64)) is None

    def test_agent_duplicate_id_and_token_hash_are_refused(
        self, backend: DataBackend, tenant: str
    ) -> None:
        agent = self._agent(backend, tenant)
        with pytest.raises(DuplicateError):
            self.committed(
                backend, lambda uow: uow.agents.add(attrs.evolve(agent, token_hash="1" * 64))
            )
        with pytest.raises(DuplicateError):
            self.committed(
                backend, lambda uow: uow.agents.add(make_agent(tenant, token_hash=agent.token_hash))
            )

    def test_agent_list_newest_first_and_by_status(self, backend: DataBackend, tenant: str) -> None:
        first = self._agent(backend, tenant, created_at=_at(1))
        second = self._agent(backend, tenant, created_at=_at(2), status=AgentStatus.REVOKED)
        third = self._agent(backend, tenant, created_at=_at(3))
        listed = self.read(backend, lambda uow: uow.agents.list(tenant))
        assert [a.id for a in listed] == [third.id, second.id, first.id]
        active = self.read(backend, lambda uow: uow.agents.list(tenant, AgentStatus.ACTIVE))
        assert [a.id for a in active] == [third.id, first.id]

    def test_agent_modify(self, backend: DataBackend, tenant: str) -> None:
        agent = self._agent(backend, tenant)
        changed = self.committed(
            backend,
            lambda uow: uow.agents.modify(
                tenant,
                agent.id,
                lambda a: attrs.evolve(
                    a, status=AgentStatus.REVOKED, revoked_at=_at(99), revoke_reason="x"
                ),
            ),
        )
        assert changed is not None and changed.status is AgentStatus.REVOKED
        assert self.read(backend, lambda uow: uow.agents.get(tenant, agent.id)) == changed
        assert (
            self.committed(
                backend, lambda uow: uow.agents.modify(tenant, "agt_missing", lambda a: a)
            )
            is None
        )

    def test_agent_modify_abort_writes_nothing(self, backend: DataBackend, tenant: str) -> None:
        agent = self._agent(backend, tenant)

        def boom(current: Agent) -> Agent:
            raise BotmoxError("no")

        with pytest.raises(BotmoxError):
            self.committed(backend, lambda uow: uow.agents.modify(tenant, agent.id, boom))
        assert self.read(backend, lambda uow: uow.agents.get(tenant, agent.id)) == agent

    def test_agent_tenant_isolation(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        agent = self._agent(backend, tenant)
        assert self.read(backend, lambda uow: uow.agents.get(other_tenant, agent.id)) is None
        assert self.read(backend, lambda uow: uow.agents.list(other_tenant)) == []
        assert (
            self.committed(
                backend,
                lambda uow: uow.agents.modify(other_tenant, agent.id, lambda a: a),
            )
            is None
        )

    # -- commands -----------------------------------------------------------------------------

    def test_command_round_trip(self, backend: DataBackend, tenant: str) -> None:
        agent = self._agent(backend, tenant)
        command = self._command(
            backend,
            tenant,
            agent.id,
            idempotency_key="key-1",
            status=CommandStatus.SUCCEEDED,
            dispatched_at=_at(1),
            started_at=_at(2),
            finished_at=_at(3),
            cancel_requested_at=_at(2.5),
            result={"ok": True, "list": [1, 2]},
            error="none",
            output_bytes=12,
            attempts=2,
        )
        assert self.read(backend, lambda uow: uow.commands.get(tenant, command.id)) == command

    def test_command_idempotency_key_is_unique_per_agent(
        self, backend: DataBackend, tenant: str
    ) -> None:
        agent = self._agent(backend, tenant)
        other = self._agent(backend, tenant)
        command = self._command(backend, tenant, agent.id, idempotency_key="same")
        with pytest.raises(DuplicateError):
            self._command(backend, tenant, agent.id, idempotency_key="same")
        self._command(backend, tenant, other.id, idempotency_key="same")  # another agent: fine
        self._command(backend, tenant, agent.id)  # no key: never a duplicate
        self._command(backend, tenant, agent.id)
        found = self.read(
            backend, lambda uow: uow.commands.find_by_idempotency_key(tenant, agent.id, "same")
        )
        assert found == command

    def test_command_list_newest_first_filters_and_limit(
        self, backend: DataBackend, tenant: str
    ) -> None:
        agent = self._agent(backend, tenant)
        other = self._agent(backend, tenant)
        made = [
            self._command(backend, tenant, agent.id, queued_at=_at(i), updated_at=_at(i))
            for i in range(5)
        ]
        done = self._command(
            backend, tenant, other.id, queued_at=_at(10), status=CommandStatus.FAILED
        )
        everything = self.read(backend, lambda uow: uow.commands.list(tenant))
        assert [c.id for c in everything] == [done.id, *[c.id for c in reversed(made)]]
        mine = self.read(backend, lambda uow: uow.commands.list(tenant, agent_id=agent.id, limit=2))
        assert [c.id for c in mine] == [made[4].id, made[3].id]
        failed = self.read(
            backend, lambda uow: uow.commands.list(tenant, statuses=[CommandStatus.FAILED])
        )
        assert [c.id for c in failed] == [done.id]
        assert (
            self.read(
                backend, lambda uow: uow.commands.count(tenant, agent.id, [CommandStatus.QUEUED])
            )
            == 5
        )

    def test_command_modify(self, backend: DataBackend, tenant: str) -> None:
        agent = self._agent(backend, tenant)
        command = self._command(backend, tenant, agent.id)
        changed = self.committed(
            backend,
            lambda uow: uow.commands.modify(
                tenant,
                command.id,
                lambda c: attrs.evolve(c, status=CommandStatus.RUNNING, started_at=_at(5)),
            ),
        )
        assert changed is not None and changed.status is CommandStatus.RUNNING
        assert self.read(backend, lambda uow: uow.commands.get(tenant, command.id)) == changed

    def test_claim_takes_oldest_unexpired_queued_of_that_agent(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        agent = self._agent(backend, tenant)
        other = self._agent(backend, tenant)
        old = self._command(backend, tenant, agent.id, queued_at=_at(1))
        new = self._command(backend, tenant, agent.id, queued_at=_at(2))
        self._command(backend, tenant, agent.id, queued_at=_at(0), expires_at=_at(50))  # expired
        self._command(backend, tenant, agent.id, queued_at=_at(0), status=CommandStatus.RUNNING)
        self._command(backend, tenant, other.id, queued_at=_at(0))
        self._command(backend, other_tenant, agent.id, queued_at=_at(0))
        now = _at(100)
        first = self.committed(backend, lambda uow: uow.commands.claim(tenant, agent.id, now, 1))
        assert [c.id for c in first] == [old.id]
        assert first[0].status is CommandStatus.DISPATCHED
        assert first[0].attempts == 1 and first[0].dispatched_at == now
        assert self.read(backend, lambda uow: uow.commands.get(tenant, old.id)) == first[0]
        rest = self.committed(backend, lambda uow: uow.commands.claim(tenant, agent.id, now, 10))
        assert [c.id for c in rest] == [new.id]
        assert (
            self.committed(backend, lambda uow: uow.commands.claim(tenant, agent.id, now, 10)) == []
        )

    def test_concurrent_claims_never_return_a_command_twice(
        self, backend: DataBackend, tenant: str
    ) -> None:
        agent = self._agent(backend, tenant)
        ids = {
            self._command(backend, tenant, agent.id, queued_at=_at(i % 7)).id
            for i in range(self.commands_to_claim)
        }
        claimed: list[str] = []
        lock = threading.Lock()
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                while True:
                    got = self.committed(
                        backend, lambda uow: uow.commands.claim(tenant, agent.id, _at(100), 3)
                    )
                    if not got:
                        return
                    with lock:
                        claimed.extend(c.id for c in got)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(self.claim_threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        assert sorted(claimed) == sorted(ids), "every command claimed exactly once"

    def test_claims_across_instances_never_overlap(
        self, backend: DataBackend, second_backend: DataBackend, tenant: str
    ) -> None:
        agent = self._agent(backend, tenant)
        ids = {self._command(backend, tenant, agent.id).id for _ in range(20)}
        claimed: list[str] = []
        for round_ in range(20):
            store = backend if round_ % 2 else second_backend
            claimed.extend(
                c.id
                for c in self.committed(
                    store, lambda uow: uow.commands.claim(tenant, agent.id, _at(100), 2)
                )
            )
        assert sorted(claimed) == sorted(ids)

    def test_list_stale(self, backend: DataBackend, tenant: str) -> None:
        fresh_agent = self._agent(backend, tenant, last_seen_at=_at(1000))
        lost_agent = self._agent(backend, tenant, last_seen_at=_at(10))
        now = _at(1000)
        expired = self._command(backend, tenant, fresh_agent.id, expires_at=_at(999))
        unacked = self._command(
            backend,
            tenant,
            fresh_agent.id,
            status=CommandStatus.DISPATCHED,
            dispatched_at=_at(900),
            expires_at=_at(2000),
        )
        overdue = self._command(
            backend,
            tenant,
            fresh_agent.id,
            status=CommandStatus.RUNNING,
            started_at=_at(100),
            execution_timeout_seconds=60,
            expires_at=_at(2000),
        )
        lost = self._command(
            backend,
            tenant,
            lost_agent.id,
            status=CommandStatus.RUNNING,
            started_at=_at(990),
            expires_at=_at(2000),
        )
        healthy = [
            self._command(backend, tenant, fresh_agent.id, expires_at=_at(2000)),
            self._command(
                backend,
                tenant,
                fresh_agent.id,
                status=CommandStatus.DISPATCHED,
                dispatched_at=_at(995),
                expires_at=_at(2000),
            ),
            self._command(
                backend,
                tenant,
                fresh_agent.id,
                status=CommandStatus.RUNNING,
                started_at=_at(990),
                expires_at=_at(2000),
            ),
            self._command(
                backend, tenant, lost_agent.id, status=CommandStatus.SUCCEEDED, expires_at=_at(1)
            ),
        ]
        stale = self.read(
            backend,
            lambda uow: uow.commands.list_stale(
                now, dispatched_before=_at(970), agents_seen_before=_at(880)
            ),
        )
        found = {c.id for c in stale}
        assert {expired.id, unacked.id, overdue.id, lost.id} <= found
        assert not found & {c.id for c in healthy}

    def test_output_chunks_are_idempotent_and_ordered(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        agent = self._agent(backend, tenant)
        command = self._command(backend, tenant, agent.id)
        assert self.committed(
            backend, lambda uow: uow.commands.append_output(tenant, command.id, 1, "wörld\n")
        )
        assert self.committed(
            backend, lambda uow: uow.commands.append_output(tenant, command.id, 0, "hello ")
        )
        assert not self.committed(
            backend, lambda uow: uow.commands.append_output(tenant, command.id, 1, "again")
        )
        assert (
            self.read(backend, lambda uow: uow.commands.output(tenant, command.id))
            == "hello wörld\n"
        )
        assert self.read(backend, lambda uow: uow.commands.output(other_tenant, command.id)) == ""

    def test_large_output_is_not_truncated(self, backend: DataBackend, tenant: str) -> None:
        agent = self._agent(backend, tenant)
        command = self._command(backend, tenant, agent.id)
        chunk = "x" * 65536
        with backend.unit_of_work() as uow:
            for seq in range(40):  # 2.5 MiB
                uow.commands.append_output(tenant, command.id, seq, chunk)  # type: ignore[attr-defined]
            uow.commit()
        stored = self.read(backend, lambda uow: uow.commands.output(tenant, command.id))
        assert len(stored) == 40 * 65536

    def test_command_tenant_isolation(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        agent = self._agent(backend, tenant)
        command = self._command(backend, tenant, agent.id, idempotency_key="k")
        assert self.read(backend, lambda uow: uow.commands.get(other_tenant, command.id)) is None
        assert self.read(backend, lambda uow: uow.commands.list(other_tenant)) == []
        assert (
            self.read(
                backend,
                lambda uow: uow.commands.find_by_idempotency_key(other_tenant, agent.id, "k"),
            )
            is None
        )
        assert (
            self.committed(
                backend, lambda uow: uow.commands.claim(other_tenant, agent.id, _at(1), 5)
            )
            == []
        )
        assert (
            self.committed(
                backend, lambda uow: uow.commands.modify(other_tenant, command.id, lambda c: c)
            )
            is None
        )


# -- real processes for end-to-end tests of the agent command bus ------------------------------


class ServerProcess:
    """A botmox server process that can be SIGKILLed and restarted on the same port and data
    directory (what :func:`~botmox_core.testing.server.running_server` cannot do)::

        with ServerProcess(tmp_path / "data", env) as server:
            server.kill()      # SIGKILL by PID
            server.start()     # same URL, same data
    """

    def __init__(
        self, data_dir: Path, env: Mapping[str, str] | None = None, *, log_level: str = "info"
    ) -> None:
        from botmox_core.testing.server import free_port

        self.log_level = log_level
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "BOTMOX_DATA_DIR": str(data_dir),
            "BOTMOX_PUBLIC_URL": self.url,
            **(env or {}),
        }
        self.log_path = data_dir / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until it answers."""
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [
                    sys.executable,
                    "-m",
                    "botmox_core",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    self.log_level,
                ],
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"botmox server exited:\n{self.log()[-4000:]}")
            try:
                if httpx.get(self.url + "/api/v1/health/live", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"botmox server did not start:\n{self.log()[-4000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the server (by PID) and reap it."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def admin(self, *args: str) -> Any:
        """``botmox admin ... --json`` on this server's backends."""
        done = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "botmox_core", "admin", *args, "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"admin {args} failed: {done.stderr}")
        return json.loads(done.stdout)

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class AgentProcess:
    """``botmox agent run`` as a subprocess (stopped by PID)."""

    def __init__(
        self,
        app: str,
        state: Path,
        env: Mapping[str, str] | None = None,
        *,
        log_level: str = "info",
    ) -> None:
        self.log_level = log_level
        self.app = app
        self.state = state
        self.env = {**os.environ, **(env or {})}
        self.log_path = state.with_name(state.name + ".log")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(  # noqa: S603
                [
                    sys.executable,
                    "-m",
                    "botmox_core",
                    "agent",
                    "run",
                    "--app",
                    self.app,
                    "--state",
                    str(self.state),
                    "--log-level",
                    self.log_level,
                ],
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM (graceful shutdown) and wait; the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.process.returncode)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> AgentProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.kill()
