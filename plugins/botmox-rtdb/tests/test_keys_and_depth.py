"""Where the emulator could hide a bug against real Firebase: keys that a REST URL would mangle,
and the 32-level depth limit. Real firebase-admin, real HTTP, the emulator's tree read out of
band (see docs/rtdb.md, "Keys from user input" and "Depth")."""

from __future__ import annotations

from typing import Any

import pytest
from botmox_rtdb import RtdbBackend, layout
from botmox_rtdb.records import MAX_METADATA_DEPTH
from botmox_rtdb.testing import RtdbEmulator
from test_backend import NOW, commit, lease, release, vm

from botmox_core.errors import BadRequestError
from botmox_core.models import AuditEvent, AuditResult, DownloadAuditEntry, Entitlement


def nested(levels: int) -> Any:
    """``{"k": {"k": ... 1}}`` with ``levels`` keys above the leaf."""
    value: Any = 1
    for _ in range(levels):
        value = {"k": value}
    return value


# -- keys: legal RTDB key characters a URL would change ----------------------------------------

# Each is a legal RTDB key; each would be changed or refused on the way through a REST URL
# unless percent-encoded: % starts an escape, ? starts the query (firebase-admin refuses it),
# & = ; , + are query/sub-delimiters, space, quotes and non-ASCII must be escaped, ' ( ) * ! are
# left alone by encodeURIComponent.
ODD_KEYS = ["a%41", "a%zz", "100%", "%2F", "a?b", "a&b=c;d,e", "a+b", "a b", "é€😀", "a:b@c",
            "'(x)*!~", 'q"<>\\^`{|}']


@pytest.mark.parametrize("key", ODD_KEYS)
def test_keys_with_url_characters_are_stored_and_read_exactly(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str, key: str
) -> None:
    stored_vm = commit(rtdb, lambda uow: uow.vms.upsert(vm(tenant=key, vm_uuid=key, user_id=key)))
    commit(rtdb, lambda uow: uow.leases.add(lease(tenant=key, lease_id=key, user_id=key)))
    published = commit(rtdb, lambda uow: uow.releases.add(release(tenant=key)))
    commit(rtdb, lambda uow: uow.licences.put_entitlement(
        Entitlement(key, key, frozenset({key}), NOW)))

    assert list(emulator.read(namespace, "tenants")) == [key], "stored under the key itself"
    tree = emulator.read(namespace, "tenants")[key]
    assert list(tree["vm_registry"]) == [key]
    assert list(tree["execution_leases"]) == [key]
    assert tree["entitlements"][key]["modules"] == {key: True}
    with rtdb.unit_of_work() as uow:
        assert uow.vms.get(key, key) == stored_vm
        got_lease = uow.leases.get(key, key)
        assert got_lease is not None and got_lease.user_id == key
        assert uow.releases.list(key, module="fishing") == [published]
        entitlement = uow.licences.get_entitlement(key, key)
        assert entitlement is not None and entitlement.modules == frozenset({key})
    changed = rtdb.unit_of_work().leases.modify(key, key, lambda current: current)
    assert changed is not None and changed.id == key
    assert list(emulator.read(namespace, "tenants")) == [key], "no decoded twin was created"


