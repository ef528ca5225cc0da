"""The CI examples (examples/ci/) are valid for their CI system — checked against the
GitHub Actions and GitLab CI schemas that check-jsonschema ships (offline) — install the
distribution by its own name, and every ``guardrail`` command line in them parses."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml

from guardrail.cli import create_app

CI = Path(__file__).resolve().parents[1] / "examples" / "ci"
SCHEMAS = {"github-actions.yml": "vendor.github-workflows", "gitlab-ci.yml": "vendor.gitlab-ci"}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_ci_files_validate_against_their_ci_schema(name):
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", SCHEMAS[name],
                             str(CI / name)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = yaml.safe_load((CI / name).read_text())
    if name == "github-actions.yml":
        broken["jobs"]["rollout"]["steps"][0]["uses"] = {"not": "a string"}
    else:
        broken["rollout"]["when"] = "sometimes"
    copy = CI.parent.parent / "tests" / "data" / f".broken-{name}"
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
    return {"github-actions.yml": "\n".join(s["run"] for s in workflow["jobs"]["rollout"]["steps"] if "run" in s),
            "gitlab-ci.yml": "\n".join(job["script"]), "rollout.sh": (CI / "rollout.sh").read_text()}


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
