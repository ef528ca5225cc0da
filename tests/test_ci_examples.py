"""The CI examples (examples/ci/) are valid for their CI system — checked against the
GitHub Actions and GitLab CI schemas that check-jsonschema ships (offline) — install the
distribution by its own name, and every ``guardrail`` command line in them parses. The
policy repository's workflow (github-actions-policies.yml) has its steps run for real: on
a repository of the project's policies, and its backtest against a real Prometheus."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml

from guardrail.cli import create_app

pytest_plugins = ["support.prometheus"]

REPO = Path(__file__).resolve().parents[1]
CI = REPO / "examples" / "ci"
SCHEMAS = {"github-actions.yml": "vendor.github-workflows", "gitlab-ci.yml": "vendor.gitlab-ci",
           "github-actions-policies.yml": "vendor.github-workflows"}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_ci_files_validate_against_their_ci_schema(name):
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", SCHEMAS[name],
                             str(CI / name)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = yaml.safe_load((CI / name).read_text())
    if name.startswith("github-actions"):
        next(iter(broken["jobs"].values()))["steps"][0]["uses"] = {"not": "a string"}
    else:
        broken["rollout"]["when"] = "sometimes"
    copy = REPO / "tests" / "data" / f".broken-{name}"
    try:
        copy.write_text(yaml.safe_dump(broken))
        refused = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", SCHEMAS[name],
                                  str(copy)], capture_output=True, text=True, timeout=300)
    finally:
        copy.unlink(missing_ok=True)
    assert refused.returncode == 1, refused.stdout  # the schema does check something


def _scripts() -> dict[str, str]:
    """The shell each example runs: workflow `run:` steps, the job's script, the shell step."""
    workflow = yaml.safe_load((CI / "github-actions.yml").read_text())
    job = yaml.safe_load((CI / "gitlab-ci.yml").read_text())["rollout"]
    policies = yaml.safe_load((CI / "github-actions-policies.yml").read_text())
    return {"github-actions.yml": "\n".join(s["run"] for s in workflow["jobs"]["rollout"]["steps"] if "run" in s),
            "gitlab-ci.yml": "\n".join(job["script"]), "rollout.sh": (CI / "rollout.sh").read_text(),
            "github-actions-policies.yml": _runs(policies["jobs"]["policies"])}


def _runs(job: dict) -> str:
    return "\n".join(s["run"] for s in job["steps"] if "run" in s)


def _guardrail_lines(script: str) -> list[list[str]]:
    joined = re.sub(r"\\\n\s*", " ", script)  # continuation lines
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line.startswith("guardrail "):
            continue
        words = shlex.split(line)
        for i, word in enumerate(words):
            if word in (">", "2>", "|", "&&", ";", "||") or word.startswith(">"):
                words = words[:i]
                break
        out.append([re.sub(r"\$\{?\w+\}?", "x", w) for w in words[1:]])  # variables: any value
    return out


def _parse(args: list[str]) -> None:
    """Parse a command line as guardrail would, without running it: raises on an unknown
    command or option, or a bad value."""
    command, name, args = typer.main.get_command(create_app()), "guardrail", list(args)
    while args and args[0] in getattr(command, "commands", {}):
        name = args.pop(0)
        command = command.commands[name]
    assert not hasattr(command, "commands"), f"not a command: {name}"
    command.make_context(name, args)


def test_every_ci_example_installs_the_distribution_and_runs_valid_guardrail_commands():
    seen = 0
    for name, script in _scripts().items():
        installs = [line for line in script.splitlines() if "pip install" in line]
        assert all("pip install guardrail-rollout" in line for line in installs), (name, installs)
        for args in _guardrail_lines(script):
            _parse(args)
            seen += 1
    assert seen >= 3


def test_an_invalid_invocation_would_be_caught():
    [args] = _guardrail_lines('guardrail rollout "$PLAN" --output yaml > out.json')
    with pytest.raises(Exception, match="yaml"):
        _parse(args)
    with pytest.raises(Exception, match="no-such"):
        _parse(["rollout", "x", "--no-such"])


# --- the policies workflow's steps, run for real -----------------------------------------


def _step(name: str) -> dict:
    job = yaml.safe_load((CI / "github-actions-policies.yml").read_text())["jobs"]["policies"]
    return next(s for s in job["steps"] if s.get("name") == name)


def _policy_repository(tmp_path: Path) -> tuple[Path, str]:
    """A repository of the project's policies with a pull request that edits db-cpu.yaml:
    (its folder, the base commit)."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "policies", repo / "policies")
    git = ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.invalid", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, timeout=60)
    subprocess.run([*git, "add", "."], cwd=repo, check=True, timeout=60)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=repo, check=True, timeout=60)
    base = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True,
                          timeout=60).stdout.strip()
    policy = repo / "policies" / "db-cpu.yaml"
    policy.write_text(policy.read_text().replace('fail_if: "> 0.9"', 'fail_if: "> 0.85"'))
    subprocess.run([*git, "commit", "-qam", "tighter"], cwd=repo, check=True, timeout=60)
    return repo, base


def _run(step: dict, repo: Path, env: dict) -> subprocess.CompletedProcess:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # `guardrail` of this environment
    return subprocess.run(["bash", "-e", "-c", step["run"]], cwd=repo, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": path, "COLUMNS": "160", **env})


def test_the_policies_workflow_validates_and_unit_tests_a_policy_repository(tmp_path):
    repo, _ = _policy_repository(tmp_path)
    for name in ("Validate plans and policies", "Unit-test the policies"):
        result = _run(_step(name), repo, {})
        assert result.returncode == 0, result.stdout + result.stderr
    (repo / "policies" / "db-cpu.yaml").write_text("apiVersion: guardrail/v1\nkind: Policy\nname: x\nchecks: []\n")
    refused = _run(_step("Validate plans and policies"), repo, {})
    assert refused.returncode == 2 and "db-cpu.yaml:4:" in refused.stdout + refused.stderr


@pytest.mark.prometheus
def test_the_policies_workflow_backtests_the_changed_policies_into_the_summary(tmp_path, prometheus):
    from guardrail.text import iso

    repo, base = _policy_repository(tmp_path)
    step = _step("Backtest the changed policies")
    assert step["if"] == "env.PROMETHEUS_URL != ''"
    summary = tmp_path / "summary.md"
    at = iso(prometheus.start + 40 * 60)  # r1's database CPU climbs to 100% at +45m
    env = {"BASE": base, "PROMETHEUS_URL": prometheus.url, "BACKTEST_REGION": "r1", "BACKTEST_AT": at,
           "GITHUB_STEP_SUMMARY": str(summary)}
    result = _run(step, repo, env)
    assert result.returncode == 1, result.stdout + result.stderr  # the changed policy would have failed
    text = summary.read_text()
    assert text.startswith(f"### Backtest in r1, as if deployed at {at}\n\n```text\n") and text.endswith("```\n")
    assert "would have FAILED" in text and "db-cpu/db-cpu-saturation" in text and "service-restarts" not in text
    quiet = _run(step, repo, {**env, "BASE": "HEAD", "GITHUB_STEP_SUMMARY": str(tmp_path / "quiet.md")})
    assert quiet.returncode == 0 and (tmp_path / "quiet.md").read_text() == "no policy changed\n"
