"""``kind: Policy``: reusable health checks, with no URLs and no secrets."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from guardrail.language.types import ComparisonText, Duration

NoData = Literal["fail", "inconclusive", "pass"]
Reduce = Literal["max", "min", "sum", "avg", "any", "all"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class BaselineSpec(BaseModel):
    """How the pre-change reference value is taken for ``compare: baseline``."""

    model_config = ConfigDict(extra="forbid")
    window: Duration | None = Field(None, description="length of the window before the change; default: the bake length",
                                    examples=["30m", "1h", "1d"])
    stat: Literal["mean", "median", "max", "min"] = Field("mean", description="how the window's samples become one value")


class Check(BaseModel):
    """One check. Keys beyond these belong to the check's source (``query``, ``targets``...)
    and are validated against that source plugin's ``Params`` model."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = Field(pattern=NAME_PATTERN, description="unique in the policy; verdicts name it region/policy/check",
                      examples=["error-rate", "p99-latency"])
    description: str | None = Field(None, description="what the value is, in words; shown next to its plot in the report")
    source: str = Field(description="a source plugin name, or a source named in the rollout plan")
    fail_if: ComparisonText | None = Field(None, description='failure condition: "> 30", "<= 0.5", "> +20%"')
    for_: Duration = Field(0.0, alias="for", description="the condition must hold this long before the check fails")
    reduce: Reduce | None = Field(None, description="how several series become one value; required when a result has several")
    on_no_data: NoData | None = Field(None, description="overrides the policy's on_no_data for this check")
    compare: Literal["baseline", "control"] | None = Field(
        None, description="baseline: against the same query before the change; control: against regions still on"
        " the old version")
    baseline: BaselineSpec | None = Field(None, description="with compare: baseline: the window and statistic of the"
                                          " reference value")
    test: Literal["mann-whitney"] | None = Field(None, description="statistical test for compare: control")
    direction: Literal["increase", "decrease", "either"] = Field(
        "either", description="with compare: control: the shift that counts")
    confidence: float = Field(0.98, gt=0.5, lt=1.0, description="with compare: control: the shift must be significant"
                              " at this level (p < 1 - confidence)")
    effect_size: float | None = Field(None, gt=0, le=1e6, description="allowed ratio of means before a significant shift counts")
    min_samples: int = Field(10, ge=3, le=1_000_000, description="with compare: control: samples on each side before"
                             " the test may speak; also sets the window")
    max_age: Duration | None = Field(None, gt=0, description="a reading whose newest input sample is older is stale"
                                     " (no data); default: twice the source's sample interval")
    min_window_coverage: float | None = Field(None, gt=0, le=1, description="the share of a range window"
                                              " ([5m]) that must hold samples; default 0.5")
    on_no_control: Literal["baseline", "inconclusive", "skip"] = Field(
        "baseline", description="compare: control in a wave with no control region left: compare with the"
        " region's own window before the change, be inconclusive, or skip the check")
    warn_if: ComparisonText | None = Field(None, description='warning condition, in the language of fail_if: its'
                                           ' breaches (held for `for:`) are recorded and notified, never fail a wave')
    mode: Literal["fail", "warn"] = Field("fail", description="warn: the check only warns (its fail_if breaches"
                                          " are warnings); it never fails, halts or holds a wave")

    @model_validator(mode="after")
    def _consistent(self) -> Check:
        if self.fail_if is not None and self.fail_if.relative and self.compare is None:
            raise ValueError(
                f"fail_if: {self.fail_if.text!r} is relative (it has a sign or a %); add compare: baseline or compare: control"
            )
        if self.baseline is not None and self.compare != "baseline":
            raise ValueError("baseline: these settings need compare: baseline")
        if self.compare == "control" and self.test is None:
            self.test = "mann-whitney"
        if self.test is not None and self.compare != "control":
            raise ValueError("test: a statistical test needs compare: control")
        if "on_no_control" in self.model_fields_set and self.compare != "control":
            raise ValueError("on_no_control: this setting needs compare: control")
        if self.warn_if is not None:
            self.check_warning_tier()
        return self

    def check_warning_tier(self) -> None:
        """Raise ValueError when ``warn_if`` does not fit the rest of the check (the loader
        asks again once a source has implied a ``fail_if``)."""
        warn, fail = self.warn_if, self.fail_if
        if self.mode == "warn":
            raise ValueError(f"warn_if: a check with mode: warn only warns, on its fail_if; drop warn_if, or drop"
                             f" mode: warn to fail on fail_if and warn on warn_if {warn.text!r}")
        if self.compare == "control":
            raise ValueError("warn_if: a control comparison has no threshold to warn before; mark the check"
                             " mode: warn to turn its failures into warnings")
        if warn.relative and self.compare is None:
            raise ValueError(f"warn_if: {warn.text!r} is relative (it has a sign or a %); add compare: baseline")
        if fail is None:
            return  # only a warning condition: the loader makes it a warn-only check
        if {warn.op, fail.op} & {"==", "!="}:
            raise ValueError(f"warn_if: {warn.text!r} beside fail_if {fail.text!r}: a warning threshold comes before"
                             f" a failure's, which needs >, >=, < or <= on both")
        upward, fail_upward = warn.op in (">", ">="), fail.op in (">", ">=")
        if upward != fail_upward:
            raise ValueError(f"warn_if: {warn.text!r} and fail_if {fail.text!r} point in opposite directions;"
                             f" a warning comes before a failure on the same side")
        if (warn.relative, warn.percent) != (fail.relative, fail.percent):
            raise ValueError(f"warn_if: {warn.text!r} and fail_if {fail.text!r} must be alike (both absolute,"
                             f" both relative changes, or both percentages) to be ordered")
        earlier = warn.number < fail.number if upward else warn.number > fail.number
        if not (earlier or (warn.number == fail.number and warn.op.endswith("=") and not fail.op.endswith("="))):
            raise ValueError(f"warn_if: {warn.text!r} would not warn before fail_if {fail.text!r} fails; a warning"
                             f" threshold lies before the failure's ({'below' if upward else 'above'} it)")

    @property
    def advisory(self) -> bool:
        """Whether the check only warns: it never fails, halts or holds a wave."""
        return self.mode == "warn"

    @property
    def params(self) -> dict:
        """The source-specific keys (validated separately against the source's Params)."""
        return dict(self.__pydantic_extra__ or {})


class Policy(BaseModel):
    """A named set of checks evaluated every ``interval`` while a wave bakes."""

    model_config = ConfigDict(extra="forbid")

    apiVersion: Literal["guardrail/v1"] = Field(description="the language version: guardrail/v1")
    kind: Literal["Policy"] = Field(description="this document is a Policy")
    name: str = Field(pattern=NAME_PATTERN, description="letters, digits, -, _ and .; verdicts name it"
                      " region/policy/check", examples=["service-restarts"])
    description: str | None = Field(None, description="one line for people: shown in reports and incidents")
    interval: Duration = Field(30.0, gt=0, description="how often every check is evaluated while a wave bakes"
                               " (and while recovery is verified)")
    on_no_data: NoData = Field("inconclusive", description="what a check with no data yields; never silent")
    inconclusive_limit: int = Field(3, ge=1, le=10_000, description="consecutive inconclusive evaluations before on_inconclusive")
    on_inconclusive: Literal["halt", "fail"] = Field(
        "halt", description="halt: deploy nothing more and wait for a person (exit 3); fail: treat it as a failure"
        " and roll back")
    checks: list[Check] = Field(min_length=1, description="at least one check; names unique within the policy")
