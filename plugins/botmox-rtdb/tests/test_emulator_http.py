"""The emulator's REST behaviour, pinned through plain HTTP so its fidelity cannot drift.

Each test states an RTDB rule (see docs/rtdb.md) and checks the emulator follows it.
"""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from botmox_rtdb.testing import ADMIN_TOKEN, RtdbEmulator, running_emulator
from botmox_rtdb.testing.push_ids import PUSH_ID_ALPHABET, PushIdGenerator

RULES = {
    "rules": {
        "items": {".indexOn": ["score", "nested/rank", ".value"]},
        "scores": {".indexOn": ".value"},
        "users": {"$uid": {"posts": {".indexOn": "at"}}},
    }
}


class Rtdb:
    """A tiny REST client for one namespace (query values JSON-encoded and URL-encoded)."""

    def __init__(self, host_port: str, namespace: str) -> None:
        self.base = f"http://{host_port}"
        self.namespace = namespace
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"

    def call(
        self, method: str, path: str, body: Any = ..., headers: dict[str, str] | None = None,
        **params: Any,
    ) -> requests.Response:
        query = {"ns": self.namespace}
        for name, value in params.items():
            if name in ("orderBy", "startAt", "endAt", "equalTo"):
                value = json.dumps(value)
            query[name] = str(value).lower() if isinstance(value, bool) else str(value)
        data = None if body is ... else json.dumps(body)
        return self.session.request(method, f"{self.base}/{path.strip('/')}.json", params=query,
                                    data=data, headers=headers or {}, timeout=10)

    def get(self, path: str, **params: Any) -> Any:
        response = self.call("GET", path, **params)
        assert response.status_code == 200, response.text
        return response.json()

    def put(self, path: str, body: Any) -> requests.Response:
        return self.call("PUT", path, body)


@pytest.fixture(scope="module")
def server() -> Iterator[RtdbEmulator]:
    emulator = RtdbEmulator(rules=RULES)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def api(server: RtdbEmulator) -> Rtdb:
    return Rtdb(server.host_port, f"ns-{uuid.uuid4().hex[:10]}")


# -- reads and writes ----------------------------------------------------------------------


def test_put_get_patch_delete_round_trip(api: Rtdb) -> None:
    assert api.put("a/b", {"x": 1, "y": "two"}).json() == {"x": 1, "y": "two"}
    assert api.get("a") == {"b": {"x": 1, "y": "two"}}
    response = api.call("PATCH", "a/b", {"y": None, "z": True, "deep/er": 3})
    assert response.status_code == 200
    assert api.get("a/b") == {"x": 1, "z": True, "deep": {"er": 3}}
    assert api.call("DELETE", "a/b").json() is None
    assert api.get("") is None


def test_missing_location_reads_null(api: Rtdb) -> None:
    assert api.get("nothing/here") is None


def test_null_writes_delete_and_empty_parents_are_pruned(api: Rtdb, server: RtdbEmulator) -> None:
    api.put("p/q/r", 1)
    api.put("p/keep", 2)
    api.put("p/q/r", None)
    assert api.get("p") == {"keep": 2}
    api.put("p/keep", {})
    assert server.read(api.namespace, "/") is None
    api.put("e", {"a": {}, "b": {"c": None}, "d": 0})
    assert api.get("e") == {"d": 0}


def test_writing_through_a_primitive_replaces_it(api: Rtdb) -> None:
    api.put("leaf", "text")
    api.put("leaf/child", 1)
    assert api.get("leaf") == {"child": 1}


def test_dense_integer_keys_read_back_as_arrays(api: Rtdb) -> None:
    api.put("arr", ["a", "b", "c"])
    assert api.get("arr") == ["a", "b", "c"]
    api.put("sparse", {"1": "x", "2": "y"})
    assert api.get("sparse") == [None, "x", "y"]
    api.put("too_sparse", {"1": "x", "9": "y"})
    assert api.get("too_sparse") == {"1": "x", "9": "y"}
    api.put("with_null", [1, None, 3])
    assert api.get("with_null") == [1, None, 3]
    assert api.get("with_null", shallow=True) == {"0": True, "2": True}


