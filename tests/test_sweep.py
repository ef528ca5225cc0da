"""``guardrail backtest PLAN.yaml --sweep``: a plan replayed at every past deploy of a week
held by a real Prometheus (``support.version_history.WEEK``: 22 rollouts, two of them bad)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from guardrail.errors import UsageError
from guardrail.tools.deploys import VersionMetric
from guardrail.tools.sweep import sweep
from support.engine_plans import run
from support.version_history import BAD, DAY, HOUR, WEEK, write_plan

pytest_plugins = ["support.version_prometheus"]

METRIC = 'app_build_info{service="mail-queue"}'
BAD_VERSIONS = [f"w{k + 1:02d}" for k in BAD]


@pytest.fixture(scope="module")
def plan(tmp_path_factory, version_prometheus):
    return write_plan(tmp_path_factory.mktemp("sweep"), version_prometheus.url, service="mail-queue")


@pytest.fixture(scope="module")
def week(plan):
    """The sweep over the week's version series (22 replays: run once for the module)."""
    return sweep(plan, start=WEEK.start, end=WEEK.end, version_metric=VersionMetric(METRIC))


def test_the_sweep_stops_the_two_bad_rollouts_of_the_week_and_no_healthy_one(week):
    assert [row.deploy.version for row in week.rows] == [f"w{k:02d}" for k in range(1, 23)]
    assert week.counts == {"promoted": 20, "rolled_back": 2}
    assert [row.deploy.version for row in week.stopped] == BAD_VERSIONS
    for row, k in zip(week.stopped, BAD):
        canary = WEEK.start + (2 + 7.5 * k) * HOUR
        assert (row.policy, row.check, row.region, row.wave) == ("errors", "error-rate", "r3", "canary")
        assert row.deploy.regions["r3"] == canary
        assert canary < row.decided_at <= canary + 10 * 60  # the 5m rate crosses 10/s, then holds 2m
        assert row.evidence[0]["value"] > 10 and "fails if > 10" in row.evidence[0]["reason"]
    assert week.exit_code == 1
    assert week.summary == "would have stopped 2 of 22: w08 (errors/error-rate in r3), w17 (errors/error-rate in r3)"
    assert week.by_check["errors/error-rate"]["stopped"] == 2
    assert week.by_check["errors/error-rate"]["regions"] == {"r3": 2}


def test_a_window_of_healthy_rollouts_only_exits_0(plan):
    clean = sweep(plan, start=WEEK.start, end=WEEK.start + 24 * HOUR, version_metric=VersionMetric(METRIC))
    assert [row.deploy.version for row in clean.rows] == ["w01", "w02", "w03"]  # at +2h, +9.5h, +17h
    assert clean.counts == {"promoted": 3} and clean.exit_code == 0
    assert clean.summary == "would have stopped 0 of 3"


def test_synthetic_deploys_every_6h_stop_where_a_bad_version_ran(plan):
    synthetic = sweep(plan, start=WEEK.start + 48 * HOUR, end=WEEK.start + 72 * HOUR, period=6 * HOUR)
    assert [row.deploy.at for row in synthetic.rows] == [WEEK.start + h * HOUR for h in (48, 54, 60, 66)]
    # w08 ran in r3 from +54.5h to +56.5h: the deploy "at" +54h bakes into it; no other does.
    assert [row.outcome for row in synthetic.rows] == ["promoted", "rolled_back", "promoted", "promoted"]
    assert synthetic.found_by == "every 6h" and synthetic.exit_code == 1


def test_a_halting_plan_exits_3(tmp_path, version_prometheus):
    plan = write_plan(tmp_path, version_prometheus.url, service="mail-queue")
    policy = yaml.safe_load((tmp_path / "errors.yaml").read_text())
    policy.update(on_no_data="inconclusive", inconclusive_limit=2, on_inconclusive="halt")
    policy["checks"][0]["query"] = 'sum(rate(mail_errors_total{service="nobody", region="{{region}}"}[5m]))'
    (tmp_path / "errors.yaml").write_text(yaml.safe_dump(policy))
    halted = sweep(plan, start=WEEK.start, end=WEEK.start + 10 * HOUR, version_metric=VersionMetric(METRIC))
    assert halted.counts == {"halted": 2} and halted.exit_code == 3


def test_a_version_that_never_reached_the_first_wave_is_skipped(tmp_path, version_prometheus):
    # In DAY, 2024.07.01 reached r3 and r1; with r2 as the canary, nothing of it can be replayed.
    plan = write_plan(tmp_path, version_prometheus.url)
    text = yaml.safe_load(plan.read_text())
    text["waves"] = [{"name": "canary", "regions": ["r2"], "bake": "30m"},
                     {"name": "main", "regions": ["r3", "r1"], "bake": "30m"}]
    plan.write_text(yaml.safe_dump(text))
    result = sweep(plan, start=DAY.start, end=DAY.end,
                   version_metric=VersionMetric('app_build_info{service="mail-sender"}'))
    assert [(row.deploy.version, row.outcome) for row in result.rows] == [("2024.07.01", "skipped"),
                                                                         ("2024.07.02", "promoted")]
    assert "never reached r2 (the first wave)" in result.rows[0].reason
    assert result.exit_code == 0 and result.summary == "would have stopped 0 of 1"
    with pytest.raises(UsageError, match=r"no version found \(2024.07.01\) reached the plan's first wave \(r2\)"):
        sweep(plan, start=DAY.start, end=DAY.start + 6 * HOUR,
              version_metric=VersionMetric('app_build_info{service="mail-sender"}'))


