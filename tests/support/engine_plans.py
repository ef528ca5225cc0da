"""Helpers shared by the engine tests: a private copy of tests/data/engine per test,
plans derived from its base plans, and the CLI run in-process.

Import the fixtures into a test module (``from support.engine_plans import state,
work``) to use them there.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import Result
from typer.testing import CliRunner

from guardrail.cli import create_app
from guardrail.state.sqlite import SQLiteStore

DATA = Path(__file__).resolve().parent.parent / "data" / "engine"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A private copy of tests/data/engine (plans are edited; the fleet log lives in state/)."""
    shutil.copytree(DATA, tmp_path / "engine")
    return tmp_path / "engine"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.db"


def _merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def write_plan(work: Path, name: str, base: str = "base.yaml", replace: dict | None = None, **changes) -> Path:
    """A copy of plans/<base> with ``changes`` merged in (mappings merge, lists replace)
    and the top-level keys in ``replace`` replaced."""
    doc = _merge(yaml.safe_load((work / "plans" / base).read_text()), changes) | (replace or {})
    path = work / "plans" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


def write_policy(work: Path, base: str, name: str, **changes) -> str:
    """A copy of policies/<base>.yaml with ``changes``; returns its path relative to plans/."""
    doc = _merge(yaml.safe_load((work / "policies" / f"{base}.yaml").read_text()), changes)
    (work / "policies" / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return f"../policies/{name}.yaml"


def run(*args, env: dict | None = None) -> Result:
    return CliRunner().invoke(create_app(), [str(a) for a in args], env=env)


def rollout(plan: Path, state: Path, expect: int, *extra) -> dict:
    """``guardrail rollout PLAN --output json``: assert the exit code, return the document."""
    result = run("rollout", plan, "--state", state, "--output", "json", *extra)
    assert result.exit_code == expect, result.output
    return json.loads(result.stdout)


def states(store: SQLiteStore, rollout_id: str) -> list[str]:
    return [e["kind"].removeprefix("state.") for e in store.events(rollout_id) if e["kind"].startswith("state.")]
