"""The guides keep their promises: docs/policies.md names every key of a policy and a
check, its excerpts of policies/ are verbatim and its PolicyTest example passes;
docs/operations.md lists every exit code and environment variable; every command and
option the guides show exists; every relative link resolves; the README shows a real
screenshot; and the CI examples in examples/ci/ really run (the GitHub Actions step,
the GitLab job's script, the plain shell step, with its upload)."""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import typer
import yaml

from guardrail.cli import create_app
from guardrail.errors import ExitCode
from guardrail.language.loader import validate_paths
from guardrail.language.model import BaselineSpec, Check, Policy
from guardrail.plugin.manager import get_plugin_manager

REPO = Path(__file__).resolve().parents[1]
POLICIES_GUIDE = REPO / "docs" / "policies.md"
OPERATIONS_GUIDE = REPO / "docs" / "operations.md"
CI = REPO / "examples" / "ci"
QUICKSTART = REPO / "examples" / "quickstart"
GUIDES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), CI / "README.md", REPO / "examples" / "plugin" / "README.md"]


def code_blocks(markdown: str, language: str = r"\w*") -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", markdown, flags=re.S | re.M)


def keys(model) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


# -- the policy guide ---------------------------------------------------------------------


@pytest.mark.parametrize("key", keys(Policy) + keys(Check) + keys(BaselineSpec))
def test_every_key_of_a_policy_and_a_check_is_documented(key):
    assert f"`{key}`" in POLICIES_GUIDE.read_text(), f"docs/policies.md does not document `{key}`"


def test_the_policy_guide_covers_its_topics():
    text = POLICIES_GUIDE.read_text()
    for needle in ("## Comparisons", "## `for:`", "## When there is no data", "## Against the baseline",
                   "## Against a control region", "### `guardrail test`", "### `guardrail backtest`",
                   "### `guardrail check`", "on_no_data", "inconclusive_limit", "Mann-Whitney"):
        assert needle in text, needle


def test_excerpts_of_the_policy_library_are_verbatim():
    excerpts = [block for block in code_blocks(POLICIES_GUIDE.read_text(), "yaml") if block.startswith("# from ")]
    assert len(excerpts) >= 4
    for block in excerpts:
        source, *lines = block.splitlines()
        text = (REPO / source.removeprefix("# from ").strip()).read_text().splitlines()
        start = text.index(lines[0])
        assert text[start:start + len(lines)] == lines, f"{source}: the excerpt differs from the file"


def test_the_whole_policy_example_validates(tmp_path):
    [policy] = [b for b in code_blocks(POLICIES_GUIDE.read_text(), "yaml") if re.search("^kind: Policy$", b, re.M)]
    (tmp_path / "policy.yaml").write_text(policy)
    assert validate_paths([tmp_path / "policy.yaml"], get_plugin_manager().registry) == (1, [])


def test_the_policy_test_example_passes(tmp_path):
    [block] = [b for b in code_blocks(POLICIES_GUIDE.read_text(), "yaml") if "kind: PolicyTest" in b]
    test_file = tmp_path / "service-restarts.test.yaml"
    test_file.write_text(block.replace("policy: ../service-restarts.yaml",
                                       f"policy: {REPO / 'policies' / 'service-restarts.yaml'}"))
    result = typer.testing.CliRunner().invoke(create_app(), ["test", str(test_file)])
    assert result.exit_code == 0, result.output


# -- the operations guide -------------------------------------------------------------------


def test_every_exit_code_is_in_the_operations_guide():
    text = OPERATIONS_GUIDE.read_text()
    for code in ExitCode:
        assert re.search(rf"^\| {int(code)} \| ", text, flags=re.M), code


def test_every_environment_variable_guardrail_reads_or_sets_is_documented():
    sources = [p for folder in ("guardrail", "plugins") for p in (REPO / folder).rglob("*.py")]
    names = {name for p in sources for name in re.findall(r"\bGUARDRAIL_[A-Z_]+\b", p.read_text())}
    assert {"GUARDRAIL_STATE", "GUARDRAIL_PLUGINS"} <= names
    text = OPERATIONS_GUIDE.read_text()
    assert [name for name in sorted(names) if name not in text] == []
    for needle in ("${env:NAME}", "guardrail unlock", "--override-window", "timezone", "sqlite3 state.db \".backup",
                   "GITHUB_STEP_SUMMARY", "guardrail report"):
        assert needle in text, needle


# -- commands and links ---------------------------------------------------------------------


def _commands() -> dict:  # name -> the command object typer built (click is bundled, not installed)
    group = typer.main.get_command(create_app())
    out = {}
    for name, command in group.commands.items():
        out[name] = command
        for sub, subcommand in getattr(command, "commands", {}).items():
            out[f"{name} {sub}"] = subcommand
    return out


def test_every_command_and_option_the_guides_show_exists():
    commands = _commands()
    shown = 0
    for guide in GUIDES + [CI / "github-actions.yml", CI / "gitlab-ci.yml", CI / "rollout.sh"]:
        for line in guide.read_text().splitlines():
            for match in re.finditer(r"\bguardrail ([a-z][^`|#;]*)", line):
                words = match.group(1).split()
                name = " ".join(words[:2]) if " ".join(words[:2]) in commands else words[0]
                if name not in commands:
                    assert words[0] not in ("rollout", "report", "status"), f"{guide.name}: {match.group(0)}"
                    continue  # prose: "guardrail rolls back..."
                shown += 1
                options = {opt for p in commands[name].params for opt in getattr(p, "opts", [])}
                for word in words[1:]:
                    option = re.match(r"^(--[a-z][\w-]*)", word)
                    if option:
                        assert option.group(1) in options | {"--help"}, \
                            f"{guide.name}: guardrail {name} has no {option.group(1)}"
    assert shown > 30