def test_integral_floats_read_back_as_integers(api: Rtdb) -> None:
    api.put("n", {"a": 1.0, "b": 2.5})
    assert api.get("n") == {"a": 1, "b": 2.5}
    assert isinstance(api.get("n/a"), int)


def test_patch_is_multi_path_and_refuses_overlapping_paths(api: Rtdb) -> None:
    api.put("m", {"a": {"x": 1}, "b": {"y": 2}})
    assert api.call("PATCH", "", {"m/a/x": 10, "m/b": None, "m/c/z": 3}).status_code == 200
    assert api.get("m") == {"a": {"x": 10}, "c": {"z": 3}}
    response = api.call("PATCH", "", {"m/a": {"x": 1}, "m/a/x": 2})
    assert response.status_code == 400
    assert api.get("m/a") == {"x": 10}
    assert api.call("PATCH", "m", [1, 2]).status_code == 400


def test_post_creates_a_push_id_child(api: Rtdb) -> None:
    names = [api.call("POST", "log", {"n": n}).json()["name"] for n in range(30)]
    assert all(len(name) == 20 and set(name) <= set(PUSH_ID_ALPHABET) for name in names)
    assert names == sorted(names), "push ids sort in creation order"
    assert len(set(names)) == 30
    stored = api.get("log")
    assert [stored[name]["n"] for name in names] == list(range(30))
    by_key = api.get("log", orderBy="$key", limitToFirst=3)
    assert list(by_key) == names[:3]


def test_push_ids_encode_time_and_increment_within_a_millisecond() -> None:
    generator = PushIdGenerator()
    first, second = generator.next_id(now_ms=1_700_000_000_000), generator.next_id(
        now_ms=1_700_000_000_000
    )
    later = generator.next_id(now_ms=1_700_000_000_001)
    assert first[:8] == second[:8] and first < second < later
    millis = 0
    for char in later[:8]:
        millis = millis * 64 + PUSH_ID_ALPHABET.index(char)
    assert millis == 1_700_000_000_001


def test_print_silent_answers_204_without_body(api: Rtdb) -> None:
    for method, body in (("PUT", {"a": 1}), ("PATCH", {"b": 2}), ("POST", 3)):
        response = api.call(method, "silent", body, print="silent")
        assert response.status_code == 204 and response.content == b""
    assert api.call("DELETE", "silent", print="silent").status_code == 204
    assert api.get("silent") is None


def test_invalid_json_is_refused(api: Rtdb) -> None:
    response = api.session.put(f"{api.base}/x.json", params={"ns": api.namespace},
                               data=b"{not json", timeout=10)
    assert response.status_code == 400
    assert "error" in response.json()
    response = api.session.put(f"{api.base}/x.json", params={"ns": api.namespace},
                               data=b"NaN", timeout=10)
    assert response.status_code == 400


def test_requests_without_admin_token_are_denied_by_default_rules(api: Rtdb) -> None:
    response = requests.get(f"{api.base}/.json", params={"ns": api.namespace}, timeout=10)
    assert response.status_code == 401
    assert response.json() == {"error": "Permission denied"}


def test_public_rules_allow_unauthenticated_access() -> None:
    with running_emulator(rules={"rules": {".read": True, ".write": True}}) as host_port:
        url = f"http://{host_port}/open.json"
        assert requests.put(url, params={"ns": "x"}, json=5, timeout=10).status_code == 200
        assert requests.get(url, params={"ns": "x"}, timeout=10).json() == 5


def test_namespaces_are_separate_databases(server: RtdbEmulator) -> None:
    one, two = Rtdb(server.host_port, "ns-one-x"), Rtdb(server.host_port, "ns-two-x")
    one.put("k", 1)
    assert two.get("k") is None


# -- shallow reads ------------------------------------------------------------------------


def test_shallow_read_truncates_children_to_true(api: Rtdb) -> None:
    api.put("s", {"obj": {"deep": {"er": 1}}, "num": 5, "text": "t", "flag": False})
    assert api.get("s", shallow=True) == {"obj": True, "num": True, "text": True, "flag": True}
    assert api.get("s/num", shallow=True) == 5
    assert api.get("s/none", shallow=True) is None


