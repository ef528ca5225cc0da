"""Load and validate rollout plans and policies, reporting every problem at once.

``load_plan`` returns a ``Plan`` or raises ``ConfigError`` carrying the problems of
the plan *and* of the policies it references; ``validate_paths`` is what
``guardrail validate`` runs over files and folders.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from guardrail.language import documents
from guardrail.errors import ConfigError, Problem
from guardrail.language.model import Check, Policy, Rollout
from guardrail.language.queries import query_problems
from guardrail.language.types import BUILTIN_TEMPLATE_NAMES, parse_comparison, template_names
from guardrail.plugin.manager import Registry, unknown_name_message
from guardrail.language.windows import parse_window, zone
from guardrail.language.yamldoc import Document
from guardrail.text import long_text

KINDS = ("Rollout", "Policy")


@dataclass
class LoadedPolicy:
    path: Path
    policy: Policy
    text: str


@dataclass
class Plan:
    """A validated rollout plan with its policies, ready for the engine."""

    path: Path
    rollout: Rollout
    policies: list[LoadedPolicy]
    text: str
    secrets: set[str] = field(default_factory=set)

    def source_config(self, name: str, region: str | None = None) -> tuple[str, dict[str, Any]]:
        """(plugin name, settings) for source ``name``, with the region's overrides."""
        settings = dict(self.rollout.sources.get(name, {}))
        if region is not None and region in self.rollout.regions:
            settings.update(self.rollout.regions[region].sources.get(name, {}))
        plugin = settings.pop("plugin", name)
        return plugin, settings


def _settings_problems(registry: Registry, kind: str, plugin: str, settings: Any, doc: Document, at: tuple) -> list[Problem]:
    factory = getattr(registry, kind)[plugin].factory
    model = getattr(factory, "Settings", None)
    if model is None:
        return []
    return documents.validate(model, settings, doc, at)[1]


def _plugin_problems(registry: Registry, kind: str, ref: dict, doc: Document, at: tuple) -> list[Problem]:
    """``{plugin: NAME, with: {...}}``: the name is installed, ``with`` fits its Settings."""
    if not isinstance(ref, dict) or not isinstance(ref.get("plugin"), str):
        return []  # the model already reported the shape
    table = getattr(registry, kind)
    if ref["plugin"] not in table:
        label = {"deployers": "deployer", "actions": "action", "incident_sinks": "incident sink"}[kind]
        return [doc.problem(at + ("plugin",), unknown_name_message(label, ref["plugin"], table))]
    return _settings_problems(registry, kind, ref["plugin"], ref.get("with", {}) or {}, doc, at + ("with",))


def _strings(value: Any, path: tuple) -> Iterable[tuple[tuple, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, path + (i,))


def _template_problems(value: Any, doc: Document, at: tuple, rollout: Rollout | None) -> list[Problem]:
    """Every ``{{name}}`` must be defined for every region of the plan."""
    if rollout is None:
        return []
    out = []
    for path, text in _strings(value, at):
        for name in template_names(text):
            if name in BUILTIN_TEMPLATE_NAMES:
                continue
            lacking = [r for r in rollout.regions if name not in rollout.region_vars(r)]
            if lacking:
                where = ", ".join(lacking)
                out.append(doc.problem(path, f"template variable {{{{{name}}}}} is not defined for region(s) {where}"
                                             f" (add it under regions.<region>.vars or vars)"))
    return out


def check_policy(doc: Document, registry: Registry, *, sources: dict[str, str] | None = None,
                 rollout: Rollout | None = None) -> tuple[Policy | None, list[Problem]]:
    """Validate a parsed policy. ``sources`` maps plan source names to plugin names.

    Each check is also validated on its own, so that one bad key elsewhere in the
    file does not hide the problems of every check."""
    policy, problems = documents.validate(Policy, doc.data, doc)
    raw_checks = doc.data.get("checks") if isinstance(doc.data, dict) else None
    if not isinstance(raw_checks, list):
        return policy, problems
    names = dict(sources or {})
    for plugin in registry.sources:
        names.setdefault(plugin, plugin)
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_checks):
        at = ("checks", i)
        if not isinstance(raw, dict):
            continue  # the Policy model already said "expected a mapping"
        name, source = raw.get("name"), raw.get("source")
        if isinstance(name, str) and name in seen:
            problems.append(doc.problem(at + ("name",), f"duplicate check name {name!r} (also checks[{seen[name]}])"))
        if isinstance(name, str):
            seen.setdefault(name, i)
        if isinstance(source, str) and source not in names:
            problems.append(doc.problem(at + ("source",), unknown_name_message("source", source, names)))
            continue
        check, found = documents.validate(Check, raw, doc, at)
        problems += found
        if check is None:
            continue
        if policy is not None:
            check = policy.checks[i]
        problems += _check_source(check, names, registry, doc, at, rollout)
    return (policy if not problems else None), list(dict.fromkeys(problems))


