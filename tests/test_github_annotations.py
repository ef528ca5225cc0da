"""Under GitHub Actions (``GITHUB_ACTIONS=true``) a rollout's failures become ``::error``
workflow commands pointing at the policy line, and a Markdown summary is appended to
``$GITHUB_STEP_SUMMARY``; ``--output json`` keeps stdout one JSON document."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from guardrail.cli import create_app
from guardrail.report.github import MAX_ERRORS, command, escape_data, escape_property
from support.report_plans import halting_plan

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart"
POLICY = REPO / "policies" / "service-restarts.yaml"


def run(tmp_path: Path, *args: str, plan: Path = QUICKSTART / "rollout.yaml", github: bool = True):
    env = {"GITHUB_ACTIONS": "true" if github else None, "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
           "GITHUB_WORKSPACE": str(REPO)}
    return CliRunner().invoke(create_app(), ["rollout", str(plan), "--state", str(tmp_path / "state.db"), *args],
                              env=env)


def check_line(name: str) -> int:
    lines = POLICY.read_text().splitlines()
    return next(i for i, line in enumerate(lines, start=1) if line.strip() == f"- name: {name}")


def test_escaping_as_github_documents():
    assert escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    assert command("error", "line one\nline two", file="p.yaml", line=3, title="x: y, z") == \
        "::error file=p.yaml,line=3,title=x%3A y%2C z::line one%0Aline two"
    assert command("warning", "plain") == "::warning::plain"


def test_failures_become_error_annotations_on_the_policy_line(tmp_path):
    result = run(tmp_path)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stdout.splitlines() if line.startswith("::")]
    assert len(errors) == 1
    [annotation] = errors
    assert annotation.startswith(f"::error file=policies/service-restarts.yaml,line={check_line('service-restarts')},"
                                 "title=guardrail%3A service-restarts failed in r3 (wave canary)::")
    message = annotation.split("::", 2)[2]
    assert message.startswith("2 (fails if > 1.5)%0Aquery: sum(increase(service_restarts_total{region=\"r3\"}[15m]))")
    assert "\n" not in message and "%0A" in message


def test_the_step_summary_is_markdown_appended_to_the_file(tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("## an earlier step\n")
    result = run(tmp_path, "--report", str(tmp_path / "report.html"))
    assert result.exit_code == 1, result.output
    text = summary.read_text()
    assert text.startswith("## an earlier step\n## ❌ mail-sender 2023.01.05: rolled back")
    assert "· exit code 1" in text
    assert "| canary | r3 | " in text and "| fail |" in text and "| main | r1 | - | - | not_deployed |" in text
    assert "### Failing checks" in text
    assert "| r3 | canary | service-restarts/service-restarts | 2 | 1.5 |" in text
    assert "<code>sum(increase(service_restarts_total{region=&quot;r3&quot;}[15m]))</code>" in text
    assert "### Incident INC-" in text and ": resolved" in text
    assert f"Report: <code>{tmp_path / 'report.html'}</code>" in text
    assert (tmp_path / "report.html").exists()
    run(tmp_path)
    assert summary.read_text().count("## ❌ mail-sender") == 2  # appended, never overwritten


def test_json_output_keeps_stdout_one_document(tmp_path):
    result = run(tmp_path, "--output", "json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)  # nothing but the JSON document
    plain = CliRunner().invoke(create_app(), ["rollout", str(QUICKSTART / "rollout.yaml"), "--state",
                                              str(tmp_path / "plain" / "state.db"), "-o", "json"])
    assert set(doc) == set(json.loads(plain.stdout))  # the contract's shape is unchanged
    assert "::error file=policies/service-restarts.yaml" in result.stderr  # the runner reads stderr too


def test_a_halt_is_a_warning(tmp_path):
    plan = halting_plan(tmp_path)
    result = run(tmp_path, plan=plan)
    assert result.exit_code == 3, result.output
    [warning] = [line for line in result.stdout.splitlines() if line.startswith("::")]
    assert warning.startswith("::warning title=guardrail%3A mail-sender rollout halted::no evidence")
    text = (tmp_path / "summary.md").read_text()
    assert text.startswith("## ⚠️ mail-sender 2023.01.06: halted") and "### Without clean evidence" in text


def test_at_most_ten_error_annotations(tmp_path):
    from guardrail.report import annotations
    from guardrail.report.data import CheckView, Report, Verdict

    def verdict(i: int) -> Verdict:
        row = {"value": 1.0, "threshold": 0.0, "query": "q", "reason": f"failure {i}", "evidence": {}}
        return Verdict("bake:w", f"r{i}", "p", "c", "fail", 1, 1, 0, 0.0, 0.0, 0.0, 0.0, row)

    check = CheckView("p", "c", verdicts=[verdict(i) for i in range(25)])
    report = Report(rollout={"id": "x", "service": "s", "version": "2", "reason": None}, summary={"outcome": "rolled_back"},
                    waves=[], start=0, end=60, events=[], spans=[], marks=[], checks=[check], incident=None,
                    deliveries=[], files=[], measurements=25, generated_at=0)
    lines = annotations(report, workspace="")
    assert len(lines) == MAX_ERRORS
    assert lines[-1].startswith("::error title=guardrail%3A s 2::16 more failing checks")


def test_nothing_for_github_outside_github_actions(tmp_path):
    result = run(tmp_path, github=False)
    assert result.exit_code == 1
    assert "::error" not in result.output
    assert not (tmp_path / "summary.md").exists()
