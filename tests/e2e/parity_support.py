"""The parity harness's parts (see ``tests/e2e/test_parity.py``): the three servers, sending one
request to all of them, normalising what they answer, and the request strategies.

Normalising makes answers of different servers comparable without hiding differences:

- **Generated ids.** Each server makes its own push ids. The harness names the id a server
  generated at its ``n``-th create ``<gen:n>`` (the same ``n`` on every server: the requests are
  the same) and writes that name wherever the id appears in an answer, also inside messages.
  Requests address a generated record by its name (:class:`Sym`), sent as that server's real id.
- **Server stamps.** ``created_at``, ``updated_at``, lifecycle ``timestamp`` / ``unbanned_at``
  and a ``ban_timestamp`` that falls back to now are the server's clock. The harness keeps the
  wall-clock window of every request it sent to a server (requests to one server never share a
  millisecond) and replaces an integer inside the window of request ``k`` with ``<now@k>``:
  which request stamped a value (so presence and order) is compared, not the millisecond. The
  values the harness sends never fall into such a window (client ``created_at`` values are far
  from now).
- **Exact JSON.** Answers are compared as canonical JSON text (keys sorted): ``2`` and ``2.0``,
  ``1`` and ``true``, ``0`` and ``-0.0`` differ; key order inside an object does not count
  (JSON objects are unordered, and PostgreSQL ``jsonb`` orders keys its own way).
"""

from __future__ import annotations

import bisect
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
import httpx
from hypothesis import strategies as st

from botmox_core.testing.server import RunningServer, admin_cli, running_server
from tests.e2e.conftest import stack_env

TENANT, OTHER_TENANT = "parity-a", "parity-b"
STACKS = ("embedded", "supabase", "rtdb")

#: Every record collection by its API path.
COLLECTIONS = (
    "/api/v1/resources/licenses",
    "/api/v1/resources/proxies",
    "/api/v1/resources/subscriptions",
    "/api/v1/workspace/notes",
    "/api/v1/workspace/calendar",
    "/api/v1/workspace/kanban",
    "/api/v1/bots",
    "/api/v1/finance/operations",
)
BOTS = "/api/v1/bots"
FINANCE = "/api/v1/finance/operations"
#: The collection a sequence mostly writes to (one per sequence, so its lists hold several
#: records), else any.
SOME_COLLECTION = st.one_of(
    st.shared(st.sampled_from(COLLECTIONS), key="parity-focus"),
    st.shared(st.sampled_from(COLLECTIONS), key="parity-focus"),
    st.sampled_from(COLLECTIONS),
)


@attrs.frozen
class Sym:
    """A generated id by its harness name, sent as each server's real id."""

    name: str

    def __str__(self) -> str:
        return f"<{self.name}>"


@attrs.frozen
class Ref:
    """A record the sequence created (it may have been deleted since): its collection and id
    (a client id as text, a generated one as :class:`Sym`)."""

    collection: str
    key: str | Sym

    def __str__(self) -> str:
        return f"{self.collection}/{self.key}"


@attrs.frozen
class Request:
    """One request of a sequence, as the harness prints it (ids symbolic)."""

    method: str
    path: tuple[str | Sym, ...]
    params: Mapping[str, str] | None = None
    body: Any = None
    has_body: bool = False
    other_tenant: bool = False

    def describe(self) -> str:
        path = "/".join(str(part) for part in self.path)
        if self.params:
            path += "?" + "&".join(f"{key}={value!r}" for key, value in self.params.items())
        who = " (as the other tenant)" if self.other_tenant else ""
        body = f"  {json.dumps(show(self.body), ensure_ascii=False)}" if self.has_body else ""
        return f"{self.method} {path}{who}{body}"


