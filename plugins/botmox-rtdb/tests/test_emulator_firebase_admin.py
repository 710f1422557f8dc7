"""The emulator as the real firebase-admin client sees it (``FIREBASE_DATABASE_EMULATOR_HOST``):
the SDK calls the plugin relies on behave as the RTDB documentation says."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import firebase_admin
import pytest
from botmox_rtdb.testing import RtdbEmulator
from firebase_admin import db, exceptions

RULES = {"rules": {"items": {".indexOn": ["score"]}, "counters": {}}}


@pytest.fixture(scope="module")
def server() -> Iterator[RtdbEmulator]:
    emulator = RtdbEmulator(rules=RULES)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def app(server: RtdbEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[firebase_admin.App]:
    """An app configured the documented way: the emulator host variable and an https URL."""
    monkeypatch.setenv("FIREBASE_DATABASE_EMULATOR_HOST", server.host_port)
    namespace = f"sdk-{uuid.uuid4().hex[:10]}"
    app = firebase_admin.initialize_app(
        _NoCredential(), {"databaseURL": f"https://{namespace}.firebaseio.com"},
        name=f"sdk-test-{uuid.uuid4().hex}",
    )
    yield app
    firebase_admin.delete_app(app)


class _NoCredential(firebase_admin.credentials.Base):  # type: ignore[misc]
    def get_credential(self) -> None:
        raise AssertionError("an emulator connection must not ask for a Google credential")


def test_sdk_sends_the_namespace_and_owner_token(app: firebase_admin.App,
                                                 server: RtdbEmulator) -> None:
    db.reference("hello", app=app).set({"who": "sdk"})
    namespace = app.options.get("databaseURL").split("//")[1].split(".")[0]
    assert server.read(namespace, "hello") == {"who": "sdk"}


def test_set_get_update_push_delete(app: firebase_admin.App) -> None:
    ref = db.reference("things", app=app)
    ref.set({"a": 1})
    ref.update({"b/c": 2, "a": None})
    assert ref.get() == {"b": {"c": 2}}
    pushed = ref.push({"n": 1})
    assert len(pushed.key) == 20 and pushed.get() == {"n": 1}
    ref.delete()
    assert ref.get() is None


def test_shallow_get(app: firebase_admin.App) -> None:
    ref = db.reference("shallow", app=app)
    ref.set({"x": {"deep": 1}, "y": 2})
    assert ref.get(shallow=True) == {"x": True, "y": True}


def test_order_by_child_with_mixed_types(app: firebase_admin.App) -> None:
    ref = db.reference("items", app=app)
    ref.set({"s": {"score": "z"}, "n": {"score": 3}, "t": {"score": True},
             "m": {"none": 0}, "o": {"score": {"k": 1}}, "f": {"score": False}, "a": {"score": 3}})
    result = ref.order_by_child("score").get()
    assert list(result) == ["m", "f", "t", "a", "n", "s", "o"]
    assert list(ref.order_by_child("score").equal_to(3).get()) == ["a", "n"]
    assert list(ref.order_by_child("score").start_at(3).limit_to_first(3).get()) == ["a", "n", "s"]
    assert list(ref.order_by_child("score").limit_to_last(1).get()) == ["o"]
    assert list(ref.order_by_key().start_at("n").end_at("s").get()) == ["n", "o", "s"]


def test_missing_index_raises_invalid_argument(app: firebase_admin.App) -> None:
    ref = db.reference("items", app=app)
    ref.set({"a": {"other": 1}})
    with pytest.raises(exceptions.InvalidArgumentError, match="Index not defined"):
        ref.order_by_child("other").get()


def test_invalid_key_raises_invalid_argument(app: firebase_admin.App) -> None:
    ref = db.reference("keys", app=app)
    for bad in ("a.b", "a#b", "a$b", "a[b", "a]b", "a\x01b"):
        with pytest.raises(exceptions.InvalidArgumentError):
            ref.set({bad: 1})
    assert ref.get() is None


def test_etag_get_and_set_if_unchanged(app: firebase_admin.App) -> None:
    ref = db.reference("doc", app=app)
    ref.set({"v": 1})
    value, etag = ref.get(etag=True)
    assert value == {"v": 1}
    ok, new_value, new_etag = ref.set_if_unchanged(etag, {"v": 2})
    assert ok and new_value == {"v": 2} and new_etag != etag
    ok, current, current_etag = ref.set_if_unchanged(etag, {"v": 3})
    assert not ok and current == {"v": 2} and current_etag == new_etag
    changed, _, _ = ref.get_if_changed(new_etag)
    assert changed is False


def test_transaction_retries_on_conflict_and_loses_no_increment(app: firebase_admin.App) -> None:
    ref = db.reference("counters/hits", app=app)
    threads, per_thread = 4, 15
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait(timeout=10)
            for _ in range(per_thread):
                ref.transaction(lambda current: (current or 0) + 1)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    # firebase-admin gives up after 25 conflicting attempts; under this contention it should not.
    assert not errors, errors
    assert ref.get() == threads * per_thread


def test_dense_integer_keys_come_back_as_a_list(app: firebase_admin.App) -> None:
    ref = db.reference("releases", app=app)
    ref.update({"1": {"id": 1}, "2": {"id": 2}})
    assert ref.get() == [None, {"id": 1}, {"id": 2}]


def test_get_if_changed_returns_the_new_etag(app: firebase_admin.App) -> None:
    """firebase-admin sends only if-none-match and reads the ETag from the 200 answer."""
    ref = db.reference("watched", app=app)
    ref.set({"v": 1})
    _, old_etag = ref.get(etag=True)
    ref.set({"v": 2})
    changed, value, etag = ref.get_if_changed(old_etag)
    assert changed is True and value == {"v": 2}
    assert etag is not None and etag == ref.get(etag=True)[1]
    assert ref.get_if_changed(etag) == (False, None, None)


def test_keys_with_percent_and_question_mark_need_encoding_through_the_sdk(
    app: firebase_admin.App, server: RtdbEmulator
) -> None:
    """What the plugin guards against (botmox_rtdb.layout.url_path): the SDK puts a path in the
    URL as it is, so the server decodes '%41', and it refuses '?' outright."""
    db.reference("raw/a%41", app=app).set(1)
    namespace = app.options.get("databaseURL").split("//")[1].split(".")[0]
    assert server.read(namespace, "raw") == {"aA": 1}
    with pytest.raises(ValueError, match="illegal characters"):
        db.reference("raw/a?b", app=app)
    db.reference("raw/a%2541", app=app).set(2)
    db.reference("raw/a%3Fb", app=app).set(3)
    assert server.read(namespace, "raw") == {"aA": 1, "a%41": 2, "a?b": 3}
