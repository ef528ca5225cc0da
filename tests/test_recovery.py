"""Recovery verification's verdict over successive ticks (``guardrail.recovery``)."""

from __future__ import annotations

from types import SimpleNamespace

from guardrail.recovery import _Watch


def watch(for_: float = 600.0, timeout: float | None = None):
    events = []
    engine = SimpleNamespace(rollout=SimpleNamespace(verify_recovery=SimpleNamespace(for_=for_, timeout=timeout)),
                             emit=lambda kind, **data: events.append(kind))
    return _Watch(engine, 0.0, None), events


def test_recovered_after_clean_ticks_for_the_whole_window():
    w, _ = watch(for_=60.0)
    assert w.observe(0.0, [], live=True) is None
    assert w.observe(30.0, [], live=True) is None
    recovered, note = w.observe(60.0, [], live=True)
    assert recovered and note == "checks passed for 1m after rollback"


def test_a_relapse_behind_a_for_hold_is_counted():
    """Clean, then a breach that holds (a pending pass) before it fails: one relapse."""
    w, events = watch()
    w.observe(0.0, [], live=True)
    w.observe(30.0, [("r3/p/c", "pass", "breaching for 0s of 1m")], live=True)
    w.observe(90.0, [("r3/p/c", "fail", "held 1m")], live=True)
    w.observe(120.0, [("r3/p/c", "fail", "held 1m30s")], live=True)  # the same relapse, not a second one
    assert w.relapses == 1 and events == ["recovery.relapsed"]


def test_never_clean_is_no_relapse_and_times_out():
    w, events = watch(for_=60.0, timeout=120.0)
    assert w.observe(0.0, [("r3/p/c", "fail", "x")], live=True) is None
    recovered, note = w.observe(120.0, [("r3/p/c", "fail", "x")], live=True)
    assert not recovered and "still unhealthy 2m after rollback" in note
    assert w.relapses == 0 and events == []