def show(value: Any) -> Any:
    """``value`` with :class:`Sym` written as ``<name>`` (for printing)."""
    if isinstance(value, Sym):
        return str(value)
    if isinstance(value, dict):
        return {key: show(item) for key, item in value.items()}
    if isinstance(value, list):
        return [show(item) for item in value]
    return value


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@attrs.define
class Endpoint:
    """One server of the harness, with what it generated so far in the current sequence."""

    name: str
    server: RunningServer
    token: str = attrs.field(repr=False)
    other_token: str = attrs.field(repr=False)
    client: httpx.Client = attrs.field(repr=False)
    ids: dict[str, str] = attrs.Factory(dict)  # harness name -> this server's id
    starts: list[int] = attrs.Factory(list)  # request windows (ms), sorted
    windows: list[tuple[int, int, int]] = attrs.Factory(list)  # (start, end, request number)
    last_end: int = 0

    def reset(self) -> None:
        self.ids.clear()
        self.starts.clear()
        self.windows.clear()

    def resolve(self, value: Any) -> Any:
        if isinstance(value, Sym):
            return self.ids.get(value.name, f"unknown-{value.name}")
        if isinstance(value, dict):
            return {key: self.resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        return value

    def send(self, number: int, request: Request) -> tuple[int, Any]:
        """Send ``request`` (the sequence's ``number``-th) and answer ``(status, JSON body)``."""
        # The first part is the route's own path; the others (ids, settings segments) are
        # percent-encoded, dots included, so "." and ".." reach the server as segments.
        path = "/".join(
            str(part)
            if index == 0
            else quote(str(self.resolve(part)), safe=":@-_~").replace(".", "%2E")
            for index, part in enumerate(request.path)
        )
        params = (
            {key: self.resolve(value) for key, value in request.params.items()}
            if request.params
            else None
        )
        headers = {
            "Authorization": f"Bearer {self.other_token if request.other_tenant else self.token}"
        }
        content: bytes | None = None
        if request.has_body:
            headers["Content-Type"] = "application/json"
            text = json.dumps(self.resolve(request.body), ensure_ascii=False)
            try:
                content = text.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates: send them escaped
                content = json.dumps(self.resolve(request.body)).encode("ascii")
        while _now_ms() <= self.last_end:  # no two requests to one server in one millisecond
            time.sleep(0.0005)
        start = _now_ms()
        response = self.client.request(
            request.method, path, params=params, content=content, headers=headers
        )
        end = _now_ms() + 1
        self.last_end = end
        self.starts.append(start)
        self.windows.append((start, end, number))
        try:
            body = response.json()
        except ValueError:
            body = {"<not JSON>": response.text[:500]}
        return response.status_code, body

    def learn(self, name: str, real_id: str) -> None:
        self.ids[name] = real_id

    def stamp_of(self, value: int) -> int | None:
        """The request whose window holds ``value``, if any."""
        at = bisect.bisect_right(self.starts, value) - 1
        if at >= 0:
            start, end, number = self.windows[at]
            if start <= value <= end:
                return number
        return None

    def normalise(self, value: Any) -> Any:
        """``value`` with generated ids named and server stamps replaced (see the module)."""
        if isinstance(value, dict):
            return {
                self.normalise_text(key): self.normalise(item)
                for key, item in value.items()
                if key != "request_id"
            }
        if isinstance(value, list):
            return [self.normalise(item) for item in value]
        if isinstance(value, str):
            return self.normalise_text(value)
        if isinstance(value, int) and not isinstance(value, bool):
            number = self.stamp_of(value)
            return value if number is None else f"<now@{number}>"
        return value

    def normalise_text(self, text: str) -> str:
        for name, real in self.ids.items():
            if real in text:
                text = text.replace(real, f"<{name}>")
        return text


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


class ParityDifference(AssertionError):
    """The servers answered a request differently (or one answered 5xx).

    Attributes:
        requests: the sequence up to that request.
        made: the harness name of the id each request generated (or ``None``).
    """

    def __init__(self, message: str, requests: list[Request], made: list[str | None]) -> None:
        super().__init__(message)
        self.requests = requests
        self.made = made


@attrs.define
class Sequence:
    """One sequence of requests, each sent to every server and the answers compared."""

    endpoints: list[Endpoint]
    sent: list[Request] = attrs.Factory(list)
    made: list[str | None] = attrs.Factory(list)
    written: set[str] = attrs.Factory(set)  # first path parts of the writes (to clean up)
    generated: int = 0

    def __attrs_post_init__(self) -> None:
        for endpoint in self.endpoints:
            endpoint.reset()

    @property
    def last_generated(self) -> Sym:
        return Sym(f"gen:{self.generated}")

    def send(self, request: Request, *, name: str | None = None) -> tuple[int, Any]:
        """Send ``request`` to every server; :class:`ParityDifference` unless all answer alike
        (and below 500). Answers the first server's status and body (not normalised).
        ``name``: the name of the id a create generates (default: the next ``gen:n``)."""
        number = len(self.sent)
        self.sent.append(request)
        self.made.append(None)
        if request.method != "GET":
            self.written.add(str(request.path[0]))
        answers = [endpoint.send(number, request) for endpoint in self.endpoints]
        self._learn(request, answers, name)
        seen = [
            (status, canonical(endpoint.normalise(body)))
            for endpoint, (status, body) in zip(self.endpoints, answers, strict=True)
        ]
        if len(set(seen)) > 1 or any(status >= 500 for status, _ in seen):
            raise ParityDifference(self._report(seen), list(self.sent), list(self.made))
        return answers[0]

    def _learn(self, request: Request, answers: list[tuple[int, Any]], name: str | None) -> None:
        """Name the ids the servers generated for a create without an id."""
        creates = request.method == "POST" and len(request.path) == 1
        if not creates or request.path[0] not in COLLECTIONS:
            return
        if isinstance(request.body, dict) and "id" in request.body:
            return
        found = [
            body["data"]["id"]
            for status, body in answers
            if status == 201 and isinstance(body, dict) and isinstance(body.get("data"), dict)
        ]
        if len(found) == len(self.endpoints):
            self.generated += 1
            name = name or f"gen:{self.generated}"
            self.made[-1] = name
            for endpoint, real in zip(self.endpoints, found, strict=True):
                endpoint.learn(name, real)

    def _report(self, seen: list[tuple[int, str]]) -> str:
        lines = ["the servers answered differently; the sequence of requests:"]
        lines += [f"  {index}. {request.describe()}" for index, request in enumerate(self.sent)]
        lines.append("answers to the last request (ids and stamps normalised):")
        for endpoint, (status, body) in zip(self.endpoints, seen, strict=True):
            lines.append(f"  {endpoint.name:9} {status} {body}")
        return "\n".join(lines)


def clean(endpoint: Endpoint, written: set[str] | None = None) -> None:
    """Delete every record and setting of the harness's tenant on one server (of the
    collections and the settings ``written`` to, or all)."""
    client, headers = endpoint.client, {"Authorization": f"Bearer {endpoint.token}"}
    for collection in COLLECTIONS:
        if written is not None and collection not in written:
            continue
        for _ in range(100):  # bounded: a sequence makes far fewer than 20,000 records
            found = client.get(collection, params={"limit": "200"}, headers=headers)
            assert found.status_code == 200, found.text
            page = found.json()["data"]
            if not page:
                break
            for entity in page:
                gone = client.delete(f"{collection}/{entity['id']}", headers=headers)
                assert gone.status_code == 200, gone.text
    if written is not None and "/api/v1/settings" not in written:
        return
    tree = client.get("/api/v1/settings", headers=headers).json()["data"]
    if tree:
        cleared = client.put("/api/v1/settings/settings", json=dict.fromkeys(tree), headers=headers)
        assert cleared.status_code == 200, cleared.text
    left = client.get("/api/v1/settings", headers=headers).json()["data"]
    assert left in ({}, None), f"{endpoint.name}: settings left after the sequence: {left}"


def replay(
    endpoints: list[Endpoint], requests: list[Request], made: list[str | None]
) -> ParityDifference | None:
    """Send ``requests`` on an empty tenant (generated ids keep the names in ``made``); the
    difference found, if any. Cleans up after."""
    sequence = Sequence(endpoints)
    try:
        for request, name in zip(requests, made, strict=True):
            sequence.send(request, name=name)
    except ParityDifference as found:
        return found
    finally:
        for endpoint in endpoints:
            clean(endpoint, sequence.written)
    return None


def minimise(
    endpoints: list[Endpoint], failure: ParityDifference, *, seconds: float = 120
) -> ParityDifference:
    """A shorter sequence that still makes the servers disagree: after Hypothesis's shrinking
    (which works on its draws), drop whole requests and then top-level body keys one at a time
    while a difference remains (a difference at any request counts)."""
    best = failure
    deadline = time.monotonic() + seconds

    def attempt(requests: list[Request], made: list[str | None]) -> bool:
        nonlocal best
        if time.monotonic() > deadline:
            return False
        found = replay(endpoints, requests, made)
        if found is None:
            return False
        best = found
        return True

    changed = True
    while changed and time.monotonic() < deadline:
        changed = False
        index = len(best.requests) - 2
        while index >= 0:
            if index < len(best.requests) - 1:
                requests = best.requests[:index] + best.requests[index + 1 :]
                made = best.made[:index] + best.made[index + 1 :]
                changed |= attempt(requests, made)
            index -= 1
        for index in range(len(best.requests)):
            request = best.requests[index] if index < len(best.requests) else None
            if request is None or not isinstance(request.body, dict):
                continue
            for key in list(request.body):
                current = best.requests[index] if index < len(best.requests) else None
                if current is None or not isinstance(current.body, dict) or key not in current.body:
                    continue
                smaller = attrs.evolve(
                    current, body={k: v for k, v in current.body.items() if k != key}
                )
                requests = [*best.requests[:index], smaller, *best.requests[index + 1 :]]
                changed |= attempt(requests, best.made[: len(requests)])
    return best


@contextmanager
def parity_servers(tmp: Path) -> Iterator[list[Endpoint]]:
    """The three servers (embedded SQLite, Supabase on PostgreSQL, RTDB on the emulator with
    the harness's tenant as the legacy tenant at the seed's paths), each with an ``api`` token
    of the tenant and one of another tenant made by the admin CLI; rate limiting off."""
    with ExitStack() as stack:
        endpoints = []
        for name in STACKS:
            env = stack_env(name, stack, tmp / name)
            env["BOTMOX_RATE_LIMIT_ENABLED"] = "false"
            if name == "rtdb":
                env["BOTMOX_RTDB_LEGACY_TENANT"] = TENANT
            server = stack.enter_context(running_server(tmp / name / "data", env))
            token = admin_cli(server, "token", "create", "--tenant", TENANT, "--role", "api")
            other = admin_cli(server, "token", "create", "--tenant", OTHER_TENANT, "--role", "api")
            client = stack.enter_context(httpx.Client(base_url=server.url, timeout=60))
            endpoints.append(Endpoint(name, server, token["token"], other["token"], client))
        yield endpoints


# -- what the harness sends ---------------------------------------------------------------------

#: Strings that stress matching and ordering: case (ASCII and not), code point vs UTF-16 order
#: (astral characters vs U+E000-U+FFFF), look-alikes whose Unicode lower case is ASCII (Kelvin
#: sign, dotted capital I), digits and words that `q` also finds in numbers and booleans,
#: LIKE wildcards and escapes, the search separator, blanks.
STRESS_STRINGS = (
    "",
    " ",
    "a",
    "A",
    "B",
    "b",
    "Farm",
    "farm",
    "FARMING",
    "60",
    "1.5",
    "-1",
    "true",
    "false",
    "null",
    "é",
    "É",
    "e\u0301",
    "z",
    "\u212a",  # KELVIN SIGN (lower: k)
    "k",
    "\u0130",  # LATIN CAPITAL LETTER I WITH DOT ABOVE
    "i",
    "ß",
    "SS",
    "\U0001f600",
    "\U0001d518nicode",
    "\ufb01",
    "\uff21",
    "\ue000",
    "%",
    "_",
    "\\",
    "a%b",
    "x_y",
    "\x1f",
    "tab\there",
    "new\nline",
    " padded ",
)
_TEXT_ALPHABET = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
STRINGS = st.one_of(st.sampled_from(STRESS_STRINGS), st.text(_TEXT_ALPHABET, max_size=8))
SAFE = 2**53
INTEGERS = st.one_of(
    st.sampled_from([0, 1, -1, 2, 7, 60, 100, SAFE, -SAFE, SAFE - 1, 2**31, 2**32 + 1, 10**15]),
    st.integers(-SAFE, SAFE),
)
FLOATS = st.one_of(
    st.sampled_from([0.5, -0.0, 2.0, 1e-7, 0.1, 1.5e300, -2.5, 123456789.125, 2.0**53, 5e-324]),
    st.floats(allow_nan=False, allow_infinity=False),
)
#: Keys of passed-through fields: the same few names in every collection so one field holds
#: values of every type across records (what sort and q are then run on).
FIELDS = ("x", "y", "z", "é", "\U0001f600")
KEYS = st.sampled_from((*FIELDS, "a", "b", "A", "n", "a b", "k"))
PRIMITIVES = st.one_of(st.none(), st.booleans(), INTEGERS, FLOATS, STRINGS)
JSON_VALUES = st.recursive(
    PRIMITIVES,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)),
    max_leaves=6,
)


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"d": value}
    return value


