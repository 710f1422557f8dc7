"""The plugin manager: built-ins through the same manager, entry points, allow/block lists,
loud failures."""

from __future__ import annotations

import types
from importlib.metadata import EntryPoint

import pluggy
import pytest

from botmox_core.errors import ConfigurationError
from botmox_core.plugin import build_plugin_manager, hookimpl, load_registry
from botmox_core.plugin import manager as manager_module
from botmox_core.plugin.manager import PluginRegistry


def test_builtins_register_through_the_manager() -> None:
    registry = load_registry({"BOTMOX_PLUGINS": "none"})
    assert {"sqlite"} <= set(registry.data_backends.factories)
    assert {"localfs"} <= set(registry.storages.factories)
    assert {"inprocess"} <= set(registry.agent_transports.factories)
    assert registry.manager.get_plugin("sqlite") is not None


def test_block_list_removes_a_builtin() -> None:
    registry = load_registry({"BOTMOX_PLUGINS": "none", "BOTMOX_DISABLE_PLUGINS": "localfs"})
    with pytest.raises(ConfigurationError, match="unknown storage 'localfs'"):
        registry.storages.get("localfs")


def _entry_points(monkeypatch: pytest.MonkeyPatch, *modules_and_names: object) -> None:
    """Make ``entry_points()`` list the given (module, name, module, name, ...) plugins."""
    import sys

    pairs = list(zip(modules_and_names[::2], modules_and_names[1::2], strict=True))
    for module, _ in pairs:
        sys.modules[module.__name__] = module  # type: ignore[attr-defined]
    monkeypatch.setattr(
        manager_module,
        "entry_points",
        lambda group: [
            EntryPoint(name=name, value=module.__name__, group=group)  # type: ignore[attr-defined]
            for module, name in pairs
        ],
    )


def test_entry_point_plugins_load_and_obey_the_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = types.ModuleType("third_party_store")

    @hookimpl
    def botmox_register_storages(register):  # type: ignore[no-untyped-def]
        register("thirdparty", lambda settings: object())

    plugin.botmox_register_storages = botmox_register_storages  # type: ignore[attr-defined]
    _entry_points(monkeypatch, plugin, "thirdparty")
    assert "thirdparty" in load_registry({}).storages.factories
    assert "thirdparty" not in load_registry({"BOTMOX_PLUGINS": "other"}).storages.factories
    assert (
        "thirdparty"
        not in load_registry({"BOTMOX_DISABLE_PLUGINS": "thirdparty"}).storages.factories
    )


def test_a_misspelt_hook_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = types.ModuleType("misspelt_plugin")

    @hookimpl
    def botmox_register_storage(register):  # type: ignore[no-untyped-def]  # missing "s"
        return None

    plugin.botmox_register_storage = botmox_register_storage  # type: ignore[attr-defined]
    _entry_points(monkeypatch, plugin, "misspelt")
    with pytest.raises(pluggy.PluginValidationError):
        build_plugin_manager({})


def test_a_broken_plugin_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        manager_module,
        "entry_points",
        lambda group: [EntryPoint(name="broken", value="no_such_module_xyz", group=group)],
    )
    with pytest.raises(ConfigurationError, match="plugin 'broken'"):
        build_plugin_manager({})


def test_duplicate_and_invalid_registrations_are_refused() -> None:
    pm = build_plugin_manager({"BOTMOX_PLUGINS": "none"})
    twice = types.ModuleType("twice")

    @hookimpl
    def botmox_register_data_backends(register):  # type: ignore[no-untyped-def]
        register("sqlite", lambda settings: object())

    twice.botmox_register_data_backends = botmox_register_data_backends  # type: ignore[attr-defined]
    pm.register(twice)
    with pytest.raises(ConfigurationError, match="registered twice"):
        PluginRegistry(pm)
    with pytest.raises(ConfigurationError):
        load_registry({"BOTMOX_PLUGINS": "none"}).storages.register("", lambda s: None)
    with pytest.raises(ConfigurationError, match="not callable"):
        load_registry({"BOTMOX_PLUGINS": "none"}).storages.register("x", "nope")  # type: ignore[arg-type]