def test_a_replay_that_runs_into_the_next_rollout_says_so(tmp_path, version_prometheus):
    plan = write_plan(tmp_path, version_prometheus.url, service="mail-queue")
    text = yaml.safe_load(plan.read_text())
    text["waves"][0]["bake"] = "8h"  # w01's canary (+2h) still bakes when w02 arrives (+9.5h)
    plan.write_text(yaml.safe_dump(text))
    result = sweep(plan, start=WEEK.start, end=WEEK.start + 12 * HOUR, version_metric=VersionMetric(METRIC))
    assert [row.outcome for row in result.rows] == ["promoted", "promoted"]
    first, second = result.rows
    assert first.caveats[-1] == (f"w02 reached r3 at {iso(WEEK.start + 9.5 * HOUR)}, before this replay ended "
                                 f"({iso(first.ended_at)}): its last readings there may be of that version")
    assert not any("before this replay ended" in caveat for caveat in second.caveats)
    # The replay's own caveats come along: history ran r1 and r2 30 minutes after r3, not 8 hours.
    assert [caveat.split()[0] for caveat in first.caveats[:-1]] == ["r1", "r2"]


def test_a_sweep_needs_one_way_of_finding_deploys(plan):
    with pytest.raises(UsageError, match="--version-metric METRIC, or --every"):
        sweep(plan, start=WEEK.start, end=WEEK.end)
    with pytest.raises(UsageError, match="--version-metric METRIC, or --every"):
        sweep(plan, start=WEEK.start, end=WEEK.end, version_metric=VersionMetric(METRIC), period=3600)
    with pytest.raises(UsageError, match=r"no version of .* reached a region of the plan between 2024-07-08T03:00:00Z "
                                         r"and 2024-07-08T09:00:00Z: nothing to sweep"):
        sweep(plan, start=WEEK.start + 3 * HOUR, end=WEEK.start + 9 * HOUR, version_metric=VersionMetric(METRIC))
    with pytest.raises(UsageError, match="--to must be after --from"):
        sweep(plan, start=WEEK.end, end=WEEK.start, period=3600)


# -- the command line -------------------------------------------------------------------


def iso(epoch: float) -> str:
    from guardrail.text import iso as text

    return text(epoch)


def test_the_sweep_table_and_exit_code(plan):
    result = run("backtest", plan, "--sweep", "--from", iso(WEEK.start + 48 * HOUR), "--to",
                 iso(WEEK.start + 72 * HOUR), "--version-metric", METRIC)
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "3 deploys (app_build_info{service=\"mail-queue\"}) between 2024-07-10T00:00:00Z and" in out
    rows = {line.split()[0]: line for line in out.splitlines() if re.match(r" w\d\d ", line)}
    assert set(rows) == {"w08", "w09", "w10"}  # w07 (+47h) started before the window
    assert rows["w08"].split()[1:] == ["2024-07-10T06:30Z", "rolled_back", "+4m", "errors/error-rate", "in", "r3"]
    assert rows["w09"].split()[1:] == ["2024-07-10T14:00Z", "promoted", "+1h", "-"]
    assert re.search(r"\n  w08: r3/errors/error-rate: [\d.]+ \(fails if > 10\); held 2m\n", out), out
    assert "would have stopped 1 of 3: w08 (errors/error-rate in r3)" in out
    assert "errors/error-rate: stopped 1 (in r3 x1; decided at 06:00 x1 UTC)" in out


@pytest.mark.parametrize(("start", "end", "code", "outcome", "counts"), [
    (0, 12, 0, "clean", {"promoted": 2}),
    (54, 66, 1, "stopped", {"rolled_back": 1, "promoted": 1}),  # w08 ran from +54.5h
])
def test_the_sweep_as_json(plan, start, end, code, outcome, counts):
    import jsonschema

    result = run("backtest", plan, "--sweep", "--from", iso(WEEK.start + start * HOUR), "--to",
                 iso(WEEK.start + end * HOUR), "--every", "6h", "--output", "json")
    assert result.exit_code == code, result.output
    doc = json.loads(result.stdout)
    assert (doc["command"], doc["outcome"], doc["sweep"], doc["exit_code"]) == ("backtest", outcome, True, code)
    assert doc["replayed"] == 2 and doc["counts"] == counts
    assert [row["deploy"]["at"] for row in doc["rows"]] == [WEEK.start + h * HOUR for h in (start, start + 6)]
    schema = json.loads(run("schema", "output").stdout)
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    assert not errors, errors[0].message


