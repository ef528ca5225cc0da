"""Canary-vs-control statistics (``guardrail.judging.statistics``), their verdicts
(``judge_control``) and the comparison window (``guardrail.judging.evaluate.control_window``).

The promises checked over many seeded draws: a 30% drop in a noisy series is caught,
and two draws from the same distribution are flagged no more often than the
confidence level allows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from guardrail.judging.evaluate import control_window as window
from guardrail.judging.judge import CheckState, judge_control
from guardrail.language.model import Check
from guardrail.judging.statistics import allowed_ratios, compare_to_control


def draws(seed: int, deployed_mean: float, control_mean: float = 100.0, *, noise: float = 15.0, n: int = 11,
          m: int = 22) -> tuple[list[float], list[float]]:
    """``n`` deployed and ``m`` control samples (two control regions pooled), Gaussian noise."""
    rng = np.random.default_rng(seed)
    return list(rng.normal(deployed_mean, noise, n)), list(rng.normal(control_mean, noise, m))


def control_check(**keys) -> Check:
    return Check.model_validate({"name": "vs-control", "source": "prometheus", "query": "q", "compare": "control",
                                 **keys})


# --- the test itself -----------------------------------------------------------------


def test_a_thirty_percent_drop_in_a_noisy_series_is_detected():
    caught = 0
    for seed in range(300):
        ours, theirs = draws(seed, 70.0)
        result = compare_to_control(ours, theirs, direction="decrease")
        caught += result.status == "fail"
        if seed == 0:
            assert result.significant and result.p_value < 0.02 and result.shift == "decrease"
            assert result.ratio == pytest.approx(0.7, abs=0.1)
            assert result.deployed_samples == 11 and result.control_samples == 22
            assert result.reason.startswith("significant decrease: deployed mean")
    assert caught / 300 >= 0.99


@pytest.mark.parametrize("direction", ["either", "decrease", "increase"])
def test_two_draws_from_the_same_distribution_are_rarely_flagged(direction):
    """The false-positive rate stays under 1 - confidence (+ three binomial standard
    errors for 1000 draws), for continuous data..."""
    draws_count, confidence = 1000, 0.98
    flagged = sum(compare_to_control(*draws(seed, 100.0), direction=direction, confidence=confidence).status == "fail"
                  for seed in range(draws_count))
    alpha = 1 - confidence
    assert flagged / draws_count <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / draws_count)


def test_same_distribution_with_ties_stays_under_the_promise_too():
    """... and for counts, where ties force scipy's normal approximation."""
    rng = np.random.default_rng(7)
    flagged = 0
    for _ in range(1000):
        result = compare_to_control(rng.poisson(4, 11), rng.poisson(4, 22), direction="either")
        flagged += result.status == "fail"
    assert flagged / 1000 <= 0.02 + 3 * math.sqrt(0.02 * 0.98 / 1000)


def test_direction_decides_which_shift_counts():
    ours, theirs = draws(1, 70.0)
    assert compare_to_control(ours, theirs, direction="increase").status == "pass"
    assert compare_to_control(ours, theirs, direction="increase").reason.startswith("no significant increase")
    assert compare_to_control(ours, theirs, direction="either").status == "fail"
    higher, theirs = draws(1, 130.0)
    assert compare_to_control(higher, theirs, direction="increase").status == "fail"
    assert compare_to_control(higher, theirs, direction="decrease").status == "pass"


def test_an_allowed_effect_size_lets_a_small_significant_shift_pass():
    ours, theirs = draws(3, 95.0, noise=2.0)  # a 5% drop, very significant with so little noise
    strict = compare_to_control(ours, theirs, direction="decrease")
    assert strict.status == "fail" and strict.significant
    tolerant = compare_to_control(ours, theirs, direction="decrease", effect_size=0.9)
    assert tolerant.status == "pass" and tolerant.significant
    assert "within the allowed effect (ratio >= 0.9)" in tolerant.reason
    assert compare_to_control(ours, theirs, direction="decrease", effect_size=1 / 0.9).status == "pass"
    big, theirs = draws(3, 70.0, noise=2.0)
    assert compare_to_control(big, theirs, direction="decrease", effect_size=0.9).status == "fail"
    assert allowed_ratios(1.25) == pytest.approx((0.8, 1.25)) == allowed_ratios(0.8)
    assert allowed_ratios(None) == (1.0, 1.0)


def test_too_few_samples_on_either_side_is_inconclusive_with_the_counts():
    result = compare_to_control([1.0] * 4, [1.0] * 30, min_samples=10)
    assert result.status == "inconclusive"
    assert result.reason == "too few samples: 4 from the deployed region, 30 from control (min_samples 10)"
    assert compare_to_control([1.0] * 30, [1.0, float("nan")] * 5, min_samples=10).status == "inconclusive"


