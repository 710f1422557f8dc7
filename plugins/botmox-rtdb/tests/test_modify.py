"""``LeaseRepository.modify`` on RTDB keeps the port's rules (one helper,
:mod:`botmox_core.ports.modify`): a change must return a lease with the same id and tenant, and a
change that leaves the lease equal sends no write. Writes are counted at the emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from botmox_rtdb import RtdbBackend
from botmox_rtdb.testing import RtdbEmulator

from botmox_core.errors import BadRequestError
from botmox_core.models import Lease
from botmox_core.testing.repository import make_lease


@pytest.fixture
def writes(emulator: RtdbEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The paths of the write requests (PUT, PATCH, POST, DELETE) the emulator receives."""
    seen: list[str] = []
    handle = emulator.handle

    def counting(method: str, raw_path: str, *args: Any) -> Any:
        if method != "GET":
            seen.append(raw_path)
        return handle(method, raw_path, *args)

    monkeypatch.setattr(emulator, "handle", counting)
    yield seen


def _stored(rtdb: RtdbBackend) -> Lease:
    lease = make_lease("t1")
    with rtdb.unit_of_work() as uow:
        uow.leases.add(lease)
        uow.commit()
    return lease


def test_an_unchanged_lease_is_not_written(rtdb: RtdbBackend, writes: list[str]) -> None:
    """Before: the compare-and-set wrote the same value back."""
    lease = _stored(rtdb)
    writes.clear()
    assert rtdb.unit_of_work().leases.modify("t1", lease.id, attrs.evolve) == lease
    assert writes == []
    changed = rtdb.unit_of_work().leases.modify(
        "t1", lease.id, lambda cur: attrs.evolve(cur, version="2")
    )
    assert changed is not None and changed.version == "2"
    assert len(writes) == 1


def test_an_unchanged_pending_lease_stays_pending(rtdb: RtdbBackend) -> None:
    lease = make_lease("t1")
    with rtdb.unit_of_work() as uow:
        uow.leases.add(lease)
        assert uow.leases.modify("t1", lease.id, attrs.evolve) == lease
        changed = uow.leases.modify("t1", lease.id, lambda cur: attrs.evolve(cur, version="2"))
        assert changed is not None and uow.leases.get("t1", lease.id) == changed
        uow.commit()
    with rtdb.unit_of_work() as uow:
        assert uow.leases.get("t1", lease.id) == changed


@pytest.mark.parametrize("pending", [False, True], ids=["stored", "pending"])
@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(lambda cur: {"id": cur.id}, "must return a Lease", id="not-a-lease"),
        pytest.param(lambda cur: None, "must return a Lease", id="none"),
        pytest.param(lambda cur: attrs.evolve(cur, tenant_id="t2"), "id or tenant", id="tenant"),
        pytest.param(lambda cur: attrs.evolve(cur, id="lease_x"), "id or tenant", id="id"),
    ],
)
def test_a_change_that_breaks_the_rules_is_refused_and_writes_nothing(
    rtdb: RtdbBackend,
    writes: list[str],
    pending: bool,
    change: Callable[[Any], Any],
    message: str,
) -> None:
    """Before: no type check (an ``AttributeError``, a 500)."""
    lease = make_lease("t1")
    with rtdb.unit_of_work() as uow:
        uow.leases.add(lease)
        if not pending:
            uow.commit()
            writes.clear()
        with pytest.raises(BadRequestError, match=message):
            uow.leases.modify("t1", lease.id, change)
        uow.commit()
    if not pending:
        assert writes == []
    with rtdb.unit_of_work() as uow:
        assert uow.leases.get("t1", lease.id) == lease
