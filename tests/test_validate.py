"""``guardrail validate``: every broken file in tests/data/invalid/ is reported where
its first line says, through the CLI and through the library alike.

Each file in tests/data/invalid/ starts with one or more lines

    # expect: [FILE:]LINE:COL [KEY.PATH: ]MESSAGE FRAGMENT

FILE (relative to the broken file's folder) is given only when the problem is in
another file, such as a policy the broken plan references. The file must report
exactly these problems: no fewer, and no echoes.
"""

from __future__ import annotations

import os
import shutil
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from guardrail.errors import ConfigError
from guardrail.language.loader import load_plan, load_policy, validate_paths

REPO = Path(__file__).resolve().parents[1]
INVALID = REPO / "tests" / "data" / "invalid"
VALID = REPO / "tests" / "data" / "valid"
INVALID_FILES = sorted(INVALID.glob("*.yaml"))
UNSET = "GUARDRAIL_TEST_SURELY_UNSET_VAR"

_EXPECT = re.compile(
    r"^# expect: (?:(?P<file>\S+?):)?(?P<line>\d+):(?P<col>\d+) (?:(?P<path>[\w.\[\]-]+): )?(?P<fragment>.+)$"
)
_PROBLEM_LINE = re.compile(r"^\S+:\d+:\d+: ")


@dataclass(frozen=True)
class Expected:
    file: str  # as guardrail names it when run from the repository root
    line: int
    column: int
    path: str
    fragment: str

    @property
    def prefix(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}: "
        return where + (f"{self.path}: " if self.path else "")


def expectations(path: Path) -> list[Expected]:
    out = []
    for text in path.read_text(encoding="utf-8").splitlines():
        if not text.startswith("# expect:"):
            break
        match = _EXPECT.match(text)
        assert match, f"{path.name}: malformed expect line {text!r}"
        target = (path.parent / match["file"]).resolve() if match["file"] else path
        out.append(Expected(target.relative_to(REPO).as_posix(), int(match["line"]), int(match["col"]),
                            match["path"] or "", match["fragment"]))
    return out


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv(UNSET, raising=False)
    monkeypatch.chdir(REPO)


def test_the_invalid_corpus_is_large_and_distinct():
    assert len(INVALID_FILES) >= 30
    texts = {}
    for path in INVALID_FILES:
        assert expectations(path), f"{path.name} has no '# expect:' first line"
        body = path.read_text(encoding="utf-8")
        assert body not in texts, f"{path.name} repeats {texts.get(body)}"
        texts[body] = path.name


@pytest.mark.parametrize("path", INVALID_FILES, ids=lambda p: p.stem)
def test_library_reports_each_broken_file_where_it_says(path, registry):
    expected = expectations(path)
    checked, problems = validate_paths([path.relative_to(REPO)], registry)
    listing = "\n".join(map(str, problems))
    assert checked == 1
    assert len(problems) == len(expected), listing
    for exp in expected:
        assert any(
            (p.file, p.line, p.column, p.path) == (exp.file, exp.line, exp.column, exp.path) and exp.fragment in p.message
            for p in problems
        ), f"expected {exp.prefix}...{exp.fragment}\ngot:\n{listing}"


@pytest.mark.parametrize("path", INVALID_FILES, ids=lambda p: p.stem)
def test_cli_reports_each_broken_file_where_it_says(path, cli):
    expected = expectations(path)
    result = cli("validate", path.relative_to(REPO).as_posix())
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if _PROBLEM_LINE.match(line)]
    assert len(lines) == len(expected), result.output
    for exp in expected:
        assert any(line.startswith(exp.prefix) and exp.fragment in line for line in lines), (
            f"expected {exp.prefix}...{exp.fragment}\ngot:\n{result.output}")
    count = len(expected)
    assert result.output.rstrip().endswith(f"error: {count} problem{'s' if count > 1 else ''} found; nothing was changed")


