"""``guardrail.plugin.manager`` and ``guardrail.plugin.hookspecs``: one manager, made by one
function, loading built-ins and third-party plugins through the same entry points.

Third-party plugins are real distributions here: a module and a ``.dist-info`` folder
with ``entry_points.txt`` on ``sys.path``, found by ``importlib.metadata`` exactly as
an installed package would be.
"""

from __future__ import annotations

import inspect
import json
import sys
import textwrap
import types
import typing
from importlib import metadata
from pathlib import Path

import pluggy
import pytest

import guardrail
from guardrail.plugin import hookspecs
from guardrail.errors import PluginError
from guardrail.plugin.manager import (
    DISABLE_AUTOLOAD_ENV,
    ENTRY_POINT_GROUP,
    KINDS,
    get_plugin_manager,
    plugin_infos,
    unknown_name_message,
)

REPO = Path(__file__).resolve().parents[1]
HOOKS = sorted(name for name, fn in vars(hookspecs).items() if name.startswith("guardrail_") and callable(fn))
BUILTINS = {"command", "journal", "noop", "prometheus", "webhook"}


@pytest.fixture(autouse=True)
def _autoload_on(monkeypatch):
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)


@pytest.fixture
def install(tmp_path, monkeypatch):
    """``install(dist, {entry_point: module}, {module: source}, version=...)``: a real,
    importable distribution that declares ``guardrail`` entry points."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def install(dist: str, entry_points: dict[str, str], sources: dict[str, str], version: str = "1.0.0") -> None:
        for module, source in sources.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
            modules.append(module)
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")

    yield install
    for module in modules:
        sys.modules.pop(module, None)


JOURNAL_OVERRIDE = """
    import guardrail
    from guardrail.plugin.interfaces import IncidentSink

    class LoudJournal(IncidentSink):
        def notify(self, incident, ref):
            return {"loud": True}

    @guardrail.hookimpl
    def guardrail_register_incident_sinks(register):
        register("journal", LoudJournal)
