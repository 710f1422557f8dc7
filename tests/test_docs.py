"""The docs say what the code does: every hook documented with its signature, every route and
error code listed, every relative link resolving."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from botmox_core import errors
from botmox_core.plugin import spec

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def hookspecs() -> list[tuple[str, object]]:
    return [
        (name, fn)
        for name, fn in inspect.getmembers(spec, inspect.isfunction)
        if name.startswith("botmox_")
    ]


@pytest.mark.parametrize(("name", "fn"), hookspecs())
def test_every_hook_is_documented_with_its_signature(name: str, fn: object) -> None:
    page = (DOCS / "plugin-hooks.md").read_text()
    signature = f"def {name}{inspect.signature(fn)}".replace("'", "")  # type: ignore[arg-type]
    assert signature in page, f"docs/plugin-hooks.md lacks `{signature}`"
    assert inspect.getdoc(fn), f"{name} has no docstring"


def test_every_error_code_is_documented() -> None:
    page = (DOCS / "http-api.md").read_text()
    codes = {
        cls.default_code
        for cls in vars(errors).values()
        if isinstance(cls, type)
        and issubclass(cls, errors.BotmoxError)
        and cls is not errors.BotmoxError
    }
    missing = sorted(code for code in codes if f"`{code}`" not in page)
    assert not missing, f"docs/http-api.md lacks error codes {missing}"


def _route_handlers(routes: list[object]) -> list[tuple[Any, str]]:
    """``(handler, path prefix)`` for plain handlers and for the handlers of controllers."""
    from litestar import Controller
    from litestar.handlers import HTTPRouteHandler

    found: list[tuple[Any, str]] = []
    for entry in routes:
        if isinstance(entry, type) and issubclass(entry, Controller):
            members = {  # own and inherited handlers, the nearest definition of each name
                name: value
                for klass in reversed(entry.__mro__)
                for name, value in vars(klass).items()
            }
            handlers = [v for v in members.values() if isinstance(v, HTTPRouteHandler)]
            assert handlers, f"{entry.__name__} has no route handlers"
            found.extend((handler, entry.path.rstrip("/")) for handler in handlers)
        else:
            found.append((entry, ""))
    return found


def test_every_route_is_documented() -> None:
    from botmox_server.app import ROUTES

    page = (DOCS / "http-api.md").read_text()
    for handler, prefix in _route_handlers(ROUTES):
        for path in (prefix + p if p != "/" else prefix for p in handler.paths):
            if path == "/api/v1/openapi.json":
                continue
            shown = re.sub(r"\{(\w+):\w+\}", r"{\1}", path).replace("{vm_uuid}", "{uuid}")
            shown = shown.replace("{user_id}", "{userId}").replace("{release_id}", "{id}")
            assert f"`{shown}" in page, f"docs/http-api.md lacks {shown}"


@pytest.mark.parametrize(
    "page", sorted([*DOCS.glob("*.md"), ROOT / "README.md"]), ids=lambda p: p.name
)
def test_relative_links_resolve(page: Path) -> None:
    for target in re.findall(r"\]\(([^)#]+)\)", page.read_text()):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_readme_has_the_two_set_up_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "botmox serve" in readme and "nox -s tests" in readme
    assert "nox -s tests" in (ROOT / ".ci" / "run").read_text()


def test_supabase_page_lists_every_migration() -> None:
    """docs/supabase.md's migration table names every migration the plugin ships, in order, and
    none it does not ship."""
    migrations = pytest.importorskip("botmox_supabase.migrations")
    shipped = [f"{m.version}_{m.name}.sql" for m in migrations.shipped_migrations()]
    page = (DOCS / "supabase.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| `(\d{14}_[a-z0-9_]+\.sql)` \|", page, flags=re.MULTILINE)
    assert shipped and listed == shipped