def test_percent_escape_in_a_key_is_never_decoded(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    """The issue's case: ``a%41`` must not become ``aA`` (in reads or in writes)."""
    commit(rtdb, lambda uow: uow.leases.add(lease(tenant="a%41")))
    commit(rtdb, lambda uow: uow.vms.upsert(vm(tenant="a%41")))
    assert emulator.read(namespace, "tenants/aA") is None
    assert set(emulator.read(namespace, "tenants/a%41")) == {"execution_leases", "vm_registry"}
    with rtdb.unit_of_work() as uow:
        assert uow.vms.get("aA", "vm-0001") is None
        assert uow.vms.get("a%41", "vm-0001") is not None


def test_url_path_encodes_every_key_as_encode_uri_component() -> None:
    assert layout.url_path("tenants/a%41/x?y/a b/é") == "tenants/a%2541/x%3Fy/a%20b/%C3%A9"
    assert layout.url_path("a+b/c&d=e/'(x)*!~-_.") == "a%2Bb/c%26d%3De/'(x)*!~-_."
    assert layout.url_path("/") == ""


@pytest.mark.parametrize("bad", ["x\ud800", "\udfff"])
def test_keys_that_are_not_unicode_text_are_invalid_key(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str, bad: str
) -> None:
    for attempt in (lambda uow: uow.vms.upsert(vm(tenant=bad)),
                    lambda uow: uow.vms.upsert(vm(user_id=bad)),
                    lambda uow: uow.leases.add(lease(lease_id=bad)),
                    lambda uow: uow.vms.get("t1", bad)):
        with pytest.raises(BadRequestError) as caught:
            commit(rtdb, attempt)
        assert caught.value.code == "INVALID_KEY" and caught.value.status == 400
    assert emulator.read(namespace, "/") is None


def test_metadata_with_lone_surrogates_round_trips_as_ascii_json_text(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    metadata = {"k\ud800": "v\udfff", "ok": "é"}
    commit(rtdb, lambda uow: uow.vms.upsert(vm(metadata=metadata)))
    stored = emulator.read(namespace, "tenants/t1/vm_registry/vm-0001/metadata")
    assert isinstance(stored, str) and stored.isascii()
    with rtdb.unit_of_work() as uow:
        got = uow.vms.get("t1", "vm-0001")
    assert got is not None and got.metadata == metadata


# -- depth: 32 levels from the database root ------------------------------------------------

VM_METADATA = "tenants/t1/vm_registry/vm-0001/metadata"  # 5 keys: 27 levels are left below it


def test_metadata_filling_the_32_levels_exactly_is_stored_as_an_object(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    commit(rtdb, lambda uow: uow.vms.upsert(vm(metadata=nested(27))))
    assert emulator.read(namespace, VM_METADATA) == nested(27)


@pytest.mark.parametrize("levels", [28, 40, MAX_METADATA_DEPTH])
def test_metadata_too_deep_for_rtdb_is_stored_as_json_text_and_reads_back(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str, levels: int
) -> None:
    """Before: RTDB refused the commit (a 502 DatabaseError), the VM was not saved at all."""
    commit(rtdb, lambda uow: uow.vms.upsert(vm(metadata=nested(levels))))
    assert isinstance(emulator.read(namespace, VM_METADATA), str)
    with rtdb.unit_of_work() as uow:
        got = uow.vms.get("t1", "vm-0001")
    assert got is not None and got.metadata == nested(levels)


def test_audit_metadata_too_deep_is_stored_as_json_text(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    entry = DownloadAuditEntry("t1", AuditEvent.RESOLVE_DENIED, AuditResult.DENIED, NOW,
                               metadata=nested(30))
    commit(rtdb, lambda uow: uow.audit.append(entry))
    assert isinstance(emulator.read(namespace, "tenants/t1/download_audit/1/metadata"), str)
    with rtdb.unit_of_work() as uow:
        assert [e.metadata for e in uow.audit.list("t1")] == [nested(30)]


def test_metadata_nested_beyond_any_encoding_is_refused_and_nothing_written(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    """Before: a RecursionError (a 500) from the converter or the survival check."""
    with rtdb.unit_of_work() as uow:
        uow.leases.add(lease())
        for levels in (MAX_METADATA_DEPTH + 1, 5000):
            with pytest.raises(BadRequestError) as caught:
                uow.vms.upsert(vm(metadata=nested(levels)))
            assert caught.value.status == 400
            assert caught.value.details == {"field": "metadata", "depth": levels,
                                            "max_depth": MAX_METADATA_DEPTH}
    assert emulator.read(namespace, "/") is None


def test_a_pending_value_too_deep_fails_the_commit_before_any_write(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    """Every pending value is checked before the first write: no lease is created and undone,
    no partial multi-path update, and the error is a 400 naming the limit (before: the
    database refused it mid-commit, a 502)."""
    with rtdb.unit_of_work() as uow:
        uow.vms.upsert(vm())
        uow.leases.add(lease())
        pending = uow.buffer.pending_conditional("tenants/t1/execution_leases/lease_1")
        assert pending is not None
        pending.pending_value = {**pending.pending_value, "extra": nested(30)}
        with pytest.raises(BadRequestError) as caught:
            uow.commit()
    assert caught.value.code == "BAD_REQUEST" and caught.value.status == 400
    assert caught.value.details == {"field": "add lease", "depth": 35,
                                    "max_depth": layout.MAX_DEPTH}
    assert emulator.read(namespace, "/") is None


def test_a_plain_write_too_deep_is_refused_when_staged(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    with rtdb.unit_of_work() as uow:
        uow.buffer.stage_write("tenants/t1/x", nested(29))  # 3 + 29 = 32 levels: allowed
        with pytest.raises(BadRequestError, match="33 levels deep"):
            uow.buffer.stage_write("tenants/t1/y", nested(30))
    assert emulator.read(namespace, "/") is None


def test_value_depth_counts_stored_leaves_only_and_needs_no_recursion() -> None:
    assert layout.value_depth(1) == 0
    assert layout.value_depth({"a": 1, "b": {"c": [1, 2]}}) == 3
    assert layout.value_depth({"a": None, "b": {}, "c": []}) == 0
    assert layout.value_depth(nested(100_000)) == 100_000
    assert layout.path_depth("/tenants//t1/") == 2
