"""The plugin guide keeps its promises: every hook is there with its exact signature,
and its worked example plugin really works."""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
import tomllib
import types
from pathlib import Path

import pytest

from guardrail.plugin import hookspecs
from guardrail.clock import VirtualClock
from guardrail.plugin.interfaces import PluginContext, Probe
from guardrail.language.loader import validate_paths
from guardrail.plugin.manager import get_plugin_manager

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "plugins.md"
HOOKS = sorted(name for name, fn in vars(hookspecs).items() if name.startswith("guardrail_") and callable(fn))


def canonical_signature(fn) -> str:
    """``guardrail_register_sources(register: Register) -> None``: the signature as
    ``inspect.signature`` reports it, with annotations written as in the source (the
    module uses ``from __future__ import annotations``, so they are strings)."""

    def text(annotation) -> str:
        return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)

    signature = inspect.signature(fn)
    params = ", ".join(f"{p.name}: {text(p.annotation)}" for p in signature.parameters.values())
    return f"{fn.__name__}({params}) -> {text(signature.return_annotation)}"


def _normalise(line: str) -> str:
    return re.sub(r"\s+", " ", line.replace("`", "")).strip()


def _heading_and_code_lines(markdown: str) -> list[str]:
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("#"):
            out.append(_normalise(line))
    return out


def code_blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", markdown, flags=re.S | re.M)


def test_canonical_signature():
    assert canonical_signature(hookspecs.guardrail_register_sources) == \
        "guardrail_register_sources(register: Register) -> None"


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_in_the_guide_with_its_signature(name):
    expected = canonical_signature(getattr(hookspecs, name))
    lines = _heading_and_code_lines(GUIDE.read_text(encoding="utf-8"))
    assert any(expected in line for line in lines), f"docs/plugins.md needs a heading or code line: {expected}"


def test_the_guide_covers_discovery_override_autoload_and_listing():
    text = GUIDE.read_text(encoding="utf-8")
    for needle in ("[project.entry-points.guardrail]", "GUARDRAIL_DISABLE_PLUGIN_AUTOLOAD=1", "guardrail plugins --json",
                   "check_pending()", "trylast", "Settings", "Params", "Reading", "RangeReading", "Target", "Outcome",
                   "ActionRun", "notify(incident, ref)"):
        assert needle in text, needle
    for block in code_blocks(text, "toml"):
        assert tomllib.loads(block)["project"]["entry-points"]["guardrail"]


def _example_plugin(monkeypatch) -> types.ModuleType:
    [source] = [block for block in code_blocks(GUIDE.read_text(encoding="utf-8"), "python")
                if block.startswith("# guardrail_file.py")]
    module = types.ModuleType("guardrail_file")
    monkeypatch.setitem(sys.modules, "guardrail_file", module)  # as an import would (pydantic looks there)
    exec(compile(source, "docs/plugins.md:guardrail_file.py", "exec"), module.__dict__)
    return module


def test_the_worked_example_plugin_works(tmp_path, monkeypatch):
    plugin = _example_plugin(monkeypatch)
    pm = get_plugin_manager(autoload=False, extra_plugins=[plugin])
    assert pm.registry.sources["file"].plugin == "guardrail_file"

    yaml_blocks = code_blocks(GUIDE.read_text(encoding="utf-8"), "yaml")
    [policy] = [block for block in yaml_blocks if block.startswith("# policy")]
    (tmp_path / "policy.yaml").write_text(policy)
    plan = textwrap.dedent("""\
        apiVersion: guardrail/v1
        kind: Rollout
        service: mail-sender
        change: {version: "2", previous: "1"}
        deploy: {plugin: noop}
        sources:
          file: {directory: queues}
        regions: {r1: {}}
        waves: [{name: canary, regions: [r1], bake: 5m}]
        policies: [policy.yaml]
    """)
    (tmp_path / "plan.yaml").write_text(plan)
    assert validate_paths([tmp_path], pm.registry) == (2, [])

    # The typos the guide promises to catch.
    (tmp_path / "plan.yaml").write_text(plan.replace("{directory: queues}", "{dir: queues}"))
    (tmp_path / "policy.yaml").write_text(policy.replace("path:", "paht:"))
    _, problems = validate_paths([tmp_path / "plan.yaml"], pm.registry)
    messages = sorted(p.message for p in problems)
    assert "unknown key 'dir'; expected one of: directory" in messages
    assert "unknown key 'paht' (did you mean 'path'?)" in messages
    # ...and without the plugin, the source is unknown.
    _, problems = validate_paths([tmp_path / "policy.yaml"], get_plugin_manager(autoload=False).registry)
    assert any("unknown source 'file'" in p.message for p in problems)

    # It measures.
    source_class = pm.registry.sources["file"].factory
    context = PluginContext(clock=VirtualClock(0), state_dir=tmp_path, base_dir=tmp_path)
    source = source_class(source_class.Settings(directory="queues"), context)
    probe = Probe(check="queue-depth", region="r1", params={"path": "queue-r1.txt"})
    assert source.measure(probe, 0).series == ()  # no file yet: no data
    (tmp_path / "queues").mkdir()
    (tmp_path / "queues" / "queue-r1.txt").write_text("4200\n")
    assert source.measure(probe, 0).series[0].value == 4200
    (tmp_path / "queues" / "queue-r1.txt").write_text("lots")
    assert "not a number" in source.measure(probe, 0).error


def test_the_plugin_guide_names_the_whole_public_kit_and_imports_only_from_it():
    import re

    import guardrail

    guide = (REPO / "docs" / "plugins.md").read_text()
    missing = [name for name in guardrail.__all__ if name != "__version__" and f"`{name}`" not in guide]
    assert not missing, f"public names the plugin guide does not list: {missing}"
    imports = re.findall(r"^from (guardrail[\w.]*) import", guide, re.M)
    assert imports and set(imports) == {"guardrail"}, imports
    for name in guardrail.__all__:
        getattr(guardrail, name)  # every advertised name resolves
