"""What ``botmox migrate`` is told and what it reports: the options of a run, the report per
stream and tenant, the problems, the progress callback (the engine is
:mod:`botmox_core.migration.engine`, which re-exports every name here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import attrs

__all__ = [
    "BATCH_SIZE",
    "MAX_LISTED_PROBLEMS",
    "PAGE_SIZE",
    "MigrationOptions",
    "MigrationReport",
    "Problem",
    "Progress",
    "StreamReport",
]

#: Records read per port call.
PAGE_SIZE = 500
#: Writes per unit of work.
BATCH_SIZE = 200
#: Problems listed in a report (all are counted).
MAX_LISTED_PROBLEMS = 1000


class Progress(Protocol):
    """Where a run reports progress (the CLI draws a bar per stream)."""

    def start(self, label: str, total: int | None) -> None: ...

    def advance(self, label: str, amount: int = 1) -> None: ...


class _Silent:
    def start(self, label: str, total: int | None) -> None:
        pass

    def advance(self, label: str, amount: int = 1) -> None:
        pass


@attrs.define
class StreamReport:
    """What a run did to one stream of one tenant (with ``dry_run``: would do)."""

    tenant: str
    stream: str
    source: int = 0
    target: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    not_pruned: int = 0
    failed: int = 0
    resumed_after: list[Any] | None = None

    @property
    def writes(self) -> int:
        return self.created + self.updated + self.deleted


@attrs.frozen
class Problem:
    """A record not copied (or not pruned): where and why."""

    tenant: str
    stream: str
    id: str
    reason: str


@attrs.frozen
class MigrationOptions:
    """What a run copies and how.

    Attributes:
        tenants: the tenants (``None``: every tenant of the source, and with ``prune`` of the
            target too).
        streams: the stream names (``None``: all the two backends store).
        prune: delete at the target what the source does not hold.
        dry_run: read and compare only; no lock, no checkpoint, no write.
        since: epoch ms; records on both sides that the source last changed before this are
            left alone (creates and prunes still apply): a rollback replays what changed after
            the switch.
        batch_size, page_size: writes per unit, records per read.
        wait_seconds: how long to wait for another migration's lock.
        resume: go on after a stored checkpoint of the same source and options.
    """

    tenants: Sequence[str] | None = None
    streams: Sequence[str] | None = None
    prune: bool = False
    dry_run: bool = False
    since: int | None = None
    batch_size: int = BATCH_SIZE
    page_size: int = PAGE_SIZE
    wait_seconds: float = 0.0
    resume: bool = True


@attrs.define
class MigrationReport:
    """A run's outcome."""

    source: str
    target: str
    dry_run: bool
    prune: bool
    since: int | None
    resumed: bool = False
    tenants: list[str] = attrs.field(factory=list)
    streams: list[StreamReport] = attrs.field(factory=list)
    problems: list[Problem] = attrs.field(factory=list)
    problem_count: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    @property
    def writes(self) -> int:
        return sum(s.writes for s in self.streams)

    @property
    def records(self) -> int:
        return sum(s.source for s in self.streams)

    def problem(self, tenant: str, stream: str, item_id: str, reason: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append(Problem(tenant, stream, item_id, reason))
