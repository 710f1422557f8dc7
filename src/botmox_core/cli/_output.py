"""Output helpers shared by the CLI commands: JSON for scripts, text for people, progress bars
on stderr only when a person is watching."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from botmox_core.converter import get_converter


def emit(data: Any, as_json: bool, text: str) -> None:
    """Print ``data`` as one JSON document (``--json``) or ``text`` for people."""
    if as_json:
        click.echo(json.dumps(get_converter().unstructure(data), indent=2, sort_keys=True))
    else:
        click.echo(text)


@contextmanager
def byte_progress(enabled: bool) -> Iterator[Progress | None]:
    """A rich progress display on stderr, or ``None`` when disabled or stderr is not a TTY."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with progress:
        yield progress