def test_a_folder_of_broken_files_reports_every_problem_of_every_file(cli):
    result = cli("validate", "tests/data/invalid")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if _PROBLEM_LINE.match(line)]
    expected = [exp for path in INVALID_FILES for exp in expectations(path)]
    assert len(lines) == len(expected), result.output
    for exp in expected:
        assert any(line.startswith(exp.prefix) and exp.fragment in line for line in lines), exp


def test_several_problems_in_one_file_are_all_reported_in_order(tmp_path, cli, registry):
    (tmp_path / "policy.yaml").write_text(
        "apiVersion: guardrail/v1\n"
        "kind: Policy\n"
        "name: two-problems\n"
        "checks:\n"
        "  - {name: a, source: prometheus, query: up, fail_if: big}\n"
        "  - {name: b, source: prometheus, query: up, fail_if: '> 1', for: 5 minutes}\n"
    )
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "apiVersion: guardrail/v1\n"
        "kind: Rollout\n"
        "service: mail-sender\n"
        "change: {version: '2', previous: '1'}\n"
        "deploy: {plugin: comand}\n"
        "regions: {r1: {}, r2: {}}\n"
        "waves:\n"
        "  - {name: canary, regions: [r1], bake: 30x}\n"
        "  - {name: main, regions: [r2, r1], bake: 1h}\n"
        "policies: [policy.yaml, missing.yaml]\n"
    )
    _, problems = validate_paths([plan], registry)
    where = [(Path(p.file).name, p.line, p.column, p.path) for p in problems]
    assert where == [
        ("plan.yaml", 5, 18, "deploy.plugin"),
        ("plan.yaml", 8, 41, "waves[0].bake"),
        ("plan.yaml", 9, 32, "waves[1].regions[1]"),
        ("plan.yaml", 10, 25, "policies[1]"),
        ("policy.yaml", 5, 55, "checks[0].fail_if"),
        ("policy.yaml", 6, 67, "checks[1].for"),
    ], "\n".join(map(str, problems))
    result = cli("validate", str(plan))
    assert result.exit_code == 2, result.output
    assert "error: 6 problems found" in result.output
    with pytest.raises(ConfigError) as raised:
        load_plan(plan, registry)
    assert len(raised.value.problems) == 6
    assert "(and 5 more)" in str(raised.value)


def test_valid_files_exit_0_with_a_friendly_line(cli):
    result = cli("validate", "tests/data/valid")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "ok: 3 files valid"
    result = cli("validate", "tests/data/valid/policy.yaml")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "ok: 1 file valid"


def test_the_library_loads_the_valid_plan_with_its_policies(registry):
    plan = load_plan(VALID / "plan.yaml", registry)
    assert [w.name for w in plan.rollout.waves] == ["canary", "main"]
    assert [p.policy.name for p in plan.policies] == ["mail-delivery"]
    assert plan.policies[0].path == (VALID / "policy.yaml").resolve()
    assert plan.policies[0].policy.checks[1].for_ == 120.0
    assert plan.source_config("prometheus", "r3") == ("prometheus", {"url": "http://127.0.0.1:9090", "timeout": "10s"})
    policy = load_policy(VALID / "policy.yaml", registry)
    assert len(policy.policy.checks) == 3
    with pytest.raises(ConfigError):
        load_policy(INVALID / "unknown-key-check-typo.yaml", registry)


GITHUB_WORKFLOW = """\
name: guardrail
on: [push]
jobs:
  validate:
    runs-on: ubuntu-latest
    steps:
      - run: guardrail validate policies/
"""


