"""``.pre-commit-hooks.yaml``: a policy repository runs ``guardrail validate`` and
``guardrail test`` as pre-commit hooks. ``pre-commit try-repo`` installs this repository
into a fresh environment as pre-commit would for a user (the working tree, uncommitted
changes included) and runs both hooks on a repository holding a valid policy with its
unit tests and an invalid policy."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import typer
import yaml

from guardrail.cli import create_app

REPO = Path(__file__).resolve().parents[1]
HOOKS = REPO / ".pre-commit-hooks.yaml"


def test_each_hook_runs_a_guardrail_command_over_the_whole_repository():
    hooks = {hook["id"]: hook for hook in yaml.safe_load(HOOKS.read_text())}
    assert set(hooks) == {"guardrail-validate", "guardrail-test"}
    app = typer.main.get_command(create_app())
    for hook in hooks.values():
        program, command = shlex.split(hook["entry"])
        assert program == "guardrail" and hook["language"] == "python"
        assert hook["pass_filenames"] is False and hook["args"] == ["."]
        app.commands[command].make_context(command, list(hook["args"]))  # parses as guardrail would


def _git(folder: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True, timeout=60)


def test_pre_commit_try_repo_passes_the_valid_policy_and_stops_at_the_invalid_one(tmp_path):
    repo = tmp_path / "policies-repo"
    (repo / "tests").mkdir(parents=True)
    shutil.copy(REPO / "policies" / "service-restarts.yaml", repo / "service-restarts.yaml")
    shutil.copy(REPO / "policies" / "tests" / "service-restarts.test.yaml", repo / "tests")
    broken = (REPO / "tests" / "data" / "valid" / "policy.yaml").read_text()
    assert broken.count("    for: 2m") == 1
    (repo / "broken.yaml").write_text(broken.replace("    for: 2m", "    for: 2 minutes"))
    (repo / ".hidden").mkdir()
    (repo / ".hidden" / "not-guardrail.yaml").write_text("- a list, which no guardrail file is\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache"), "PRE_COMMIT_COLOR": "never",
           "GIT_CONFIG_NOSYSTEM": "1"}
    run = subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(REPO), "--all-files"], cwd=repo,
                         env=env, capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    hooks = _results(output)
    status, validate = hooks["guardrail validate"]
    assert status == "Failed" and "exit code: 2" in validate, output
    assert "broken.yaml:16:10: checks[1].for: " in validate and "2 minutes" in validate, output
    assert "service-restarts.yaml" not in validate and "not-guardrail" not in validate, output
    assert hooks["guardrail test"][0] == "Passed", output


def _results(output: str) -> dict[str, tuple[str, str]]:
    """pre-commit's report: hook name -> (Passed or Failed, what the hook printed)."""
    out: dict[str, tuple[str, str]] = {}
    name = None
    for line in output.splitlines():
        match = re.match(r"^(guardrail \w+)\.+(Passed|Failed)$", line)
        if match:
            name = match[1]
            out[name] = (match[2], "")
        elif name is not None:
            out[name] = (out[name][0], out[name][1] + line + "\n")
    return out