#: Values every backend must refuse alike (400): out-of-range integers, NUL, a lone surrogate,
#: keys RTDB cannot store, nesting past 16 levels.
BAD_VALUES = st.sampled_from(
    [
        SAFE + 1,
        -(10**20),
        "nul\x00here",
        "lone\ud800",
        {"a.b": 1},
        {"$x": 1},
        {"": 1},
        {"a/b": 1},
        {"[0]": 1},
        _deep(17),
    ]
)
ANY_VALUES = st.one_of(JSON_VALUES, JSON_VALUES, JSON_VALUES, BAD_VALUES)

#: Client ids: a few fixed ones (so POSTs collide: 409), ids of the full alphabet, and ids no
#: backend may store (400). None starts with ``-``: generated push ids all do, and a client id
#: ``-N...`` would sort between two servers' push ids made a few milliseconds apart.
_ID_CHARS = "ABCZabcz019_:@-"
CLIENT_IDS = st.one_of(
    st.sampled_from(["a", "b", "A", "Z", "0", "x:y", "u@h", "a_b", "n-1", " a ", "b\t"]),
    st.builds(
        lambda first, rest: first + rest,
        st.sampled_from("ABab09_:@"),
        st.text(alphabet=_ID_CHARS, max_size=6),
    ),
)
BAD_IDS = st.sampled_from(["a.b", "a/b", "a b", "é", "a#", "$", "x" * 129, "-", ""])

