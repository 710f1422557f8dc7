"""A PATCH that breaks two fields names the same one in every server process: the first in the
body's order. Found by the parity harness (tests/e2e/test_parity.py): the three servers of one
run named different fields for ``{"date": null, "category": null}`` on a finance operation,
because the touched fields were checked in the order of a ``set`` of strings, which depends on
each process's hash seed (``PYTHONHASHSEED``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, sys
from pathlib import Path
from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.domain.records import Collection
from botmox_core.errors import BadRequestError
from botmox_core.models import Role
from botmox_core.services import Principal
from botmox_core.services.domains import DomainServices
from tests.conftest import FakeClock

backend = SqliteBackend(Path(sys.argv[1]) / "patch.sqlite3", synchronous="OFF")
services = DomainServices.build(backend, FakeClock())
alice = Principal("tenant-a", Role.API, user_id="alice")
body = {"id": "op", "type": "income", "category": "sale", "amount": 1, "currency": "USD",
        "date": 1}
services.records.create(alice, Collection.FINANCE_OPERATIONS, body)
named = []
for patch in json.loads(sys.argv[2]):
    try:
        services.records.patch(alice, Collection.FINANCE_OPERATIONS, "op", patch)
    except BadRequestError as error:
        named.append(error.details[0]["field"])
backend.close()
print(json.dumps(named))
"""

PATCHES = [
    {"date": None, "category": None},
    {"category": None, "date": None},
    {"amount": "x", "type": "nope", "currency": None},
]


def test_the_first_broken_field_in_body_order_is_named_whatever_the_hash_seed(
    tmp_path: Path,
) -> None:
    root = Path(__file__).resolve().parent.parent
    answers = set()
    for seed in range(12):
        where = tmp_path / str(seed)
        where.mkdir()
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(where), json.dumps(PATCHES)],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        answers.add(tuple(json.loads(done.stdout)))
    assert answers == {("date", "category", "amount")}
