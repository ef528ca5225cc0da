"""Rollout plans for incident tests: a copy of tests/data/incidents with the sinks under
test, and ways to run them (in-process through the API, or as the ``guardrail`` CLI in a
subprocess when a test needs everything the process wrote)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "tests" / "data" / "incidents"


def write_plan(work: Path, *, sinks: list[dict] | dict | None = None, scenario: str = "fleet.yaml",
               name: str = "plan.yaml", **changes: Any) -> Path:
    """A copy of tests/data/incidents/plan.yaml in ``work`` with ``on_failure.incident`` =
    ``sinks``, the scenario swapped, and top-level ``changes`` merged (mappings merge)."""
    work.mkdir(parents=True, exist_ok=True)
    for path in DATA.iterdir():
        if not (work / path.name).exists():
            shutil.copy(path, work / path.name)
    doc = yaml.safe_load((DATA / "plan.yaml").read_text())
    doc["deploy"]["with"]["scenario"] = scenario
    doc["sources"]["prometheus"]["scenario"] = scenario
    if sinks is not None:
        doc["on_failure"]["incident"] = sinks
    for key, value in changes.items():
        doc[key] = {**doc[key], **value} if isinstance(value, dict) and isinstance(doc.get(key), dict) else value
    path = work / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m guardrail ARGS`` in a subprocess (so every byte it writes can be inspected)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KILLPOINT")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "guardrail", *args], cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def rollout_json(plan: Path, state: Path, env: dict[str, str] | None = None) -> tuple[dict, subprocess.CompletedProcess]:
    done = run_cli("rollout", str(plan), "--state", str(state), "--output", "json", env=env)
    return json.loads(done.stdout), done


def journal(state: Path) -> list[dict]:
    path = state.parent / "incidents.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(condition, timeout: float = 60.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``condition()`` until it returns something truthy; fail after ``timeout`` seconds
    (generous: it returns as soon as the condition holds, and a loaded machine is slow)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def run_api(plan: Path, state: Path, env: dict[str, str] | None = None, **api_kw: Any):
    """Run ``plan`` in this process (``Guardrail(...).rollout``); return (result, store rows helper)."""
    from guardrail.api import Guardrail

    api = Guardrail(state, environ={**os.environ, **(env or {})}, **api_kw)
    try:
        return api.rollout(plan)
    finally:
        api.close()


def deliveries(state: Path, sink: str | None = None) -> list[dict]:
    from guardrail.state.open import open_store

    store = open_store(state)
    try:
        return store.deliveries(sink=sink)
    finally:
        store.close()


FAST = {"timeout": "10s", "retries": 2, "backoff": "50ms"}
"""Delivery settings for tests: short backoffs. The fakes answer at once, so the timeout
only matters on a loaded machine, where a short one would time out a request the fake did
receive and send it again."""


def sample_incidents(work: Path, **plan: Any) -> list[dict]:
    """Every incident update of one rolled-back rollout, as the journal recorded them:
    the documents sink tests feed to a sink directly."""
    state = work / "state" / "state.db"
    assert run_api(write_plan(work, **plan), state).outcome == "rolled_back"
    return journal(state)
