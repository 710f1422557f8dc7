"""Verified, resumable downloads against a real loopback HTTP server with fault injection.

Every test runs with the sync and the async client (``flavour``): both must behave alike, but
for how much of a cut transfer they keep: the sync client keeps every byte it received (it reads
the body in pieces as they arrive), the async client its whole 1 MiB chunks (:func:`kept_of`).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from botmox_core.client import (
    CHUNK_SIZE,
    AsyncRunnerClient,
    DownloadResult,
    NetworkError,
    ResolvedDownload,
    RetryPolicy,
    RunnerClient,
)
from botmox_core.errors import ArtifactIntegrityError, DownloadUrlInvalidError
from tests.test_client_servers import (
    API_TOKEN,
    FILE_PATH,
    ScriptedBotmoxServer,
    botmox_server,
)

__all__ = ["botmox_server"]  # the fixture, re-exported for pytest

FAST = RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.05)
NO_RETRY = RetryPolicy(max_retries=0)


def resolved_for(server: ScriptedBotmoxServer, *, ttl: float = 300.0) -> ResolvedDownload:
    signature = secrets.token_hex(8)
    expires = datetime.now(UTC) + timedelta(seconds=ttl)
    server.signatures[signature] = expires
    return ResolvedDownload(
        download_url=f"{server.url}{FILE_PATH}?X-Signature={signature}",
        url_expires_at=expires,
        release_id=1,
        version="1.0.0",
        sha256=server.sha256,
        size_bytes=len(server.payload),
    )


class Flavour:
    """Runs ``download`` through the sync or the async client with the same arguments."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def download(
        self,
        server: ScriptedBotmoxServer,
        source: ResolvedDownload | str,
        dest: Path,
        *,
        policy: RetryPolicy = FAST,
        progress: Callable[[int, int], None] | None = None,
        **kwargs: Any,
    ) -> DownloadResult:
        if self.kind == "sync":
            with RunnerClient(server.url, API_TOKEN, retry_policy=policy) as client:
                return client.download(source, dest, progress=progress, **kwargs)

        async def run() -> DownloadResult:
            async with AsyncRunnerClient(server.url, API_TOKEN, retry_policy=policy) as client:
                return await client.download(source, dest, progress=progress, **kwargs)

        return asyncio.run(run())


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> Flavour:
    return Flavour(request.param)


def kept_of(flavour: Flavour, sent: int) -> int:
    """What a transfer cut after ``sent`` bytes leaves in the ``.part`` for ``flavour``."""
    return sent if flavour.kind == "sync" else sent - sent % CHUNK_SIZE


def file_gets(server: ScriptedBotmoxServer) -> list[Any]:
    return server.requests_to(FILE_PATH)


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir() if p.name.startswith(dest.name + "."))


def test_full_download_verifies_and_reports_progress(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour, tmp_path: Path
) -> None:
    dest = tmp_path / "bot.bin"
    seen: list[tuple[int, int]] = []
    result = flavour.download(
        botmox_server, resolved_for(botmox_server), dest, progress=lambda d, t: seen.append((d, t))
    )
    assert dest.read_bytes() == botmox_server.payload
    assert result.sha256 == botmox_server.sha256
    assert result.size_bytes == len(botmox_server.payload)
    assert result.resumed_from == 0
    assert leftovers(dest) == []
    size = len(botmox_server.payload)
    assert seen[0] == (0, size) and seen[-1] == (size, size)
    steps = [b - a for (a, _), (b, _) in itertools.pairwise(seen)]
    if flavour.kind == "sync":  # as the pieces arrive, none over 1 MiB
        assert all(0 < step <= CHUNK_SIZE for step in steps)
    else:  # chunks of 1 MiB except the last one
        assert all(step == CHUNK_SIZE for step in steps[:-1]) and steps[-1] <= CHUNK_SIZE
    (request,) = file_gets(botmox_server)
    assert "authorization" not in request.headers  # the API token never goes to download URLs
    assert "range" not in request.headers


