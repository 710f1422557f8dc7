"""``botmox data export|import`` on the embedded SQLite backend: the JSON-lines format, exact
round trips, idempotent re-imports, the trailer's checks and bad input named by line."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.cli import cli
from botmox_core.cli.data import data_group
from botmox_core.domain.records import (
    AggregateKey,
    ArchiveEntry,
    Collection,
    DomainRecord,
    LifecycleLogEntry,
)
from botmox_core.errors import DatabaseError
from botmox_core.services.domains import transfer
from botmox_core.services.domains.transfer import (
    FORMAT,
    TransferError,
    export_tenant,
    import_tenant,
)

if "data" not in cli.commands:
    cli.add_command(data_group)

T0 = 1_767_225_600_000


@pytest.fixture
def source(tmp_path: Path) -> Iterator[SqliteBackend]:
    (tmp_path / "source").mkdir()
    backend = SqliteBackend(tmp_path / "source" / "botmox.sqlite3", synchronous="OFF")
    yield backend
    backend.close()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[SqliteBackend]:
    (tmp_path / "target").mkdir()
    backend = SqliteBackend(tmp_path / "target" / "botmox.sqlite3", synchronous="OFF")
    yield backend
    backend.close()


def seed(backend: SqliteBackend, tenant: str = "t1", bots: int = 3) -> None:
    """Every kind of item: records in three collections (odd values included), log and archive
    entries, both aggregates and a settings tree; plus another tenant's data."""
    with backend.unit_of_work() as uow:
        for index in range(bots):
            uow.records.add(
                DomainRecord(
                    tenant,
                    Collection.BOTS,
                    f"bot-{index:03d}",
                    {
                        "status": "prepare",
                        "character": {"name": "Zed ✓", "level": index, "tags": [None, 1.5]},
                        "empty": {},
                        "list": [],
                        "big": 2**53 - 1,
                        "created_at": T0 + index,
                        "updated_at": T0 + 1000 + index,
                    },
                )
            )
        uow.records.add(
            DomainRecord(
                tenant,
                Collection.LICENSES,
                "lic-1",
                {"key": "K-1", "created_at": 5, "updated_at": 6},
            )
        )
        uow.records.add(
            DomainRecord(tenant, Collection.NOTES, "-Nnote", {"title": "x", "created_at": 0})
        )
        uow.records.add(DomainRecord("other", Collection.BOTS, "bot-x", {"status": "prepare"}))
        for index in range(4):
            uow.bot_history.append_log(
                LifecycleLogEntry(
                    tenant,
                    f"log-{index}",
                    "bot-000",
                    "status_change",
                    "from prepare",
                    T0 + index // 2,
                    {"from": "prepare", "n": index},
                )
            )
        uow.bot_history.append_archive(
            ArchiveEntry(
                tenant, "arc-1", "bot-001", "banned", T0, {"ban_reason": "x"}, {"total": 3}
            )
        )
        uow.aggregates.put(tenant, AggregateKey.DAILY_STATS, {"2026-01-01": {"income": 1.25}})
        uow.aggregates.put(tenant, AggregateKey.GOLD_PRICE_HISTORY, {"a": [1, 2]})
        uow.settings.modify(tenant, lambda tree: {"notifications": {"events": {"ban": True}}})
        uow.commit()


def export_bytes(backend: SqliteBackend, tenant: str = "t1") -> bytes:
    path = Path(backend.path).parent / f"export-{tenant}.jsonl"
    with open(path, "wb") as out:
        export_tenant(backend, tenant, out)
    return path.read_bytes()


def items(data: bytes) -> list[dict[str, Any]]:
    """The item lines (no header, no trailer)."""
    return [json.loads(line) for line in data.splitlines()[1:-1]]


