"""The shared-state CI examples (examples/ci/*-shared.yml), run for real against a
PostgreSQL: a rollout from one job, then a later job in another folder (another
runner) that sees it and acts on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
CI = REPO / "examples" / "ci"
QUICKSTART = REPO / "examples" / "quickstart"


def _env(state: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GUARDRAIL_"))}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(GUARDRAIL_STATE=state, **extra)
    return env


def _bash(script: str, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "step.sh").write_text(script)
    return subprocess.run(["bash", "-e", str(folder / "step.sh")], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_shared_github_workflow_rolls_out_on_one_runner_and_is_followed_from_another(tmp_path, postgres_url):
    subprocess.run([sys.executable, "-m", "guardrail", "state", "migrate", postgres_url], check=True,
                   env=_env(postgres_url), capture_output=True)
    workflow = yaml.safe_load((CI / "github-actions-shared.yml").read_text())
    assert workflow["concurrency"]["group"] == "rollout-${{ inputs.service }}"
    job = workflow["jobs"]["rollout"]
    assert job["env"]["GUARDRAIL_STATE"] == "${{ secrets.GUARDRAIL_STATE }}"
    assert any("guardrail-rollout[postgres]" in s.get("run", "") for s in job["steps"])
    steps = {s.get("id"): s for s in job["steps"]}
    base = dict(GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(REPO), GUARDRAIL_STATE_MIGRATE="0")

    first = tmp_path / "runner-1"
    env = _env(postgres_url, **base, GITHUB_OUTPUT=str(tmp_path / "out-1"), PLAN=str(QUICKSTART / "rollout.yaml"))
    done = _bash(steps["rollout"]["run"], first, env)
    assert done.returncode == 1, done.stdout + done.stderr
    outputs = dict(line.split("=", 1) for line in (tmp_path / "out-1").read_text().splitlines())
    rollout_id = outputs["rollout-id"]
    assert (first / "guardrail-report" / "report.html").stat().st_size > 0

    later = tmp_path / "runner-2"  # another runner: nothing of the first one's folder
    env = _env(postgres_url, **base, GITHUB_OUTPUT=str(tmp_path / "out-2"), COMMAND="status", ROLLOUT_ID=rollout_id)
    seen = _bash(steps["operate"]["run"], later, env)
    assert seen.returncode == 0, seen.stdout + seen.stderr
    status = json.loads((later / "guardrail-report" / "result.json").read_text())
    assert (status["rollout_id"], status["outcome"]) == (rollout_id, "rolled_back")
    env["COMMAND"] = "abort"
    finished = _bash(steps["operate"]["run"], later, env)
    assert finished.returncode == 2 and "finished" in finished.stderr  # nothing left to abort: said, not done


def test_the_shared_gitlab_jobs_roll_out_and_offer_resume_approve_abort(tmp_path, postgres_url):
    doc = yaml.safe_load((CI / "gitlab-ci-shared.yml").read_text())
    rollout, operate = doc["rollout"], doc["operate"]
    assert rollout["resource_group"] == operate["resource_group"] == "rollout-$SERVICE"
    assert "resume|approve|abort" in operate["rules"][0]["if"]
    script = "\n".join(doc[".guardrail"]["before_script"][1:] + rollout["script"])
    variables = {**doc[".guardrail"]["variables"], **rollout["variables"], "PLAN": str(QUICKSTART / "rollout.yaml")}
    variables.pop("GUARDRAIL_STATE_MIGRATE")  # a fresh database: this first job creates the tables
    done = _bash(script, tmp_path / "runner-1", _env(postgres_url, **variables))
    assert done.returncode == 1, done.stdout + done.stderr
    assert (tmp_path / "runner-1" / "guardrail-report" / "junit.xml").stat().st_size > 0
