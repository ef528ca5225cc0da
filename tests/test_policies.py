"""The policy library keeps its promises: every policy validates, explains itself in a
header (the incident it guards against, the metrics it reads, why each threshold, what
missing data means), scopes every query to its region, reduces several series to one
explicitly, and agrees with the metric contract in ``policies/README.md``."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from support.debian import ensure
import yaml
from typer.testing import CliRunner

from guardrail.cli import create_app
from guardrail.language.loader import LoadedPolicy, load_policy

POLICIES = Path(__file__).resolve().parent.parent / "policies"
FILES = sorted(POLICIES.glob("*.yaml"))
SEEDS = (
    "r3-first-rollout-sender-restarts.txt",
    "dualog-db-cpu-mail-backlog.txt",
    "duocircle-port25-partial-fleet.txt",
    "opensrs-maintenance-processing-loop.txt",
    "danaconnect-error-log-write-storm.txt",
)
SECTIONS = ("# Incident:", "# Metrics:", "# Thresholds:", "# No data:")
PROMQL_FUNCTIONS = {"sum", "max", "min", "avg", "count", "rate", "increase", "irate", "clamp_min", "clamp_max",
                    "histogram_quantile", "by", "without", "or", "and", "unless", "vector"}


@pytest.fixture
def library(registry) -> dict[str, LoadedPolicy]:
    return {path.name: load_policy(path, registry) for path in FILES}


def header(text: str) -> str:
    """The comment block before the first YAML key."""
    lines = []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            lines.append(line)
        else:
            break
    return "\n".join(lines)


def section(text: str, title: str) -> str:
    """One header section: from its title to the next section title."""
    head = header(text)
    start = head.index(title)
    rest = head[start + len(title):]
    ends = [rest.index(t) for t in SECTIONS if t in rest]
    return rest[: min(ends)] if ends else rest


def queries(loaded: LoadedPolicy):
    for check in loaded.policy.checks:
        if check.source == "prometheus":
            yield check, check.params["query"]


def metric_names(query: str) -> set[str]:
    """Identifiers used as metric selectors (followed by a ``{`` matcher)."""
    names = set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", query))
    return names - PROMQL_FUNCTIONS


def balanced(query: str) -> bool:
    """Parentheses, brackets and braces pair up outside string literals."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    in_string = escaped = False
    for char in query:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "([{":
            stack.append(char)
        elif char in pairs:
            if not stack or stack.pop() != pairs[char]:
                return False
    return not stack and not in_string


def test_there_is_a_policy_per_seed_and_the_composite():
    names = {p.name for p in FILES}
    assert {"service-restarts.yaml", "queue-latency.yaml", "db-cpu.yaml", "error-log-writes.yaml",
            "smtp-reachability.yaml", "mail-delivery.yaml"} <= names


def test_guardrail_validate_accepts_the_library():
    result = CliRunner().invoke(create_app(), ["validate", str(POLICIES)])
    assert result.exit_code == 0, result.output
    # The policies, and under policies/tests/ the unit tests that ship with them.
    assert f"{len(list(POLICIES.rglob('*.yaml')))} files valid" in result.output


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_header_has_every_section(path):
    head = header(path.read_text())
    for title in SECTIONS:
        assert title in head, f"{path.name}: header lacks {title!r}"
    incident = section(path.read_text(), "# Incident:")
    assert any(seed in incident for seed in SEEDS), f"{path.name}: the Incident section names no seed report"


def test_every_seed_is_guarded():
    guarded = {seed for path in FILES for seed in SEEDS if seed in section(path.read_text(), "# Incident:")}
    assert guarded == set(SEEDS)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_check_is_explained_and_its_metrics_documented(path, library):
    text = path.read_text()
    thresholds, metrics = section(text, "# Thresholds:"), section(text, "# Metrics:")
    for check in library[path.name].policy.checks:
        assert check.name in thresholds, f"{path.name}: Thresholds does not explain {check.name}"
    for check, query in queries(library[path.name]):
        for metric in metric_names(query):
            assert f"| {metric} " in metrics, f"{path.name}: {check.name} reads {metric}, not in the Metrics table"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_on_no_data_is_explicit(path):
    raw = yaml.safe_load(path.read_text())
    assert raw.get("on_no_data") in ("fail", "inconclusive", "pass"), f"{path.name}: set on_no_data explicitly"
    assert f"on_no_data: {raw['on_no_data']}" in path.read_text()
    assert raw["on_no_data"] in section(path.read_text(), "# No data:")


def test_check_names_are_unique_across_the_library(library):
    seen: dict[str, str] = {}
    for name, loaded in library.items():
        for check in loaded.policy.checks:
            assert check.name not in seen, f"{check.name} is in both {seen[check.name]} and {name}"
            seen[check.name] = name


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_queries_are_balanced_scoped_and_reduced(path, library):
    for check, query in queries(library[path.name]):
        assert balanced(query), f"{check.name}: unbalanced brackets in {query}"
        assert query.count("{{") == query.count("}}"), f"{check.name}: unbalanced template in {query}"
        assert 'region="{{region}}"' in query, f"{check.name}: not scoped to the region: {query}"
        # one series back: the outermost expression aggregates without by/without
        assert re.match(r"^(clamp_(min|max)\()?(sum|max|min|avg)\(", query), f"{check.name}: reduce explicitly: {query}"
        assert not re.search(r"\b(by|without)\s*\(", query), f"{check.name}: grouping returns several series"


def test_queries_match_the_contract_in_the_readme(library):
    readme = (POLICIES / "README.md").read_text()
    contract = readme[readme.index("## The metric contract"):readme.index("Plan variables")]
    documented = set(re.findall(r"^\| `([a-zA-Z0-9_:]+)` \|", contract, flags=re.M))
    used = {m for loaded in library.values() for _, q in queries(loaded) for m in metric_names(q)}
    assert used == documented


def test_composite_agrees_with_the_single_class_policies(library):
    """mail-delivery.yaml repeats checks; a threshold tuned in one place is tuned in both."""
    singles = {q: c for name, loaded in library.items() if name != "mail-delivery.yaml" for c, q in queries(loaded)}
    repeated = 0
    for check, query in queries(library["mail-delivery.yaml"]):
        if query in singles:
            repeated += 1
            single = singles[query]
            assert (str(check.fail_if), check.for_, check.compare, check.baseline) == \
                   (str(single.fail_if), single.for_, single.compare, single.baseline), check.name
    assert repeated == 4


def test_smtp_port_25_is_one_ratio_check(library):
    check = next(c for c in library["smtp-reachability.yaml"].policy.checks if c.source == "tcp")
    assert check.params["targets"] == "{{smtp_hosts}}"
    assert check.params["port"] == 25 and check.params["banner"] == "^220"
    assert str(check.fail_if) == "< 0.95"  # implied by min_success_ratio


def test_promtool_parses_every_query(library, tmp_path):
    """Prometheus's own parser (installed when missing): every query as a recording rule."""
    promtool = ensure("promtool", "prometheus")
    rules = [{"record": "guardrail:" + check.name.replace("-", "_"), "expr": query.replace("{{region}}", "r3")}
             for loaded in library.values() for check, query in queries(loaded)]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "policies", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_balanced_helper():
    assert balanced('sum(rate(x{a="}"}[5m]))')
    assert not balanced("sum(rate(x[5m])")
    assert not balanced("sum(x{a=\"b\")}")