def _check_source(check: Check, names: dict[str, str], registry: Registry, doc: Document, at: tuple,
                  rollout: Rollout | None) -> list[Problem]:
    """The check's source accepts the check's own keys."""
    problems: list[Problem] = []
    if names.get(check.source) not in registry.sources:
        return []  # the plan names a source plugin that is not installed: reported at the plan's sources
    factory = registry.sources[names[check.source]].factory
    params_model = getattr(factory, "Params", None)
    params = None
    if params_model is not None:
        params, found = documents.validate(params_model, check.params, doc, at)
        common = [f.alias or n for n, f in Check.model_fields.items()]
        for problem in found:  # an unknown key may be a misspelt common key: suggest both
            if "unknown key" in problem.message and "did you mean" not in problem.message:
                key = problem.path.rsplit(".", 1)[-1]
                close = difflib.get_close_matches(key, common + list(params_model.model_fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f"; {check.source} checks accept: " + ", ".join(
                    sorted(set(common) | set(params_model.model_fields)))
                problem = Problem(problem.file, problem.line, problem.column, problem.path, f"unknown key {key!r}{hint}")
            problems.append(problem)
    implied = getattr(factory, "default_fail_if", None)
    if check.fail_if is None and params is not None and implied is not None and check.compare != "control":
        text = implied(params)
        if text:
            check.fail_if = parse_comparison(text)
            problems += _warning_tier(check, doc, at)
    if check.fail_if is None and check.warn_if is not None:
        # Only a warning condition: a warn-only check, whose condition is its warn_if.
        check.fail_if, check.warn_if, check.mode = check.warn_if, None, "warn"
    if check.fail_if is None and check.compare != "control":
        problems.append(doc.problem(at + ("fail_if",), "required key is missing (a check needs a failure condition)"))
    if params is not None and not problems:  # the source's own query language, offline
        problems += query_problems(factory, check.params, doc, at)
    return problems + _template_problems(check.params, doc, at, rollout)


def _warning_tier(check: Check, doc: Any, at: tuple) -> list[Problem]:
    """``warn_if`` against a ``fail_if`` the source implied (one written is checked by the model)."""
    if check.warn_if is None:
        return []
    try:
        check.check_warning_tier()
    except ValueError as exc:
        return [doc.problem(at + ("warn_if",), str(exc))]
    return []


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _sequence(value: Any) -> list:
    return value if isinstance(value, list) else []


def _check_rollout(doc: Document, registry: Registry) -> tuple[Rollout | None, list[Problem]]:
    """Validate a parsed plan. The cross-checks (regions, waves, plugin names, windows)
    read the raw data, so they run even when the model found problems elsewhere."""
    rollout, problems = documents.validate(Rollout, doc.data, doc)
    data = doc.data
    declared = data.get("regions") if isinstance(data.get("regions"), dict) else None
    placed: dict[str, str] = {}
    wave_names: set[str] = set()
    for w, wave in enumerate(_sequence(data.get("waves"))):
        wave = _mapping(wave)
        name = wave.get("name")
        if isinstance(name, str):
            if name in wave_names:
                problems.append(doc.problem(("waves", w, "name"), f"duplicate wave name {name!r}"))
            wave_names.add(name)
        for r, region in enumerate(_sequence(wave.get("regions"))):
            if not isinstance(region, str):
                continue
            at = ("waves", w, "regions", r)
            if declared is not None and region not in declared:
                problems.append(doc.problem(at, unknown_name_message("region", region, declared)
                                            + " (declare it under regions:)"))
            if region in placed:
                problems.append(doc.problem(at, f"region {region!r} is already in wave {placed[region]!r};"
                                                " a region belongs to one wave"))
            else:
                placed[region] = name if isinstance(name, str) else f"waves[{w}]"
    problems += _plugin_problems(registry, "deployers", data.get("deploy"), doc, ("deploy",))
    problems += _template_problems(_mapping(data.get("deploy")).get("with", {}), doc, ("deploy", "with"), rollout)
    sources = _mapping(data.get("sources"))
    for name, settings in sources.items():
        if not isinstance(settings, dict):
            continue
        plugin = settings.get("plugin", name)
        if not isinstance(plugin, str):
            continue
        if plugin not in registry.sources:
            at = ("sources", name, "plugin") if "plugin" in settings else ("sources", name)
            problems.append(doc.problem(at, unknown_name_message("source", plugin, registry.sources), key="plugin" not in settings))
            continue
        merged = {k: v for k, v in settings.items() if k != "plugin"}
        problems += _settings_problems(registry, "sources", plugin, merged, doc, ("sources", name))
        for region, spec in _mapping(declared).items():
            override = _mapping(_mapping(spec).get("sources")).get(name)
            if isinstance(override, dict):
                problems += _settings_problems(registry, "sources", plugin, {**merged, **override}, doc,
                                               ("regions", region, "sources", name))
    for region, spec in _mapping(declared).items():
        for name in _mapping(_mapping(spec).get("sources")):
            if name not in sources and name not in registry.sources:
                problems.append(doc.problem(("regions", region, "sources", name), unknown_name_message("source", name, registry.sources), key=True))
    for phase in ("on_failure", "on_recovery"):
        for i, ref in enumerate(_sequence(_mapping(data.get(phase)).get("actions"))):
            problems += _plugin_problems(registry, "actions", ref, doc, (phase, "actions", i))
            problems += _template_problems(_mapping(ref).get("with", {}), doc, (phase, "actions", i, "with"), rollout)
    incident = _mapping(data.get("on_failure")).get("incident")
    for i, ref in enumerate(incident if isinstance(incident, list) else [incident] if incident is not None else []):
        at = ("on_failure", "incident") + ((i,) if isinstance(incident, list) else ())
        problems += _plugin_problems(registry, "incident_sinks", ref, doc, at)
    for i, ref in enumerate(_sequence(data.get("notify"))):
        sink = {k: v for k, v in _mapping(ref).items() if k != "events"}
        problems += _plugin_problems(registry, "incident_sinks", sink, doc, ("notify", i))
    windows = _mapping(data.get("windows"))
    if isinstance(windows.get("timezone"), str):
        try:
            zone(windows["timezone"])
        except ValueError as exc:
            problems.append(doc.problem(("windows", "timezone"), str(exc)))
    for i, text in enumerate(_sequence(windows.get("deny"))):
        if not isinstance(text, str):
            continue
        try:
            parse_window(text)
        except ValueError as exc:
            problems.append(doc.problem(("windows", "deny", i), str(exc)))
    return rollout, problems


def _prepare(path: Path, secrets: set[str], environ: dict[str, str] | None) -> tuple[Document, str]:
    doc = documents.read(path)
    text = doc.text if doc.data is not None else ""
    if doc.data is not None:
        documents.interpolate_env(doc, secrets, environ)
    return doc, text


def _not_a_mapping(doc: Document, kind: str) -> list[Problem]:
    if doc.problems:
        return doc.problems
    what = "a list" if isinstance(doc.data, list) else repr(doc.data)
    return [doc.problem((), f"expected a mapping with apiVersion: guardrail/v1 and kind: {kind}, got {what}")]


def _plan(path: Path, doc: Document, text: str, registry: Registry, secrets: set[str],
          environ: dict[str, str] | None) -> tuple[Plan | None, list[Problem]]:
    """Validate a parsed plan and the policies it references; every problem, redacted."""
    labels = dict(doc.secrets)
    rollout, found = _check_rollout(doc, registry)
    problems = doc.problems + found
    policies: list[LoadedPolicy] = []
    listed: dict[Path, int] = {}
    sources = {name: s.get("plugin", name) for name, s in _mapping(doc.data.get("sources")).items()
               if isinstance(s, dict) and isinstance(s.get("plugin", name), str)}
    for i, ref in enumerate(_sequence(doc.data.get("policies"))):
        if not isinstance(ref, str):
            continue  # the model reported it
        wrong = documents.path_problem(ref)
        policy_path = (path.parent / ref) if wrong else (path.parent / ref).resolve()
        wrong = wrong or documents.file_problem(policy_path)
        if wrong == "file not found":
            problems.append(doc.problem(("policies", i), f"policy file not found: {ref} (looked for {documents.display_name(policy_path)})"))
            continue
        if wrong:
            shown = long_text(ref)
            what = f"policy file {shown}" if shown.startswith("'") else f"policy path of {len(ref):,} characters"
            problems.append(doc.problem(("policies", i), f"{what}: {wrong}"))
            continue
        if policy_path in listed:
            problems.append(doc.problem(("policies", i), f"policy file {ref!r} is listed twice (also policies[{listed[policy_path]}])"))
            continue
        listed[policy_path] = i
        pdoc, ptext = _prepare(policy_path, secrets, environ)
        labels.update(pdoc.secrets)
        if not isinstance(pdoc.data, dict):
            problems += _not_a_mapping(pdoc, "Policy")
            continue
        policy, found = check_policy(pdoc, registry, sources=sources, rollout=rollout)
        problems += pdoc.problems + found
        if policy is not None:
            policies.append(LoadedPolicy(policy_path, policy, ptext))
    problems = documents.redact(documents.tidy(problems), labels)
    if problems or rollout is None:
        return None, problems
    return Plan(path=path.resolve(), rollout=rollout, policies=policies, text=text, secrets=secrets), []


def load_plan(path: str | Path, registry: Registry, *, environ: dict[str, str] | None = None) -> Plan:
    """Read a plan and its policies; raise ``ConfigError`` with every problem found."""
    path = Path(path)
    secrets: set[str] = set()
    doc, text = _prepare(path, secrets, environ)
    if not isinstance(doc.data, dict):
        raise ConfigError(_not_a_mapping(doc, "Rollout"))
    plan, problems = _plan(path, doc, text, registry, secrets, environ)
    if plan is None:
        raise ConfigError(problems)
    return plan


def load_policy(path: str | Path, registry: Registry, *, environ: dict[str, str] | None = None) -> LoadedPolicy:
    path = Path(path)
    doc, text = _prepare(path, set(), environ)
    if not isinstance(doc.data, dict):
        raise ConfigError(_not_a_mapping(doc, "Policy"))
    policy, problems = check_policy(doc, registry)
    problems = documents.redact(documents.tidy(doc.problems + problems), doc.secrets)
    if problems or policy is None:
        raise ConfigError(problems)
    return LoadedPolicy(path.resolve(), policy, text)


def _files(paths: Iterable[str | Path]) -> Iterable[tuple[Path, bool]]:
    """(file, named explicitly) for every YAML file under ``paths``."""
    for raw in paths:
        p = Path(raw)
        if documents.path_problem(str(p)) is None and _is_dir(p):
            for f in sorted(p.rglob("*")):
                if f.suffix in (".yaml", ".yml") and f.is_file() and not _hidden(f.relative_to(p)):
                    yield f, False
        else:
            yield p, True


def _hidden(relative: Path) -> bool:
    """Under a hidden folder (``.git``, ``.venv``, ``.github``): not the repository's own
    plans and policies, and often YAML that is no guardrail file at all."""
    return any(part.startswith(".") for part in relative.parts[:-1])


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):  # the file's own read says why
        return False


def validate_paths(paths: Iterable[str | Path], registry: Registry, *, environ: dict[str, str] | None = None) -> tuple[int, list[Problem]]:
    """Validate files and folders. Returns (files checked, problems). In a folder,
    YAML files with neither ``apiVersion`` nor ``kind`` (CI workflows...) are skipped."""
    problems: list[Problem] = []
    checked = 0
    for path, explicit in _files(paths):
        secrets: set[str] = set()
        doc, text = _prepare(path, secrets, environ)
        data = doc.data
        if not explicit and isinstance(data, dict) and "apiVersion" not in data and "kind" not in data:
            continue
        checked += 1
        if not isinstance(data, dict):
            problems += _not_a_mapping(doc, "Rollout or Policy")
            continue
        if data.get("kind") == "Rollout":
            problems += _plan(path, doc, text, registry, secrets, environ)[1]
        else:
            problems += documents.redact(documents.tidy(doc.problems + _validate_document(doc, registry)), doc.secrets)
    return checked, list(dict.fromkeys(problems))


def _validate_document(doc: Document, registry: Registry) -> list[Problem]:
    kind = doc.data.get("kind")
    if kind == "Policy":
        return check_policy(doc, registry)[1]
    if isinstance(kind, str) and kind in registry.document_kinds:
        api = doc.data.get("apiVersion")
        if api != "guardrail/v1":
            return [doc.problem(("apiVersion",), f"expected 'guardrail/v1', got {api!r}")]
        return list(registry.document_kinds[kind].factory(doc))
    known = list(KINDS) + sorted(registry.document_kinds)
    if kind is None and "apiVersion" not in doc.data:
        return [doc.problem((), f"not a guardrail file: apiVersion and kind are missing (kind is one of {', '.join(known)})")]
    if kind is None:
        return [doc.problem(("kind",), f"required key is missing (one of {', '.join(known)})")]
    return [doc.problem(("kind",), unknown_name_message("document kind", kind, known))]
