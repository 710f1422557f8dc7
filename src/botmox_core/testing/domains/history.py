"""Conformance of ``uow.bot_history``: the lifecycle log and the ban archive, and of a ban
written in one unit of work (record, archive entry and log entry: all or nothing)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from botmox_core.domain.records import ArchiveEntry, Collection, DomainRecord, LifecycleLogEntry
from botmox_core.ports import DataBackend
from botmox_core.ports.domains import DomainUnitOfWork
from botmox_core.testing.domains._base import DomainConformanceBase
from botmox_core.testing.domains._support import (
    T0_MS,
    check_same_json,
    make_archive_entry,
    make_log_entry,
    make_record,
)

__all__ = ["BotHistoryConformance"]

B = TypeVar("B", bound=DataBackend)


class _Abort(Exception):
    pass


def _same_log(actual: LifecycleLogEntry, expected: LifecycleLogEntry) -> None:
    assert attrs.evolve(actual, details={}) == attrs.evolve(expected, details={})
    check_same_json(dict(expected.details), dict(actual.details), f"log {expected.id}.details")


def _same_archive(actual: ArchiveEntry, expected: ArchiveEntry) -> None:
    assert attrs.evolve(actual, ban_details={}, snapshot={}) == attrs.evolve(
        expected, ban_details={}, snapshot={}
    )
    check_same_json(dict(expected.ban_details), dict(actual.ban_details), "ban_details")
    check_same_json(dict(expected.snapshot), dict(actual.snapshot), "snapshot")


def _appending_log(entry: LifecycleLogEntry) -> Callable[[DomainUnitOfWork], None]:
    return lambda uow: uow.bot_history.append_log(entry)


def _appending_archive(entry: ArchiveEntry) -> Callable[[DomainUnitOfWork], None]:
    return lambda uow: uow.bot_history.append_archive(entry)


def _call_with(
    read: Callable[[DomainUnitOfWork, tuple[int, str] | None], list[Any]],
    cursor: tuple[int, str] | None,
    uow: DomainUnitOfWork,
) -> list[Any]:
    return read(uow, cursor)


class BotHistoryConformance(DomainConformanceBase[B]):
    """Pytest mixin: what ``uow.bot_history`` must do."""

    def test_log_entries_round_trip_oldest_first(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        entries = [
            make_log_entry(tenant, "bot-b", T0_MS + 5, id="log-2"),
            make_log_entry(tenant, "bot-a", T0_MS, id="log-9", type="ban", details={}),
            make_log_entry(tenant, "bot-a", T0_MS + 5, id="log-1", type="unban"),
            make_log_entry(tenant, "bot-a", T0_MS - 3, id="log-5", message=""),
        ]
        for entry in entries:
            self.write_unit(backend, _appending_log(entry))
        self.write_unit(
            backend, lambda uow: uow.bot_history.append_log(make_log_entry(other_tenant, "bot-a"))
        )
        order = ["log-5", "log-9", "log-1", "log-2"]
        by_id = {entry.id: entry for entry in entries}
        found = list(self.read_unit(backend, lambda uow: uow.bot_history.log(tenant)))
        assert [entry.id for entry in found] == order
        for entry in found:
            _same_log(entry, by_id[entry.id])
        of_bot = self.read_unit(backend, lambda uow: uow.bot_history.log(tenant, "bot-a"))
        assert [entry.id for entry in of_bot] == ["log-5", "log-9", "log-1"]
        first_two = self.read_unit(backend, lambda uow: uow.bot_history.log(tenant, limit=2))
        assert [entry.id for entry in first_two] == order[:2]
        assert list(self.read_unit(backend, lambda uow: uow.bot_history.log(tenant, "none"))) == []

    def test_archive_entries_round_trip_oldest_first(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        entries = [
            make_archive_entry(tenant, "bot-a", T0_MS + 10, id="arc-1"),
            make_archive_entry(tenant, "bot-b", T0_MS, id="arc-2", snapshot={}),
            make_archive_entry(tenant, "bot-a", T0_MS, id="arc-0", ban_details={"n": 2**60}),
        ]
        for entry in entries:
            self.write_unit(backend, _appending_archive(entry))
        self.write_unit(
            backend,
            lambda uow: uow.bot_history.append_archive(make_archive_entry(other_tenant, "bot-a")),
        )
        by_id = {entry.id: entry for entry in entries}
        found = list(self.read_unit(backend, lambda uow: uow.bot_history.archive(tenant)))
        assert [entry.id for entry in found] == ["arc-0", "arc-2", "arc-1"]
        for entry in found:
            _same_archive(entry, by_id[entry.id])
        of_bot = self.read_unit(backend, lambda uow: uow.bot_history.archive(tenant, "bot-a"))
        assert [entry.id for entry in of_bot] == ["arc-0", "arc-1"]
        one = self.read_unit(backend, lambda uow: uow.bot_history.archive(tenant, limit=1))
        assert [entry.id for entry in one] == ["arc-0"]

    def test_log_and_archive_are_read_page_by_page_after_a_cursor(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        """``after=(time, id)`` continues strictly after that entry (ties on time by id), so
        the whole log and archive are read in pages without repeats or gaps."""
        stamps = [T0_MS, T0_MS, T0_MS + 1, T0_MS + 1, T0_MS + 1, T0_MS + 7]
        for index, stamp in enumerate(stamps):
            self.write_unit(
                backend, _appending_log(make_log_entry(tenant, "bot-a", stamp, id=f"log-{index}"))
            )
            self.write_unit(
                backend,
                _appending_archive(make_archive_entry(tenant, "bot-b", stamp, id=f"arc-{index}")),
            )
        self.write_unit(
            backend, _appending_log(make_log_entry(other_tenant, "bot-a", T0_MS + 2, id="log-x"))
        )
        log_ids = self._paged(
            backend,
            lambda uow, cursor: [
                ((entry.timestamp, entry.id), entry.id)
                for entry in uow.bot_history.log(tenant, limit=2, after=cursor)
            ],
        )
        archive_ids = self._paged(
            backend,
            lambda uow, cursor: [
                ((entry.archived_at, entry.id), entry.id)
                for entry in uow.bot_history.archive(tenant, limit=2, after=cursor)
            ],
        )
        assert log_ids == [f"log-{index}" for index in range(6)]
        assert archive_ids == [f"arc-{index}" for index in range(6)]
        after_tie = self.read_unit(
            backend, lambda uow: uow.bot_history.log(tenant, after=(T0_MS + 1, "log-2"))
        )
        assert [entry.id for entry in after_tie] == ["log-3", "log-4", "log-5"]
        after_tie_archive = self.read_unit(
            backend, lambda uow: uow.bot_history.archive(tenant, after=(T0_MS + 1, "arc-3"))
        )
        assert [entry.id for entry in after_tie_archive] == ["arc-4", "arc-5"]
        of_bot = self.read_unit(
            backend, lambda uow: uow.bot_history.log(tenant, "bot-a", after=(T0_MS + 1, "log-4"))
        )
        assert [entry.id for entry in of_bot] == ["log-5"]

    def _paged(
        self,
        backend: B,
        read: Callable[
            [DomainUnitOfWork, tuple[int, str] | None], list[tuple[tuple[int, str], str]]
        ],
    ) -> list[str]:
        """Every id ``read`` gives, page after page, each page after the last one's cursor."""
        seen: list[str] = []
        cursor: tuple[int, str] | None = None
        for _ in range(20):
            page = self.read_unit(backend, functools.partial(_call_with, read, cursor))
            if not page:
                return seen
            seen.extend(entry_id for _, entry_id in page)
            cursor = page[-1][0]
        raise AssertionError("paging did not end")

    def test_a_ban_is_written_whole(self, backend: B, tenant: str) -> None:
        """Record patch, archive entry and log entry committed together are all there."""
        bot = self.write_unit(backend, lambda uow: uow.records.add(make_record(tenant)))
        self.write_unit(backend, lambda uow: self._ban(uow, tenant, bot))
        found = self.read_unit(
            backend, lambda uow: uow.records.get(tenant, Collection.BOTS, bot.id)
        )
        assert found is not None and found.data["status"] == "banned"
        assert len(self.read_unit(backend, lambda uow: uow.bot_history.log(tenant, bot.id))) == 1
        assert (
            len(self.read_unit(backend, lambda uow: uow.bot_history.archive(tenant, bot.id))) == 1
        )

    def test_a_failed_ban_writes_nothing(self, backend: B, tenant: str) -> None:
        """A unit that fails after the record patch and the archive entry leaves no trace."""
        self._require("supports_rollback", "a failed ban must write nothing")
        bot = self.write_unit(backend, lambda uow: uow.records.add(make_record(tenant)))

        def failing(uow: Any) -> None:
            self._ban(uow, tenant, bot)
            raise _Abort

        with contextlib.suppress(_Abort):
            self.write_unit(backend, failing)
        found = self.read_unit(
            backend, lambda uow: uow.records.get(tenant, Collection.BOTS, bot.id)
        )
        assert found is not None and found.data["status"] == bot.data["status"]
        assert list(self.read_unit(backend, lambda uow: uow.bot_history.log(tenant, bot.id))) == []
        assert (
            list(self.read_unit(backend, lambda uow: uow.bot_history.archive(tenant, bot.id))) == []
        )

    @staticmethod
    def _ban(uow: Any, tenant: str, bot: DomainRecord) -> None:
        def change(current: DomainRecord) -> DomainRecord:
            return attrs.evolve(current, data={**current.data, "status": "banned"})

        uow.records.modify(tenant, Collection.BOTS, bot.id, change)
        uow.bot_history.append_archive(make_archive_entry(tenant, bot.id))
        uow.bot_history.append_log(make_log_entry(tenant, bot.id, type="ban"))
