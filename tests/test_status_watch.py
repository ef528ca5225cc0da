"""``guardrail status ID --watch`` follows, from another process and a terminal of its
own (a pty), a rollout that a second process drives on the real clock: it reads the bake
time advance from the store and ends with the rollout's outcome and exit code."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from guardrail.report.live import live_view
from guardrail.state.sqlite import SQLiteStore
from support.engine_plans import run, state, work, write_plan  # noqa: F401

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARDRAIL_")}
    return env | {"TERM": "xterm", "COLUMNS": "120", "LINES": "50", "PYTHONPATH": str(REPO)}


def _wait_for_rollout(state: Path, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state.exists():
            store = SQLiteStore(state)
            try:
                rows = store.rollouts()
                if rows:
                    return rows[0]["id"]
            finally:
                store.close()
        time.sleep(0.1)
    raise AssertionError("the rollout never started")


def _read_all(fd: int, proc: subprocess.Popen, timeout: float) -> str:
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    return out.decode(errors="replace")


def test_watch_in_a_terminal_follows_the_bake_and_ends_with_the_outcome(work, state):  # noqa: F811
    plan = write_plan(work, "watched", base="realtime.yaml", waves=[
        # The canary bakes long enough for a watcher started on a loaded machine to see it advance.
        {"name": "canary", "regions": ["r3"], "bake": "15s"}, {"name": "main", "regions": ["r1", "r2"], "bake": "3s"}])
    driver = subprocess.Popen([sys.executable, "-m", "guardrail", "rollout", str(plan), "--state", str(state),
                               "--output", "json"], cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        rid = _wait_for_rollout(state)
        leader, follower = pty.openpty()
        watcher = subprocess.Popen([sys.executable, "-m", "guardrail", "status", rid, "--state", str(state),
                                    "--watch", "--interval", "0.3"], cwd=REPO, env=_env(), stdin=follower,
                                   stdout=follower, stderr=follower, close_fds=True)
        os.close(follower)
        try:
            screen = _read_all(leader, watcher, timeout=120)
            assert watcher.wait(timeout=30) == 0, screen
        finally:
            os.close(leader)
            if watcher.poll() is None:
                watcher.kill()
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, err
    assert json.loads(out)["rollout_id"] == rid
    text = ANSI.sub("", screen)
    covered = re.findall(r"bake of wave (\w+): (\d+)s of (\d+)s covered", text)
    canary = [int(c) for wave, c, _ in covered if wave == "canary"]
    assert len(set(canary)) >= 3 and canary == sorted(canary), covered  # seen advancing, never backwards
    assert any(wave == "main" for wave, _, _ in covered), covered  # and the next wave's bake after it
    assert re.search(r"\(rollout " + rid + r"\): promoted", text), text[-2000:]
    assert re.search(r"r3\s+errors/errors\s+0\.01\s+> 0\.5\s+pass", text), text[-3000:]  # latest value vs threshold
    assert "wave canary: deploying r3" in text  # the last events


def test_the_view_is_read_from_the_store(work, state):  # noqa: F811
    doc = json.loads(run("rollout", write_plan(work, "bad", change={"version": "2.1-bad"}), "--state", state,
                         "--json").stdout)
    store = SQLiteStore(state)
    try:
        view = live_view(store, doc["rollout_id"])
    finally:
        store.close()
    assert (view["state"], view["outcome"], view["ended"]) == ("done", "rolled_back", True)
    bake = view["bake"]
    assert bake["wave"] == "canary" and bake["length"] == 1800 and not bake["done"]
    assert 0 < bake["covered"] < 1800 and bake["left"] == 1800 - bake["covered"]  # cut short by the failure
    assert view["checks"] == [] or all(c["region"] == "r3" for c in view["checks"])
    assert any(e["text"].startswith("rolled back and recovered") for e in view["events"])