_STAMP = st.sampled_from([0, 1, 86_400_000, 1_000_000_000_000, SAFE - 1])
_NAME = st.sampled_from(["Thrall", " Jaina ", "é", "\U0001f600", "B", "a", "zz", "60"])
_DATE = st.sampled_from(["2026-01-31", "2025-12-01", "2026-13-45", "26-1-1"])

#: Validated fields per collection, mostly with valid values (so creates succeed and the
#: sequence goes on) and some invalid ones.
VALIDATED: Mapping[str, Mapping[str, st.SearchStrategy[Any]]] = {
    "/api/v1/resources/licenses": {
        "key": _NAME,
        "type": st.sampled_from(["bot", "wow", ""]),
        "status": st.sampled_from(["active", "expired", "revoked", "bogus"]),
        "bot_ids": st.lists(CLIENT_IDS, max_size=3),
        "expires_at": _STAMP,
    },
    "/api/v1/resources/proxies": {
        "ip": st.sampled_from(["10.0.0.1", "::1", "b"]),
        "port": st.sampled_from([1, 8080, 65535, "8080", 0, 65536, 80.0]),
        "type": st.sampled_from(["http", "socks5"]),
        "bot_id": st.one_of(st.none(), CLIENT_IDS),
        "fraud_score": st.one_of(INTEGERS, FLOATS),
        "vpn": st.booleans(),
        "country_code": st.one_of(st.none(), _NAME),
    },
    "/api/v1/resources/subscriptions": {
        "type": st.sampled_from(["wow", "bot", "vpn"]),
        "status": st.sampled_from(["active", "expired", "expiring_soon"]),
        "auto_renew": st.booleans(),
        "notes": STRINGS,
        "project_id": st.sampled_from(["wow_tbc", "wow_midnight"]),
    },
    "/api/v1/workspace/notes": {
        "title": _NAME,
        "content": STRINGS,
        "tags": st.lists(STRINGS, max_size=3),
        "blocks": st.one_of(st.lists(JSON_VALUES, max_size=2), st.dictionaries(KEYS, JSON_VALUES)),
        "is_pinned": st.booleans(),
        "project_id": st.sampled_from([None, "wow_tbc", "nope"]),
    },
    "/api/v1/workspace/calendar": {
        "title": _NAME,
        "date": _DATE,
        "linked_note_id": st.one_of(st.none(), CLIENT_IDS),
    },
    "/api/v1/workspace/kanban": {
        "title": _NAME,
        "status": st.sampled_from(["todo", "in_progress", "done"]),
        "due_date": st.one_of(st.none(), _DATE),
        "order": st.one_of(INTEGERS, st.just("3")),
    },
    BOTS: {
        "name": _NAME,
        "status": st.sampled_from(["offline", "prepare", "leveling", "farming", "banned"]),
        "project_id": st.sampled_from(["wow_tbc", "wow_midnight"]),
        "character": st.fixed_dictionaries(
            {},
            optional={
                "level": st.sampled_from([1, 60, 100, 0]),
                "faction": st.sampled_from(["horde", "alliance"]),
                "name": _NAME,
            },
        ),
        "farm": st.fixed_dictionaries({"all_farmed_gold": st.one_of(INTEGERS, FLOATS)}),
    },
    FINANCE: {
        "type": st.sampled_from(["income", "expense"]),
        "category": _NAME,
        "amount": st.one_of(INTEGERS, FLOATS, st.just("12.50")),
        "currency": st.sampled_from(["USD", "gold"]),
        "date": _STAMP,
        "bot_id": st.one_of(st.none(), CLIENT_IDS),
        "gold_price_at_time": st.one_of(st.none(), FLOATS),
    },
}
FINANCE_REQUIRED = ("type", "category", "amount", "currency", "date")


