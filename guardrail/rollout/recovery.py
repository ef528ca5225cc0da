"""Verifying recovery after a rollback: the failing checks must pass, cleanly and
without interruption, for ``verify_recovery.for`` on the rolled-back regions.

A signal that fails again while we watch resets the clock (the OpenSRS seed: an
incident marked resolved that came back) and sends the incident back to
``identified``, saying so; when the checks pass again it returns to ``monitoring``.
Giving up after ``timeout`` (default four times ``for``) means a person is needed.
Every tick also gives the incident its chance to send a periodic update.

A resumed verification first walks the ticks already stored (the phase does not yield
them again), so a relapse seen before a crash still counts, and an update the crash
kept from being published goes out (the published ones are memoized: never twice).

The ``verify`` step is started with the verification and finished with its verdict
(``done``: recovered, ``failed``: not, the reason in its ``outcome``); a run that finds
it finished takes that verdict and does not verify again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from guardrail.rollout.evaluation import Item
from guardrail.judging.judge import is_clean
from guardrail.language.types import format_duration
from guardrail.rollout.ticks import Phase, _restore

if TYPE_CHECKING:
    from guardrail.judging.decisions import Failure
    from guardrail.language.model import Rollout
    from guardrail.rollout.evaluation import Evaluator
    from guardrail.state.journal import Journal
    from guardrail.incidents.lifecycle import IncidentTracker

STEP = "verify"


class _Watch:
    """The verdict logic over successive ticks, the same for stored and live ones."""

    def __init__(self, journal: Journal, rollout: Rollout, start: float, incident: IncidentTracker | None):
        self.journal, self.start, self.incident = journal, start, incident
        self.spec = rollout.verify_recovery
        self.timeout = self.spec.timeout or 4 * self.spec.for_
        self.clean_since: float | None = None
        self.was_clean = False
        self.relapses = 0

    def observe(self, at: float, unclean: list[tuple[str, str, str]], *, live: bool) -> tuple[bool, str] | None:
        """``unclean``: (item, status, reason) of each check not cleanly passing at ``at``."""
        if unclean:
            # A relapse is a failure after the checks had been clean, even if a breach
            # holding for its `for:` (a pending pass) came between the two.
            if self.was_clean and any(status == "fail" for _, status, _ in unclean):
                self.was_clean = False
                self.relapses += 1
                reasons = [f"{item}: {reason}" for item, _, reason in unclean][:5]
                if live:
                    self.journal.emit("recovery.relapsed", items=[item for item, _, _ in unclean], reasons=reasons)
                if self.incident is not None:
                    self.incident.relapsed(at, self.relapses, reasons)
            self.clean_since = None
        elif self.clean_since is None:
            self.clean_since = at
            self.was_clean = True
            if self.relapses and self.incident is not None:
                self.incident.recovering(at, self.relapses)
        if self.clean_since is not None and at - self.clean_since >= self.spec.for_:
            note = f"checks passed for {format_duration(at - self.clean_since)} after rollback"
            return True, note + (f" ({self.relapses} relapse{'s' if self.relapses != 1 else ''} before)"
                                 if self.relapses else "")
        if at - self.start >= self.timeout:
            reasons = "; ".join(f"{i}: {r}" for i, _, r in unclean[:3]) if unclean else "not long enough"
            return False, f"checks still unhealthy {format_duration(self.timeout)} after rollback ({reasons})"
        if self.incident is not None:
            self.incident.tick(at, self.clean_since, [f"{i}: {r}" for i, _, r in unclean])
        return None


def verify_recovery(journal: Journal, rollout: Rollout, evaluator: Evaluator, failure: Failure, regions: list[str],
                    incident: IncidentTracker | None = None, *, realtime: bool = False,
                    renew: Callable[[], None] = lambda: None) -> tuple[bool, str]:
    """Watch ``regions`` after the rollback of ``failure``: (recovered, why), recorded
    as the ``verify`` step's outcome. ``renew`` runs before every tick (the lease)."""
    step = journal.step(STEP)
    if step is not None and step["status"] != "started":
        detail = step["detail"] or {}
        return bool(detail.get("recovered", step["status"] == "done")), detail.get("outcome", "verified earlier")
    spec = rollout.verify_recovery
    checks = {(f["policy"], f["check"]) for f in failure.findings if f.get("check") != "deploy"}
    only = checks if spec.checks == "failing" and checks else None
    if step is None:
        start = journal.now()
        journal.begin(STEP, {"start": start}, at=start)
    else:
        start = step["detail"]["start"]
    # Warn-only checks have no say in whether the regions recovered.
    items = [i for i in evaluator.items(regions, only) if not evaluator.checks[(i.policy, i.check)].advisory]
    if not items:
        return _finish(journal, start, (True, "nothing to verify"))
    watch = _Watch(journal, rollout, start, incident)
    done = _replay(journal, items, watch)
    if done is not None:
        return _finish(journal, start, done)
    phase = Phase(rollout_id=journal.id, name="recovery", start=start, items=items, evaluator=evaluator,
                  store=journal.store, clock=journal.clock, baselines=journal.store.baselines(journal.id),
                  realtime=realtime)
    for at, _ in phase.run(before=lambda t: renew()):
        unclean = [(str(i), phase.states[i].last.status if phase.states[i].last else "none",
                    phase.states[i].last.reason if phase.states[i].last else "no verdict yet") for i in phase.unclean()]
        done = watch.observe(at, unclean, live=True)
        if done is not None:
            return _finish(journal, start, done)
    return False, "verification stopped"


def _finish(journal: Journal, start: float, verdict: tuple[bool, str]) -> tuple[bool, str]:
    recovered, note = verdict
    journal.finish(STEP, recovered, {"start": start, "recovered": recovered, "outcome": note})
    return verdict


def _replay(journal: Journal, items: list[Item], watch: _Watch) -> tuple[bool, str] | None:
    """Run the stored ticks of an interrupted verification through ``watch``."""
    wanted = set(items)
    by_time: dict[float, list[dict]] = {}
    for row in journal.store.measurements(journal.id, "recovery"):
        if Item(row["policy"], row["check"], row["region"]) in wanted:
            by_time.setdefault(row["at"], []).append(row)
    states = {}
    for at in sorted(by_time):
        for row in by_time[at]:
            states[Item(row["policy"], row["check"], row["region"])] = _restore(row)
        unclean = [(str(i), states[i].last.status if i in states else "none",
                    states[i].last.reason if i in states else "no verdict yet")
                   for i in items if i not in states or not is_clean(states[i])]
        done = watch.observe(at, unclean, live=False)
        if done is not None:
            return done
    return None