def test_interrupted_download_resumes_with_range_and_if_range(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour, tmp_path: Path
) -> None:
    dest = tmp_path / "bot.bin"
    source = resolved_for(botmox_server)
    botmox_server.file_faults.append({"cut_after": CHUNK_SIZE + CHUNK_SIZE // 2})
    with pytest.raises(NetworkError):
        flavour.download(botmox_server, source, dest, policy=NO_RETRY)
    assert not dest.exists()
    part = tmp_path / "bot.bin.part"
    kept = part.stat().st_size
    assert 0 < kept < len(botmox_server.payload)
    sidecar = json.loads((tmp_path / "bot.bin.part.json").read_text())
    assert sidecar["sha256"] == botmox_server.sha256
    assert sidecar["etag"] == botmox_server.etag
    assert "X-Signature" not in json.dumps(sidecar)  # the URL is not part of the identity

    result = flavour.download(botmox_server, source, dest, policy=NO_RETRY)
    first, second = file_gets(botmox_server)
    assert "range" not in first.headers
    assert second.headers["range"] == f"bytes={kept}-"
    assert second.headers["if-range"] == botmox_server.etag
    assert result.resumed_from == kept
    assert dest.read_bytes() == botmox_server.payload
    assert leftovers(dest) == []


def test_cut_connection_is_retried_and_resumed_within_one_call(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour, tmp_path: Path
) -> None:
    dest = tmp_path / "bot.bin"
    botmox_server.file_faults.extend([{"cut_after": CHUNK_SIZE + 10}, {"cut_after": CHUNK_SIZE}])
    result = flavour.download(botmox_server, resolved_for(botmox_server), dest)
    assert dest.read_bytes() == botmox_server.payload
    ranges = [r.headers.get("range") for r in file_gets(botmox_server)]
    first = kept_of(flavour, CHUNK_SIZE + 10)
    second = first + kept_of(flavour, CHUNK_SIZE)
    assert ranges == [None, f"bytes={first}-", f"bytes={second}-"]
    assert result.resumed_from == second


def test_server_ignoring_range_restarts_from_zero(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour, tmp_path: Path
) -> None:
    dest = tmp_path / "bot.bin"
    source = resolved_for(botmox_server)
    botmox_server.file_faults.append({"cut_after": 2 * CHUNK_SIZE + 1})
    with pytest.raises(NetworkError):
        flavour.download(botmox_server, source, dest, policy=NO_RETRY)
    kept = kept_of(flavour, 2 * CHUNK_SIZE + 1)
    assert (tmp_path / "bot.bin.part").stat().st_size == kept
    botmox_server.ignore_range = True
    result = flavour.download(botmox_server, source, dest, policy=NO_RETRY)
    assert file_gets(botmox_server)[-1].headers["range"] == f"bytes={kept}-"
    assert result.resumed_from == 0  # a 200 answer replaced the part instead of appending
    assert dest.read_bytes() == botmox_server.payload


def test_corrupted_stream_never_lands_and_leaves_no_trusted_part(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour, tmp_path: Path
) -> None:
    dest = tmp_path / "bot.bin"
    botmox_server.file_faults.append({"flip_at": 2 * CHUNK_SIZE + 17})
    with pytest.raises(ArtifactIntegrityError) as caught:
        flavour.download(botmox_server, resolved_for(botmox_server), dest)
    assert caught.value.code == "ARTIFACT_INTEGRITY_MISMATCH"
    assert caught.value.details["expected_sha256"] == botmox_server.sha256
    assert caught.value.details["actual_sha256"] != botmox_server.sha256
    assert not dest.exists()
    assert leftovers(dest) == []


def test_corruption_after_resume_discards_the_part_too(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour, tmp_path: Path
) -> None:
    dest = tmp_path / "bot.bin"
    source = resolved_for(botmox_server)
    botmox_server.file_faults.append({"cut_after": CHUNK_SIZE + 5})
    with pytest.raises(NetworkError):
        flavour.download(botmox_server, source, dest, policy=NO_RETRY)
    assert (tmp_path / "bot.bin.part").exists()
    botmox_server.file_faults.append({"flip_at": len(botmox_server.payload) - 1})
    with pytest.raises(ArtifactIntegrityError):
        flavour.download(botmox_server, source, dest, policy=NO_RETRY)
    assert not dest.exists()
    assert leftovers(dest) == []
    # the next attempt starts from zero and succeeds
    flavour.download(botmox_server, source, dest, policy=NO_RETRY)
    assert "range" not in file_gets(botmox_server)[-1].headers
    assert dest.read_bytes() == botmox_server.payload


def test_existing_destination_untouched_until_new_file_verifies(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour, tmp_path: Path
) -> None:
    dest = tmp_path / "bot.bin"
    dest.write_bytes(b"the previous, working release")
    botmox_server.flip_always_at = 3
    with pytest.raises(ArtifactIntegrityError):
        flavour.download(botmox_server, resolved_for(botmox_server), dest)
    assert dest.read_bytes() == b"the previous, working release"
    botmox_server.file_faults.append({"cut_after": 10})
    botmox_server.flip_always_at = None
    with pytest.raises(NetworkError):
        flavour.download(botmox_server, resolved_for(botmox_server), dest, policy=NO_RETRY)
    assert dest.read_bytes() == b"the previous, working release"
    flavour.download(botmox_server, resolved_for(botmox_server), dest)
    assert dest.read_bytes() == botmox_server.payload


def test_wrong_declared_size_fails_before_downloading(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour, tmp_path: Path
) -> None:
    dest = tmp_path / "bot.bin"
    url = resolved_for(botmox_server).download_url
    with pytest.raises(ArtifactIntegrityError) as caught:
        flavour.download(
            botmox_server, url, dest, expected_sha256=botmox_server.sha256, expected_size=100
        )
    assert caught.value.details["actual_size"] == len(botmox_server.payload)
    assert leftovers(dest) == [] and not dest.exists()


def test_part_for_another_release_is_not_resumed(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour, tmp_path: Path
) -> None:
    dest = tmp_path / "bot.bin"
    (tmp_path / "bot.bin.part").write_bytes(b"x" * 5000)
    (tmp_path / "bot.bin.part.json").write_text(
        json.dumps({"format": 1, "sha256": "0" * 64, "size_bytes": 5000, "etag": None})
    )
    result = flavour.download(botmox_server, resolved_for(botmox_server), dest)
    assert "range" not in file_gets(botmox_server)[0].headers
    assert result.resumed_from == 0
    assert dest.read_bytes() == botmox_server.payload


def test_complete_part_is_finished_without_a_request(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour, tmp_path: Path
) -> None:
    dest = tmp_path / "bot.bin"
    (tmp_path / "bot.bin.part").write_bytes(botmox_server.payload)
    (tmp_path / "bot.bin.part.json").write_text(
        json.dumps(
            {
                "format": 1,
                "sha256": botmox_server.sha256,
                "size_bytes": len(botmox_server.payload),
                "etag": botmox_server.etag,
            }
        )
    )
    result = flavour.download(botmox_server, resolved_for(botmox_server), dest)
    assert file_gets(botmox_server) == []
    assert result.sha256 == hashlib.sha256(dest.read_bytes()).hexdigest()


def test_refused_url_raises_download_url_invalid(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour, tmp_path: Path
) -> None:
    dest = tmp_path / "bot.bin"
    url = f"{botmox_server.url}{FILE_PATH}?X-Signature=forged"
    with pytest.raises(DownloadUrlInvalidError) as caught:
        flavour.download(
            botmox_server,
            url,
            dest,
            expected_sha256=botmox_server.sha256,
            expected_size=len(botmox_server.payload),
        )
    assert "forged" not in str(caught.value)
    assert len(file_gets(botmox_server)) == 1  # a 403 is not retried blindly


def test_503_on_download_backs_off_honouring_retry_after(
    botmox_server: ScriptedBotmoxServer, flavour: Flavour, tmp_path: Path
) -> None:
    import time

    dest = tmp_path / "bot.bin"
    botmox_server.file_faults.append({"status": 503, "retry_after": "1"})
    started = time.monotonic()
    flavour.download(botmox_server, resolved_for(botmox_server), dest)
    assert time.monotonic() - started >= 1.0
    assert len(file_gets(botmox_server)) == 2
    assert dest.read_bytes() == botmox_server.payload