@st.composite
def record_bodies(draw: st.DrawFn, collection: str) -> dict[str, Any]:
    """A create body: some validated fields, some passed-through ones, maybe a client
    ``created_at``; rarely a refused value."""
    fields = VALIDATED[collection]
    names = draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=4))
    if collection == FINANCE and draw(st.integers(0, 9)) > 0:
        names = list(dict.fromkeys([*FINANCE_REQUIRED, *names]))
    body = {name: draw(fields[name]) for name in names}
    # Passed-through fields, mostly top-level primitives (what sort and q look at).
    body.update(
        draw(st.dictionaries(st.sampled_from(FIELDS), PRIMITIVES | JSON_VALUES, max_size=3))
    )
    if draw(st.integers(0, 5)) == 0:
        body["created_at"] = draw(st.one_of(_STAMP, st.just(-5), st.just("1")))
    if draw(st.integers(0, 12)) == 0:
        body[draw(st.sampled_from(FIELDS))] = draw(BAD_VALUES)
    return body


#: PATCH keys: passed-through fields, deep keys (into them and into validated objects), the
#: stamps a PATCH ignores and keys no backend stores.
PATCH_KEYS = st.sampled_from(
    [
        *FIELDS,
        *FIELDS,
        "x/a",
        "x/a/b",
        "x/a",
        "y/é",
        "z/\U0001f600/k",
        "character/level",
        "character/name",
        "farm/all_farmed_gold",
        "created_at",
        "updated_at",
        "x//a",  # refused: an empty segment
        "x/a.b",  # refused: a dot
    ]
)