def test_folders_are_walked_and_foreign_yaml_is_skipped(tmp_path, cli, registry):
    (tmp_path / "nested" / "deeper").mkdir(parents=True)
    (tmp_path / "ci").mkdir()
    (tmp_path / "nested" / "deeper" / "policy.yml").write_text((VALID / "policy.yaml").read_text())
    (tmp_path / "nested" / "notes.txt").write_text("kind: Policy\n")  # not YAML by name: ignored
    (tmp_path / "ci" / "workflow.yaml").write_text(GITHUB_WORKFLOW)
    checked, problems = validate_paths([tmp_path], registry)
    assert (checked, problems) == (1, [])
    result = cli("validate", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "ok: 1 file valid" in result.output

    # Named explicitly, a file that is not a guardrail document is a mistake.
    result = cli("validate", str(tmp_path / "ci" / "workflow.yaml"))
    assert result.exit_code == 2, result.output
    assert ":1:1: not a guardrail file: apiVersion and kind are missing" in result.output


def test_a_folder_without_guardrail_files_and_a_missing_file_are_errors(tmp_path, cli):
    (tmp_path / "workflow.yaml").write_text(GITHUB_WORKFLOW)
    result = cli("validate", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert "no guardrail YAML files found" in result.output
    result = cli("validate", "no/such/file.yaml")
    assert result.exit_code == 2, result.output
    assert "no/such/file.yaml:1:1: file not found" in result.output
    assert "Traceback" not in result.output


SECRET = "zebra-8d1f-Hunter2-s3cr3t-value-that-is-rather-long-indeed"


def test_secret_values_never_appear_in_any_output(tmp_path, cli, registry, monkeypatch):
    monkeypatch.setenv("GUARDRAIL_TEST_SECRET", SECRET)
    (tmp_path / "policy.yaml").write_text(
        "apiVersion: guardrail/v1\nkind: Policy\nname: p\n"
        "checks:\n  - {name: a, source: prometheus, query: 'up{token=\"${env:GUARDRAIL_TEST_SECRET}\"}', fail_if: big}\n"
    )
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "apiVersion: guardrail/v1\n"
        "kind: Rollout\n"
        "service: mail-sender\n"
        "change: {version: '2', previous: '1'}\n"
        "deploy:\n"
        "  plugin: webhook\n"
        "  with:\n"
        "    url: https://deploy.example/${env:GUARDRAIL_TEST_SECRET}\n"
        "    headers: {Authorization: 'Bearer ${env:GUARDRAIL_TEST_SECRET}'}\n"
        "    timeout: ${env:GUARDRAIL_TEST_SECRET}\n"           # a secret where a duration belongs
        "    retries: ${env:GUARDRAIL_TEST_SECRET}\n"           # ...and where a number belongs
        "sources:\n"
        "  prometheus: {url: 'https://x:${env:GUARDRAIL_TEST_SECRET}@prom.example', verify_tls: '${env:GUARDRAIL_TEST_SECRET}'}\n"
        "regions: {r1: {}}\n"
        "waves: [{name: canary, regions: [r1], bake: 30m}]\n"
        "policies: [policy.yaml]\n"
        "clock: ${env:GUARDRAIL_TEST_SECRET}\n"
        "service: other\n"                                       # and an unrelated mistake
    )
    result = cli("validate", str(plan), str(tmp_path / "policy.yaml"))
    assert result.exit_code == 2, result.output
    output = result.output + (result.stderr or "") + (result.stdout or "")
    assert SECRET not in output
    assert SECRET[:20] not in output  # not even shortened
    assert "<value of ${env:GUARDRAIL_TEST_SECRET}>" in output
    assert "timeout: expected a duration" in output and "duplicate key 'service'" in output

    _, problems = validate_paths([plan, tmp_path], registry)
    assert len(problems) >= 6
    assert not [p for p in problems if SECRET[:20] in str(p)]
    with pytest.raises(ConfigError) as raised:
        load_plan(plan, registry)
    assert SECRET[:20] not in str(raised.value)
    assert not [p for p in raised.value.problems if SECRET[:20] in str(p)]


def test_an_unset_variable_is_named_and_a_set_one_is_used(registry, monkeypatch):
    path = INVALID / "unset-env.yaml"
    _, problems = validate_paths([path], registry, environ={})
    assert [p.message for p in problems] == [f"environment variable {UNSET} is not set"]
    plan_text = path.read_text()
    _, problems = validate_paths([path], registry, environ={UNSET: "http://127.0.0.1:9090"})
    assert problems == [], plan_text


class _AnyEnv(dict):
    """Examples read URLs and tokens from ``${env:...}``; here any variable the test
    environment lacks reads as a placeholder URL, so only real mistakes are reported."""

    def __contains__(self, name: object) -> bool:
        return True

    def __getitem__(self, name: str) -> str:
        return os.environ.get(name, "http://127.0.0.1:9/placeholder")


def _guardrail_documents(folder: Path) -> int:
    count = 0
    for path in folder.rglob("*"):
        if path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            count += isinstance(data, dict) and ("apiVersion" in data or "kind" in data)
    return count


def test_every_shipped_policy_and_example_validates(registry):
    """The policy library and the examples are promises: they must always validate."""
    folders = [REPO / "policies", REPO / "examples"]
    checked, problems = validate_paths([f for f in folders if f.is_dir()], registry, environ=_AnyEnv())
    assert problems == [], "\n".join(map(str, problems))
    assert checked == sum(_guardrail_documents(f) for f in folders if f.is_dir())
    assert checked >= 5  # the five incident classes of the policy library


# Text that reaches a terminal is text.

def test_a_problem_on_line_100_prints_its_line_number_not_an_emoji(tmp_path, cli):
    policy = tmp_path / "line100.yaml"
    policy.write_text("#\n" * 95 + "apiVersion: guardrail/v1\nkind: Policy\nname: p\nchecks:\n"
                      "  - {name: a, source: prometheus, query: up, fail_if: '> 0', for: 5 minutes}\n")
    result = cli("validate", str(policy))
    assert result.exit_code == 2, result.output
    assert f"{policy}:100:67: checks[0].for: expected a duration" in result.output
    assert "💯" not in result.output


HOSTILE_KEYS = """\
apiVersion: guardrail/v1
kind: Policy
name: p
"x\\n/tmp/x:1:1: fake problem": 1
"\\e[31mred\\e[0m [bold]b[/bold] :smile:": 2
checks:
  - {name: a, source: prometheus, query: up, fail_if: "> 0"}
"""


def test_a_key_holding_newlines_or_escapes_cannot_forge_or_colour_a_line(tmp_path, cli):
    policy = tmp_path / "p.yaml"
    policy.write_text(HOSTILE_KEYS)
    result = cli("validate", str(policy))
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert not [line for line in lines if line.startswith("/tmp/x:1:1")], result.output
    assert f"{policy}:4:1: x\\n/tmp/x:1:1: fake problem: unknown key 'x\\n/tmp/x:1:1: fake problem'" in result.output
    assert "\x1b" not in result.output and "😄" not in result.output
    assert ": unknown key '\\x1b[31mred\\x1b[0m [bold]b[/bold] :smile:'" in result.output
    assert len([line for line in lines if _PROBLEM_LINE.match(line)]) == 2


def test_a_file_name_with_a_newline_stays_on_its_line(tmp_path, cli):
    policy = tmp_path / "x\n\x1b[2Jfake.yaml"
    policy.write_text("kind: Policy\n")
    result = cli("validate", str(policy))
    assert result.exit_code == 2, result.output
    assert "x\\n\\x1b[2Jfake.yaml:1:1: apiVersion: required key is missing" in result.output.replace(str(tmp_path) + "/", "")
    assert "\x1b" not in result.output


def test_a_folder_walk_skips_hidden_folders(registry, tmp_path):
    """``guardrail validate .`` in a repository: .git, .venv or .github hold YAML that is
    no guardrail file (a list here), and no plan or policy of the repository's own."""
    shutil.copy(VALID / "policy.yaml", tmp_path / "policy.yaml")
    (tmp_path / ".venv" / "lib").mkdir(parents=True)
    (tmp_path / ".venv" / "lib" / "config.yaml").write_text("- not a guardrail file\n")
    assert validate_paths([tmp_path], registry) == (1, [])
    checked, problems = validate_paths([tmp_path / ".venv" / "lib"], registry)  # named: looked at
    assert checked == 1 and "expected a mapping" in problems[0].message
