"""What ``botmox runner fetch`` runs (imported when the command runs, not when the CLI starts):
the runner client keeping a destination that already holds the release, with a progress bar."""

from __future__ import annotations

import hashlib
from pathlib import Path

from botmox_core.cli._output import byte_progress
from botmox_core.client import (
    DownloadResult,
    FetchResult,
    ProgressCallback,
    ResolvedDownload,
    RetryPolicy,
    RunnerClient,
)

__all__ = ["fetch", "holds_release"]


def holds_release(dest: Path, sha256: str, size: int) -> bool:
    """Whether ``dest`` is a regular file of exactly ``size`` bytes hashing to ``sha256``."""
    try:
        if not dest.is_file() or dest.stat().st_size != size:
            return False
        digest = hashlib.sha256()
        with dest.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return False
    return digest.hexdigest() == sha256.lower()


class _KeepingClient(RunnerClient):
    """A :class:`RunnerClient` whose downloads leave a destination that already holds the
    resolved release alone (what a package manager does), noting that it did."""

    up_to_date = False

    def download(
        self,
        source: ResolvedDownload | str,
        dest: str | Path,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> DownloadResult:
        if isinstance(source, ResolvedDownload):
            sha256 = expected_sha256 or source.sha256
            size = source.size_bytes if expected_size is None else expected_size
            if holds_release(Path(dest), sha256, size):
                self.up_to_date = True
                return DownloadResult(path=Path(dest), sha256=sha256.lower(), size_bytes=size)
        return super().download(source, dest, expected_sha256, expected_size, progress)


def fetch(
    server: str,
    token: str,
    module: str,
    platform: str,
    channel: str,
    dest: Path,
    vm_uuid: str | None,
    user_id: str | None,
    retries: int,
    *,
    show_progress: bool,
) -> tuple[FetchResult, bool]:
    client = _KeepingClient(server, token, retry_policy=RetryPolicy(max_retries=retries))
    with client, byte_progress(show_progress) as bar:
        task = bar.add_task(f"{module} ", total=None) if bar is not None else None

        def progress(done: int, total: int) -> None:
            if bar is not None and task is not None:
                bar.update(task, completed=done, total=total)

        result = client.fetch(
            module, platform, channel, dest, vm_uuid=vm_uuid, user_id=user_id, progress=progress
        )
        return result, client.up_to_date
