"""No import cycles in ``src/`` or ``plugins/*/src/``.

Every module is parsed with :mod:`ast` and every import counts: top-level ones, the ones inside
functions (the usual way of hiding a cycle) and the ones under ``if TYPE_CHECKING:``. A cycle
of modules importing each other is a failure, listed with the modules on it.

``from package import name`` is an edge to ``package.name`` when that is a module, else to the
package's ``__init__``; the implicit import of parent packages is not an edge (every submodule
would otherwise depend on its package's re-exports).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE_ROOTS = [ROOT / "src", *sorted((ROOT / "plugins").glob("*/src"))]

# Temporary, explicitly listed exceptions: (importer, imported) edges ignored by the check.
# Each names a cycle that is being removed in files outside the record-codec work; delete the
# entry when its cycle is gone (the test then guards it for good).
ALLOWED_EDGES: frozenset[tuple[str, str]] = frozenset()


def _modules() -> dict[str, Path]:
    """Module name -> file, for every ``.py`` file under the source roots."""
    found: dict[str, Path] = {}
    for root in SOURCE_ROOTS:
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if parts:
                found[".".join(parts)] = path
    return found


def _imported(module: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The known modules that ``module`` (in file ``path``) imports, anywhere in its body."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node.module, node.level)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in known:
                    yield submodule
                elif base in known:
                    yield base


def _absolute(module: str, is_package: bool, name: str | None, level: int) -> str:
    if level == 0:
        return name or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    package = package[: len(package) - (level - 1)]
    return ".".join([*package, name] if name else package)


def import_graph(allowed: frozenset[tuple[str, str]] = ALLOWED_EDGES) -> dict[str, set[str]]:
    """Module -> the modules it imports (self-imports and ``allowed`` edges left out)."""
    known = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        targets = set(_imported(module, path, known))
        graph[module] = {
            target for target in targets if target != module and (module, target) not in allowed
        }
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def _describe(component: list[str], graph: dict[str, set[str]]) -> str:
    members = set(component)
    edges = [
        f"    {module} -> {target}"
        for module in component
        for target in sorted(graph[module] & members)
    ]
    return "  cycle among " + ", ".join(component) + ":\n" + "\n".join(edges)


def test_the_source_roots_hold_the_packages_we_expect() -> None:
    graph = import_graph()
    for package in ("botmox_core", "botmox_server", "botmox_rtdb", "botmox_supabase"):
        assert package in graph, f"{package} not found under {SOURCE_ROOTS}"
    assert len(graph) > 50


def test_no_import_cycles() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(_describe(c, graph) for c in found)


def test_every_allowed_edge_is_still_needed() -> None:
    """An exception outlives its cycle only until this fails: then delete it from the list."""
    graph = import_graph(allowed=frozenset())
    on_a_cycle = {module for component in cycles(graph) for module in component}
    stale = sorted(
        (source, target)
        for source, target in ALLOWED_EDGES
        if target not in graph.get(source, set()) or source not in on_a_cycle
    )
    assert not stale, f"remove these from ALLOWED_EDGES, their cycles are gone: {stale}"


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        ({"a": "import b", "b": "def f():\n    from a import x\n"}, [["a", "b"]]),
        (
            {
                "a": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import b\n",
                "b": "import a",
            },
            [["a", "b"]],
        ),
        ({"p/__init__": "from p import m", "p/m": "from p import n", "p/n": ""}, []),
        ({"p/__init__": "from p.m import X", "p/m": "from p import Y"}, [["p", "p.m"]]),
        ({"p/__init__": "", "p/m": "from . import n", "p/n": "from .m import x"}, [["p.m", "p.n"]]),
        ({"a": "import b", "b": "import c", "c": ""}, []),
    ],
)
def test_the_check_finds_hidden_cycles(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sources: dict[str, str],
    expected: list[list[str]],
) -> None:
    """The checker itself: function-level, TYPE_CHECKING, relative and package imports."""
    for name, text in sources.items():
        path = tmp_path / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    monkeypatch.setitem(globals(), "SOURCE_ROOTS", [tmp_path])
    assert cycles(import_graph()) == expected