def test_the_versions_deploy_times_are_printed_and_replayed(plan):
    version = BAD_VERSIONS[0]
    result = run("backtest", plan, "--version-metric", METRIC, "--version", version, "--from", iso(WEEK.start),
                 "--to", iso(WEEK.end))
    assert result.exit_code == 1, result.output
    canary = WEEK.start + (2 + 7.5 * BAD[0]) * HOUR
    assert f"deploys of {version} found in {METRIC}:" in result.stdout
    assert f"r3  {iso(canary)}" in result.stdout and f"r1  {iso(canary + 1800)}" in result.stdout
    assert "would have ROLLED BACK" in result.stdout


def test_a_region_that_never_got_the_version_is_printed_as_such(tmp_path, version_prometheus):
    plan = write_plan(tmp_path, version_prometheus.url)
    result = run("backtest", plan, "--version-metric", 'app_build_info{service="mail-sender"}', "--version",
                 "2024.07.01", "--from", iso(DAY.start), "--to", iso(DAY.end), "--output", "json")
    assert result.exit_code == 3, result.output  # r2 never ran it: the replay answers up to the canary wave
    assert f"r3  {iso(DAY.start + 2 * HOUR)}" in result.stderr
    assert "r2  never (between 2024-07-01T00:00:00Z and 2024-07-02T00:00:00Z)" in result.stderr
    doc = json.loads(result.stdout)
    assert doc["outcome"] == "incomplete" and doc["deployed"] == {"r3": DAY.start + 2 * HOUR,
                                                                  "r1": DAY.start + 3 * HOUR + 17 * 60}


@pytest.mark.parametrize(("args", "message"), [
    (["--sweep", "--every", "6h"], "--sweep needs the window: --from TIME"),
    (["--sweep", "--from", "2024-07-08T00:00:00Z"], "--version-metric METRIC .* or --every DURATION"),
    (["--sweep", "--from", "2024-07-08T00:00:00Z", "--every", "6h", "--deployed-at", "2024-07-08T00:00:00Z"],
     "--deployed-at: not with --sweep"),
    (["--sweep", "--from", "2024-07-08T00:00:00Z", "--every", "soon"], "--every 'soon': expected a duration"),
    (["--every", "6h"], "--every is for a --sweep"),
    (["--version-metric", METRIC], "--version-metric needs --version VERSION"),
    (["--version-metric", METRIC, "--version", "w01", "--deployed", "r3=2024-07-08T00:00:00Z"],
     "--deployed or --version-metric"),
])
def test_command_line_mistakes(plan, args, message):
    result = run("backtest", plan, *args)
    assert result.exit_code == 2, result.output
    assert re.search(message, result.output.replace("\n", " ")), result.output


def test_the_policy_form_refuses_the_plan_options(plan):
    result = run("backtest", plan.parent / "errors.yaml", "--region", "r3", "--deployed-at", "2024-07-08T00:00:00Z",
                 "--sweep", "--every", "6h")
    assert result.exit_code == 2
    assert "--sweep, --every: for a rollout plan (kind: Rollout), not a policy file" in result.output


def test_the_policy_pull_request_example_is_a_valid_workflow_running_a_valid_sweep():
    import shlex
    import subprocess
    import sys

    import typer

    from guardrail.cli import create_app

    path = Path(__file__).resolve().parents[1] / "examples" / "ci" / "github-actions-policy-sweep.yml"
    checked = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                              str(path)], capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    steps = yaml.safe_load(path.read_text())["jobs"]["sweep"]["steps"]
    script = re.sub(r"\\\n\s*", " ", "\n".join(step["run"] for step in steps if "run" in step))
    [line] = [line.strip() for line in script.splitlines() if line.strip().startswith("guardrail ")]
    words = shlex.split(line)
    words = words[1:words.index("|")]
    assert words[:2] == ["backtest", "deploy/rollout.yaml"] and "--sweep" in words
    command = typer.main.get_command(create_app()).commands["backtest"]
    command.make_context("backtest", words)  # raises on an unknown option or a bad value


def test_each_replay_of_a_sweep_renders_the_version_it_replays(tmp_path, version_prometheus):
    # A check that asks for the replayed version's own series: with the plan's
    # change.version ("next") in {{version}} it would read nothing and halt every replay.
    plan = write_plan(tmp_path, version_prometheus.url, service="mail-queue")
    policy = yaml.safe_load((tmp_path / "errors.yaml").read_text())
    policy.update(on_no_data="inconclusive", inconclusive_limit=2, on_inconclusive="halt")
    policy["checks"].append({"name": "runs-the-version", "source": "prometheus", "fail_if": "< 1",
                             "query": 'count(app_build_info{service="{{service}}", region="{{region}}", '
                                      'version="{{version}}"})'})
    (tmp_path / "errors.yaml").write_text(yaml.safe_dump(policy))
    result = sweep(plan, start=WEEK.start, end=WEEK.start + 24 * HOUR, version_metric=VersionMetric(METRIC))
    assert [(row.deploy.version, row.outcome) for row in result.rows] == [("w01", "promoted"), ("w02", "promoted"),
                                                                         ("w03", "promoted")]