@st.composite
def patch_bodies(draw: st.DrawFn, collection: str) -> dict[str, Any]:
    fields = VALIDATED[collection]
    body: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=2)):
        body[name] = draw(st.one_of(fields[name], st.none()))
    for key in draw(st.lists(PATCH_KEYS, unique=True, max_size=3)):
        body[key] = draw(st.one_of(st.none(), JSON_VALUES, JSON_VALUES))
    if draw(st.integers(0, 15)) == 0:
        body[draw(st.sampled_from(FIELDS))] = draw(BAD_VALUES)
    return body


#: ``sort``: mostly the passed-through fields (values of every type), also the id, the stamps,
#: validated fields and a field no record has.
SORT_FIELDS = st.sampled_from(
    [
        *FIELDS[:3],
        *FIELDS[:3],
        *FIELDS[:3],
        "id",
        "created_at",
        "updated_at",
        "name",
        "status",
        "amount",
        "title",
        "nope",
    ]
)
VIEW_SORTS = st.sampled_from(
    [*FIELDS[:3], *FIELDS[:3], *FIELDS[:3], "id", "created_at", "updated_at", "name", "amount"]
)
PAGE = st.sampled_from(["1", "1", "2", "2", "3", "4", "1000000", " 2", "0", "x"])
LIMIT = st.sampled_from(["1", "2", "2", "3", "3", "5", "200", "0", "201"])
ORDER = st.sampled_from(["asc", "desc", "desc", "desc", "desc", "DESC"])
#: ``q``: stress strings (case, look-alikes, wildcards), texts of numbers as each backend
#: writes them (exponents, ``-0``, long digits) and of booleans and null (which never matches).
QUERIES = st.one_of(
    STRINGS,
    st.sampled_from(
        ["a", "k", "1", "60", "0.1", "e-07", "e+300", "5e-324", "-1", "2.0", "9007", "true", "null"]
    ),
)
BAD_SORT = st.sampled_from(["a-b", "x" * 65, "é", "x\n"])

