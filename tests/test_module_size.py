"""No module under ``src/`` or ``plugins/*/src/`` is over 500 lines without a reason: a line of its
module docstring starting with ``Size:`` says why it is one module (issue 10, "Must show")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 500


def _modules() -> list[Path]:
    found = sorted((ROOT / "src").rglob("*.py"))
    for plugin_src in sorted((ROOT / "plugins").glob("*/src")):
        found += sorted(plugin_src.rglob("*.py"))
    return found


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def _has_reason(path: Path) -> bool:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return any(line.strip().startswith("Size:") for line in docstring.splitlines())


def oversized_without_reason(paths: list[Path], root: Path = ROOT) -> list[str]:
    """The modules in ``paths`` over :data:`LIMIT` lines with no ``Size:`` docstring line."""
    return [
        f"{path.relative_to(root)}: {_lines(path)} lines"
        for path in paths
        if _lines(path) > LIMIT and not _has_reason(path)
    ]


def test_the_scan_finds_the_packages() -> None:
    names = {str(path.relative_to(ROOT)) for path in _modules()}
    assert "src/botmox_core/ports/__init__.py" in names
    assert any(name.startswith("src/botmox_server/") for name in names)
    assert any(name.startswith("plugins/botmox-rtdb/src/") for name in names)


def test_no_module_over_the_limit_without_a_reason() -> None:
    found = oversized_without_reason(_modules())
    assert not found, (
        f"modules over {LIMIT} lines without a `Size:` line in their docstring (split them, or "
        "write why one module is the best structure):\n" + "\n".join(found)
    )


def test_the_check_catches_a_long_module_and_accepts_a_reason(tmp_path: Path) -> None:
    body = "\n".join(f"x{index} = {index}" for index in range(LIMIT + 1)) + "\n"
    bare = tmp_path / "long.py"
    bare.write_text('"""A long module."""\n' + body, encoding="utf-8")
    reasoned = tmp_path / "reasoned.py"
    reasoned.write_text('"""A long module.\n\nSize: one table.\n"""\n' + body, encoding="utf-8")
    short = tmp_path / "short.py"
    short.write_text('"""Short."""\nx = 1\n', encoding="utf-8")
    found = oversized_without_reason([bare, reasoned, short], root=tmp_path)
    assert found == [f"long.py: {LIMIT + 2} lines"]