def test_relative_links_resolve_and_the_readme_links_the_guides():
    for guide in GUIDES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", guide.read_text()):
            if re.match(r"^[a-z]+:", target):
                continue
            assert (guide.parent / target).exists(), f"{guide.relative_to(REPO)}: broken link {target}"
    readme = (REPO / "README.md").read_text()
    for target in ("docs/policies.md", "docs/plugins.md", "docs/operations.md", "examples/ci/"):
        assert f"]({target})" in readme, target
    assert "examples/plugin/" in (REPO / "docs" / "plugins.md").read_text()


def test_the_readme_shows_a_real_screenshot_and_keeps_its_two_commands():
    readme = (REPO / "README.md").read_text()
    [image] = re.findall(r"!\[[^\]]+\]\((docs/[\w.-]+\.png)\)", readme)
    png = (REPO / image).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width >= 1000 and height >= 600 and len(png) > 50_000
    for script in ("scripts/quickstart", "scripts/test"):
        assert f"{script} " in readme and os.access(REPO / script, os.X_OK)


# -- the CI examples, run for real ------------------------------------------------------------


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GUARDRAIL_"))}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["GUARDRAIL_STATE"] = str(tmp_path / "state" / "state.db")
    env.update(extra)
    return env


def _bash(script: str, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    path = tmp_path / "step.sh"
    path.write_text(script)
    return subprocess.run(["bash", "-e", str(path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_github_actions_workflow_step(tmp_path):
    workflow = yaml.safe_load((CI / "github-actions.yml").read_text())
    steps = workflow["jobs"]["rollout"]["steps"]
    [step] = [s for s in steps if s.get("id") == "rollout"]
    [upload] = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact")]
    assert upload["if"] == "always()" and upload["with"]["path"] == "guardrail-report/"
    env = _env(tmp_path, GITHUB_ACTIONS="true", GITHUB_OUTPUT=str(tmp_path / "output"),
               GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"), GITHUB_WORKSPACE=str(REPO),
               PLAN=str(QUICKSTART / "rollout.yaml"))
    result = _bash(step["run"], tmp_path, env)
    assert result.returncode == 1, result.stdout + result.stderr
    outputs = dict(line.split("=", 1) for line in (tmp_path / "output").read_text().splitlines())
    assert outputs["exit-code"] == "1" and re.match(r"^\d{8}-\d{6}-[0-9a-f]{6}$", outputs["rollout-id"])
    assert "::notice::rolled back and recovered" in result.stdout
    assert "::error file=policies/service-restarts.yaml" in result.stderr  # from guardrail, JSON on stdout
    assert "## ❌ mail-sender 2023.01.05: rolled back" in (tmp_path / "summary.md").read_text()
    for name in ("report.html", "junit.xml", "result.json"):
        assert (tmp_path / "guardrail-report" / name).stat().st_size > 0


def test_the_gitlab_ci_job(tmp_path):
    job = yaml.safe_load((CI / "gitlab-ci.yml").read_text())["rollout"]
    assert job["allow_failure"] == {"exit_codes": [int(ExitCode.HALTED)]}
    assert job["artifacts"]["when"] == "always" and job["artifacts"]["paths"] == ["guardrail-report/"]
    script = "\n".join(line for line in job["script"] if not line.startswith("pip install"))
    variables = {**job["variables"], "PLAN": str(QUICKSTART / "rollout.yaml"), "CI": "true"}
    variables.pop("GUARDRAIL_STATE")
    result = _bash(script, tmp_path, _env(tmp_path, **variables))
    assert result.returncode == 1, result.stdout + result.stderr
    assert (tmp_path / job["artifacts"]["reports"]["junit"]).stat().st_size > 0
    assert (tmp_path / "guardrail-report" / "report.html").stat().st_size > 0


class _Uploads(http.server.BaseHTTPRequestHandler):
    received: dict[str, bytes] = {}

    def do_PUT(self):  # noqa: N802 - the http.server naming
        self.received[self.path] = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_plain_shell_step_and_its_upload(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Uploads)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = _env(tmp_path, ARTIFACT_URL=f"http://127.0.0.1:{server.server_address[1]}/artifacts",
                   ARTIFACTS=str(tmp_path / "out"))
        result = subprocess.run(["bash", str(CI / "rollout.sh"), str(QUICKSTART / "rollout.yaml")], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=300)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "guardrail: rolled back and recovered" in result.stdout
    uploaded = {Path(p).name: body for p, body in _Uploads.received.items()}
    assert set(uploaded) == {"report.html", "junit.xml", "result.json"}
    assert uploaded["report.html"] == (tmp_path / "out" / "report.html").read_bytes()
    rollout_id = re.search(r"\((\d{8}-\d{6}-[0-9a-f]{6})\)", result.stdout).group(1)
    assert all(p.startswith(f"/artifacts/{rollout_id}/") for p in _Uploads.received)
    healthy = subprocess.run(["bash", str(CI / "rollout.sh"), str(QUICKSTART / "rollout-healthy.yaml")],
                             cwd=tmp_path, env=_env(tmp_path / "healthy", ARTIFACTS=str(tmp_path / "ok")),
                             capture_output=True, text=True, timeout=300)
    assert healthy.returncode == 0 and "guardrail: promoted" in healthy.stdout, healthy.stdout + healthy.stderr
