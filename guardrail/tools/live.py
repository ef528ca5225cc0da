"""``guardrail validate --live``: ask the sources themselves whether they accept the
checks' queries, so a PromQL typo is a located problem before a rollout, not an
inconclusive bake.

A source takes part by having a ``parse_error(query) -> str | None`` method (the
``prometheus`` source does: Prometheus parses the query without evaluating it); it
raises ``RuntimeError`` when it cannot be asked. Templates are filled with each
region's variables when a plan is validated, and with the placeholder ``x`` in a bare
policy (escaped like any value, so ``region="{{region}}"`` becomes ``region="x"``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable

from guardrail.language import documents
from guardrail.clock import SystemClock
from guardrail.errors import GuardrailError, Problem
from guardrail.plugin.interfaces import PluginContext
from guardrail.language.loader import check_policy, load_plan
from guardrail.language.types import render_value, template_names
from guardrail.plugin.manager import Registry

PLACEHOLDER = "x"


def live_problems(paths: Iterable[str | Path], registry: Registry, *, prometheus_url: str | None = None,
                  environ: dict[str, str] | None = None) -> list[Problem]:
    """One problem per query a source rejects, located at the check's ``query`` key.
    ``prometheus_url`` replaces the URL of the prometheus source (required for bare
    policies with prometheus checks). Raises ``GuardrailError`` when a source cannot
    be asked."""
    asks: list[tuple[Any, str, Any, tuple]] = []  # (source, query, document, key path)
    sources: dict[str, Any] = {}
    policies, covered = [], set()
    for path in _files(paths):
        doc = documents.read(path)
        if not isinstance(doc.data, dict):
            continue
        documents.interpolate_env(doc, set(), environ)
        if doc.data.get("kind") == "Rollout":
            plan_asks, plan_policies = _plan_asks(path, registry, prometheus_url, environ, sources)
            asks += plan_asks
            covered |= plan_policies
        elif doc.data.get("kind") == "Policy":
            policies.append((path, doc))
    for path, doc in policies:  # a policy a plan of this run uses was checked with that plan's variables
        if path.resolve() not in covered:
            asks += _policy_asks(doc, registry, prometheus_url, sources)
    unique: dict[tuple[int, str], Any] = {}
    for source, query, _, _ in asks:
        unique.setdefault((id(source), query), source)
    try:
        with ThreadPoolExecutor(max_workers=16, thread_name_prefix="guardrail-live") as pool:
            futures = {key: pool.submit(_ask, source, key[1]) for key, source in unique.items()}
            answers = {key: future.result() for key, future in futures.items()}
    finally:
        for source in sources.values():
            source.close()
    problems = []
    for source, query, doc, at in asks:
        error = answers[(id(source), query)]
        if error is not None:
            problems.append(doc.problem(at, f"{getattr(source, 'live_name', 'the source')} rejects the query: {error}"))
    return list(dict.fromkeys(problems))


def _ask(source: Any, query: str) -> str | None:
    try:
        return source.parse_error(query)
    except RuntimeError as exc:
        raise GuardrailError(f"validate --live: cannot ask: {exc}") from None


def _files(paths: Iterable[str | Path]) -> Iterable[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from (f for f in sorted(path.rglob("*")) if f.suffix in (".yaml", ".yml") and f.is_file())
        else:
            yield path


def _source(registry: Registry, plugin: str, settings: dict[str, Any], base: Path, cache: dict[str, Any]) -> Any:
    factory = registry.get("sources", plugin)
    if getattr(factory, "parse_error", None) is None:  # Source.parse_error: None, a source that cannot tell
        return None
    key = repr((plugin, sorted(settings.items()), str(base)))
    if key not in cache:
        cache[key] = registry.build("sources", plugin, settings,
                                    PluginContext(clock=SystemClock(), state_dir=base, base_dir=base))
    return cache[key]


def _policy_asks(doc: Any, registry: Registry, url: str | None, cache: dict[str, Any]) -> list[tuple]:
    policy, problems = check_policy(doc, registry)
    if policy is None or problems:
        return []  # the static validation reports them
    asks = []
    for i, check in enumerate(policy.checks):
        if getattr(registry.get("sources", check.source), "parse_error", None) is None:
            continue
        if check.source == "prometheus" and url is None:
            raise GuardrailError(f"validate --live: {doc.file} has prometheus checks: pass --prometheus URL")
        source = _source(registry, check.source, {"url": url} if url else {}, Path.cwd(), cache)
        variables = {name: PLACEHOLDER for name in template_names(str(check.params.get("query", "")))}
        params = render_value(check.params, variables, getattr(source, "escape", lambda v: v))
        asks.append((source, params["query"], doc, ("checks", i, "query")))
    return asks


def _plan_asks(path: Path, registry: Registry, url: str | None, environ: dict[str, str] | None,
               cache: dict[str, Any]) -> tuple[list[tuple], set[Path]]:
    plan = load_plan(path, registry, environ=environ)
    regions = [r for w in plan.rollout.waves for r in w.regions]
    asks = []
    for loaded in plan.policies:
        doc = documents.read(loaded.path)
        for i, check in enumerate(loaded.policy.checks):
            for region in regions:
                plugin, settings = plan.source_config(check.source, region)
                if url and plugin == "prometheus":
                    settings = {**settings, "url": url}
                source = _source(registry, plugin, settings, plan.path.parent, cache)
                if source is None or "query" not in check.params:
                    continue
                params = render_value(check.params, plan.rollout.region_vars(region),
                                      getattr(source, "escape", lambda v: v))
                asks.append((source, params["query"], doc, ("checks", i, "query")))
    return asks, {loaded.path.resolve() for loaded in plan.policies}