def test_shallow_with_query_parameters_is_refused(api: Rtdb) -> None:
    assert api.call("GET", "items", shallow=True, orderBy="$key").status_code == 400


# -- ordering and queries -----------------------------------------------------------------

MIXED = {
    "a": {"score": "b"},
    "b": {"score": 10},
    "c": {"score": True},
    "d": {"score": False},
    "e": {"other": 1},
    "f": {"score": {"x": 1}},
    "g": {"score": 2.5},
    "h": {"score": "A"},
    "i": {"score": 10},
    "j": {"score": -3},
}


def test_order_by_child_ranks_types_then_values_then_keys(api: Rtdb) -> None:
    api.put("items", MIXED)
    ordered = list(api.get("items", orderBy="score"))
    # null (missing) < false < true < numbers < strings < objects; ties by key.
    assert ordered == ["e", "d", "c", "j", "g", "b", "i", "h", "a", "f"]


def test_order_by_value_uses_the_same_type_ranks(api: Rtdb) -> None:
    api.put("scores", {"z": 3, "y": "3", "x": True, "w": 1, "v": {"o": 1}, "u": 1})
    assert list(api.get("scores", orderBy="$value")) == ["x", "u", "w", "z", "y", "v"]


def test_keys_that_are_32_bit_integers_sort_first_numerically(api: Rtdb) -> None:
    keys = ["b", "10", "9", "-5", "a", "2147483647", "2147483648", "01", "1", "A", "_"]
    api.put("keys", dict.fromkeys(keys, 1))
    ordered = list(api.get("keys", orderBy="$key"))
    assert ordered == ["-5", "1", "01", "9", "10", "2147483647", "2147483648", "A", "_", "a", "b"]


def test_strings_compare_by_utf16_code_units(api: Rtdb) -> None:
    # U+FF5E (BMP) sorts after U+1F600 (astral: surrogates 0xD83D...) in UTF-16, the reverse
    # of code point order.
    api.put("scores", {"bmp": "\uff5e", "astral": "\U0001f600"})
    assert list(api.get("scores", orderBy="$value")) == ["astral", "bmp"]


def test_order_by_nested_child_path(api: Rtdb) -> None:
    api.put("items", {"p": {"nested": {"rank": 2}}, "q": {"nested": {"rank": 1}}, "r": {}})
    api.put("items/r", {"nested": {"rank": 0}})
    assert list(api.get("items", orderBy="nested/rank")) == ["r", "q", "p"]


def test_range_filters_and_equal_to(api: Rtdb) -> None:
    api.put("items", MIXED)
    assert list(api.get("items", orderBy="score", startAt=0, endAt=10)) == ["g", "b", "i"]
    assert list(api.get("items", orderBy="score", equalTo=10)) == ["b", "i"]
    assert list(api.get("items", orderBy="score", startAt="B")) == ["a", "f"]
    assert list(api.get("items", orderBy="score", endAt=False)) == ["e", "d"]
    assert list(api.get("items", orderBy="score", equalTo="10")) == []
    assert list(api.get("items", orderBy="$key", startAt="c", endAt="e")) == ["c", "d", "e"]


def test_limits_apply_after_ordering_and_filtering(api: Rtdb) -> None:
    api.put("items", MIXED)
    assert list(api.get("items", orderBy="score", limitToFirst=2)) == ["e", "d"]
    assert list(api.get("items", orderBy="score", limitToLast=2)) == ["a", "f"]
    assert list(api.get("items", orderBy="score", startAt=0, limitToLast=2)) == ["a", "f"]
    assert list(api.get("items", orderBy="score", equalTo=10, limitToFirst=1)) == ["b"]
    assert api.get("items", orderBy="score", limitToFirst=0) == {}


def test_query_on_missing_location_is_null_and_no_match_is_empty(api: Rtdb) -> None:
    assert api.get("items", orderBy="score", equalTo=1) is None
    api.put("items", {"a": {"score": 2}})
    assert api.get("items", orderBy="score", equalTo=1) == {}


