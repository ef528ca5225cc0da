"""Canary against control: does a deployed region's signal differ from the regions
still on the old version, over the same window? Pure functions over numbers.

Why Mann–Whitney U (scipy): health signals are rarely normal (latencies are skewed,
error counts pile up at zero), and a rank test assumes nothing about their shape, only
that samples are independent draws. It is also what Kayenta (Spinnaker's canary judge)
uses, with the same default confidence, 0.98: a shift counts as *significant* when the
p-value is below 1 - confidence, so two healthy regions are flagged at most 2% of the
time.

Why an allowed effect size too: with enough samples a shift of a fraction of a percent
becomes significant. ``effect_size`` is the ratio of means the deployed region may
reach before a significant shift fails: 1.2 (or equivalently 0.8) lets the mean move
20% up or down; no effect size means any significant shift fails. Ratios assume a
signal that is positive (rates, latencies, counts).

Caveat: samples of a smoothed query (``rate(x[5m])`` every 30s) are autocorrelated,
which the test does not know, so it is less conservative than its confidence promises
on such series; an effect size, or a raw query, keeps false alarms rare.
"""

from __future__ import annotations

import math
from guardrail.text import number
from dataclasses import dataclass
from typing import Iterable, Literal

Direction = Literal["increase", "decrease", "either"]
ALTERNATIVE = {"increase": "greater", "decrease": "less", "either": "two-sided"}
"""``increase`` means the deployed region's values are higher than the control's."""


@dataclass(frozen=True)
class ControlComparison:
    status: Literal["pass", "fail", "inconclusive"]
    reason: str
    deployed_samples: int
    control_samples: int
    deployed_mean: float | None = None
    control_mean: float | None = None
    ratio: float | None = None
    """Mean of the deployed samples over the mean of the control samples."""
    p_value: float | None = None
    significant: bool = False
    shift: Literal["increase", "decrease"] | None = None
    """The side the deployed values moved to (by their means)."""


def allowed_ratios(effect_size: float | None) -> tuple[float, float]:
    """(lowest, highest) mean ratio a significant shift may reach and still pass.
    ``effect_size`` 1.25 and 0.8 both mean "25% up or 20% down"."""
    if effect_size is None:
        return 1.0, 1.0
    high = effect_size if effect_size >= 1 else 1 / effect_size
    return 1 / high, high


def mean_ratio(deployed_mean: float, control_mean: float) -> float:
    if control_mean == 0:
        return 1.0 if deployed_mean == 0 else math.copysign(math.inf, deployed_mean)
    return deployed_mean / control_mean


def compare_to_control(deployed: Iterable[float], control: Iterable[float], *, direction: Direction = "either",
                       confidence: float = 0.98, effect_size: float | None = None,
                       min_samples: int = 10) -> ControlComparison:
    """Judge the deployed samples against the pooled control samples (NaN dropped).

    Fails only when the shift is significant in ``direction`` (Mann–Whitney U,
    p < 1 - confidence) and the mean ratio goes beyond ``effect_size``; too few
    samples on either side is inconclusive."""
    from scipy.stats import mannwhitneyu  # scipy loads only when a control check runs

    ours = [float(v) for v in deployed if not math.isnan(v)]
    theirs = [float(v) for v in control if not math.isnan(v)]
    n, m = len(ours), len(theirs)
    if n < min_samples or m < min_samples:
        return ControlComparison("inconclusive", f"too few samples: {n} from the deployed region, {m} from control "
                                                 f"(min_samples {min_samples})", n, m)
    ours_mean, theirs_mean = math.fsum(ours) / n, math.fsum(theirs) / m
    ratio = mean_ratio(ours_mean, theirs_mean)
    p = float(mannwhitneyu(ours, theirs, alternative=ALTERNATIVE[direction]).pvalue)
    if math.isnan(p):  # no variation at all on both sides: nothing to tell apart
        p = 1.0
    alpha = 1 - confidence
    significant = p < alpha
    shift = "increase" if ours_mean > theirs_mean else "decrease" if ours_mean < theirs_mean else None
    if direction != "either":
        shift = direction
    low, high = allowed_ratios(effect_size)
    beyond = effect_size is None or (ratio > high if shift == "increase" else ratio < low)
    facts = (f"deployed mean {number(ours_mean)} is {number(ratio)}x control mean {number(theirs_mean)}; "
             f"Mann-Whitney p={p:.3g} (significant below {alpha:.3g}), n={n} vs {m}")
    word = shift or "shift"
    base = dict(deployed_samples=n, control_samples=m, deployed_mean=ours_mean, control_mean=theirs_mean,
                ratio=ratio, p_value=p, significant=significant, shift=shift)
    if significant and beyond:
        return ControlComparison("fail", f"significant {word}: {facts}", **base)
    if significant:
        bound = f">= {number(low)}" if shift == "decrease" else f"<= {number(high)}"
        return ControlComparison("pass", f"{word} is significant but within the allowed effect (ratio {bound}): {facts}",
                                 **base)
    wanted = "shift" if direction == "either" else direction
    return ControlComparison("pass", f"no significant {wanted}: {facts}", **base)

