"""The judge: pure verdict semantics (fail_if, for:, baselines, no data, reduce)."""

from __future__ import annotations

import pytest

from guardrail.plugin.interfaces import Reading, Series
from guardrail.judging.judge import CheckState, baseline_value, is_clean, judge
from guardrail.language.model import Check


def check(**kw) -> Check:
    return Check.model_validate({"name": "c", "source": "sim", "fail_if": "> 10", **kw})


def run(c: Check, values, *, start=0.0, step=30.0, on_no_data="inconclusive", reference=None):
    """Feed a sequence of values (None = no data, 'err' = provider error); return verdicts."""
    state, out = CheckState(), []
    for i, v in enumerate(values):
        reading = Reading.failed("boom") if v == "err" else Reading.of(v)
        verdict, state = judge(c, reading, at=start + i * step, state=state, on_no_data=on_no_data,
                               reference=reference, needs_reference=c.compare == "baseline")
        out.append(verdict)
    return out, state


def test_threshold_fails_immediately_without_for():
    verdicts, state = run(check(), [1, 11])
    assert [v.status for v in verdicts] == ["pass", "fail"]
    assert verdicts[1].threshold == 10 and verdicts[1].value == 11
    assert state.first_breach_at == 30.0


def test_for_requires_the_condition_to_hold_continuously():
    verdicts, _ = run(check(**{"for": "1m"}), [11, 11, 11])
    assert [(v.status, v.pending) for v in verdicts] == [("pass", True), ("pass", True), ("fail", False)]
    assert "held 1m" in verdicts[2].reason


def test_a_dip_resets_the_hold():
    verdicts, _ = run(check(**{"for": "1m"}), [11, 11, 5, 11, 11, 11])
    assert [v.status for v in verdicts] == ["pass"] * 5 + ["fail"]


def test_short_spike_shorter_than_for_never_fails():
    verdicts, state = run(check(**{"for": "2m"}), [1, 50, 50, 1, 1])
    assert all(v.status == "pass" for v in verdicts)
    assert state.failures == 0 and state.first_breach_at == 30.0


@pytest.mark.parametrize("policy,expected", [("fail", "fail"), ("pass", "pass"), ("inconclusive", "inconclusive")])
def test_no_data_follows_on_no_data(policy, expected):
    verdicts, _ = run(check(), [None], on_no_data=policy)
    assert verdicts[0].status == expected
    assert "no data" in verdicts[0].reason


def test_check_level_on_no_data_overrides_policy():
    verdicts, _ = run(check(on_no_data="fail"), [None], on_no_data="pass")
    assert verdicts[0].status == "fail"


def test_provider_error_is_always_inconclusive_and_counts_a_streak():
    verdicts, state = run(check(), ["err", "err", 1, "err"], on_no_data="pass")
    assert [v.status for v in verdicts] == ["inconclusive", "inconclusive", "pass", "inconclusive"]
    assert state.inconclusive_streak == 1 and state.inconclusives == 3


def test_relative_comparison_against_baseline():
    c = check(fail_if="> +200%", compare="baseline")
    verdicts, _ = run(c, [25, 31], reference=10.0)
    assert [v.status for v in verdicts] == ["pass", "fail"]
    assert verdicts[1].threshold == pytest.approx(30.0)
    assert "+210% from baseline 10" in verdicts[1].reason


def test_missing_baseline_is_inconclusive():
    verdicts, _ = run(check(fail_if="> +20%", compare="baseline"), [5], reference=None)
    assert verdicts[0].status == "inconclusive" and "no baseline" in verdicts[0].reason


def test_decrease_relative_to_baseline():
    verdicts, _ = run(check(fail_if="< -30%", compare="baseline"), [80, 60], reference=100.0)
    assert [v.status for v in verdicts] == ["pass", "fail"]


def series(*values):
    return Reading(series=tuple(Series({"instance": str(i)}, v) for i, v in enumerate(values)))


def test_several_series_without_reduce_is_inconclusive_not_a_silent_pick():
    verdict, _ = judge(check(), series(1, 20), at=0, state=CheckState(), on_no_data="pass")
    assert verdict.status == "inconclusive" and "reduce" in verdict.reason


@pytest.mark.parametrize("reduce,expected", [("max", "fail"), ("min", "pass"), ("sum", "fail"), ("avg", "fail"),
                                             ("any", "fail"), ("all", "pass")])
def test_reduce(reduce, expected):
    verdict, _ = judge(check(reduce=reduce), series(1, 20), at=0, state=CheckState(), on_no_data="pass")
    assert verdict.status == expected, verdict.reason


def test_nan_series_are_no_data():
    verdict, _ = judge(check(), Reading(series=(Series({}, float("nan")),)), at=0, state=CheckState(),
                       on_no_data="inconclusive")
    assert verdict.status == "inconclusive" and verdict.reason == "no data: 1 series read NaN or infinity"


def test_baseline_value_stats():
    assert baseline_value([1, 2, 3, 10], "mean") == 4
    assert baseline_value([1, 2, 3, 10], "median") == 2.5
    assert baseline_value([1, 2, 3, 10], "max") == 10
    assert baseline_value([], "mean") is None


def test_only_a_clean_last_pass_is_evidence_to_promote():
    _, clean_state = run(check(), [20, 1, 2])
    _, pending_state = run(check(**{"for": "5m"}), [1, 20])
    _, gap_state = run(check(), [1, None])
    assert is_clean(clean_state)
    assert not is_clean(pending_state) and not is_clean(gap_state) and not is_clean(CheckState())


def test_a_summed_check_gets_a_summed_baseline_not_the_mean_of_its_series():
    from guardrail.plugin.interfaces import RangeReading
    from guardrail.judging.evaluate import window_values as baseline_samples

    window = RangeReading.of([(0.0, [1.0, 3.0]), (30.0, [2.0, 4.0]), (60.0, [])])
    assert baseline_samples(window, "sum") == [4.0, 6.0]
    assert baseline_samples(window, "max") == [3.0, 4.0]
    assert baseline_samples(window, None) == [2.0, 3.0]  # one series expected: its value (here the mean)
    assert baseline_value(baseline_samples(window, "sum"), "mean") == 5.0



@pytest.mark.parametrize("reduce, values, expected", [
    ("max", [1.0, float("nan")], "inconclusive"),  # the NaN series may be the one that breaches
    ("max", [10.0, float("nan")], "fail"),  # a breach among the others stands
    ("sum", [1.0, float("inf")], "inconclusive"),
    ("any", [1.0, float("nan")], "inconclusive"),
    ("any", [10.0, float("-inf")], "fail"),
    ("all", [1.0, float("nan")], "pass"),  # one finite series does not breach: not all do
    ("all", [10.0, float("nan")], "inconclusive"),
    (None, [float("inf")], "inconclusive"),  # one series, infinite: no data
])
def test_nan_and_infinities_are_no_data_and_never_make_a_breaching_set_pass(reduce, values, expected):
    c = check(fail_if="> 5", **({"reduce": reduce} if reduce else {}))
    reading = Reading(series=tuple(Series({"i": str(n)}, v) for n, v in enumerate(values)))
    verdict, _ = judge(c, reading, at=0.0, state=CheckState(), on_no_data="inconclusive")
    assert verdict.status == expected, verdict.reason
    if expected == "inconclusive":
        assert "NaN or infinity" in verdict.reason
