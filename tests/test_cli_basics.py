"""The command line's shape: help, ``schema``, errors turned into one red line and an
exit code in one place, and ``python -m guardrail``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from guardrail import errors
from guardrail.cli import create_app
from guardrail.errors import ConfigError, ExitCode, GuardrailError, LockedError, Problem, StoreError
from guardrail.language.loader import validate_paths

REPO = Path(__file__).resolve().parents[1]


def test_help_lists_the_commands(cli):
    for flag in ("--help", "-h"):
        result = cli(flag)
        assert result.exit_code == 0, result.output
        for command in ("validate", "schema", "plugins"):
            assert command in result.output
    bare = cli()
    assert "Usage" in bare.output and "validate" in bare.output


def test_python_dash_m_guardrail_runs():
    result = subprocess.run([sys.executable, "-m", "guardrail", "--help"], capture_output=True, text=True, cwd=REPO,
                            timeout=300)  # generous: a loaded machine starts Python slowly
    assert result.returncode == 0, result.stderr
    assert "validate" in result.stdout


def test_exit_codes_match_the_design():
    assert {code.name: int(code) for code in ExitCode} == {
        "PROMOTED": 0, "ROLLED_BACK": 1, "USAGE": 2, "HALTED": 3, "ROLLBACK_FAILED": 4, "LOCKED": 5, "INTERNAL": 70,
    }
    assert GuardrailError.exit_code is ExitCode.USAGE
    assert LockedError.exit_code is ExitCode.LOCKED


def test_the_error_tree_is_drawn_in_the_module_docstring():
    subclasses = [cls for cls in vars(errors).values()
                  if isinstance(cls, type) and issubclass(cls, GuardrailError)]
    assert len(subclasses) >= 7
    for cls in subclasses:
        assert cls.__name__ in errors.__doc__, f"{cls.__name__} is missing from the errors module docstring"


def test_problems_print_like_compiler_errors():
    assert str(Problem("p.yaml", 14, 5, "checks[2].fail_if", "bad")) == "p.yaml:14:5: checks[2].fail_if: bad"
    assert str(Problem("p.yaml", 1, 1, "", "the file is empty")) == "p.yaml:1:1: the file is empty"
    error = ConfigError([Problem("a", 1, 1, "", "x"), Problem("a", 2, 1, "", "y")])
    assert str(error) == "a:1:1: x (and 1 more)"


def _app_raising(exc: Exception) -> typer.Typer:
    app = create_app(with_plugins=False)

    @app.command()
    def explode() -> None:
        raise exc

    return app


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (LockedError("mail-sender", "ci@host", "r-42"), 5,
         "error: service 'mail-sender' is locked by rollout r-42 (ci@host); wait for it, "
         "or run `guardrail unlock mail-sender` if that process is gone"),
        (StoreError("state.db was written by a newer guardrail"), 2, "error: state.db was written by a newer guardrail"),
        (GuardrailError("[red]not markup[/red]"), 2, "error: [red]not markup[/red]"),
    ],
)
def test_a_guardrail_error_becomes_one_line_and_its_exit_code(exc, code, line):
    result = CliRunner().invoke(_app_raising(exc), ["explode"])
    assert result.exit_code == code, result.output
    assert result.output.splitlines() == [line]
    assert result.stderr.splitlines() == [line]
    assert result.stdout == ""


def test_config_errors_print_one_problem_per_line_on_stderr(cli):
    result = cli("validate", "tests/data/invalid/unknown-key-check-typo.yaml", "tests/data/invalid/bad-duration-words.yaml")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "tests/data/invalid/unknown-key-check-typo.yaml:10:5: checks[0].fial_if: unknown key 'fial_if' (did you mean 'fail_if'?)",
        'tests/data/invalid/bad-duration-words.yaml:6:11: interval: expected a duration like "30s", "5m", "2h" or "1d", got \'5 minutes\'',
        "error: 2 problems found; nothing was changed",
    ]
    ok = cli("validate", "tests/data/valid/policy.yaml")
    assert ok.exit_code == 0, ok.output
    assert ok.stdout == "ok: 1 file valid\n" and ok.stderr == ""


def test_the_library_never_prints(capsys, registry):
    validate_paths([REPO / "tests" / "data" / "invalid"], registry)
    assert capsys.readouterr() == ("", "")


def test_usage_mistakes_exit_2(cli):
    for args in (["validate"], ["schema", "bogus"], ["no-such-command"]):
        result = cli(*args)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output


@pytest.mark.parametrize(("kind", "required"), [
    ("rollout", {"apiVersion", "kind", "service", "change", "deploy", "regions", "waves", "policies"}),
    ("policy", {"apiVersion", "kind", "name", "checks"}),
])
def test_schema_prints_the_json_schema_of_a_kind(cli, kind, required):
    result = cli("schema", kind)
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == f"guardrail {kind.capitalize()}"
    assert set(schema["required"]) == required
    assert schema["additionalProperties"] is False
    assert schema["properties"]["apiVersion"]["const"] == "guardrail/v1"


@pytest.mark.parametrize(("kind", "title"), [("policytest", "PolicyTest"), ("scenario", "Scenario")])
def test_schema_covers_the_plugin_document_kinds(cli, kind, title):
    result = cli("schema", kind)
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema["title"] == f"guardrail {title}" and schema["additionalProperties"] is False
    assert "kind" in schema["required"]


def test_the_schema_uses_the_yaml_spelling_and_value_types(cli):
    policy = json.loads(cli("schema", "policy").stdout)
    check = policy["$defs"]["Check"]
    assert "for" in check["properties"] and "for_" not in check["properties"]
    prometheus = policy["$defs"]["prometheus.check"]  # source keys (query, targets...) live in each source's own
    assert "query" in prometheus["properties"] and prometheus["additionalProperties"] is False
    assert check["properties"]["fail_if"]["anyOf"][0]["examples"] == ["> 30", "<= 0.5", "> +20%"]
    rollout = json.loads(cli("schema", "rollout").stdout)
    assert check["properties"]["for"]["pattern"] == r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"
    assert r"^(\d+(\.\d+)?(ms|s|m|h|d))+$" in rollout["$defs"]["Wave"]["properties"]["bake"]["pattern"]  # or ${env:X}
    assert "with" in rollout["$defs"]["deployers.command"]["properties"]
