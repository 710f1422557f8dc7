"""The code in docs/writing-a-storage-plugin.md is the code of this example, verbatim."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PAGE = REPO / "docs" / "writing-a-storage-plugin.md"
SNIPPET = re.compile(r"<!-- snippet: (?P<path>\S+) -->\n```\w*\n(?P<code>.*?)```", re.DOTALL)


def _snippets():
    if not PAGE.is_file():
        return []
    return [(m["path"], m["code"]) for m in SNIPPET.finditer(PAGE.read_text(encoding="utf-8"))]


@pytest.mark.skipif(not PAGE.is_file(), reason="outside the botmox repository (no docs/)")
def test_the_page_has_snippets():
    assert len(_snippets()) >= 5


@pytest.mark.parametrize(("path", "code"), _snippets())
def test_snippet_matches_source(path, code):
    source = (REPO / path).read_text(encoding="utf-8")
    assert code in source, f"docs snippet no longer matches {path}"