@pytest.mark.parametrize(
    "params",
    [
        {"limitToFirst": 1},
        {"orderBy": "score", "limitToFirst": 1, "limitToLast": 1},
        {"orderBy": "score", "equalTo": 1, "startAt": 0},
        {"orderBy": "score", "limitToFirst": -1},
        {"orderBy": "$key", "startAt": 5},
        {"orderBy": "score", "startAt": {"o": 1}},
    ],
)
def test_malformed_queries_are_refused(api: Rtdb, params: dict[str, Any]) -> None:
    response = api.call("GET", "items", **params)
    assert response.status_code == 400 and "error" in response.json()


def test_order_by_child_without_index_is_refused_like_the_real_service(api: Rtdb) -> None:
    api.put("items", MIXED)
    response = api.call("GET", "items", orderBy="other")
    assert response.status_code == 400
    assert response.json() == {
        "error": 'Index not defined, add ".indexOn": "other", for path "/items", to the rules'
    }
    response = api.call("GET", "keys", orderBy="$value")
    assert response.json()["error"].startswith('Index not defined, add ".indexOn": ".value"')
    # $key needs no index; wildcard rules apply per location.
    assert api.call("GET", "unindexed", orderBy="$key").status_code == 200
    assert api.call("GET", "users/u1/posts", orderBy="at").status_code == 200
    assert api.call("GET", "users/u1/other", orderBy="at").status_code == 400


def test_rules_can_be_replaced_over_rest(server: RtdbEmulator, api: Rtdb) -> None:
    original = api.get("/.settings/rules")
    try:
        document = {"rules": {"fresh": {".indexOn": "k"}}}
        assert api.call("PUT", "/.settings/rules", document).status_code == 200
        assert api.call("GET", "fresh", orderBy="k").status_code == 200
        assert api.call("GET", "items", orderBy="score").status_code == 400
        assert api.call("PUT", "/.settings/rules", {"rules": {".indexOn": 5}}).status_code == 400
    finally:
        server.set_rules(original)


# -- ETags and conditional writes ----------------------------------------------------------


def test_etag_on_request_and_conditional_put(api: Rtdb) -> None:
    api.put("doc", {"v": 1})
    response = api.call("GET", "doc", headers={"X-Firebase-ETag": "true"})
    etag = response.headers["ETag"]
    assert response.json() == {"v": 1} and etag
    assert "ETag" not in api.call("GET", "doc").headers

    ok = api.call("PUT", "doc", {"v": 2}, headers={"if-match": etag})
    assert ok.status_code == 200 and ok.json() == {"v": 2}
    new_etag = ok.headers["ETag"]
    assert new_etag != etag

    stale = api.call("PUT", "doc", {"v": 3}, headers={"if-match": etag})
    assert stale.status_code == 412
    assert stale.json() == {"v": 2}, "412 carries the current value"
    assert stale.headers["ETag"] == new_etag, "and the current ETag"
    assert api.get("doc") == {"v": 2}


def test_etag_of_a_missing_location_allows_conditional_create(api: Rtdb) -> None:
    response = api.call("GET", "new", headers={"X-Firebase-ETag": "true"})
    assert response.json() is None
    etag = response.headers["ETag"]
    assert api.call("PUT", "new", 1, headers={"if-match": etag}).status_code == 200
    assert api.call("PUT", "new", 2, headers={"if-match": etag}).status_code == 412
    assert api.get("new") == 1


def test_conditional_delete_and_if_none_match(api: Rtdb) -> None:
    api.put("d", {"a": 1})
    etag = api.call("GET", "d", headers={"X-Firebase-ETag": "true"}).headers["ETag"]
    assert api.call("GET", "d", headers={"if-none-match": etag}).status_code == 304
    assert api.call("DELETE", "d", headers={"if-match": "stale"}).status_code == 412
    assert api.call("DELETE", "d", headers={"if-match": etag}).status_code == 200
    assert api.get("d") is None


