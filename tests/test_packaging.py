"""The wheel is what users get: build it, install it into a fresh virtual environment
(no system site-packages, dependencies from the package index), and run guardrail
from there, outside the source tree so nothing is imported from it by accident."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUILTINS = {"command", "journal", "noop", "prometheus", "webhook"}
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
VERSION = PROJECT["version"]
DISTRIBUTION = "guardrail-rollout"  # ours on the public index; `guardrail` there is an unrelated project
IGNORED = (".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".pytest_cache", "out", "*.db*")

pytestmark = pytest.mark.slow


@dataclass
class Installed:
    wheel: Path
    venv: Path
    workdir: Path  # an empty folder to run commands from

    def bin(self, name: str) -> Path:
        return self.venv / ("Scripts" if os.name == "nt" else "bin") / name

    def run(self, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        clean.update(PYTHONNOUSERSITE="1", **(env or {}))
        return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=self.workdir, env=clean,
                              timeout=900)  # pip downloads the dependencies: a slow network or machine


def _check(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> Installed:
    """One wheel and one virtual environment for the whole session."""
    root = tmp_path_factory.mktemp("packaging")
    # Build from a clean copy of the tree: no stale build/ folder or egg-info from a
    # developer's checkout can leak into the wheel.
    source = root / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*IGNORED))
    dist = root / "dist"
    _check(subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(source)],
                          capture_output=True, text=True, timeout=600))
    [wheel] = dist.glob("guardrail_rollout-*.whl")
    venv = root / "venv"
    _check(subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=300))
    workdir = root / "work"
    workdir.mkdir()
    installed = Installed(wheel, venv, workdir)
    # Installed by its distribution name, as a user types it: the wheel folder answers for that name.
    _check(installed.run(installed.bin("python"), "-m", "pip", "install", "--quiet", "--find-links", str(dist),
                         f"{DISTRIBUTION}=={VERSION}"))
    return installed


def test_the_distribution_name_is_ours_everywhere():
    from guardrail.version import DISTRIBUTION as declared

    assert PROJECT["name"] == declared == DISTRIBUTION
    assert f"{DISTRIBUTION}[postgres,temporal]" in PROJECT["optional-dependencies"]["test"]
    plugin = tomllib.loads((REPO / "examples" / "plugin" / "pyproject.toml").read_text())["project"]
    assert plugin["dependencies"] == [DISTRIBUTION]
    for example in (REPO / "examples" / "ci").iterdir():
        for line in example.read_text().splitlines():
            if "pip install" in line:
                assert re.search(rf"pip install '?{DISTRIBUTION}\b", line), f"{example.name}: {line.strip()}"
    assert f"pip install {DISTRIBUTION}" in (REPO / "README.md").read_text()


def test_guardrail_version_from_the_installed_wheel(installed):
    result = _check(installed.run(installed.bin("guardrail"), "--version"))
    assert result.stdout.strip() == f"guardrail {VERSION} ({DISTRIBUTION})"
    shown = _check(installed.run(installed.bin("python"), "-m", "pip", "show", DISTRIBUTION)).stdout
    assert f"Name: {DISTRIBUTION}" in shown and f"Version: {VERSION}" in shown
    result = _check(installed.run(installed.bin("python"), "-c", "import guardrail; print(guardrail.__version__)"))
    assert result.stdout.strip() == VERSION


def test_the_wheel_installs_builtins_as_guardrail_plugins(installed):
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = wheel.namelist()
        top = {name.split("/")[0] for name in names}
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        declared = wheel.read(entry_points).decode()
    assert "guardrail_plugins" in top
    assert "guardrail" in top
    assert "plugins" not in top
    assert not any(name.startswith("plugins/") for name in names)
    assert "guardrail_plugins/__init__.py" in names
    assert "guardrail/plugin/hookspecs.py" in names
    assert "guardrail = guardrail.cli:main" in declared
    for name in BUILTINS:
        assert f"{name} = guardrail_plugins.{name}" in declared


def test_the_environment_is_fresh(installed):
    result = _check(installed.run(installed.bin("python"), "-c",
                                  "import sys, guardrail; print(sys.flags.no_user_site, guardrail.__file__)"))
    assert str(installed.venv) in result.stdout  # the installed copy, not the source tree
    cfg = (installed.venv / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg
    result = installed.run(installed.bin("python"), "-c", "import plugins")
    assert result.returncode != 0 and "No module named 'plugins'" in result.stderr


def test_plugins_json_from_the_installed_wheel(installed):
    result = _check(installed.run(installed.bin("guardrail"), "plugins", "--json"))
    listed = json.loads(result.stdout)
    assert (listed["version"], listed["distribution"]) == (VERSION, DISTRIBUTION)
    infos = {entry["name"]: entry for entry in listed["plugins"]}
    for name in BUILTINS:
        assert infos[name]["origin"] == "builtin", infos[name]
        assert infos[name]["module"] == f"guardrail_plugins.{name}"
        assert infos[name]["version"] == VERSION
    assert "prometheus" in infos["prometheus"]["registers"]["sources"]
    assert "journal" in infos["journal"]["registers"]["incident_sinks"]
    disabled = _check(installed.run(installed.bin("guardrail"), "plugins", "--json",
                                    env={"GUARDRAIL_DISABLE_PLUGIN_AUTOLOAD": "1"}))
    assert BUILTINS <= {entry["name"] for entry in json.loads(disabled.stdout)["plugins"]}


def test_validate_from_the_installed_wheel(installed):
    valid = REPO / "tests" / "data" / "valid" / "policy.yaml"
    result = _check(installed.run(installed.bin("guardrail"), "validate", valid))
    assert result.stdout.strip() == "ok: 1 file valid"

    invalid = REPO / "tests" / "data" / "invalid" / "bad-comparison-word.yaml"
    result = installed.run(installed.bin("guardrail"), "validate", invalid)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{invalid}:10:14: checks[0].fail_if: expected a comparison like" in result.stderr
    assert "Traceback" not in result.stderr

    plan = REPO / "tests" / "data" / "valid" / "plan.yaml"
    _check(installed.run(installed.bin("guardrail"), "validate", plan))


def test_python_dash_m_guardrail_from_the_installed_wheel(installed):
    result = _check(installed.run(installed.bin("python"), "-m", "guardrail", "--help"))
    assert "validate" in result.stdout and "plugins" in result.stdout
