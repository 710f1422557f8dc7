"""The parity harness (issue 11): the same random sequence of API requests against three real
servers at once — the embedded SQLite default, Supabase (PostgreSQL with its schema and RLS)
and Firebase RTDB (the emulator; the tenant is the configured legacy tenant, at the seed's
global paths) — and every answer must be the same: status and body, after naming generated ids
and server stamps (``tests/e2e/parity_support.py``).

A Hypothesis ``RuleBasedStateMachine`` draws the sequences: creates with and without ids
(colliding, padded and refused ids), patches with deep keys and nulls, deletes, gets, lists with
every query parameter (and refused ones), lifecycle transitions, bans and unbans and their reads,
settings writes and reads at random paths (valid and refused), another tenant's view, and the
read-only finance aggregates. Values mix types in the same field across records (strings,
integers up to +-2**53, floats, booleans, nulls, nested objects and arrays, empty ones),
Unicode with astral characters, and values every backend must refuse. Each sequence works on an
empty tenant: the teardown deletes what it made.

A difference fails with the shrunk sequence of requests (method, path, body; generated ids as
``<gen:n>``) and the three answers. Budget: ``BOTMOX_PARITY_EXAMPLES`` sequences (default 50)
of up to ``BOTMOX_PARITY_STEPS`` requests (default 40), derandomized (a CI failure reproduces
with the same command). ``BOTMOX_PARITY_PROFILE=long`` runs 300 random sequences of 60 (set
``BOTMOX_PARITY_EXAMPLES`` / ``_STEPS`` to change it); see docs/domains.md.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    multiple,
    rule,
    run_state_machine_as_test,
)

from tests.e2e.parity_support import (
    BAD_IDS,
    BAD_SORT,
    BAN_BODIES,
    BOTS,
    CLIENT_IDS,
    COLLECTIONS,
    LIMIT,
    ORDER,
    PAGE,
    QUERIES,
    SETTINGS_READS,
    SETTINGS_WRITES,
    SOME_COLLECTION,
    SORT_FIELDS,
    TRANSITION_STATUSES,
    VIEW_SORTS,
    Endpoint,
    ParityDifference,
    Ref,
    Request,
    Sequence,
    Sym,
    clean,
    minimise,
    parity_servers,
    patch_bodies,
    record_bodies,
)

pytestmark = pytest.mark.e2e

#: A look at a collection after a write: ``(sort, order)`` of a list of every record, or none.
View = tuple[str, str] | None
VIEWS = st.none() | st.tuples(VIEW_SORTS, st.sampled_from(["asc", "desc"]))

LONG = os.environ.get("BOTMOX_PARITY_PROFILE", "") == "long"
EXAMPLES = int(os.environ.get("BOTMOX_PARITY_EXAMPLES", "300" if LONG else "50"))
STEPS = int(os.environ.get("BOTMOX_PARITY_STEPS", "60" if LONG else "40"))


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Endpoint]]:
    with parity_servers(tmp_path_factory.mktemp("parity")) as running:
        yield running


class ParityMachine(RuleBasedStateMachine):
    """Sends every request to every server and compares the answers."""

    endpoints: ClassVar[list[Endpoint]] = []  # set by the test before it runs
    #: (method, route, status) -> how many requests answered so (printed at the end)
    tally: ClassVar[Counter[tuple[str, str, int]]] = Counter()

    records = Bundle("records")
    bots = Bundle("bots")

    def __init__(self) -> None:
        super().__init__()
        self.sequence = Sequence(self.endpoints)

    def send(self, request: Request) -> tuple[int, Any]:
        """Send ``request`` to every server (:class:`ParityDifference` unless all answer
        alike); the first server's status and body."""
        status, body = self.sequence.send(request)
        route = str(request.path[0]).removeprefix("/api/v1/") + "/*" * (len(request.path) - 1)
        self.tally[(request.method, route, status)] += 1
        return status, body

    @property
    def last_gen(self) -> Sym:
        return self.sequence.last_generated

    def ok(self, status: int, body: Any) -> Any:
        return body.get("data") if 200 <= status < 300 and isinstance(body, dict) else None

    def q_is_ambiguous(self, q: str) -> bool:
        """Whether ``q`` could match a generated id (which differs between servers)."""
        needle = q.strip().lower()
        return bool(needle) and any(
            needle in real.lower() for endpoint in self.endpoints for real in endpoint.ids.values()
        )

    @initialize(
        target=records,
        collection=SOME_COLLECTION,
        ids=st.lists(st.none() | CLIENT_IDS, min_size=1, max_size=4),
        view=VIEWS,
        data=st.data(),
    )
    def seed(self, collection: str, ids: list[str | None], view: View, data: st.DataObject) -> Any:
        """Every sequence starts with a few records of one collection (swarm testing may leave
        the creating rules out of a sequence)."""
        made = []
        for record_id in ids:
            body = data.draw(record_bodies(collection), label="body")
            if record_id is not None:
                body["id"] = record_id
            status, answer = self.send(Request("POST", (collection,), body=body, has_body=True))
            if status == 201:
                made.append(
                    Ref(
                        collection, answer["data"]["id"] if record_id is not None else self.last_gen
                    )
                )
        self.view(collection, view)
        return multiple(*made)

    # -- records --------------------------------------------------------------------------------

    @rule(target=records, collection=SOME_COLLECTION, view=VIEWS, data=st.data())
    def create(self, collection: str, view: View, data: st.DataObject) -> Any:
        body = data.draw(record_bodies(collection), label="body")
        status, _ = self.send(Request("POST", (collection,), body=body, has_body=True))
        self.view(collection, view)
        if status != 201:
            return multiple()
        return Ref(collection, self.last_gen)

    @rule(
        target=records,
        collection=SOME_COLLECTION,
        record_id=st.one_of(CLIENT_IDS, CLIENT_IDS, BAD_IDS),
        view=VIEWS,
        data=st.data(),
    )
    def create_with_id(
        self, collection: str, record_id: str, view: View, data: st.DataObject
    ) -> Any:
        body = {"id": record_id, **data.draw(record_bodies(collection), label="body")}
        status, answer = self.send(Request("POST", (collection,), body=body, has_body=True))
        self.view(collection, view)
        if status != 201:
            return multiple()
        return Ref(collection, answer["data"]["id"])

    @rule(target=records, ref=records, with_id=st.none() | CLIENT_IDS, view=VIEWS, data=st.data())
    def create_beside(self, ref: Ref, with_id: str | None, view: View, data: st.DataObject) -> Any:
        """Another record in a collection the sequence wrote to (so its lists hold several)."""
        body = data.draw(record_bodies(ref.collection), label="body")
        if with_id is not None:
            body["id"] = with_id
        status, answer = self.send(Request("POST", (ref.collection,), body=body, has_body=True))
        self.view(ref.collection, view)
        if status != 201:
            return multiple()
        return Ref(ref.collection, self.last_gen if with_id is None else answer["data"]["id"])

    @rule(ref=records, data=st.data())
    def create_duplicate(self, ref: Ref, data: st.DataObject) -> None:
        body = {"id": ref.key, **data.draw(record_bodies(ref.collection), label="body")}
        self.send(Request("POST", (ref.collection,), body=body, has_body=True))

    @rule(ref=records, elsewhere=st.sampled_from(COLLECTIONS), other=st.integers(0, 4))
    def get(self, ref: Ref, elsewhere: str, other: int) -> None:
        collection = elsewhere if other == 0 else ref.collection
        self.send(Request("GET", (collection, ref.key)))

    @rule(ref=records, view=VIEWS, data=st.data())
    def patch(self, ref: Ref, view: View, data: st.DataObject) -> None:
        body = data.draw(patch_bodies(ref.collection), label="body")
        if data.draw(st.integers(0, 9), label="with id") == 0:
            body["id"] = data.draw(st.sampled_from([ref.key, "other-id"]), label="id")
        self.send(Request("PATCH", (ref.collection, ref.key), body=body, has_body=True))
        self.view(ref.collection, view)

    @rule(collection=SOME_COLLECTION, record_id=st.one_of(CLIENT_IDS, BAD_IDS))
    def patch_missing_or_bad(self, collection: str, record_id: str) -> None:
        self.send(Request("PATCH", (collection, record_id), body={"x": 1}, has_body=True))

    @rule(ref=records, body=st.sampled_from([None, {}, [], "x", 1]))
    def patch_empty_or_not_object(self, ref: Ref, body: Any) -> None:
        self.send(Request("PATCH", (ref.collection, ref.key), body=body, has_body=True))

    @rule(ref=records, view=VIEWS)
    def delete(self, ref: Ref, view: View) -> None:
        self.send(Request("DELETE", (ref.collection, ref.key)))
        self.view(ref.collection, view)

    def view(self, collection: str, view: View) -> None:
        """The collection after a write: every record, sorted (``view`` may be ``None``)."""
        if view is not None:
            sort, order = view
            params = {"sort": sort, "order": order, "limit": "200"}
            status, answer = self.send(Request("GET", (collection,), params=params))
            if status == 200:
                self.tally_order(sort, answer["data"])

    @rule(
        ref=records,
        elsewhere=st.sampled_from(COLLECTIONS),
        where=st.integers(0, 5),
        page=st.none() | PAGE,
        limit=st.none() | LIMIT,
        sort=st.none() | SORT_FIELDS | SORT_FIELDS | BAD_SORT,
        order=st.none() | ORDER,
        data=st.data(),
    )
    def list_records(
        self,
        ref: Ref,
        elsewhere: str,
        where: int,
        page: str | None,
        limit: str | None,
        sort: str | None,
        order: str | None,
        data: st.DataObject,
    ) -> None:
        """A list, mostly of a collection the sequence wrote to."""
        collection = elsewhere if where == 0 else ref.collection
        params = {
            key: value
            for key, value in {"page": page, "limit": limit, "sort": sort, "order": order}.items()
            if value is not None
        }
        q = data.draw(st.none() | QUERIES, label="q")
        if q is not None:
            if self.q_is_ambiguous(q):
                q = None  # it would match the servers' own ids differently
            else:
                params["q"] = q
        status, answer = self.send(Request("GET", (collection,), params=params))
        if status == 200 and sort is not None:
            self.tally_order(sort, answer["data"])

    def tally_order(self, sort: str, page: list[dict[str, Any]]) -> None:
        """Count lists whose order said something: sorted pages holding several types (and a
        null beside other values) of the sort field."""
        types = {
            type(entity.get(sort)).__name__ if sort in entity else "missing" for entity in page
        }
        if len(page) >= 2 and len(types) >= 2:
            self.tally[("GET", "(sorted page of mixed types)", 200)] += 1
            if "NoneType" in types:
                self.tally[("GET", "(sorted page: null and others)", 200)] += 1

    @rule(
        ref=records,
        page=st.sampled_from(["2", "3", "1000000"]),
        limit=st.sampled_from([None, "1", "200"]),
        sort=st.none() | SORT_FIELDS,
        by_id=st.booleans(),
    )
    def list_past_the_end(
        self, ref: Ref, page: str, limit: str | None, sort: str | None, by_id: bool
    ) -> None:
        """A page at or past the end of a collection the sequence wrote to: empty ``data`` and
        the right ``total`` (the contract's rule; each backend answers it by a path of its own,
        and the general list rule draws it too rarely to hold it in a CI-sized run)."""
        params = {
            "page": page,
            **({"limit": limit} if limit else {}),
            **({"sort": sort} if sort else {}),
        }
        if by_id and not isinstance(ref.key, Sym) and not self.q_is_ambiguous(ref.key):
            params["q"] = ref.key
        self.send(Request("GET", (ref.collection,), params=params))

    @rule(ref=records, part=st.sampled_from(["all", "tail", "head"]))
    def list_by_id(self, ref: Ref, part: str) -> None:
        """``q`` hitting an id (a generated one is sent as each server's own)."""
        if isinstance(ref.key, Sym):
            if part != "all":
                return
            q: str | Sym = ref.key
        else:
            q = {"all": ref.key, "tail": ref.key[1:], "head": ref.key[:2]}[part]
            if not q.strip() or self.q_is_ambiguous(q):
                return
        self.send(Request("GET", (ref.collection,), params={"q": q, "sort": "id"}))

    @rule(collection=SOME_COLLECTION, ref=records)
    def other_tenant(self, collection: str, ref: Ref) -> None:
        """Another tenant sees none of it."""
        self.send(Request("GET", (collection,), other_tenant=True))
        self.send(Request("GET", (ref.collection, ref.key), other_tenant=True))

    # -- bot lifecycle --------------------------------------------------------------------------

    @rule(targets=(bots, records), data=st.data())
    def create_bot(self, data: st.DataObject) -> Any:
        body = data.draw(record_bodies(BOTS), label="body")
        status, _ = self.send(Request("POST", (BOTS,), body=body, has_body=True))
        return Ref(BOTS, self.last_gen) if status == 201 else multiple()

    @rule(bot=bots | records, status=TRANSITION_STATUSES, view=VIEWS)
    def transition(self, bot: Ref, status: str, view: View) -> None:
        path = (BOTS, bot.key, "lifecycle", "transition")
        self.send(Request("POST", path, body={"status": status}, has_body=True))
        self.view(BOTS, view)

    @rule(bot=bots, body=BAN_BODIES, view=VIEWS)
    def ban(self, bot: Ref, body: dict[str, Any], view: View) -> None:
        self.send(Request("POST", (BOTS, bot.key, "lifecycle", "ban"), body=body, has_body=True))
        self.view(BOTS, view)

    @rule(bot=bots, view=VIEWS)
    def unban(self, bot: Ref, view: View) -> None:
        self.send(Request("POST", (BOTS, bot.key, "lifecycle", "unban")))
        self.view(BOTS, view)

    @rule(bot=bots | records, read=st.sampled_from(["", "/transitions", "/is-banned"]))
    def lifecycle_read(self, bot: Ref, read: str) -> None:
        self.send(Request("GET", (BOTS, bot.key, "lifecycle" + read)))

    # -- settings and aggregates ----------------------------------------------------------------

    @rule(write=SETTINGS_WRITES, verb=st.sampled_from(["PUT", "PATCH"]), look=st.booleans())
    def settings_write(self, write: tuple[list[str], Any], verb: str, look: bool) -> None:
        segments, body = write
        self.send(Request(verb, ("/api/v1/settings", *segments), body=body, has_body=True))
        if look:
            self.send(Request("GET", ("/api/v1/settings",)))

    @rule(
        read=st.one_of(
            SETTINGS_READS.map(lambda segments: ("/api/v1/settings", *segments)),
            st.sampled_from(
                [("/api/v1/finance/daily-stats",), ("/api/v1/finance/gold-price-history",)]
            ),
        )
    )
    def tree_read(self, read: tuple[str, ...]) -> None:
        """The settings tree at a path, or a finance aggregate (read-only)."""
        self.send(Request("GET", read))

    # -- an empty tenant for the next sequence --------------------------------------------------

    def teardown(self) -> None:
        for endpoint in self.endpoints:
            clean(endpoint, self.sequence.written)


def parity_settings() -> settings:
    return settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        deadline=None,
        derandomize=not LONG,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
        print_blob=True,
    )


@pytest.mark.timeout(1800 if LONG else 900)
def test_the_three_backends_answer_alike(endpoints: list[Endpoint]) -> None:
    for endpoint in endpoints:
        clean(endpoint)
    ParityMachine.endpoints = endpoints
    ParityMachine.tally.clear()
    started = time.monotonic()
    try:
        run_state_machine_as_test(ParityMachine, settings=parity_settings())
    except ParityDifference as failure:
        shorter = minimise(endpoints, failure)
        raise ParityDifference(
            f"{shorter}\n(the sequence Hypothesis shrank had {len(failure.requests)} requests; "
            "dropping requests and body keys left the one above)",
            shorter.requests,
            shorter.made,
        ) from failure
    elapsed = time.monotonic() - started
    sent = sum(ParityMachine.tally.values())
    print(f"\nparity: {sent} requests to each of {len(endpoints)} servers in {elapsed:.1f} s")
    for (method, route, status), count in sorted(ParityMachine.tally.items()):
        print(f"  {count:5} x {method:6} {route:32} -> {status}")