def test_etag_changes_when_a_descendant_changes(api: Rtdb) -> None:
    api.put("tree", {"a": {"b": 1}})
    before = api.call("GET", "tree", headers={"X-Firebase-ETag": "true"}).headers["ETag"]
    api.put("tree/a/b", 2)
    after = api.call("GET", "tree", headers={"X-Firebase-ETag": "true"}).headers["ETag"]
    assert before != after


# -- key and depth limits -----------------------------------------------------------------


@pytest.mark.parametrize("char", [".", "#", "$", "[", "]", "\x00", "\x1f", "\x7f"])
def test_forbidden_characters_in_data_keys_are_refused(api: Rtdb, char: str) -> None:
    api.put("safe", {"kept": 1})
    response = api.put("safe", {f"a{char}b": 1})
    assert response.status_code == 400 and "error" in response.json()
    assert api.get("safe") == {"kept": 1}, "nothing of a refused write is stored"


@pytest.mark.parametrize("segment", ["a.b", "a%23b", "a$b", "a%5Bb", "a%5Db", "a%01b"])
def test_forbidden_characters_in_paths_are_refused(api: Rtdb, segment: str) -> None:
    url = f"{api.base}/x/{segment}.json"
    response = api.session.put(url, params={"ns": api.namespace}, data="1", timeout=10)
    assert response.status_code == 400, segment
    assert api.get("x") is None


def test_key_length_limit_is_768_utf8_bytes(api: Rtdb) -> None:
    assert api.put("k", {"é" * 384: 1}).status_code == 200  # 768 bytes
    assert api.put("k2", {"é" * 384 + "x": 1}).status_code == 400
    assert api.get("k2") is None


def test_depth_limit_is_32_levels(api: Rtdb) -> None:
    path = "/".join(f"l{n}" for n in range(31))
    assert api.put(path, {"leaf": 1}).status_code == 200  # 32 levels
    assert api.put(path, {"leaf": {"too": 1}}).status_code == 400
    deep_path = "/".join(f"l{n}" for n in range(33))
    assert api.put(deep_path, 1).status_code == 400
    assert api.call("PATCH", "", {path + "/leaf/x": 1}).status_code == 400


@pytest.mark.parametrize("param", ["startAfter", "endBefore", "format", "callback"])
def test_unsupported_parameters_are_refused_not_ignored(api: Rtdb, param: str) -> None:
    response = api.call("GET", "items", orderBy="$key", **{param: '"x"'})
    assert response.status_code == 400 and "not supported" in response.json()["error"]


def test_method_override_turns_a_post_into_a_patch(api: Rtdb) -> None:
    api.put("o", {"a": 1})
    response = api.call("POST", "o", {"b": 2}, headers={"X-HTTP-Method-Override": "PATCH"})
    assert response.status_code == 200
    assert api.get("o") == {"a": 1, "b": 2}


def test_stop_closes_kept_alive_connections() -> None:
    session = requests.Session()
    with running_emulator(rules={"rules": {".read": True, ".write": True}}) as host_port:
        url = f"http://{host_port}/k.json"
        assert session.put(url, params={"ns": "x"}, json=1, timeout=10).status_code == 200
    with pytest.raises(requests.ConnectionError):
        session.get(url, params={"ns": "x"}, timeout=10)
    session.close()


def test_if_match_is_refused_on_patch_and_post(api: Rtdb) -> None:
    api.put("c", {"a": 1})
    etag = api.call("GET", "c", headers={"X-Firebase-ETag": "true"}).headers["ETag"]
    for method in ("PATCH", "POST"):
        response = api.call(method, "c", {"b": 2}, headers={"if-match": etag})
        assert response.status_code == 400
    assert api.get("c") == {"a": 1}


def test_etag_is_refused_with_shallow_reads_and_queries(api: Rtdb) -> None:
    headers = {"X-Firebase-ETag": "true"}
    assert api.call("GET", "items", headers=headers, shallow=True).status_code == 400
    assert api.call("GET", "items", headers=headers, orderBy="$key").status_code == 400


# -- behaviours where the emulator used to differ from the real service (docs/rtdb.md) --------


