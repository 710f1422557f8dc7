"""``docs/operations.md`` walked through where it can be without a deployment: every ``botmox``
command line in its code blocks names a command that exists and its options parse (click's own
parser, the same the console script uses; nothing is run). The operator CLI table names only
commands that exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from botmox_core.cli import _add_commands, cli

PAGE = Path(__file__).resolve().parent.parent / "docs" / "operations.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _command_lines() -> list[tuple[str, dict[str, str]]]:
    """Each ``botmox`` line with the variables set for it (inline or by ``export`` above it in
    the same block); ``$(...)`` substitutions become a placeholder word."""
    found = []
    for language, body in _FENCE.findall(PAGE.read_text(encoding="utf-8")):
        if language not in ("sh", "console", "bash", ""):
            continue
        exported: dict[str, str] = {}
        for line in body.replace("\\\n", " ").splitlines():
            line = re.sub(r"\$\([^)]*\)", "X", line.strip().removeprefix("$ ").strip())
            try:
                words = shlex.split(line, comments=True)
            except ValueError:
                continue
            if words[:1] == ["export"]:
                exported.update(w.split("=", 1) for w in words[1:] if "=" in w)  # type: ignore[misc]
                continue
            env = dict(exported)
            while words and _ASSIGNMENT.match(words[0]):
                name, _, value = words.pop(0).partition("=")
                env[name] = value
            if words and words[0] == "botmox" and len(words) > 1:
                found.append((shlex.join(words), env))
    return found


LINES = _command_lines()


@pytest.fixture(scope="module", autouse=True)
def commands() -> None:
    if "admin" not in cli.commands:
        _add_commands()


def _parse(words: list[str]) -> click.Command:
    """Resolve the command path and parse the options of each level; the leaf command."""
    command: click.Command = cli
    parent: click.Context | None = None
    rest = words
    while True:
        ctx = command.make_context(command.name or "botmox", list(rest), parent=parent)
        if not isinstance(command, click.Group):
            return command
        name, sub, rest = command.resolve_command(ctx, ctx.protected_args + ctx.args)
        assert sub is not None, f"no command {name}"
        command, parent = sub, ctx


def test_the_page_has_commands() -> None:
    assert len(LINES) >= 15


@pytest.mark.parametrize(("line", "env"), LINES, ids=[line for line, _ in LINES])
def test_every_command_line_parses(
    line: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        _parse(shlex.split(line)[1:])
    except click.exceptions.Exit:
        pass  # --help, --version
    except click.BadParameter as exc:
        if "does not exist" not in exc.format_message():  # a path of the operator's host
            raise


def test_the_operator_cli_table_names_real_commands() -> None:
    page = PAGE.read_text(encoding="utf-8")
    section = page[page.index("## Operator CLI") : page.index("## Incident checks")]
    rows = [line for line in section.splitlines() if line.startswith("| `botmox ")]
    assert len(rows) >= 12
    for row in rows:
        first = row.split("`")[1]  # e.g. botmox admin token create|list|show|revoke --tenant T
        words = first.split()[1:]
        path = [w for w in words if (not w.startswith("-") and w.islower()) or "|" in w]
        group: click.Command = cli
        for word in path:
            if not isinstance(group, click.Group):
                break
            names = word.replace("\\", "").split("|")
            for name in names:
                assert name in group.commands, f"{first}: no command {name}"
            group = group.commands[names[0]]
