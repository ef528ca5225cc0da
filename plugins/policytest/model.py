"""``kind: PolicyTest`` documents: the model, and every problem located in the file.

The cross-references (check names, regions, the notation of each series) are checked
here rather than when the test runs, so ``guardrail validate`` reports a misspelt
check name at its line, exactly like a misspelt key in a policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator

from guardrail.language import documents
from guardrail import ConfigError, Document, Duration, Problem
from guardrail.language.loader import LoadedPolicy, load_policy
from guardrail_plugins.policytest.notation import expand

Verdict = Literal["pass", "fail", "inconclusive", "warn"]
"""``warn``: the check warned (``warn_if``, ``mode: warn``) and never failed."""


def _notation_text(value: Any) -> Any:
    """``mail_sends_stalled: 0`` is read by YAML as a number; the notation is text."""
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def restore_notation(doc: Document) -> None:
    """Put back the text of notations that YAML read as numbers: ``0x30`` is the hex
    integer 48 to YAML and 31 zeros here, ``1_0`` is 10. ``Document.raw`` kept the text."""
    tests = doc.data.get("tests") if isinstance(doc.data, dict) else None
    for i, case in enumerate(tests if isinstance(tests, list) else []):
        regions = case.get("regions") if isinstance(case, dict) else None
        for region, given in (regions.items() if isinstance(regions, dict) else ()):
            for part in ("series", "values"):
                inputs = given.get(part) if isinstance(given, dict) else None
                for key in list(inputs) if isinstance(inputs, dict) else ():
                    raw = doc.raw.get(("tests", i, "regions", region, part, key))
                    if raw is not None and not isinstance(inputs[key], bool):
                        inputs[key] = raw


Notation = Annotated[str, BeforeValidator(_notation_text), WithJsonSchema(
    {"type": ["string", "number"], "examples": ["0+1x20", "5x10 _x3 50x5"], "description": "promtool notation: 7, _, a+bxn, axn, _xn"})]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RegionInput(_Strict):
    vars: dict[str, Any] = Field(default_factory=dict, description="template variables of this region")
    series: dict[str, Notation] = Field(default_factory=dict,
                                        description='raw metric series: \'name{label="v"}\': notation; region is added')
    values: dict[str, Notation] = Field(default_factory=dict,
                                        description="a check's own values, used instead of evaluating its query")


class Expectation(_Strict):
    verdict: Verdict = Field(description="what the check must yield")
    first_failure: Duration | None = Field(None, description="time of the first failed evaluation, from t = 0; "
                                                               "only with verdict: fail")
    first_warning: Duration | None = Field(None, description="time of the first evaluation that warned, from t = 0;"
                                                               " with verdict: warn (or fail, for a warning before the failure)")


def _verdict_shorthand(value: Any) -> Any:
    """``check: fail`` is ``check: {verdict: fail}``."""
    if isinstance(value, dict):
        return {region: ({name: ({"verdict": v} if isinstance(v, str) else v) for name, v in checks.items()}
                         if isinstance(checks, dict) else checks) for region, checks in value.items()}
    return value


class Case(_Strict):
    name: str = Field(min_length=1, description="unique in the file")
    description: str | None = Field(None, description="what the test shows, for people")
    deployed_at: Duration = Field(description="when the change reached the regions, from t = 0")
    until: Duration | None = Field(None, description="the last evaluation; default: the end of the inputs")
    step: Duration | None = Field(None, gt=0, description="overrides the file's step for this test")
    regions: dict[str, RegionInput] = Field(min_length=1, description="each region's inputs")
    control: list[str] = Field(default_factory=list, description="regions that keep the old version")
    expect: Annotated[dict[str, dict[str, Expectation]], BeforeValidator(_verdict_shorthand)] = Field(
        default_factory=dict, description="region -> check -> verdict; checks not listed are expected to pass",
        json_schema_extra=lambda schema: schema["additionalProperties"].update(additionalProperties={"anyOf": [
            schema["additionalProperties"]["additionalProperties"], {"enum": list(get_args(Verdict))}]}))


class PolicyTest(_Strict):
    apiVersion: Literal["guardrail/v1"] = Field(description="the language version: guardrail/v1")
    kind: Literal["PolicyTest"] = Field(description="this document is a PolicyTest")
    policy: str = Field(min_length=1, description="the policy file under test, relative to this file")
    description: str | None = Field(None, description="what the tests cover, for people")
    service: str = Field("service", description="the {{service}} template variable")
    step: Duration = Field(15.0, gt=0, description="time between two samples of the inputs")
    vars: dict[str, Any] = Field(default_factory=dict, description="template variables of every region")
    tests: list[Case] = Field(min_length=1, description="the tests, each a timeline of inputs and the verdicts"
                              " expected")

    @field_validator("tests")
    @classmethod
    def _unique_names(cls, tests: list[Case]) -> list[Case]:
        names = [t.name for t in tests]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"test names must be unique: {', '.join(twice)}")
        return tests


@dataclass
class PolicyFacts:
    """What the cross-checks need to know of the policy under test."""

    checks: dict[str, bool]
    """check name -> whether it has a ``query`` (else its values must be given)."""


def facts_from_file(path: Path) -> PolicyFacts | None:
    """The check names of a policy file, read without the plugin registry (for the
    document-kind validator); None when the file cannot be read as a policy."""
    doc = documents.read(path)
    data = doc.data if isinstance(doc.data, dict) else {}
    checks = data.get("checks")
    if doc.problems or not isinstance(checks, list):
        return None
    return PolicyFacts({c["name"]: "query" in c for c in checks if isinstance(c, dict) and isinstance(c.get("name"), str)})


def facts_from_policy(loaded: LoadedPolicy) -> PolicyFacts:
    return PolicyFacts({c.name: "query" in c.params for c in loaded.policy.checks})


def policy_path(doc: Document, test: PolicyTest) -> Path:
    return (Path(doc.file).parent / test.policy).resolve()


def check_document(doc: Document, facts: PolicyFacts | None) -> tuple[PolicyTest | None, list[Problem]]:
    """Validate a parsed test file; ``facts`` None skips the checks against the policy."""
    restore_notation(doc)
    test, problems = documents.validate(PolicyTest, doc.data, doc)
    cases = test.tests if test is not None else _valid_cases(doc)
    for i, case in cases if test is None else enumerate(cases):
        problems += _case_problems(doc, ("tests", i), case, facts)
    return (test if not problems else None), list(dict.fromkeys(problems))


def _valid_cases(doc: Document) -> list[tuple[int, Case]]:
    """The cases that validate on their own, so one bad key elsewhere in the file does
    not hide the cross-reference problems of every test (their own problems are
    already among the document's)."""
    raw = doc.data.get("tests") if isinstance(doc.data, dict) else None
    out = []
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        case, _ = documents.validate(Case, item, doc, ("tests", i))
        if case is not None:
            out.append((i, case))
    return out


def _case_problems(doc: Document, at: tuple, case: Case, facts: PolicyFacts | None) -> list[Problem]:
    from guardrail_plugins.sim.promql_ast import PromQLError

    problems = []
    known = facts.checks if facts is not None else None
    longest = 0
    for region, given in case.regions.items():
        for key, text in given.series.items():
            where = at + ("regions", region, "series", key)
            try:
                series_labels(key)
            except (ValueError, PromQLError) as exc:
                problems.append(doc.problem(where, str(exc), key=True))
            longest = max(longest, _length(doc, where, text, problems))
        for name, text in given.values.items():
            where = at + ("regions", region, "values", name)
            if known is not None and name not in known:
                problems.append(doc.problem(where, _unknown_check(name, known), key=True))
            longest = max(longest, _length(doc, where, text, problems))
        if known is not None and region not in case.control:
            for name, has_query in known.items():
                if not has_query and name not in given.values:
                    problems.append(doc.problem(at + ("regions", region), f"check {name!r} has no query to evaluate: "
                                                f"give what it reads under values: {{{name}: ...}}"))
    for j, region in enumerate(case.control):
        if region not in case.regions:
            problems.append(doc.problem(at + ("control", j), f"control region {region!r} has no inputs under regions:"))
    for region, checks in case.expect.items():
        if region not in case.regions or region in case.control:
            why = "is a control region" if region in case.control else "has no inputs under regions:"
            problems.append(doc.problem(at + ("expect", region), f"region {region!r} {why}", key=True))
        for name, expected in checks.items():
            if known is not None and name not in known:
                problems.append(doc.problem(at + ("expect", region, name), _unknown_check(name, known), key=True))
            if expected.first_failure is not None and expected.verdict != "fail":
                problems.append(doc.problem(at + ("expect", region, name, "first_failure"),
                                            "only a check expected to fail has a first failure"))
            if expected.first_warning is not None and expected.verdict not in ("warn", "fail"):
                problems.append(doc.problem(at + ("expect", region, name, "first_warning"),
                                            "only a check expected to warn (or to warn, then fail) has a first "
                                            "warning"))
    if case.until is not None and case.until < case.deployed_at:
        problems.append(doc.problem(at + ("until",), "must not be before deployed_at"))
    if case.until is None and not problems and longest == 0:
        problems.append(doc.problem(at + ("regions",), "no inputs: give series or values"))
    return problems


def _length(doc: Document, where: tuple, text: str, problems: list[Problem]) -> int:
    try:
        return len(expand(text))
    except ValueError as exc:
        problems.append(doc.problem(where, str(exc)))
        return 0


def _unknown_check(name: str, known: dict[str, bool]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f"; it has {', '.join(sorted(known))}"
    return f"the policy under test has no check {name!r}{hint}"


def series_labels(key: str) -> dict[str, str]:
    """``name{a="b"}`` → its labels with ``__name__``; only ``=`` matchers make a series."""
    from guardrail_plugins.sim.promql_ast import VectorSelector
    from guardrail_plugins.sim.promql_parser import Parser

    node = Parser(key).parse()
    if not isinstance(node, VectorSelector) or node.offset_ms or node.name is None:
        raise ValueError(f"expected a series like name{{label=\"value\"}}, got {key!r}")
    labels = {"__name__": node.name}
    for matcher in node.matchers:
        if matcher.op != "=":
            raise ValueError(f"{key!r}: a series has exact labels (=), not {matcher.op}")
        labels[matcher.name] = matcher.value
    return labels


def validate_document(doc: Document) -> list[Problem]:
    """The ``PolicyTest`` document kind's validator (``guardrail validate``)."""
    if not isinstance(doc.data, dict) or not isinstance(doc.data.get("policy"), str):
        return check_document(doc, None)[1]
    path = (Path(doc.file).parent / doc.data["policy"]).resolve()
    if not path.is_file():
        return [doc.problem(("policy",), f"policy file not found: {path}")] + check_document(doc, None)[1]
    return check_document(doc, facts_from_file(path))[1]


@dataclass
class LoadedTest:
    path: Path
    doc: Document
    test: PolicyTest
    policy: LoadedPolicy


def load_test(path: str | Path, registry: Any) -> LoadedTest:
    """Read a test file and its policy; ``ConfigError`` lists every problem of both."""
    path = Path(path)
    doc = documents.read(path)
    if doc.problems:
        raise ConfigError(doc.problems)
    if not isinstance(doc.data, dict) or doc.data.get("kind") != "PolicyTest":
        raise ConfigError([doc.problem(("kind",) if isinstance(doc.data, dict) else (),
                                       "expected a test file: apiVersion: guardrail/v1, kind: PolicyTest")])
    restore_notation(doc)
    test, problems = documents.validate(PolicyTest, doc.data, doc)
    if test is None:
        raise ConfigError(documents.tidy(problems))
    target = policy_path(doc, test)
    if not target.is_file():
        raise ConfigError([doc.problem(("policy",), f"policy file not found: {target}")])
    policy = load_policy(target, registry)
    _, problems = check_document(doc, facts_from_policy(policy))
    if problems:
        raise ConfigError(documents.tidy(problems))
    return LoadedTest(path, doc, test, policy)