#: Settings writes: free paths (Unicode, spaces, a leading ``settings`` segment) with any value,
#: the schema paths with bodies valid or not, and paths with segments refused alike (``.``,
#: ``..``, ``. # $ [ ]``).
FREE_SEGMENTS = st.sampled_from(["a", "b", "k", "é", "\U0001f600", "x y", "A"])
BAD_SEGMENTS = st.sampled_from([".", "..", "a.b", "$", "#x", "[", "]"])
SETTING_VALUES = st.one_of(
    JSON_VALUES,
    st.dictionaries(KEYS, st.one_of(st.none(), JSON_VALUES), min_size=1, max_size=3),
    BAD_VALUES,
)
SCHEMA_WRITES = st.one_of(
    st.tuples(
        st.just(["alerts"]),
        st.fixed_dictionaries({"warning_days": st.sampled_from([1, 7, 365, 0, "7"])}),
    ),
    st.tuples(
        st.just(["proxy"]),
        st.fixed_dictionaries({"fraud_score_threshold": st.sampled_from([0, 50, 101])}),
    ),
    st.tuples(
        st.just(["projects", "wow_tbc"]),
        st.fixed_dictionaries({"name": _NAME, "max_level": st.sampled_from([1, 70, 201])}),
    ),
    st.tuples(
        st.just(["projects"]),
        st.fixed_dictionaries({"wow_tbc": st.one_of(st.none(), st.just({"name": "TBC"}))}),
    ),
    st.tuples(
        st.just(["projects", "wow_tbc", "gold_price_usd"]),
        st.sampled_from([0.5, 2, 2.0, -1, "3"]),
    ),
    st.tuples(
        st.just(["notifications", "events"]),
        st.fixed_dictionaries({"bot_banned": st.sampled_from([True, False, None, 1])}),
    ),
)
SETTINGS_WRITES = st.one_of(
    st.tuples(st.lists(FREE_SEGMENTS, min_size=1, max_size=3), SETTING_VALUES),
    st.tuples(st.lists(FREE_SEGMENTS, min_size=1, max_size=3), SETTING_VALUES),
    st.tuples(
        st.builds(lambda rest: ["settings", *rest], st.lists(FREE_SEGMENTS, max_size=2)),
        st.dictionaries(KEYS, st.one_of(st.none(), JSON_VALUES), min_size=1, max_size=3),
    ),
    SCHEMA_WRITES,
    st.tuples(
        st.builds(
            lambda head, bad: [*head, bad],
            st.lists(FREE_SEGMENTS, max_size=2),
            BAD_SEGMENTS,
        ),
        JSON_VALUES,
    ),
)
SETTINGS_READS = st.lists(
    st.sampled_from(["a", "b", "k", "é", "\U0001f600", "x y", "settings", "projects", "wow_tbc"]),
    max_size=3,
)
BAN_BODIES = st.fixed_dictionaries(
    {
        "ban_date": st.sampled_from(["01.02.2026", "29.02.2024", "31.02.2026", "2026-02-01"]),
        "ban_reason": st.sampled_from(["cheating", " x ", "", "é" * 3, "\U0001f600"]),
        "ban_mechanism": st.sampled_from(["ip_ban", "hardware_ban", "other", "nope"]),
    }
)
TRANSITION_STATUSES = st.sampled_from(
    ["offline", "prepare", "leveling", "profession", "farming", "banned", "bogus"]
)