def write(tmp_path: Path, data: bytes, name: str = "in.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def rehash(lines: list[bytes]) -> bytes:
    """A file from ``lines`` (header and items) with a correct trailer."""
    body = b"".join(line + b"\n" for line in lines)
    trailer = {
        "kind": "trailer",
        "items": len(lines) - 1,
        "counts": {},
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    return body + json.dumps(trailer).encode() + b"\n"


def header() -> bytes:
    return json.dumps(
        {
            "kind": "header",
            "format": FORMAT,
            "version": 1,
            "tenant": "t1",
            "source_backend": "sqlite",
            "exported_at": T0,
        }
    ).encode()


def record_line(record_id: str = "bot-1", **data: Any) -> bytes:
    data = data or {"status": "prepare", "created_at": T0, "updated_at": T0}
    return json.dumps(
        {"kind": "record", "collection": "bots", "id": record_id, "data": data}
    ).encode()


def all_records(backend: SqliteBackend, tenant: str) -> list[DomainRecord]:
    with backend.unit_of_work() as uow:
        return [
            record
            for collection in Collection
            for record in uow.records.scan(tenant, collection, limit=10_000)
        ]


# -- the format and round trips ---------------------------------------------------------------


def test_export_writes_header_items_and_a_trailer_hashing_them(source: SqliteBackend) -> None:
    seed(source)
    data = export_bytes(source)
    lines = data.splitlines(keepends=True)
    head, trailer = json.loads(lines[0]), json.loads(lines[-1])
    assert head["kind"] == "header" and head["format"] == FORMAT and head["version"] == 1
    assert head["tenant"] == "t1" and head["source_backend"] == "sqlite"
    assert isinstance(head["exported_at"], int)
    assert trailer["kind"] == "trailer"
    assert trailer["sha256"] == hashlib.sha256(b"".join(lines[:-1])).hexdigest()
    assert trailer["items"] == len(lines) - 2 == 3 + 1 + 1 + 4 + 1 + 2 + 1
    assert trailer["counts"] == {
        "settings": 1,
        "aggregates": 2,
        "resources/licenses": 1,
        "workspace/notes": 1,
        "bots": 3,
        "lifecycle_log": 4,
        "archive": 1,
    }
    kinds = [item["kind"] for item in items(data)]
    assert kinds[0] == "settings" and kinds[-1] == "archive"
    assert all("other" not in line.decode() for line in lines[1:])  # only the tenant's data
    log_ids = [item["id"] for item in items(data) if item["kind"] == "lifecycle_log"]
    assert log_ids == ["log-0", "log-1", "log-2", "log-3"]


def test_import_copies_everything_exactly_and_a_second_import_changes_nothing(
    source: SqliteBackend, target: SqliteBackend, tmp_path: Path
) -> None:
    seed(source)
    exported = export_bytes(source)
    path = write(tmp_path, exported)
    first = import_tenant(target, "t2", path)
    assert first.complete and first.error_count == 0
    assert first.counts["bots"] == {"created": 3, "updated": 0, "unchanged": 0}
    assert first.counts["lifecycle_log"]["created"] == 4
    assert first.counts["settings"]["created"] == 1
    assert first.counts["aggregates"]["created"] == 2
    assert items(export_bytes(target, "t2")) == items(exported)  # stamps and values exact
    before = all_records(target, "t2")
    second = import_tenant(target, "t2", path)
    assert all(counts["created"] == counts["updated"] == 0 for counts in second.counts.values()), (
        second.counts
    )
    assert sum(counts["unchanged"] for counts in second.counts.values()) == 13
    assert all_records(target, "t2") == before


def test_import_replaces_a_record_that_differs_and_keeps_its_stamps(
    source: SqliteBackend, target: SqliteBackend, tmp_path: Path
) -> None:
    seed(source)
    path = write(tmp_path, export_bytes(source))
    import_tenant(target, "t1", path)
    with target.unit_of_work() as uow:
        uow.records.modify(
            "t1",
            Collection.BOTS,
            "bot-001",
            lambda record: DomainRecord(
                "t1", Collection.BOTS, "bot-001", {"status": "banned", "updated_at": 1}
            ),
        )
        uow.settings.modify("t1", lambda tree: {"changed": True})
        uow.commit()
    again = import_tenant(target, "t1", path)
    assert again.counts["bots"] == {"created": 0, "updated": 1, "unchanged": 2}
    assert again.counts["settings"] == {"created": 0, "updated": 1, "unchanged": 0}
    assert items(export_bytes(target)) == items(export_bytes(source))


def test_export_reads_page_by_page(
    source: SqliteBackend, target: SqliteBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Collections, log and archive longer than a page come out whole, once each."""
    # the tunables are read where they are used: the export and import submodules
    monkeypatch.setattr(transfer.export, "PAGE_SIZE", 2)
    monkeypatch.setattr(transfer.importing, "BATCH_SIZE", 3)
    seed(source, bots=7)
    data = export_bytes(source)
    bot_ids = [item["id"] for item in items(data) if item.get("collection") == "bots"]
    assert bot_ids == [f"bot-{index:03d}" for index in range(7)]
    logs = [item["id"] for item in items(data) if item["kind"] == "lifecycle_log"]
    assert logs == ["log-0", "log-1", "log-2", "log-3"]
    report = import_tenant(target, "t1", write(tmp_path, data))
    assert report.counts["bots"]["created"] == 7
    assert items(export_bytes(target)) == items(data)


def test_gzip_by_file_name_on_export_and_by_content_on_import(
    source: SqliteBackend, target: SqliteBackend, tmp_path: Path
) -> None:
    seed(source)
    path = tmp_path / "t1.jsonl.gz"
    transfer.export_to_path(source, "t1", str(path))
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert not (tmp_path / "t1.jsonl.gz.partial").exists()
    plain = gzip.decompress(path.read_bytes())
    assert json.loads(plain.splitlines()[0])["format"] == FORMAT
    report = import_tenant(target, "t1", path)
    assert report.complete and report.counts["bots"]["created"] == 3


def test_a_failed_export_leaves_no_file(source: SqliteBackend, tmp_path: Path) -> None:
    with source.unit_of_work() as uow:
        uow.records.add(DomainRecord("t1", Collection.BOTS, "b", {"x": 1}))
        uow.commit()
    path = tmp_path / "out.jsonl"

    class Boom(Exception):
        pass

    class Failing:
        def start(self, label: str, total: int | None) -> None:
            if label == "bots":
                raise Boom

        def advance(self, label: str, amount: int = 1) -> None:
            pass

    with pytest.raises(Boom):
        transfer.export_to_path(source, "t1", str(path), progress=Failing())
    assert not path.exists() and not (tmp_path / "out.jsonl.partial").exists()


# -- the trailer ------------------------------------------------------------------------------


def test_a_truncated_file_is_refused_and_nothing_written(
    source: SqliteBackend, target: SqliteBackend, tmp_path: Path
) -> None:
    seed(source)
    lines = export_bytes(source).splitlines(keepends=True)
    cut = write(tmp_path, b"".join(lines[:-3]))  # whole lines, no trailer
    with pytest.raises(TransferError, match="trailer is missing"):
        import_tenant(target, "t1", cut)
    mid_line = write(tmp_path, b"".join(lines[:8]) + lines[8][:20], "mid.jsonl")
    with pytest.raises(TransferError, match=r"line 9: .*truncated"):
        import_tenant(target, "t1", mid_line)
    assert all_records(target, "t1") == []
    partial = import_tenant(target, "t1", mid_line, allow_partial=True)
    assert not partial.complete and partial.error_count == 0
    assert any("line 9: truncated" in problem for problem in partial.problems)
    assert sum(c["created"] for c in partial.counts.values()) == 7  # lines 2-8


def test_an_altered_file_is_refused_by_its_hash(
    source: SqliteBackend, target: SqliteBackend, tmp_path: Path
) -> None:
    seed(source)
    data = export_bytes(source).replace(b'"level":1', b'"level":7')
    with pytest.raises(TransferError, match=r"SHA-256 .* does not match"):
        import_tenant(target, "t1", write(tmp_path, data))
    assert all_records(target, "t1") == []
    dropped = export_bytes(source).splitlines(keepends=True)
    del dropped[3]
    with pytest.raises(TransferError, match="does not match"):
        import_tenant(target, "t1", write(tmp_path, b"".join(dropped), "dropped.jsonl"))


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"kind": "bogus"}', "unknown kind 'bogus'"),
        (
            b'{"kind": "record", "collection": "nope", "id": "a", "data": {}}',
            "unknown collection 'nope'",
        ),
        (record_line("bad id"), "id: must be 1-128 characters"),
        (record_line("a" * 129), "id: must be 1-128 characters"),
        (record_line("ok", **{"a.b": 1}), "not allowed"),
        (record_line("ok", nested=json.loads("[" * 20 + "]" * 20)), "levels deep"),
        (record_line("ok", created_at=-1), "created_at: must be epoch milliseconds"),
        (record_line("ok", created_at="2026"), "created_at: must be epoch milliseconds"),
        (record_line("ok", id="x"), "must not hold an id"),
        (record_line("ok", big=2**60), "within"),
        (record_line("ok", text="a\u0000b"), "NUL"),
        (b'{"kind": "record", "collection": "bots", "id": "a", "data": {}, "x": 1}', "'x'"),
        (b'{"kind": "record", "collection": "bots", "id": "a", "data": {"n": NaN}}', "NaN"),
        (b'{"kind": "aggregate", "key": "weekly", "value": {}}', "unknown key 'weekly'"),
        (
            b'{"kind": "lifecycle_log", "id": "l", "bot_id": "b", "type": "t", "message": "m",'
            b' "timestamp": 1.5, "details": {}}',
            "timestamp: must be epoch milliseconds",
        ),
        (header(), "a header line in the middle"),
    ],
)
def test_a_bad_line_is_named_and_nothing_is_written(
    target: SqliteBackend, tmp_path: Path, line: bytes, message: str
) -> None:
    data = rehash([header(), record_line("good-1"), line, record_line("good-2")])
    path = write(tmp_path, data)
    with pytest.raises(TransferError, match=r"line 3: .*" + re.escape(message)) as raised:
        import_tenant(target, "t1", path)
    assert [error["line"] for error in raised.value.details] == [3]
    assert all_records(target, "t1") == []
    report = import_tenant(target, "t1", path, continue_on_error=True)
    assert [error.line for error in report.errors] == [3] and report.error_count == 1
    assert [record.id for record in all_records(target, "t1")] == ["good-1", "good-2"]


def test_bad_headers_and_lines_after_the_trailer(target: SqliteBackend, tmp_path: Path) -> None:
    for first, message in [
        (b"", "empty"),
        (b'{"kind": "record"}\n', "line 1: not a botmox-domain-data file"),
        (header().replace(b'"version": 1', b'"version": 2') + b"\n", "version 2 is newer"),
    ]:
        with pytest.raises(TransferError, match=message):
            import_tenant(target, "t1", write(tmp_path, first))
    data = rehash([header(), record_line()]) + record_line("late") + b"\n"
    with pytest.raises(TransferError, match="line 4: a line after the trailer"):
        import_tenant(target, "t1", write(tmp_path, data))


def test_a_log_entry_that_exists_with_other_content_is_reported(
    source: SqliteBackend, target: SqliteBackend, tmp_path: Path
) -> None:
    seed(source)
    data = export_bytes(source)
    import_tenant(target, "t1", write(tmp_path, data))
    lines = data.splitlines()
    changed = [line.replace(b'"from prepare"', b'"rewritten"') for line in lines[:-1]]
    report = import_tenant(
        target, "t1", write(tmp_path, rehash(changed), "changed.jsonl"), continue_on_error=True
    )
    assert report.error_count == 4
    assert all("exists with other content" in error.message for error in report.errors)
    assert report.counts["bots"]["unchanged"] == 3


def test_dry_run_counts_and_writes_nothing(
    source: SqliteBackend, target: SqliteBackend, tmp_path: Path
) -> None:
    seed(source)
    report = import_tenant(target, "t1", write(tmp_path, export_bytes(source)), dry_run=True)
    assert report.dry_run and report.counts["bots"] == {"created": 3, "updated": 0, "unchanged": 0}
    assert report.counts["lifecycle_log"]["created"] == 4
    assert all_records(target, "t1") == []
    with target.unit_of_work() as uow:
        assert uow.settings.get("t1") is None and list(uow.bot_history.log("t1")) == []


def test_an_import_ends_with_the_backends_refresh_and_a_dry_run_does_not(
    source: SqliteBackend, target: SqliteBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``after_bulk_write`` (PostgreSQL: VACUUM ANALYZE) runs once, after the last batch."""
    refreshed: list[int] = []
    monkeypatch.setattr(
        target,
        "after_bulk_write",
        lambda: refreshed.append(len(all_records(target, "t1"))),
        raising=False,
    )
    seed(source)
    path = write(tmp_path, export_bytes(source))
    import_tenant(target, "t1", path, dry_run=True)
    assert refreshed == []
    import_tenant(target, "t1", path)
    assert refreshed == [len(all_records(target, "t1"))] and refreshed[0] > 0


def test_an_import_that_writes_nothing_refreshes_nothing(
    source: SqliteBackend, target: SqliteBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same file again: every record unchanged, so no VACUUM on a large database."""
    refreshed: list[int] = []
    monkeypatch.setattr(target, "after_bulk_write", lambda: refreshed.append(1), raising=False)
    seed(source)
    path = write(tmp_path, export_bytes(source))
    import_tenant(target, "t1", path)
    again = import_tenant(target, "t1", path)
    assert all(not c["created"] and not c["updated"] for c in again.counts.values())
    assert refreshed == [1]


def test_a_failing_refresh_after_an_import_is_a_warning_not_a_failure(
    source: SqliteBackend,
    target: SqliteBackend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The data is written before the refresh: the database going away then (or a timeout on a
    huge VACUUM) must not turn a finished import into an error."""

    def broken() -> None:
        raise DatabaseError("server closed the connection unexpectedly")

    monkeypatch.setattr(target, "after_bulk_write", broken, raising=False)
    seed(source)
    with caplog.at_level(logging.WARNING, logger="botmox_core.ports.domains"):
        report = import_tenant(target, "t1", write(tmp_path, export_bytes(source)))
    assert report.counts["bots"]["created"] == 3
    assert all_records(target, "t1") == all_records(source, "t1")
    assert "refreshing the sqlite backend's statistics failed (DATABASE_ERROR" in caplog.text


# -- the command line -------------------------------------------------------------------------


def test_cli_export_to_stdout_and_import_from_stdin_with_json_reports(
    source: SqliteBackend, tmp_path: Path
) -> None:
    seed(source)
    source.close()
    runner = CliRunner()
    exported = runner.invoke(
        cli, ["data", "export", "--tenant", "t1", "-", "--data-dir", str(tmp_path / "source")]
    )
    assert exported.exit_code == 0, exported.output
    assert exported.stdout.splitlines()[0].startswith('{"kind":"header"')
    assert "exported 13 items" in exported.stderr and "exported 13" not in exported.stdout
    target_dir = tmp_path / "fresh"
    args = ["data", "import", "--tenant", "t9", "-", "--data-dir", str(target_dir), "--json"]
    refused = runner.invoke(cli, args, input=exported.stdout_bytes)
    assert refused.exit_code == 1 and "no botmox database" in refused.output
    imported = runner.invoke(cli, [*args, "--init"], input=exported.stdout_bytes)
    assert imported.exit_code == 0, imported.output
    summary = json.loads(imported.stdout)
    assert summary["tenant"] == "t9" and summary["source"]["tenant"] == "t1"
    assert summary["complete"] is True and summary["counts"]["bots"]["created"] == 3
    again = runner.invoke(cli, [*args, "--dry-run"], input=exported.stdout_bytes)
    assert json.loads(again.stdout)["counts"]["bots"] == {
        "created": 0,
        "updated": 0,
        "unchanged": 3,
    }


def test_cli_bad_lines_exit_non_zero_naming_them(tmp_path: Path) -> None:
    data = rehash([header(), record_line("good"), b"{oops", record_line("also bad id!")])
    path = write(tmp_path, data)
    runner = CliRunner()
    base = ["data", "import", "--tenant", "t1", str(path), "--data-dir", str(tmp_path / "d")]
    refused = runner.invoke(cli, [*base, "--init"])
    assert refused.exit_code == 1
    assert "2 bad line(s), nothing imported: line 3: not JSON" in refused.stderr
    assert "line 4: id: must be" in refused.stderr
    going_on = runner.invoke(cli, [*base, "--continue-on-error"])
    assert going_on.exit_code == 1
    assert "bots: 1 created" in going_on.stdout and "line 3: not JSON" in going_on.stdout
    assert "2 line(s) not imported" in going_on.stderr
    backend = SqliteBackend(tmp_path / "d" / "botmox.sqlite3")
    try:
        assert [record.id for record in all_records(backend, "t1")] == ["good"]
    finally:
        backend.close()


# -- batched record writes ----------------------------------------------------------------------


def test_import_writes_each_batch_of_records_with_one_put_many(
    target: SqliteBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's records are looked up in a few reads and written in one put_many: new ones
    created, changed ones replaced, equal ones left alone, and the target's records the file
    does not hold (many of them between the file's ids) untouched."""
    from botmox_core.backends.sqlite.records import SqliteRecordRepository

    monkeypatch.setattr(transfer.importing, "BATCH_SIZE", 40)
    monkeypatch.setattr(transfer.writing, "_LOOKUP_SLACK", 2)
    monkeypatch.setattr(transfer.writing, "_MAX_LOOKUP_SCANS", 2)
    data = {"status": "prepare", "created_at": T0, "updated_at": T0}
    with target.unit_of_work() as uow:
        for index in range(0, 100, 3):  # every third id, a third of them different
            changed = {**data, "status": "farming"} if index % 9 == 0 else data
            uow.records.add(DomainRecord("t1", Collection.BOTS, f"bot-{index:03d}", changed))
        for index in range(100):  # not in the file, between its ids
            uow.records.add(DomainRecord("t1", Collection.BOTS, f"bot-{index:03d}-x", data))
        uow.commit()
    calls: list[int] = []
    put_many = SqliteRecordRepository.put_many

    def counted(self: Any, records: Any) -> None:
        calls.append(len(records))
        put_many(self, records)

    monkeypatch.setattr(SqliteRecordRepository, "put_many", counted)
    lines = [header(), *(record_line(f"bot-{index:03d}", **data) for index in range(100))]
    report = import_tenant(target, "t1", write(tmp_path, rehash(lines)))
    stored = set(range(0, 100, 3))
    differing = {index for index in stored if index % 9 == 0}
    assert report.counts["bots"] == {
        "created": 100 - len(stored),
        "updated": len(differing),
        "unchanged": len(stored) - len(differing),
    }
    assert len(calls) == 3 and sum(calls) == 100 - len(stored) + len(differing)
    records = {record.id: record for record in all_records(target, "t1")}
    assert len(records) == 200
    assert all(record.data == data for record in records.values())
    again = import_tenant(target, "t1", write(tmp_path, rehash(lines)))
    assert again.counts["bots"] == {"created": 0, "updated": 0, "unchanged": 100}
    assert len(calls) == 3  # nothing to write the second time


def test_a_record_twice_in_a_file_is_written_in_file_order(
    target: SqliteBackend, tmp_path: Path
) -> None:
    lines = [
        header(),
        record_line("bot-1", v=1),
        record_line("bot-2", v=1),
        record_line("bot-1", v=2),
        record_line("bot-1", v=2),
    ]
    report = import_tenant(target, "t1", write(tmp_path, rehash(lines)))
    assert report.counts["bots"] == {"created": 2, "updated": 1, "unchanged": 1}
    assert {record.id: record.data for record in all_records(target, "t1")} == {
        "bot-1": {"v": 2},
        "bot-2": {"v": 1},
    }


@pytest.mark.parametrize(
    "data",
    [
        {"a": 1, "b": "ü ✓ \U0001f600", "c": [1, {"d": None}], "e": 1.5, "f": True},
        {"integral": 2.0},
        {"big": 2**53},
        {"bad key.": 1},
        {"nul": "a\x00b"},
        {"lone": "\ud800"},
        {"inf": float("inf")},
        {"deep": {"a": {"b": {"c": {"d": 1}}}}},
        {"quotes": '"\\' * 100, "control": "\x01" * 100},
        {"unsupported": (1, 2)},
        {"k" * 769: 1},
    ],
)
def test_the_quick_line_check_agrees_with_clean_json(data: dict[str, Any]) -> None:
    """The walk that spares clean_json for plain values accepts exactly what clean_json
    accepts unchanged, and its size bound is never below the encoded size."""
    from botmox_core.errors import BadRequestError
    from botmox_core.services.domains.rules import clean_json, encoded_size
    from botmox_core.services.domains.transfer.lines import _json_object_sized, _plain_size

    try:
        expected: Any = clean_json(data, "data", max_depth=4)
    except BadRequestError:
        expected = None
    bound = _plain_size(data, 4)
    if bound is not None:
        assert repr(expected) == repr(data)
        assert encoded_size(data) <= bound
    try:
        checked, _ = _json_object_sized(data, "data", 4)
    except transfer._Bad:
        assert expected is None
    else:
        assert repr(checked) == repr(expected)
