"""``guardrail worker`` processes and ``guardrail`` commands for the Temporal tests.

``workers(server, names, ...)`` starts one ``guardrail worker`` process per name, each
polling the same task queue against the same state, and waits until each says it is
ready; they are stopped (SIGTERM, then SIGKILL) at the end, and die with the test
process (``PR_SET_PDEATHSIG``). ``guardrail(...)`` runs one command as its own process.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from support.temporal import die_with_parent, stop

REPO = Path(__file__).resolve().parents[2]


def environment(workdir: Path, server, state: str | None = None, **extra: str) -> dict[str, str]:
    """What every process of a test sees: the state (``state``: a ``postgresql://`` URL,
    default the SQLite file ``workdir/state.db``), the Temporal server, the deploy tool's
    files. Plugins keep their local files in ``workdir`` whatever the state."""
    env = dict(os.environ)
    # The plans run tests/support/fleet_deploy.py through `#!/usr/bin/env python3`: the
    # python3 found first must be this interpreter (it imports guardrail_plugins).
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(GUARDRAIL_STATE=state or str(workdir / "state.db"), GUARDRAIL_STATE_DIR=str(workdir),
               GUARDRAIL_TEMPORAL=server.address,
               GUARDRAIL_TEMPORAL_NAMESPACE=server.namespace, TEMPORAL_TEST_FLEET=str(workdir / "fleet.jsonl"),
               TEMPORAL_TEST_LOG=str(workdir / "deploy.jsonl"), **extra)
    return env


def guardrail(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "guardrail", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@contextmanager
def workers(env: dict[str, str], names: list[str], task_queue: str, logs: Path,
            timeout: float = 60.0) -> Iterator[dict[str, subprocess.Popen]]:
    logs.mkdir(parents=True, exist_ok=True)
    processes: dict[str, subprocess.Popen] = {}
    try:
        for name in names:
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", "guardrail", "worker", "--task-queue", task_queue, "--identity", name],
                env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=open(logs / f"{name}.log", "w"),
                stdin=subprocess.DEVNULL, text=True, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        for name, process in processes.items():
            ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            line = process.stdout.readline() if ready else ""
            assert line.startswith(f"worker {name} ready"), \
                f"worker {name} did not start ({line!r}):\n{(logs / f'{name}.log').read_text()}"
        yield processes
    finally:
        for process in processes.values():
            stop(process, timeout=10)
            process.stdout.close()


def plan_variant(workdir: Path, replace: dict[str, str] | None = None, name: str = "rollout.yaml") -> Path:
    """tests/data/temporal/rollout.yaml written into ``workdir`` with its paths made
    absolute and each ``old: new`` of ``replace`` applied."""
    source = REPO / "tests" / "data" / "temporal"
    text = (source / "rollout.yaml").read_text()
    text = text.replace("../../support/fleet_deploy.py", str(REPO / "tests" / "support" / "fleet_deploy.py"))
    text = text.replace("scenario: scenario.yaml", f"scenario: {source / 'scenario.yaml'}")
    text = text.replace("policies: [policy.yaml]", f"policies: [{source / 'policy.yaml'}]")
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    path = workdir / name
    path.write_text(text)
    return path
