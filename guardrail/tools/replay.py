"""``guardrail backtest PLAN.yaml``: a whole rollout plan replayed over history.

Why: "would this plan have stopped last Tuesday's incident, when, on which check, and
how many regions would it have exposed?" is answered by history, if the plan's waves
are replayed as a rollout would run them: the canary bakes, the next wave deploys
when the canary passed while the canary stays watched, regions move from control to
deployed, and a failure rolls back every deployed region.

The replay is the engine's own procedure (``Engine.decide_plan``) on a virtual clock
over the plan's sources (a real Prometheus's history): the same baselines, judge,
``for:`` holds, freshness and coverage rules, bake extensions and halts as a live
rollout. What differs is only what touches the world:

- the deployer is a replay deployer that records and never deploys;
- remediation actions, incident sinks and notifications never run, and no
  ``guardrail_on_event`` observer hears of the replay;
- every stored event carries ``replay: true`` and the rollout's id starts with
  ``replay-``: a replay is never mistaken for a rollout;
- after a failure the rollback is recorded (which regions, when), but recovery is not
  verified: history kept the change, so it cannot show the recovery a rollback would
  have brought. The replay says so (``recovery``) rather than imagining it.

When the change reached each region, in history
------------------------------------------------
A replay needs to know when each region *really* ran the new version, because that is
what its readings show; guardrail's own schedule is what the replay decides. The two
meet in the replay deployer: when the engine deploys region ``r`` at its own time
``s`` (the plan's waves and bake times), the deploy completes at ``max(s, h[r])``,
``h[r]`` being the time history shows ``r`` on the new version (the virtual clock moves
on to it, as a slow deploy would). So guardrail never judges a region as deployed
before its readings are of the new version.

- ``deployed={"r3": T3, "r1": T1, ...}`` (``--deployed r3=TIME``, repeatable) gives
  ``h`` explicitly; the replay starts at the first wave's earliest time.
- ``deployed_at=T`` (``--deployed-at TIME``) alone says "as if guardrail had run the
  plan from T": history followed guardrail's own schedule, every region's ``h`` is
  the time the engine deploys it. With both, ``T`` is the start and the listed regions
  keep their explicit times.
- A region guardrail would deploy but history never did (not listed, and no
  ``deployed_at``) cannot be judged on the new version: the replay stops there with
  outcome ``incomplete`` (exit 3), having answered for every wave before it.
- A region history deployed *earlier* than guardrail would have is listed in
  ``caveats``: until guardrail deploys it, the replay treats it as still on the old
  version (a control region, a baseline), while its readings are already of the new
  one. The replay goes on (the decision may still be right) but says so.

Exposure: for each region, guardrail's deploy and rollback times in the replay, next
to history's deploy time; history kept the change, so its exposure runs at least to
the end of the replay.

Checks that answer only for now (a live ``tcp``/``http`` probe) are left out and
listed, as in the single-policy backtest (``guardrail.tools.backtest``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from guardrail.text import iso
from guardrail.plugin.manager import GuardrailPluginManager

OUTCOMES = ("promoted", "rolled_back", "halted", "incomplete")


@dataclass
class Exposure:
    """One region: how long the new version ran there, with guardrail and in history."""

    region: str
    wave: str
    deployed_at: float | None
    """When guardrail's replayed rollout deployed it (None: it never would have)."""
    rolled_back_at: float | None
    """When guardrail's replayed rollout would have rolled it back (None: it would not)."""
    exposed_for: float
    """Seconds on the new version with guardrail: from its deploy to its rollback, or to the replay's end."""
    history_deployed_at: float | None
    """When history shows it on the new version (None: never, within what the replay was told)."""
    history_exposed_for: float
    """Seconds on the new version in history up to the replay's end (history kept the change): at least this."""


@dataclass
class ReplayResult:
    outcome: str
    """What guardrail would have reached: ``promoted``, ``rolled_back`` (a failure was
    decided and every deployed region rolled back; recovery not verified), ``halted``
    (no clean evidence: never promoted on missing evidence) or ``incomplete`` (history
    never deployed a region the next wave needs: the replay answers up to there)."""
    reason: str | None
    decided_at: float | None
    """When the decision was taken: the failing or halting tick, or the last bake's end."""
    decided_wave: str | None
    policy: str | None
    """The deciding policy, check and region (the first finding), on a failure."""
    check: str | None
    region: str | None
    findings: list[dict[str, Any]] = field(default_factory=list)
    """The engine's findings of the deciding tick: the evidence (query, value, threshold, baseline...)."""
    exposure: list[Exposure] = field(default_factory=list)
    """Every region of the plan, in wave order."""
    started_at: float = 0.0
    ended_at: float = 0.0
    """The replay's virtual clock at its start (the first wave's baselines) and its end."""
    deployed: dict[str, float] = field(default_factory=dict)
    """History's deploy time of each region the replay knew of (explicit or from ``deployed_at``)."""
    caveats: list[str] = field(default_factory=list)
    recovery: str | None = None
    """On a failure: why recovery was not verified."""
    skipped: list[dict[str, str]] = field(default_factory=list)
    """Checks left out: live probes that cannot answer for the past."""
    rollout_id: str = ""
    """The replay's id in its state file (``replay-...``)."""
    state: str | None = None
    """The state file kept, when one was given."""
    plan: str = ""
    service: str = ""
    version: str = ""

    @property
    def exit_code(self) -> int:
        """As ``guardrail rollout``: 0 promoted, 1 rolled back, 3 halted (and incomplete)."""
        return {"promoted": 0, "rolled_back": 1}.get(self.outcome, 3)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["replay"] = True
        out["exit_code"] = self.exit_code
        for key in ("decided_at", "started_at", "ended_at"):
            out[key + "_iso"] = iso(out[key]) if out[key] is not None else None
        out["deployed_iso"] = {r: iso(t) for r, t in self.deployed.items()}
        return out


def replay_plan(plan_path: str | Path, *, deployed: Mapping[str, float] | None = None,
                deployed_at: float | None = None, sources: dict[str, dict[str, Any]] | None = None,
                variables: dict[str, Any] | None = None, pm: GuardrailPluginManager | None = None,
                state: str | Path | None = None, until: float | None = None) -> ReplayResult:
    """Replay the rollout plan at ``plan_path`` over history; see the module's docstring.

    :param deployed: region -> epoch seconds when history shows it on the new version.
    :param deployed_at: epoch seconds: "as if guardrail had run the plan from then".
    :param sources: source settings by name, overriding the plan's (``{"prometheus":
        {"plugin": "prometheus", "url": ...}}``): point the plan at history.
    :param variables: template variables added to every region's.
    :param state: keep the replayed rollout in this SQLite file (default: a throw-away one).
    :param until: stop the replay at this time at the latest (a bake still running is
        then ``halted``, with the evidence so far).
    """
    raise NotImplementedError("replay_plan is being built")


__all__ = ["Exposure", "OUTCOMES", "ReplayResult", "replay_plan"]
