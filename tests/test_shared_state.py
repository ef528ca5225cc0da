"""Many runners, one PostgreSQL: each test runs ``guardrail`` processes on their own
connections, as CI runners on separate machines would (``GUARDRAIL_HOST`` names each
runner, so one cannot see whether another's process still runs: only leases tell).

The plan is tests/data/killtest (see tests/test_crash_resume.py): three deploys, a
bake that passes, a late failure, three rollbacks, remediation actions, an incident,
recovery. Its deploy tool logs every call with its idempotency key, so a side effect
repeated shows up in the log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from guardrail.state.open import open_store
from support.fakes.rollouts import wait_for

REPO = Path(__file__).resolve().parent.parent
PLAN = REPO / "tests" / "data" / "killtest" / "rollout.yaml"
SERVICE = "killtest"


class World:
    """The fleet and the deploy tool's log every runner shares, and the runners' folders."""

    def __init__(self, root: Path, state: str):
        self.root, self.state = root, state
        self.gate_reached, self.gate_open = root / "gate.reached", root / "gate.open"

    def env(self, runner: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KILLPOINT", "KILL_PARENT", "GATE_"))}
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.update(KILLTEST_FLEET=str(self.root / "fleet.jsonl"), KILLTEST_LOG=str(self.root / "deploy.jsonl"),
                   PYTHONPATH=os.pathsep.join([str(REPO / "tests" / "support"), env.get("PYTHONPATH", "")]),
                   GUARDRAIL_STATE=self.state, GUARDRAIL_HOST=runner, GATE_REACHED=str(self.gate_reached),
                   GATE_OPEN=str(self.gate_open), GUARDRAIL_PLUGINS="gate,killpoint", **extra)
        env.pop("GUARDRAIL_STATE_DIR", None)
        return env

    def folder(self, runner: str) -> Path:
        path = self.root / runner  # each runner its own working folder
        path.mkdir(exist_ok=True)
        return path

    def run(self, runner: str, *args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "guardrail", *args], env=self.env(runner, **extra),
                              cwd=self.folder(runner), capture_output=True, text=True, timeout=600)

    def start(self, runner: str, *args: str, **extra: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "guardrail", *args], env=self.env(runner, **extra),
                                cwd=self.folder(runner), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_at_gate(self, proc: subprocess.Popen) -> None:
        def reached():
            if proc.poll() is not None:
                raise AssertionError(f"exited {proc.returncode} before the gate: {proc.communicate()}")
            return self.gate_reached.exists()

        wait_for(reached, timeout=300, what="the rollout to reach the gate")

    def effects(self) -> list[tuple[str, str, str]]:
        """Every call of the deploy tool that took effect (a repeat of a key excluded)."""
        lines = [json.loads(line) for line in (self.root / "deploy.jsonl").read_text().splitlines()]
        return sorted((e["action"], e["region"], e["version"]) for e in lines if not e["repeat"])

    def only_rollout(self) -> str:
        with closing(open_store(self.state)) as store:
            [row] = store.rollouts()
            return row["id"]


def _each_effect_once(world: World) -> None:
    effects = world.effects()
    assert len(effects) == len(set(effects)) == 12, effects  # 3 deploys, 3 rollbacks, 6 actions
    assert Counter(a for a, _, _ in effects) == {"deploy": 3, "rollback": 3, "action": 6}


@pytest.fixture
def world(tmp_path, postgres_url) -> World:
    return World(tmp_path, postgres_url)


@pytest.mark.slow
def test_two_runners_one_service_one_proceeds_and_a_killed_holder_is_taken_over_after_its_lease(world):
    holder = world.start("runner-a", "rollout", str(PLAN), GATE_AT="state.baking#1", GUARDRAIL_LOCK_LEASE="4")
    try:
        world.wait_at_gate(holder)
        first = world.only_rollout()
        refused = world.run("runner-b", "rollout", str(PLAN))
        assert refused.returncode == 5, refused.stdout + refused.stderr
        assert f"service 'killtest' is locked by rollout {first} (runner-a:{holder.pid})" in refused.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    with closing(open_store(world.state)) as store:
        assert len(store.rollouts()) == 1  # the refused rollout left no trace
        lease_ends = store.lock(SERVICE)["expires_at"]
    # Runner B cannot see runner A's process: until the lease ends, the lock holds.
    if time.time() < lease_ends - 1:
        early = world.run("runner-b", "rollout", str(PLAN))
        assert early.returncode == 5, early.stdout + early.stderr
    time.sleep(max(0.0, lease_ends - time.time()) + 0.5)
    # After the lease, a rollout that nobody drives any more is still a rollout: a new one
    # starts over it only when a person says so, and why.
    dead = world.run("runner-b", "rollout", str(PLAN))
    assert dead.returncode == 5, dead.stdout + dead.stderr
    assert f"held by rollout {first}" in dead.stderr and "--take-over" in dead.stderr
    taken = world.run("runner-b", "rollout", str(PLAN), "--output", "json", "--take-over", "runner-a was lost",
                      "--by", "ci")
    assert taken.returncode == 1, taken.stdout + taken.stderr  # the killtest plan rolls back
    second = json.loads(taken.stdout)
    assert any("took over" in n or "taken over" in n for n in second["notices"]), second["notices"]
    with closing(open_store(world.state)) as store:
        [took] = store.events(second["rollout_id"], "lock.taken_over")
        assert (took["previous_rollout"], took["previous_holder"], took["why"]) == (
            first, f"runner-a:{holder.pid}", "lease-expired")
        [person] = store.events(second["rollout_id"], "person.acted")
        assert (person["action"], person["by"], person["previous_rollout"]) == ("take-over", "ci", first)
        [lost] = store.events(first, "lock.lost")
        assert lost["by_rollout"] == second["rollout_id"] and lost["by_holder"].startswith("runner-b:")
        assert store.lock(SERVICE) is None  # released at the end


@pytest.mark.slow
@pytest.mark.parametrize("kill", [{"KILLPOINT_AT": "bake.tick#25"}, {"KILL_PARENT_ON": "deploy:r2"},
                                  {"KILLPOINT_AT": "region.rolled_back#2"}])
def test_a_rollout_killed_on_one_runner_is_resumed_on_another_without_a_repeated_side_effect(world, kill):
    killed = world.run("runner-a", "rollout", str(PLAN), GUARDRAIL_LOCK_LEASE="3", **kill)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    rollout_id = world.only_rollout()
    with closing(open_store(world.state)) as store:
        lease_ends = store.lock(SERVICE)["expires_at"]
    time.sleep(max(0.0, lease_ends - time.time()) + 0.5)
    resumed = world.run("runner-b", "resume", rollout_id, "--output", "json")
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert json.loads(resumed.stdout)["outcome"] == "rolled_back"
    _each_effect_once(world)
    with closing(open_store(world.state)) as store:
        assert store.incident(rollout_id)["status"] == "resolved"
        [took] = store.events(rollout_id, "lock.taken_over")
        assert took["own"] and took["previous_holder"].startswith("runner-a:")


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["restart", "pause"])
def test_a_database_outage_mid_bake_costs_retries_not_a_repeated_side_effect(world, postgres_server, outage):
    proc = world.start("runner-a", "rollout", str(PLAN), "--output", "json", GATE_AT="bake.tick#30")
    world.wait_at_gate(proc)
    if outage == "restart":
        postgres_server.stop()
    else:
        postgres_server.pause()
    world.gate_open.touch()  # the rollout's next write meets the outage
    time.sleep(4)
    if outage == "restart":
        postgres_server.start()
    else:
        postgres_server.resume()
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, out + err
    assert json.loads(out)["outcome"] == "rolled_back"
    _each_effect_once(world)
    with closing(open_store(world.state)) as store:
        rollout_id = world.only_rollout()
        kinds = [e["kind"] for e in store.events(rollout_id)]
        assert kinds.count("rollout.started") == 1 and kinds.count("state.failed") == 1
        assert all(s["attempts"] == 1 for s in store.steps(rollout_id)), store.steps(rollout_id)


@pytest.mark.slow
def test_a_database_gone_past_the_bound_halts_naming_it_without_its_password_and_resumes_later(tmp_path,
                                                                                                postgres_server):
    name = postgres_server.create_database(owner=postgres_server.password_user)
    world = World(tmp_path, postgres_server.secret_url(name))  # GUARDRAIL_STATE holds the password
    proc = world.start("runner-a", "rollout", str(PLAN), GATE_AT="bake.tick#72", GUARDRAIL_STATE_RETRY="3",
                       GUARDRAIL_STATE_TIMEOUT="2")
    try:
        world.wait_at_gate(proc)
        rollout_id = world.only_rollout()
        postgres_server.pause()
        try:
            world.gate_open.touch()
            out, err = proc.communicate(timeout=300)
        finally:
            postgres_server.resume()
        assert proc.returncode == 3, out + err
        where = f"postgresql://{postgres_server.password_user}@127.0.0.1:{postgres_server.port}/{name}"
        assert f"the state database {where} did not answer for " in err, err
        assert "Traceback" not in err and postgres_server.password not in out + err
        deployed = world.effects()
        assert Counter(a for a, _, _ in deployed) == {"deploy": 3}  # nothing more after the outage began
        resumed = world.run("runner-a", "resume", rollout_id, "--output", "json")
        assert resumed.returncode == 1, resumed.stdout + resumed.stderr
        _each_effect_once(world)
        assert postgres_server.password not in resumed.stdout + resumed.stderr
    finally:
        postgres_server.ensure_running()
        postgres_server.drop_database(name)


@pytest.mark.slow
def test_abort_from_another_runner_asks_a_live_holder_and_rolls_back_for_a_dead_one(world):
    killed = world.run("runner-a", "rollout", str(PLAN), GUARDRAIL_LOCK_LEASE="4", KILLPOINT_AT="bake.tick#25")
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    rollout_id = world.only_rollout()
    with closing(open_store(world.state)) as store:
        lease_ends = store.lock(SERVICE)["expires_at"]
    if time.time() < lease_ends - 1:  # runner A may still be alive, as far as runner B can tell: it is asked
        asked = world.run("runner-b", "abort", rollout_id)
        assert asked.returncode == 0 and "abort requested" in asked.stdout, asked.stdout + asked.stderr
    time.sleep(max(0.0, lease_ends - time.time()) + 0.5)
    done = world.run("runner-b", "abort", rollout_id, "--output", "json")  # its lease ended: rolled back here
    assert done.returncode == 1, done.stdout + done.stderr
    assert json.loads(done.stdout)["outcome"] == "rolled_back"
    effects = world.effects()
    assert len(effects) == len(set(effects)) and ("rollback", "r3", "1.0") in effects, effects
