"""The simulated fleet of a rollout is its own: rollouts of one service with different
scenarios, and replays with the same ``--start-at``, share one state folder and give
exactly what they give in folders of their own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from guardrail.state.sqlite import SQLiteStore
from guardrail_plugins.sim.fleet import FleetLog
from support.engine_plans import run

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart"
EVIDENCE = Path(__file__).resolve().parent / "data" / "evidence"
START_AT = "2026-01-05T10:00:00Z"


def _quickstart(folder: Path, *start: str) -> dict:
    result = run("rollout", QUICKSTART / "rollout.yaml", "--state", folder / "state.db", "--output", "json", *start)
    assert result.exit_code in (0, 1, 3), result.output
    return json.loads(result.stdout)


def _other_scenario(folder: Path) -> dict:
    """Another scenario of the same service: a slowdown every region shares, rolled back
    about ten minutes after 10:00 (its rollbacks would move the quickstart's regions)."""
    work = folder / "other"
    shutil.copytree(EVIDENCE, work)
    plan = yaml.safe_load((work / "plan.yaml").read_text()) | {
        "service": "mail-sender", "change": {"version": "2.1-slower", "previous": "1.0"}, "policies": ["control.yaml"],
        "waves": [{"name": "everywhere", "regions": ["r3", "r1", "r2"], "parallel": True, "bake": "20m"}]}
    (work / "other.yaml").write_text(yaml.safe_dump(plan))
    result = run("rollout", work / "other.yaml", "--state", folder / "state.db", "--output", "json",
                 "--start-at", START_AT)
    assert result.exit_code == 1, result.output
    return json.loads(result.stdout)


def _evidence(folder: Path, doc: dict) -> list:
    store = SQLiteStore(folder / "state.db")
    try:
        rows = store.measurements(doc["rollout_id"])
        return [(r["phase"], r["tick"], r["region"], r["check"], r["status"], r["value"]) for r in rows]
    finally:
        store.close()


def _decision(doc: dict) -> dict:
    return {"outcome": doc["outcome"], "reason": doc["reason"],
            "verdicts": [(r["region"], r["verdict"]) for w in doc["waves"] for r in w["regions"]],
            "failing": [(f["region"], f["check"], f["value"], f["first_breach_at"]) for f in doc["failing_checks"]]}


def test_scenarios_and_replays_share_a_state_folder_as_if_alone(tmp_path):
    alone = tmp_path / "alone"
    shared = tmp_path / "shared"
    alone.mkdir(), shared.mkdir()
    expected = _quickstart(alone, "--start-at", START_AT)
    assert expected["outcome"] == "rolled_back"

    _quickstart(shared, "--start-at", "2026-01-07T10:00:00Z")  # an earlier run pins a later start
    _other_scenario(shared)  # same service, another scenario, the same simulated morning
    first = _quickstart(shared, "--start-at", START_AT)
    again = _quickstart(shared, "--start-at", START_AT)
    for doc in (first, again):
        assert _decision(doc) == _decision(expected)
        assert _evidence(shared, doc) == _evidence(alone, expected)

    lines = (shared / "sim-fleet-mail-sender.jsonl").read_text().splitlines()
    runs = {json.loads(line).get("run") for line in lines}
    assert len(runs) == 4 and None not in runs  # one fleet per rollout, in one file
    mine = FleetLog(shared / "sim-fleet-mail-sender.jsonl", run=again["rollout_id"])
    assert [r["action"] for r in mine.records] == ["start", "deploy", "rollback"]
