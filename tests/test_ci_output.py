"""What a CI job log shows: progress on stderr while a JSON run bakes, annotations and a
step summary for invalid input, tables that fit 80 columns, help without ``<bool>``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from guardrail.cli import create_app
from support.engine_plans import rollout, run, state, work, write_plan  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
INVALID = REPO / "tests" / "data" / "invalid" / "bad-comparison-word.yaml"


def test_a_json_run_says_each_transition_and_its_bake_minute_by_minute_on_stderr(work, state):  # noqa: F811
    result = run("rollout", write_plan(work, "ok"), "--state", state, "--output", "json", "--start-at",
                 "2026-01-05T10:00:00Z")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outcome"] == "promoted"  # stdout: the document alone
    lines = result.stderr.splitlines()
    for text in ("wave canary: deploying r3", "wave canary: baking for 30m", "wave main: deploying r1, r2",
                 "promoted: every wave passed"):
        assert any(text in line for line in lines), text
    bake = [line for line in lines if re.search(r"wave \w+: baking, .* left; \d+ checks:", line)]
    stamps = [int(line[:2]) * 3600 + int(line[3:5]) * 60 + int(line[6:8]) for line in bake]
    assert len(bake) >= 90  # 30m and 60m of bake: a line at least every minute of the rollout's clock
    assert all(0 < b - a <= 60 for a, b in zip(stamps, stamps[1:]) if b > a)
    assert "wave canary: baking, 30m left" in bake[0] and "wave main: baking, 1h left" in "\n".join(bake)


def test_invalid_input_is_annotated_on_its_line_and_summarized(tmp_path):
    summary = tmp_path / "summary.md"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_WORKSPACE": str(REPO)}
    result = CliRunner().invoke(create_app(), ["validate", str(INVALID), "--output", "json"], env=env)
    assert result.exit_code == 2
    assert json.loads(result.stdout)["outcome"] == "invalid"
    annotation = ("::error file=tests/data/invalid/bad-comparison-word.yaml,line=10,col=14,"
                  "title=guardrail%3A invalid bad-comparison-word.yaml::checks[0].fail_if: expected a comparison")
    assert any(line.startswith(annotation) for line in result.stderr.splitlines()), result.stderr
    text = summary.read_text()
    assert text.startswith("## ❌ invalid input: 1 problem, nothing was changed")
    assert "| tests/data/invalid/bad-comparison-word.yaml | 10:14 | checks[0].fail_if |" in text
    quiet = CliRunner().invoke(create_app(), ["validate", str(INVALID)], env={"GITHUB_ACTIONS": ""})
    assert "::error" not in quiet.output  # only under GitHub Actions


def test_tables_fit_80_columns_and_never_cut_an_id(work, state):  # noqa: F811
    long = "mail-sender-eu-west"
    doc = rollout(write_plan(work, "long", service=long, change={"version": "2.1-bad"}), state, 1)
    for args in (["history"], ["status", doc["rollout_id"]], ["incidents", "list"]):
        result = run(*args, "--state", state)  # CliRunner: not a terminal, 80 columns
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        table = [line for line in lines if doc["rollout_id"] in line or " r3 " in line]
        assert table, result.stdout
        for line in lines:
            if not line.startswith(("mail", long, "✗", "    query", "details")):
                assert len(line) <= 80, (args, line)
    history = run("history", "--state", state).stdout.splitlines()
    [row] = [line for line in history if doc["rollout_id"] in line]
    assert long in row and "2.1-bad" in row and "rolled_back" in row and "…" in row  # the reason gives way
    assert len(history) == 2  # one line per rollout
    status = run("status", doc["rollout_id"], "--state", state).stdout
    assert re.search(r"canary\s+r3\s+\d\d:\d\d:\d\d\s+\d\d:\d\d:\d\d\s+fail", status), status


@pytest.mark.parametrize("command", [[], ["rollout"], ["status"], ["history"], ["incidents", "flush"], ["check"],
                                     ["plugins"], ["validate"], ["resume"]])
def test_help_shows_no_bool_placeholder_on_flags(command):
    result = CliRunner().invoke(create_app(), [*command, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output and "--help" in result.output
