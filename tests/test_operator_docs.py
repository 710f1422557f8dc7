"""The nox sessions the README and docs name are the ones ``nox -l`` lists, and the other way
round (a new operator copies these commands)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_LISTED = re.compile(r"^[*-] (\S+) -> ", re.MULTILINE)
_RUN = re.compile(r"nox -s (?:'([^']+)'|\"([^\"]+)\"|([\w().=,-]+))")


def nox_sessions() -> set[str]:
    pytest.importorskip("nox", reason="needs the [dev] extra")
    done = subprocess.run(
        [sys.executable, "-m", "nox", "-l", "-f", str(ROOT / "noxfile.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    names = set(_LISTED.findall(done.stdout))
    assert names, done.stdout
    return names


def readme_session_paragraph() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("`nox -l` lists the sessions:")
    return readme[start : readme.index("\n\n", start)]


def test_readme_lists_exactly_the_sessions_nox_has() -> None:
    sessions = nox_sessions()
    groups = {name.partition("(")[0] for name in sessions}
    named = set(re.findall(r"`([^`\s]+)`", readme_session_paragraph())) - {"nox -l"}
    assert named - sessions - groups == set(), "README names sessions nox does not have"
    assert sessions - named == set(), "sessions missing from the README"


def test_every_nox_command_in_the_docs_names_a_real_session() -> None:
    sessions = nox_sessions()
    runnable = sessions | {name.partition("(")[0] for name in sessions}
    pages = [ROOT / "README.md", ROOT / "noxfile.py", *sorted((ROOT / "docs").glob("*.md"))]
    commands = []
    for page in pages:
        for match in _RUN.finditer(page.read_text(encoding="utf-8")):
            commands.append((page.name, next(group for group in match.groups() if group)))
    assert commands
    unknown = [(page, name) for page, name in commands if name not in runnable]
    assert unknown == []