def test_flat_identical_signals_pass_and_nan_is_dropped():
    result = compare_to_control([0.0] * 12 + [float("nan")], [0.0] * 24)
    assert result.status == "pass" and result.p_value == 1.0 and result.ratio == 1.0
    assert result.deployed_samples == 12
    appeared = compare_to_control([1.0] * 12, [0.0] * 24, direction="increase")
    assert appeared.status == "fail" and math.isinf(appeared.ratio)


# --- verdicts: judge_control -----------------------------------------------------------


def test_control_verdicts_are_held_by_for_like_any_other():
    check = control_check(direction="decrease", **{"for": "1m"})
    failing = compare_to_control(*draws(0, 70.0), direction="decrease")
    passing = compare_to_control(*draws(0, 100.0), direction="decrease")
    state = CheckState()
    verdict, state = judge_control(check, failing, at=0, state=state, on_no_data="inconclusive")
    assert verdict.status == "pass" and verdict.pending and "breaching for 0s of its 1m hold" in verdict.reason
    verdict, state = judge_control(check, passing, at=30, state=state, on_no_data="inconclusive")
    assert verdict.status == "pass" and not verdict.pending and state.breach_since is None
    for at in (60, 90):
        verdict, state = judge_control(check, failing, at=at, state=state, on_no_data="inconclusive")
        assert verdict.status == "pass" and verdict.pending
    verdict, state = judge_control(check, failing, at=120, state=state, on_no_data="inconclusive")
    assert verdict.status == "fail" and verdict.reason.endswith("held 1m") and state.first_breach_at == 0
    assert verdict.value == pytest.approx(failing.deployed_mean)
    assert verdict.reference == pytest.approx(failing.control_mean) == verdict.threshold  # no effect size: the mean


def test_special_control_verdicts():
    check = control_check(direction="decrease", effect_size=0.8)
    skipped, state = judge_control(check, None, at=0, state=CheckState(), on_no_data="inconclusive",
                                   skipped="no control region left")
    assert (skipped.status, skipped.skipped, skipped.pending) == ("pass", True, False)
    assert skipped.reason == "skipped: no control region left" and state.inconclusive_streak == 0
    waiting, _ = judge_control(check, None, at=0, state=CheckState(), on_no_data="inconclusive",
                               waiting="collecting samples: 3 of 10")
    assert (waiting.status, waiting.pending, waiting.skipped) == ("pass", True, False)
    error, state = judge_control(check, None, at=0, state=CheckState(), on_no_data="inconclusive",
                                 error="prometheus http://x: query 'q' failed: cannot connect")
    assert error.status == "inconclusive" and state.inconclusive_streak == 1 and "cannot connect" in error.reason
    empty = compare_to_control([], [1.0] * 20)
    assert judge_control(check, empty, at=0, state=CheckState(), on_no_data="inconclusive")[0].reason \
        == "no data in the deployed region over the comparison window"
    assert judge_control(check, empty, at=0, state=CheckState(), on_no_data="fail")[0].status == "fail"
    few = compare_to_control([1.0] * 3, [1.0] * 20)
    assert judge_control(check, few, at=0, state=CheckState(), on_no_data="pass")[0].reason.startswith("too few")
    result = compare_to_control(*draws(0, 70.0), direction="decrease", effect_size=0.8)
    verdict, _ = judge_control(check, result, at=0, state=CheckState(), on_no_data="inconclusive")
    assert verdict.threshold == pytest.approx(result.control_mean * 0.8)


def test_a_fail_if_with_compare_control_must_also_hold():
    result = compare_to_control(*draws(0, 90.0, noise=2.0), direction="decrease")
    assert result.status == "fail"  # significant 10% drop
    lenient = control_check(direction="decrease", fail_if="< -20%")
    verdict, _ = judge_control(lenient, result, at=0, state=CheckState(), on_no_data="inconclusive")
    assert verdict.status == "pass" and verdict.reason.endswith("fails if < -20%")
    strict = control_check(direction="decrease", fail_if="< -5%")
    assert judge_control(strict, result, at=0, state=CheckState(), on_no_data="inconclusive")[0].status == "fail"


# --- the window -----------------------------------------------------------------------


def test_the_window_never_reaches_before_the_phase_started():
    check = control_check(min_samples=10)
    assert window(check, 30.0, start=1000.0, at=1000.0) == (1000.0, 1)
    assert window(check, 30.0, start=1000.0, at=1000.0 + 8 * 30) == (1000.0, 9)
    assert window(check, 30.0, start=1000.0, at=1000.0 + 9 * 30) == (1000.0, 10)  # full enough: judged
    assert window(check, 30.0, start=1000.0, at=1000.0 + 100 * 30) == (1000.0 + 90 * 30, 11)