"""


# --- the hook specifications ----------------------------------------------------------


def test_the_hooks_of_the_design_exist():
    assert {
        "guardrail_register_sources", "guardrail_register_deployers", "guardrail_register_incident_sinks",
        "guardrail_register_actions", "guardrail_on_event", "guardrail_register_commands",
    } <= set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_every_hookspec_is_documented_and_typed(name):
    fn = getattr(hookspecs, name)
    assert hookspecs.hookspec.project_name == "guardrail"
    assert hasattr(fn, "guardrail_spec"), f"{name} is not marked with @hookspec"
    doc = inspect.getdoc(fn)
    assert doc and len(doc.splitlines()) >= 3, f"{name} needs a docstring: when it is called, parameters, return"
    assert "Called" in doc, f"{name}'s docstring must say when it is called"
    signature = inspect.signature(fn)
    for parameter in signature.parameters.values():
        assert parameter.annotation is not inspect.Parameter.empty, f"{name}({parameter.name}) has no type hint"
        assert f":param {parameter.name}:" in doc, f"{name}'s docstring does not describe {parameter.name}"
    assert signature.return_annotation is not inspect.Signature.empty, f"{name} has no return type"
    assert ":return:" in doc
    typing.get_type_hints(fn)  # the hints resolve


def test_one_name_everywhere():
    pm = get_plugin_manager()
    assert pm.project_name == "guardrail"
    assert ENTRY_POINT_GROUP == "guardrail"
    assert guardrail.hookimpl.project_name == "guardrail"
    for name in HOOKS:
        assert getattr(pm.hook, name).spec is not None


# --- the manager -----------------------------------------------------------------------


def test_each_call_returns_a_fresh_manager():
    class Extra:
        __name__ = "extra"

        @guardrail.hookimpl
        def guardrail_register_sources(self, register):
            register("extra-source", object)

    first = get_plugin_manager(extra_plugins=[Extra()])
    second = get_plugin_manager()
    assert first is not second
    assert first.registry is not second.registry
    assert "extra-source" in first.registry.sources
    assert "extra-source" not in second.registry.sources
    assert first.get_plugin("extra") is not None and second.get_plugin("extra") is None


def test_the_built_ins_are_loaded_through_the_entry_point_group():
    declared = {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert BUILTINS <= set(declared)
    assert all(declared[name].startswith("guardrail_plugins.") for name in BUILTINS)
    pm = get_plugin_manager()
    for name in BUILTINS:
        origin, version, module = pm.entry_points[name]
        assert (origin, version, module) == ("builtin", guardrail.__version__, declared[name])
    assert "prometheus" in pm.registry.sources
    assert {"command", "noop", "webhook"} <= set(pm.registry.deployers)
    assert {"command", "webhook"} <= set(pm.registry.actions)
    assert "journal" in pm.registry.incident_sinks


def test_built_in_defaults_are_trylast_so_users_can_replace_them():
    pm = get_plugin_manager()
    for name, plugin in pm.list_name_plugin():
        if pm.entry_points.get(name, ("",))[0] != "builtin":
            continue
        for kind in KINDS:
            for impl in getattr(pm.hook, f"guardrail_register_{kind}").get_hookimpls():
                if impl.plugin is plugin:
                    assert impl.trylast, f"built-in {name}: guardrail_register_{kind} should be trylast"


def test_a_misspelt_hook_fails_loudly_with_a_suggestion():
    class Typo:
        __name__ = "typo-plugin"

        @guardrail.hookimpl
        def guardrail_register_sourcez(self, register):
            register("x", object)

    with pytest.raises(PluginError) as raised:
        get_plugin_manager(extra_plugins=[Typo()])
    message = str(raised.value)
    assert "'typo-plugin'" in message
    assert "'guardrail_register_sourcez', which is not a guardrail hook" in message
    assert "(did you mean 'guardrail_register_sources'?)" in message
    assert isinstance(raised.value.__cause__, pluggy.PluginValidationError)


def test_a_hookimpl_with_an_argument_the_spec_lacks_is_a_plugin_error():
    class WrongArgument:
        @guardrail.hookimpl
        def guardrail_register_sources(self, registr):
            pass

    with pytest.raises(PluginError, match=r"plugin 'WrongArgument': .*registr"):
        get_plugin_manager(extra_plugins=[WrongArgument()])


def test_disabling_autoload_still_loads_the_built_ins(install, monkeypatch):
    install("acme-guardrail", {"acme": "acme_plugin"}, {"acme_plugin": JOURNAL_OVERRIDE})
    assert "acme" in get_plugin_manager().entry_points
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    pm = get_plugin_manager()
    assert "acme" not in pm.entry_points
    assert BUILTINS <= set(pm.entry_points)
    assert pm.registry.incident_sinks["journal"].plugin == "journal"
    assert "acme" in get_plugin_manager(autoload=True).entry_points  # the argument wins


def test_a_third_party_plugin_overrides_a_built_in(install):
    install("acme-guardrail", {"acme": "acme_plugin"}, {"acme_plugin": JOURNAL_OVERRIDE}, version="2.5.0")
    pm = get_plugin_manager()
    journal = pm.registry.incident_sinks["journal"]
    assert journal.plugin == "acme"
    assert journal.factory.__name__ == "LoudJournal"
    assert pm.entry_points["acme"] == ("acme-guardrail", "2.5.0", "acme_plugin")
    info = {i.name: i for i in plugin_infos(pm)}
    assert info["acme"].registers == {"incident_sinks": ["journal"]}
    assert "incident_sinks" not in info["journal"].registers


def test_a_plugin_registered_in_code_overrides_a_built_in_too():
    sink = types.ModuleType("my_sinks")
    exec(textwrap.dedent(JOURNAL_OVERRIDE), sink.__dict__)
    pm = get_plugin_manager(extra_plugins=[sink])
    assert pm.registry.incident_sinks["journal"].plugin == "my_sinks"


def test_two_third_party_plugins_registering_one_name_is_an_error(install):
    install("acme-guardrail", {"acme": "acme_plugin"}, {"acme_plugin": JOURNAL_OVERRIDE})
    install("other-guardrail", {"other": "other_plugin"}, {"other_plugin": JOURNAL_OVERRIDE})
    with pytest.raises(PluginError) as raised:
        get_plugin_manager()
    message = str(raised.value)
    assert "'journal'" in message and "'acme'" in message and "'other'" in message


def test_a_plugin_named_like_a_built_in_replaces_it(install):
    install("acme-noop", {"noop": "acme_noop"}, {"acme_noop": """
        import guardrail

        class Quiet:
            pass

        @guardrail.hookimpl
        def guardrail_register_deployers(register):
            register("noop", Quiet)
    """})
    pm = get_plugin_manager()
    assert pm.entry_points["noop"][0] == "acme-noop"
    assert pm.registry.deployers["noop"].factory.__name__ == "Quiet"


def test_two_third_party_plugins_with_one_entry_point_name_is_an_error(install):
    install("acme-a", {"acme": "acme_a"}, {"acme_a": "x = 1\n"})
    install("acme-b", {"acme": "acme_b"}, {"acme_b": "x = 2\n"})
    with pytest.raises(PluginError, match="two plugins are named 'acme'"):
        get_plugin_manager()


def test_a_plugin_that_fails_to_import_names_itself(install):
    install("broken-guardrail", {"broken": "broken_plugin"}, {"broken_plugin": "raise ImportError('no libfoo')\n"})
    with pytest.raises(PluginError, match="plugin 'broken' from broken-guardrail failed to load: no libfoo"):
        get_plugin_manager()


def test_registry_lookups_suggest_names():
    registry = get_plugin_manager().registry
    assert registry.get("deployers", "noop") is registry.deployers["noop"].factory
    with pytest.raises(PluginError, match=r"unknown deployer 'nop' \(did you mean 'noop'\?\); known: .*noop"):
        registry.get("deployers", "nop")
    assert unknown_name_message("source", "x", {}) == "unknown source 'x'; no source plugins are installed"
    assert unknown_name_message("action", "zzz", ["command"]) == "unknown action 'zzz'; known: command"


# --- through the command line ----------------------------------------------------------


def test_plugins_json_lists_name_version_origin_module_registers(install, cli):
    install("acme-guardrail", {"acme": "acme_plugin"}, {"acme_plugin": JOURNAL_OVERRIDE}, version="2.5.0")
    result = cli("plugins", "--json")
    assert result.exit_code == 0, result.output
    infos = {entry["name"]: entry for entry in json.loads(result.stdout)["plugins"]}
    for entry in infos.values():
        assert set(entry) == {"name", "version", "origin", "module", "registers"}
    for name in BUILTINS:
        assert infos[name]["origin"] == "builtin"
        assert infos[name]["module"] == f"guardrail_plugins.{name}"
    assert infos["prometheus"]["registers"] == {"sources": ["prometheus"]}
    assert infos["command"]["registers"] == {"deployers": ["command"], "actions": ["command"]}
    assert infos["acme"] == {"name": "acme", "version": "2.5.0", "origin": "acme-guardrail", "module": "acme_plugin",
                             "registers": {"incident_sinks": ["journal"]}}
    names = [entry["origin"] for entry in json.loads(result.stdout)["plugins"]]
    assert names.index("acme-guardrail") > max(i for i, o in enumerate(names) if o == "builtin")  # built-ins first

    table = cli("plugins")
    assert table.exit_code == 0, table.output
    assert "acme-guardrail" in table.output and "incident sinks: journal" in table.output


def test_a_broken_plugin_is_a_red_line_not_a_traceback(install, cli):
    install("typo-guardrail", {"typo": "typo_plugin"}, {"typo_plugin": """
        import guardrail

        @guardrail.hookimpl
        def guardrail_register_sourcez(register):
            pass
    """})
    result = cli("plugins")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        "error: plugin 'typo' implements 'guardrail_register_sourcez', which is not a guardrail hook "
        "(did you mean 'guardrail_register_sources'?)"
    ]
    result = cli("plugins", env={DISABLE_AUTOLOAD_ENV: "1"})
    assert result.exit_code == 0, result.output


def test_plugins_add_commands(install, monkeypatch):
    from typer.testing import CliRunner

    from guardrail.cli import create_app

    install("hello-guardrail", {"hello": "hello_plugin"}, {"hello_plugin": """
        import guardrail
        import typer

        @guardrail.hookimpl
        def guardrail_register_commands(app):
            @app.command()
            def hello(name: str = "world"):
                typer.echo(f"hello {name}")
    """})
    result = CliRunner().invoke(create_app(), ["hello", "--name", "guardrail"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello guardrail\n"
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    result = CliRunner().invoke(create_app(), ["hello"])
    assert result.exit_code == 2, result.output
