"""One judgement everywhere: ``guardrail rollout`` (the engine on a virtual clock),
``guardrail check``, ``guardrail test`` and ``guardrail backtest`` reach the same verdict
and value at the same instant, for random series.

Each draw makes a few series per region (with gaps), one check of a random kind
(absolute, ``compare: baseline`` or ``compare: control``), a random ``reduce`` and
``for:``, and a random tier: failing only, ``warn_if`` beside ``fail_if`` or ``mode: warn``. Every tool reads the same samples: a ``static`` source plugin and the policy
test's inputs both answer queries with the sim's PromQL evaluator over them. The
rollout's stored ticks are the reference; the others must agree tick by tick up to the
first failure or the end of the bake (``check``, which does not hold ``for:``, is
compared on the value, and on the verdict when ``for`` is 0; so is the threshold of a
check with ``warn_if``, which is the warning's once it speaks, and a bake's holds it
back until its ``for:``).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ConfigDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrail import Reading, Series, Source, hookimpl
from guardrail.api import Guardrail
from guardrail.language.loader import load_policy
from guardrail.plugin.manager import get_plugin_manager
from guardrail.tools.backtest import backtest
from guardrail.tools.check import check_now
from guardrail_plugins.policytest.model import PolicyTest
from guardrail_plugins.policytest.runner import run_case
from guardrail_plugins.sim.promql import StaticStore, evaluate

STEP = 30.0
BASE = 1_767_000_000.0  # t = 0 of the inputs (a multiple of STEP)
BEFORE, BAKE = 40, 30  # samples before the deploy; bake in steps
DEPLOYED = BASE + BEFORE * STEP


class Static:
    """A source plugin over fixed samples: the series of the current draw."""

    store = StaticStore([])

    class StaticSource(Source):
        blocking_io = False

        class Params(BaseModel):
            model_config = ConfigDict(extra="forbid")
            query: str

        def measure(self, probe, at):
            result = evaluate(probe.params["query"], Static.store, at)
            if isinstance(result, float):
                return Reading(series=() if math.isnan(result) else (Series({}, result),))
            return Reading(series=tuple(Series(dict(labels), v) for labels, v in result if not math.isnan(v)))

    @hookimpl
    def guardrail_register_sources(self, register):
        register("static", self.StaticSource)


values = st.one_of(st.none(), st.sampled_from([0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0]))
region_series = st.lists(st.lists(values, min_size=BEFORE + BAKE + 1, max_size=BEFORE + BAKE + 1),
                         min_size=1, max_size=3)


@st.composite
def draws(draw):
    deployed = draw(region_series)
    control = draw(region_series)
    kind = draw(st.sampled_from(["absolute", "baseline", "baseline", "control"]))
    several = len(deployed) > 1 or (kind == "control" and len(control) > 1)
    reduce = draw(st.sampled_from(["max", "min", "sum", "avg", "any", "all"] if several
                                  else [None, "max", "sum", "avg", "any"]))
    if kind == "control" and reduce in ("any", "all"):
        reduce = "avg"
    hold = draw(st.sampled_from([0, 60]))
    check = {"name": "c", "source": "static", "query": 'm{region="{{region}}"}', "for": f"{hold}s"}
    if reduce:
        check["reduce"] = reduce
    tier = draw(st.sampled_from(["fail", "warn_if", "mode"] if kind != "control" else ["fail", "mode"]))
    if kind == "absolute":
        limit = draw(st.sampled_from([4, 6, 10, 20]))
        check["fail_if"] = f"> {limit}"
        if tier == "warn_if":
            check["warn_if"] = f"> {draw(st.sampled_from([n for n in (1, 2, 4, 6, 10) if n < limit]))}"
    elif kind == "baseline":
        limit = draw(st.sampled_from([50, 100, 200]))
        check.update(compare="baseline", fail_if=f"> +{limit}%",
                     baseline={"stat": draw(st.sampled_from(["mean", "median", "max"]))})
        if tier == "warn_if":
            check["warn_if"] = f"> +{draw(st.sampled_from([n for n in (10, 50, 100) if n < limit]))}%"
    else:
        check.update(compare="control", direction="increase", confidence=0.9, min_samples=5)
    if tier == "mode":
        check["mode"] = "warn"
    policy = {"apiVersion": "guardrail/v1", "kind": "Policy", "name": "p", "interval": f"{int(STEP)}s",
              "on_no_data": draw(st.sampled_from(["pass", "inconclusive", "fail"])), "inconclusive_limit": 4,
              "checks": [check]}
    return {"r3": deployed, "r1": control}, policy, hold


def _samples(series: dict[str, list[list[float | None]]]) -> list:
    return [({"__name__": "m", "region": region, "instance": f"i{n}"},
             [(BASE + i * STEP, v) for i, v in enumerate(values) if v is not None])
            for region, all_values in series.items() for n, values in enumerate(all_values)]


def _notation(values: list[float | None]) -> str:
    return " ".join("_" if v is None else f"{v:g}" for v in values)


def _files(tmp: Path, series, policy) -> tuple[Path, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "p.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    plan = {"apiVersion": "guardrail/v1", "kind": "Rollout", "service": "judged",
            "change": {"version": "2", "previous": "1"}, "deploy": {"plugin": "noop"},
            "regions": {"r3": {}, "r1": {}}, "policies": ["p.yaml"],
            "waves": [{"name": "canary", "regions": ["r3"], "bake": f"{int(BAKE * STEP)}s"},
                      {"name": "main", "regions": ["r1"], "bake": "1m"}],
            "verify_recovery": {"for": "1m"}, "clock": "virtual"}
    (tmp / "plan.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    return tmp / "plan.yaml", tmp / "p.yaml"


def _ticks(rows) -> dict[float, tuple[str, float | None, float | None]]:
    return {round(r["at"], 6): (r["status"], r["value"], r["threshold"]) for r in rows if r["region"] == "r3"}


def _same(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9,
                                                                                         abs_tol=1e-12))


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(draw=draws())
def test_rollout_check_test_and_backtest_agree(tmp_path_factory, draw):
    series, policy, hold = draw
    Static.store = StaticStore(_samples(series))
    tmp = tmp_path_factory.mktemp("judged")
    plan_path, policy_path = _files(tmp, series, policy)
    pm = get_plugin_manager(autoload=False, extra_plugins=[Static()])

    # the rollout: the engine on a virtual clock starting at the deploy
    api = Guardrail(tmp / "state.db", pm=pm)
    try:
        result = api.rollout(plan_path, clock_start=DEPLOYED)
        rollout = _ticks(api.store.measurements(result.rollout_id, "bake:canary"))
    finally:
        api.close()
    end = DEPLOYED + BAKE * STEP
    rollout = {at: v for at, v in rollout.items() if at <= end + 1e-6}
    assert rollout, result.reason

    # the policy test: the same samples as its inputs, t = 0 at BASE
    test = PolicyTest.model_validate({
        "apiVersion": "guardrail/v1", "kind": "PolicyTest", "policy": "p.yaml", "step": f"{int(STEP)}s",
        "tests": [{"name": "draw", "deployed_at": f"{int(BEFORE * STEP)}s", "until": f"{int((BEFORE + BAKE) * STEP)}s",
                   "control": ["r1"],
                   "regions": {r: {"series": {f'm{{instance="i{n}"}}': _notation(v) for n, v in enumerate(vs)}}
                               for r, vs in series.items()}}]})
    loaded = load_policy(policy_path, pm.registry).policy
    outcome = run_case(test, test.tests[0], loaded)[("r3", "c")]
    tested = {round(BASE + t.at, 6): (t.status, t.value, t.threshold) for t in outcome.ticks}

    # the backtest: the engine's replay of the policy alone
    replay = backtest([policy_path], region="r3", deployed_at=DEPLOYED, until=end, controls=["r1"],
                      sources={"static": {}}, pm=pm, state=tmp / "backtest.db")
    api = Guardrail(tmp / "backtest.db", pm=pm)
    try:
        replayed = _ticks(api.store.measurements(replay.rollout_id, "bake:backtest"))
    finally:
        api.close()

    for name, other in (("test", tested), ("backtest", replayed)):
        common = sorted(set(rollout) & set(other))
        assert common, f"{name} shares no tick with the rollout"
        for at in common:
            ours, theirs = rollout[at], other[at]
            assert ours[0] == theirs[0] and _same(ours[1], theirs[1]) and _same(ours[2], theirs[2]), \
                f"{name} at +{at - DEPLOYED:g}s: (status, value, threshold) {theirs} vs rollout {ours}"

    # check: one evaluation now, judged as the bake would at that instant
    for at in sorted(rollout)[:: max(1, len(rollout) // 3)]:
        [checked] = check_now(policy_path, "r3", pm.registry, plan_path=plan_path, at=at, deployed_at=DEPLOYED)
        status, value, threshold = rollout[at]
        assert _same(checked.value, value), f"check at +{at - DEPLOYED:g}s: {checked.value} vs rollout {value}"
        if hold == 0 or "warn_if" not in policy["checks"][0]:  # the tier that speaks draws the line
            assert _same(checked.threshold, threshold), \
                f"check at +{at - DEPLOYED:g}s: threshold {checked.threshold} vs rollout {threshold}"
        if hold == 0 and status != "inconclusive":
            assert checked.status == status, f"check at +{at - DEPLOYED:g}s: {checked.status} vs rollout {status}"