def test_converter_hook_extends_the_shared_converter(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from botmox_core.bootstrap import bootstrap
    from botmox_core.config import load_settings
    from botmox_core.converter import get_converter

    class Colour:
        def __init__(self, name: str) -> None:
            self.name = name

    plugin = types.ModuleType("colour_plugin")

    @hookimpl
    def botmox_configure_converter(converter):  # type: ignore[no-untyped-def]
        converter.register_unstructure_hook(Colour, lambda colour: f"colour:{colour.name}")

    plugin.botmox_configure_converter = botmox_configure_converter  # type: ignore[attr-defined]
    env = {"BOTMOX_PLUGINS": "none", "BOTMOX_DATA_DIR": str(tmp_path)}
    registry = load_registry(env)
    registry.manager.register(plugin)
    bootstrap(load_settings(env), registry=registry).close()
    assert get_converter().unstructure(Colour("red")) == "colour:red"


def test_command_hook_adds_cli_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    import click
    from click.testing import CliRunner

    from botmox_core import cli as cli_module

    plugin = types.ModuleType("hello_plugin")

    @click.command("hello")
    def hello() -> None:
        click.echo("hello from a plugin")

    @hookimpl
    def botmox_register_commands(register):  # type: ignore[no-untyped-def]
        register("hello", hello)

    plugin.botmox_register_commands = botmox_register_commands  # type: ignore[attr-defined]
    _entry_points(monkeypatch, plugin, "hello")
    cli_module._add_commands()
    try:
        result = CliRunner().invoke(cli_module.cli, ["hello"])
        assert result.output == "hello from a plugin\n"
    finally:
        cli_module.cli.commands.pop("hello", None)


@pytest.mark.parametrize("taken", ["serve", "admin", "hello"])
def test_a_plugin_command_cannot_take_a_used_name(
    monkeypatch: pytest.MonkeyPatch, taken: str
) -> None:
    """A plugin registering ``serve`` (or a name another plugin has) fails at start-up with a
    clear error naming the plugin and the command; the core's command stays in place."""
    import click

    from botmox_core import cli as cli_module

    first = types.ModuleType("first_plugin")
    hijack = types.ModuleType("hijack_plugin")

    @hookimpl
    def register_hello(register):  # type: ignore[no-untyped-def]
        register("hello", click.Command("hello"))

    @hookimpl(specname="botmox_register_commands")
    def register_taken(register):  # type: ignore[no-untyped-def]
        register(taken, click.Command(taken))

    first.botmox_register_commands = register_hello  # type: ignore[attr-defined]
    hijack.botmox_register_commands = register_taken  # type: ignore[attr-defined]
    _entry_points(monkeypatch, first, "first", hijack, "hijack")
    original = cli_module.cli.commands.get("serve")
    try:
        with pytest.raises(ConfigurationError, match=rf"'hijack'.*'{taken}'.*already taken"):
            cli_module._add_commands()
    finally:
        cli_module.cli.commands.pop("hello", None)
    assert cli_module.cli.commands.get("serve") is original
    with pytest.raises(SystemExit) as exited:  # the console script: one line, no traceback
        cli_module.main()
    assert str(exited.value).startswith("Error: CONFIGURATION_ERROR: plugin 'hijack'")
    cli_module.cli.commands.pop("hello", None)


def test_blocked_plugins_are_blocked_by_pluggy(monkeypatch: pytest.MonkeyPatch) -> None:
    """``BOTMOX_DISABLE_PLUGINS`` uses pluggy's own blocking: a blocked name cannot be
    registered later either, built-ins included (by short or module name)."""
    pm = build_plugin_manager(
        {"BOTMOX_DISABLE_PLUGINS": "botmox_core.backends.localfs,some-plugin"}
    )
    assert pm.is_blocked("localfs") and pm.is_blocked("some-plugin")
    assert pm.get_plugin("localfs") is None and pm.get_plugin("sqlite") is not None
    assert pm.register(types.ModuleType("late"), name="some-plugin") is None