def test_get_with_print_silent_answers_204_like_a_write(api: Rtdb) -> None:
    """The REST guide (retrieve data, "print"): "Specifying print=silent returns a 204 No
    Content on success" -- for a GET too."""
    api.put("items", {"a": {"score": 1}})
    response = api.call("GET", "items", print="silent")
    assert response.status_code == 204 and response.content == b""
    query = api.call("GET", "items", print="silent", orderBy="score")
    assert query.status_code == 204 and query.content == b""
    refused = api.call("GET", "items", print="silent", orderBy="nope")
    assert refused.status_code == 400, "a query that is refused is still refused"


def test_if_none_match_alone_answers_the_new_etag(api: Rtdb) -> None:
    """firebase-admin's get_if_changed() sends only if-none-match and takes the new ETag from
    the 200 answer, so the service must send it without X-Firebase-ETag."""
    api.put("d", {"a": 1})
    current = api.call("GET", "d", headers={"X-Firebase-ETag": "true"}).headers["ETag"]
    changed = api.call("GET", "d", headers={"if-none-match": "stale"})
    assert changed.status_code == 200 and changed.json() == {"a": 1}
    assert changed.headers["ETag"] == current
    assert "ETag" not in api.call("GET", "d").headers


def test_keys_with_non_ascii_digits_sort_as_strings(api: Rtdb) -> None:
    """The SDKs' integer-key test is the JavaScript regex ^-?(0*)\\d{1,10}$, where \\d is ASCII:
    Arabic-Indic or full-width digits are ordinary strings (Python's int() would accept them)."""
    keys = ["\u0661\u0662", "\uff13", "2", "10", "a"]
    api.put("digits", dict.fromkeys(keys, 1))
    assert list(api.get("digits", orderBy="$key")) == ["2", "10", "a", "\u0661\u0662", "\uff13"]
    assert list(api.get("digits", orderBy="$key", startAt="\u0661")) == ["\u0661\u0662", "\uff13"]


def test_url_paths_are_percent_decoded_as_utf8(api: Rtdb) -> None:
    for raw, key in (("a%41", "aA"), ("a%3Fb", "a?b"), ("a%25b", "a%b"), ("%C3%A9", "é"),
                     ("a+b", "a+b"), ("a%2Bb", "a+b"), ("a%20b", "a b")):
        url = f"{api.base}/pct/{raw}.json"
        assert api.session.put(url, params={"ns": api.namespace}, data="1",
                               timeout=10).status_code == 200, raw
        assert key in api.get("pct"), raw
        api.call("DELETE", "pct")


@pytest.mark.parametrize("raw", ["a%zz", "a%4", "100%", "%FF", "%C3"])
def test_malformed_or_non_utf8_escapes_in_paths_are_refused(api: Rtdb, raw: str) -> None:
    # http.client sends the path as written (requests would re-quote a lone '%' as %25).
    connection = http.client.HTTPConnection(api.base.removeprefix("http://"), timeout=10)
    try:
        connection.request("PUT", f"/pct/{raw}.json?ns={api.namespace}", body=b"1",
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        response = connection.getresponse()
        assert response.status == 400, raw
        response.read()
    finally:
        connection.close()
    assert api.get("pct") is None


def test_push_that_would_be_the_33rd_level_is_refused(api: Rtdb) -> None:
    path = "/".join(f"l{n}" for n in range(32))
    assert api.put(path, 1).status_code == 200  # a leaf 32 keys deep
    assert api.call("POST", path, 1).status_code == 400
    assert api.call("POST", path, {"x": 1}).status_code == 400
    assert api.get(path) == 1


def test_a_body_nested_past_the_parser_is_400_not_500(api: Rtdb) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    response = api.session.put(f"{api.base}/deep.json", params={"ns": api.namespace},
                               data=body, timeout=30)
    assert response.status_code == 400
    assert api.get("deep") is None


def test_strings_with_lone_surrogates_are_answered_as_json_escapes(api: Rtdb) -> None:
    response = api.session.put(f"{api.base}/s.json", params={"ns": api.namespace},
                               data=b'"a\\ud800"', timeout=10)
    assert response.status_code == 200
    assert api.get("s") == "a\ud800"
