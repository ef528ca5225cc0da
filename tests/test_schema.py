"""``guardrail schema``: what an editor is given. Checked with standard JSON Schema
validators (``jsonschema``, ``check-jsonschema``), independent of the pydantic models the
schemas come from: every example and policy validates, broken files are refused by the
schema as by ``guardrail validate``, defaults are values the schema itself accepts, and
every field says what it is."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from guardrail.language.loader import validate_paths
from guardrail.language.schema import document_kinds, document_schema, words
from guardrail.plugin.manager import get_plugin_manager

REPO = Path(__file__).resolve().parents[1]
VALID = REPO / "tests" / "data" / "valid"
DOCUMENTS = sorted(p for p in [*(REPO / "examples").rglob("*.y*ml"), *(REPO / "policies").rglob("*.y*ml")]
                   if "kind" in (yaml.safe_load(p.read_text()) or {}))


@pytest.fixture(scope="module")
def schemas(registry):
    return {kind: document_schema(kind, registry) for kind in document_kinds(registry)}


def _errors(schema: dict, data) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]


def test_every_schema_is_a_valid_json_schema_and_the_corpus_holds_every_kind(schemas):
    for schema in schemas.values():
        jsonschema.Draft202012Validator.check_schema(schema)
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in DOCUMENTS}
    assert kinds == {"Rollout", "Policy", "Scenario", "PolicyTest"} and len(DOCUMENTS) >= 40


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_example_and_policy_validates_against_its_schema(path, schemas):
    data = yaml.safe_load(path.read_text())
    assert _errors(schemas[data["kind"].lower()], data) == []


def test_check_jsonschema_agrees(schemas, tmp_path):
    """The validator pre-commit and CI use, reading the YAML itself."""
    by_kind: dict[str, list[str]] = {}
    for path in DOCUMENTS:
        by_kind.setdefault(yaml.safe_load(path.read_text())["kind"].lower(), []).append(str(path))
    for kind, files in sorted(by_kind.items()):
        schema = tmp_path / f"{kind}.json"
        schema.write_text(json.dumps(schemas[kind]))
        result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--schemafile", str(schema), *files],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text((VALID / "policy.yaml").read_text().replace("    query:", "    qeury:", 1))
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--schemafile", str(tmp_path / "policy.json"),
                             str(broken)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout


# (file in tests/data/valid, text replaced, its replacement, the key path guardrail validate reports)
BROKEN = {
    "check key typo": ("policy.yaml", "    query: sum(increase", "    qeury: sum(increase", "checks[0].qeury"),
    "policy key typo": ("policy.yaml", "interval: 30s", "intervall: 30s", "intervall"),
    "bad duration": ("policy.yaml", "    for: 2m", "    for: 2 minutes", "checks[1].for"),
    "wrong type": ("policy.yaml", "interval: 30s", "interval: 30s\ninconclusive_limit: three", "inconclusive_limit"),
    "bad comparison": ("policy.yaml", 'fail_if: "> 30"', 'fail_if: "big"', "checks[1].fail_if"),
    "unknown source plugin": ("policy.yaml", "    source: prometheus\n    query: hist",
                              "    source: promethues\n    query: hist", "checks[1].source"),
    "relative without compare": ("policy.yaml", 'fail_if: "> 30"', 'fail_if: "> +20%"', "checks[1]"),
    "baseline without compare": ("policy.yaml", "    for: 2m", "    for: 2m\n    baseline: {stat: max}", "checks[1]"),
    "relative warning without compare": ("policy.yaml", 'fail_if: "> 30"', 'fail_if: "> 30"\n    warn_if: "> +20%"',
                                         "checks[1]"),
    "warning on a warn-only check": ("policy.yaml", 'fail_if: "> 30"',
                                     'fail_if: "> 30"\n    mode: warn\n    warn_if: "> 20"', "checks[1]"),
    "check of a list": ("policy.yaml", "    fail_if: \"> 0\"", "    fail_if: [\"> 0\"]", "checks[0].fail_if"),
    "unknown deployer": ("plan.yaml", "  plugin: command\n", "  plugin: helm\n", "deploy.plugin"),
    "deployer settings typo": ("plan.yaml", "    rollback: [", "    rolback: [", "deploy.with.rolback"),
    "bad bake": ("plan.yaml", "bake: 30m}", "bake: soon}", "waves[0].bake"),
    "source settings typo": ("plan.yaml", 'prometheus: {url: "http', 'prometheus: {urll: "http', "sources.prometheus"),
    "source settings type": ("plan.yaml", "timeout: 10s}", "timeout: 10}", "sources.prometheus.timeout"),
    "unknown incident sink": ("plan.yaml", "incident: {plugin: journal}", "incident: {plugin: slak}",
                              "on_failure.incident.plugin"),
    "action settings typo": ("plan.yaml", '{plugin: command, with: {run: ["./pause',
                             '{plugin: command, with: {runn: ["./pause',
                             "on_failure.actions[0].with"),
    "region override typo": ("plan.yaml", "  r1: {vars: {smtp_hosts: [mx1.eu.example]}}",
                             "  r1: {vars: {smtp_hosts: [mx1.eu.example]}, sources: {prometheus: {timeuot: 5s}}}",
                             "regions.r1.sources.prometheus"),
    "events of an incident sink": ("plan.yaml", "incident: {plugin: journal}",
                                   "incident: {plugin: journal, events: [done]}", "on_failure.incident"),
    "plan key typo": ("plan.yaml", "preflight: true", "prefligth: true", "prefligth"),
    "notify event typo": ("plan.yaml", "preflight: true", "preflight: true\nnotify: [{plugin: journal, events: [dun]}]",
                          "notify[0].events[0]"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_file_is_refused_by_the_schema_as_by_validate(case, schemas, registry, tmp_path):
    name, old, new, path = BROKEN[case]
    for f in VALID.iterdir():
        shutil.copy(f, tmp_path / f.name)
    text = (tmp_path / name).read_text()
    assert text.count(old) == 1, old
    (tmp_path / name).write_text(text.replace(old, new))
    data = yaml.safe_load((tmp_path / name).read_text())
    _, problems = validate_paths([tmp_path / name], registry)
    assert [p for p in problems if p.path.startswith(path)], problems
    assert _errors(schemas[data["kind"].lower()], data), f"the schema accepts {case}"
    unchanged = yaml.safe_load((VALID / name).read_text())
    assert _errors(schemas[unchanged["kind"].lower()], unchanged) == []


def test_a_plan_may_take_any_string_from_the_environment(schemas, registry, tmp_path, monkeypatch):
    for f in VALID.iterdir():
        shutil.copy(f, tmp_path / f.name)
    plan = tmp_path / "plan.yaml"
    text = plan.read_text().replace("incident: {plugin: journal}",
                                    'incident: {plugin: slack, with: {url: "${env:SLACK_URL}"}}')
    plan.write_text(text.replace("bake: 30m}", 'bake: "${env:CANARY_BAKE}"}'))
    monkeypatch.setenv("SLACK_URL", "https://hooks.slack.example/T0/B0/x")
    monkeypatch.setenv("CANARY_BAKE", "45m")
    assert validate_paths([plan], registry) == (1, [])
    assert _errors(schemas["rollout"], yaml.safe_load(plan.read_text())) == []
    plan.write_text(text.replace("bake: 30m}", 'bake: "${CANARY_BAKE}"}'))
    assert _errors(schemas["rollout"], yaml.safe_load(plan.read_text()))


def _properties(node, where=""):
    """(where, name, property schema) of every object property in a schema."""
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            yield where, name, prop
        for key, value in node.items():
            if key not in ("if", "then", "else"):  # conditions between fields, not fields
                yield from _properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _properties(value, f"{where}[{i}]")


def test_every_default_validates_against_its_own_property_schema(schemas):
    checked = 0
    for kind, schema in schemas.items():
        for where, name, prop in _properties(schema):
            if "default" in prop:
                own = {**prop, "$defs": schema.get("$defs", {})}
                assert _errors(own, prop["default"]) == [], (kind, where, name, prop["default"])
                checked += 1
    assert checked > 80
    policy = schemas["policy"]["$defs"]
    assert policy["Check"]["properties"]["for"]["default"] == "0s"
    assert schemas["rollout"]["$defs"]["OnFailure"]["properties"]["update_every"]["default"] == "30m"
    assert policy["Policy"]["properties"]["interval"]["default"] == "30s" if "Policy" in policy else \
        schemas["policy"]["properties"]["interval"]["default"] == "30s"


def test_every_field_has_a_description_and_a_title_in_words(schemas):
    missing = [(kind, where, name) for kind, schema in schemas.items() for where, name, prop in _properties(schema)
               if not prop.get("description")]
    assert missing == []
    rollout = schemas["rollout"]
    assert rollout["properties"]["apiVersion"]["title"] == "API version"
    assert rollout["$defs"]["VerifyRecovery"]["title"] == "Verify recovery"
    assert schemas["policy"]["$defs"]["Check"]["properties"]["on_no_data"]["title"] == "On no data"
    assert words("ca_file") == "CA file" and words("OnFailure") == "On failure" and words("for_") == "For"


def test_people_get_examples_where_they_type(schemas):
    policy = schemas["policy"]["$defs"]
    for path in (("prometheus.check", "query"), ("tcp.check", "targets"), ("http.check", "url"),
                 ("BaselineSpec", "window")):
        prop = policy[path[0]]["properties"][path[1]]
        assert prop.get("examples") or any(alt.get("examples") for alt in prop.get("anyOf", [])), path
    check = policy["prometheus.check"]["properties"]
    assert check["fail_if"]["anyOf"][0]["examples"] and check["for"]["examples"]
    assert schemas["rollout"]["$defs"]["Windows"]["properties"]["deny"]["examples"]


def test_plugin_names_are_enums_of_the_installed_plugins(schemas, registry):
    rollout, policy = schemas["rollout"], schemas["policy"]
    assert rollout["$defs"]["Deployer"]["properties"]["plugin"]["enum"] == sorted(registry.deployers)
    assert rollout["$defs"]["Action"]["properties"]["plugin"]["enum"] == sorted(registry.actions)
    assert rollout["$defs"]["IncidentSink"]["properties"]["plugin"]["enum"] == sorted(registry.incident_sinks)
    assert rollout["$defs"]["SourceByPlugin"]["properties"]["plugin"]["enum"] == sorted(registry.sources)
    assert policy["$defs"]["Check"]["properties"]["source"]["enum"] == sorted(registry.sources)
    tcp = policy["$defs"]["tcp.check"]
    assert {"targets", "port", "min_success_ratio", "fail_if", "for"} <= set(tcp["properties"])
    assert tcp["additionalProperties"] is False and tcp["properties"]["source"]["const"] == "tcp"
    assert "#/$defs/PluginRef" not in json.dumps(rollout)  # every {plugin, with} is one of the installed plugins'


def test_a_plan_alias_is_a_source_name_when_asked_for(cli):
    plain = json.loads(cli("schema", "policy").stdout)
    assert "thanos" not in plain["$defs"]["Check"]["properties"]["source"]["enum"]
    result = cli("schema", "policy", "--source", "thanos=prometheus")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert "thanos" in schema["$defs"]["Check"]["properties"]["source"]["enum"]
    check = {"name": "c", "source": "thanos", "query": "up", "fail_if": "> 1"}
    policy = {"apiVersion": "guardrail/v1", "kind": "Policy", "name": "p", "checks": [check]}
    assert _errors(schema, policy) == [] and _errors(plain, policy)
    assert _errors(schema, {**policy, "checks": [{**check, "qeury": "up"}]})
    for bad in ("thanos=promethues", "thanos"):
        refused = cli("schema", "policy", "--source", bad)
        assert refused.exit_code == 2 and "Traceback" not in refused.output, refused.output
    assert "did you mean 'prometheus'" in cli("schema", "policy", "--source", "thanos=promethues").output


@pytest.fixture
def guardrail_csv(monkeypatch):
    spec = importlib.util.spec_from_file_location("guardrail_csv", REPO / "examples" / "plugin" / "guardrail_csv.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "guardrail_csv", module)
    spec.loader.exec_module(module)
    return module


def test_a_third_party_source_contributes_its_parameters(guardrail_csv, tmp_path):
    registry = get_plugin_manager(autoload=False, extra_plugins=[guardrail_csv]).registry
    policy_schema, rollout_schema = document_schema("policy", registry), document_schema("rollout", registry)
    csv = policy_schema["$defs"]["csv.check"]
    assert set(guardrail_csv.CsvSource.Params.model_fields) <= set(csv["properties"])
    assert csv["additionalProperties"] is False
    assert "csv" in rollout_schema["$defs"]["SourceByPlugin"]["properties"]["plugin"]["enum"]
    guardrail_csv.write_demo(tmp_path)
    seen = set()
    for path in sorted(tmp_path.rglob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        seen.add(data["kind"])
        assert _errors(policy_schema if data["kind"] == "Policy" else rollout_schema, data) == [], path
        if data["kind"] == "Policy":
            data["checks"][0]["colum"] = "depth"
            assert _errors(policy_schema, data)
    assert seen == {"Policy", "Rollout"}
