"""The architecture is enforced, not hoped for: the import-linter contracts in
pyproject.toml (layers, forbidden imports) hold, and an import that breaks one fails
with a message naming it (docs/architecture.md explains each layer)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def _copy(tmp_path: Path) -> Path:
    """The two packages and the contracts, where an edit cannot touch the real tree."""
    shutil.copytree(REPO / "guardrail", tmp_path / "guardrail", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "plugins", tmp_path / "guardrail_plugins", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.slow
def test_every_contract_is_kept(tmp_path):
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("module, line, contract", [
    ("guardrail/judging/judge.py", "import guardrail.rollout.engine", "guardrail.judging is not allowed to import guardrail.rollout"),
    ("guardrail/state/sqlite.py", "import guardrail.language.model", "guardrail.state is not allowed to import guardrail.language"),
    ("guardrail/rollout/ticks.py", "import guardrail_plugins.sim", "guardrail is not allowed to import guardrail_plugins"),
    ("guardrail/judging/evaluate.py", "import time", "guardrail.judging is not allowed to import time"),
    ("guardrail/incidents/lifecycle.py", "import rich", "is not allowed to import rich"),
])
def test_an_import_against_the_layers_fails_naming_it(tmp_path, module, line, contract):
    root = _copy(tmp_path)
    path = root / module
    text = path.read_text()
    head, _, body = text.partition("from __future__ import annotations\n")
    path.write_text(head + "from __future__ import annotations\n" + line + "\n" + body)
    result = _lint(root)
    assert result.returncode == 1, result.stdout
    assert contract in result.stdout.replace("\n", " ")
    assert module.replace("/", ".").removesuffix(".py").replace("guardrail_plugins", "guardrail") in result.stdout
