"""``--junit FILE``: the rollout as JUnit XML, validated against the structure CI test
views read (the JUnit schema as Jenkins, GitLab and the GitHub test-report actions
accept it), for a rolled-back, a promoted and a halted rollout."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from typer.testing import CliRunner

from guardrail.cli import create_app
from guardrail.report.junit import _text
from support.report_plans import halting_plan

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart"
CHECKS = ["service-restarts/service-restarts", "service-restarts/stalled-sends", "queue-latency/queue-latency-p95",
          "queue-latency/queue-depth-growth"]

# element -> (required attributes, optional attributes, allowed children)
SCHEMA = {
    "testsuites": ({"name", "tests", "failures", "errors", "time"}, {"skipped", "disabled", "id"}, {"testsuite"}),
    "testsuite": ({"name", "tests", "failures", "errors", "time"},
                  {"skipped", "timestamp", "hostname", "id", "package", "disabled", "file"},
                  {"properties", "testcase", "system-out", "system-err"}),
    "properties": (set(), set(), {"property"}),
    "property": ({"name", "value"}, set(), set()),
    "testcase": ({"name", "classname", "time"}, {"assertions", "status", "file", "line"},
                 {"skipped", "error", "failure", "system-out", "system-err"}),
    "failure": ({"message"}, {"type"}, set()),
    "error": ({"message"}, {"type"}, set()),
    "skipped": (set(), {"message"}, set()),
}


def validate(element: ET.Element) -> None:
    """Raise AssertionError where ``element`` strays from ``SCHEMA`` or its counts lie."""
    required, optional, children = SCHEMA[element.tag]
    attributes = set(element.attrib)
    assert required <= attributes, (element.tag, required - attributes)
    assert attributes <= required | optional, (element.tag, attributes - required - optional)
    for child in element:
        assert child.tag in children, (element.tag, child.tag)
        validate(child)
    if element.tag == "testcase":
        outcomes = [c.tag for c in element if c.tag in ("skipped", "error", "failure")]
        assert len(outcomes) <= 1, outcomes
        assert float(element.get("time")) >= 0
    if element.tag in ("testsuite", "testsuites"):
        cases = element.findall(".//testcase")
        counted = {"tests": len(cases), "failures": sum(c.find("failure") is not None for c in cases),
                   "errors": sum(c.find("error") is not None for c in cases),
                   "skipped": sum(c.find("skipped") is not None for c in cases)}
        for key, value in counted.items():
            assert int(element.get(key, 0)) == value, (element.get("name"), key, element.get(key), value)
        assert float(element.get("time")) >= 0
    if element.tag == "testsuite":
        assert element.find("properties") is None or element[0].tag == "properties"  # properties come first


def junit(plan: Path, tmp_path: Path, expect: int) -> tuple[ET.Element, dict]:
    out = tmp_path / "ci" / "junit.xml"
    result = CliRunner().invoke(create_app(), ["rollout", str(plan), "--state", str(tmp_path / "state.db"),
                                               "-o", "json", "--junit", str(out)])
    assert result.exit_code == expect, result.output
    text = out.read_text(encoding="utf-8")
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(text.encode())
    validate(root)
    return root, json.loads(result.stdout)


def cases(suite: ET.Element) -> dict[tuple[str, str], ET.Element]:
    return {(c.get("classname"), c.get("name")): c for c in suite.findall("testcase")}


def test_a_rolled_back_rollout(tmp_path):
    root, doc = junit(QUICKSTART / "rollout.yaml", tmp_path, 1)
    assert root.get("name") == f"guardrail rollout {doc['rollout_id']}: mail-sender 2023.01.05"
    assert [s.get("name") for s in root] == ["wave canary", "wave main", "rollback and recovery"]
    canary, main, recovery = root
    properties = {p.get("name"): p.get("value") for p in canary.find("properties")}
    assert properties["rollout_id"] == doc["rollout_id"] and properties["outcome"] == "rolled_back"
    assert properties["clock"] == "virtual"
    got = cases(canary)
    assert list(got) == [("mail-sender.canary.r3", "deploy")] + [("mail-sender.canary.r3", c) for c in CHECKS]
    failure = got[("mail-sender.canary.r3", "service-restarts/service-restarts")].find("failure")
    assert failure.get("message") == "2 (fails if > 1.5)" and failure.get("type") == "fail"
    for needle in ("value: 2", "threshold: 1.5", "comparison: > 1.5", "failed at: ",
                   'query: sum(increase(service_restarts_total{region="r3"}[15m]))'):
        assert needle in failure.text, needle
    # stalled sends were breaching, inside their `for: 5m`, when the rollback cut the bake
    # short: a failure with its evidence, not an error of the check
    cut = got[("mail-sender.canary.r3", "service-restarts/stalled-sends")]
    assert cut.find("error") is None
    failure = cut.find("failure")
    assert failure.get("type") == "breach_cut_short"
    assert failure.get("message").startswith("breach cut short by the rollback: ")
    assert "breaching for 0s of its 5m hold" in failure.get("message")
    assert "query: sum(mail_sends_stalled" in failure.text and "breach began: " in failure.text
    assert got[("mail-sender.canary.r3", "queue-latency/queue-latency-p95")].find("*") is None  # passed
    # the main wave was never reached: every case skipped, saying why
    assert main.get("tests") == main.get("skipped") == "10"
    for case in main.findall("testcase"):
        assert case.find("skipped").get("message").startswith("not reached: the rollout ended rolled back")
    assert set(cases(recovery)) == {("mail-sender.rollback.r3", "rollback"),
                                    ("mail-sender.recovery.r3", "service-restarts/service-restarts")}
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("17", "2", "0", "10")
    # Times are on the rollout's clock (simulated here): the canary baked minutes, not 0 s.
    assert float(canary.get("time")) >= 5 * 60 and float(root.get("time")) >= float(canary.get("time"))
    deploy_and_checks = canary.findall("testcase")
    assert max(float(c.get("time")) for c in deploy_and_checks) >= 5 * 60


def test_a_promoted_rollout(tmp_path):
    root, _ = junit(QUICKSTART / "rollout-healthy.yaml", tmp_path, 0)
    assert [s.get("name") for s in root] == ["wave canary", "wave main"]
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("19", "0", "0", "0")
    main = cases(root[1])
    # regions of earlier waves stay watched while later waves bake
    assert {classname for classname, _ in main} == {"mail-sender.main.r1", "mail-sender.main.r2",
                                                    "mail-sender.main.r3"}
    assert ("mail-sender.main.r3", "deploy") not in main


def test_a_halted_rollout(tmp_path):
    plan = halting_plan(tmp_path)
    root, doc = junit(plan, tmp_path, 3)
    assert doc["outcome"] == "halted"
    [error] = root.findall(".//error")
    assert error.get("type") == "inconclusive" and error.get("message") == "no data"
    assert root.get("errors") == "1" and root.get("failures") == "0"


def test_control_characters_from_yaml_cannot_break_the_xml():
    text = _text("bad\x00value\x1b[31m\ttab\nnewline")
    assert text == "badvalue[31m\ttab\nnewline"
    ET.fromstring(f"<a>{text}</a>")
