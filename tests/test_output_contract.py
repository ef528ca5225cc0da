"""One JSON contract: every command that reports, run with ``--output json`` (or its alias
``--json``) for every exit code it has, prints exactly one JSON document on stdout that
validates against ``guardrail schema output`` — checked with ``jsonschema``, a validator
independent of the models the schema is generated from."""

from __future__ import annotations

import json
import socket
from contextlib import closing
from pathlib import Path

import jsonschema
import pytest

from guardrail.state.sqlite import SQLiteStore
from support.engine_plans import run, state, work, write_plan  # noqa: F401

pytest_plugins = ["support.prometheus"]

REPO = Path(__file__).resolve().parents[1]
MINUTE = 60.0


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    result = run("schema", "output")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


class Contract:
    """Runs commands and checks their documents; remembers which (command, exit code) it saw."""

    def __init__(self, validator):
        self.validator = validator
        self.seen: set[tuple[str, int]] = set()

    def __call__(self, code: int, *args, flag: tuple[str, ...] = ("--output", "json"), **kw) -> dict:
        result = run(*args, *flag, **kw)
        assert result.exit_code == code, (args, result.output)
        doc = json.loads(result.stdout)  # one document, nothing else on stdout
        errors = sorted(self.validator.iter_errors(doc), key=str)
        assert not errors, f"{args}: {errors[0].message} at {list(errors[0].absolute_path)}\n{json.dumps(doc)[:2000]}"
        command = f"incidents {args[1]}" if args[0] == "incidents" else args[0]
        assert (doc["command"], doc["exit_code"]) == (command, code), doc
        if code == 2:
            assert doc["outcome"] == "invalid" and doc["problems"], doc
            assert all(set(p) >= {"file", "line", "column", "path", "message"} for p in doc["problems"])
        self.seen.add((command, code))
        return doc


@pytest.fixture
def contract(validator) -> Contract:
    return Contract(validator)


def _refused_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def test_the_rollout_commands_for_every_exit_code(contract, work, state):  # noqa: F811
    c = contract
    ok = c(0, "rollout", write_plan(work, "ok"), "--state", state)
    assert ok["outcome"] == "promoted" and ok["state"] == "promoted" and ok["rollout_id"]
    bad = c(1, "rollout", write_plan(work, "bad", change={"version": "2.1-bad"}), "--state", state, flag=("--json",))
    assert (bad["outcome"], bad["state"]) == ("rolled_back", "done")
    broken = c(4, "rollout", write_plan(work, "broken", service="broken-svc", change={"version": "2.1-bad"},
                                        deploy={"with": {"fail_rollback_regions": ["r3"]}}), "--state", state)
    assert broken["outcome"] == "rollback_failed"
    gated_plan = write_plan(work, "gated", service="gated-svc", waves=[
        {"name": "canary", "regions": ["r3"], "bake": "10m"},
        {"name": "main", "regions": ["r1", "r2"], "bake": "10m", "approval": "manual"}])
    gated = c(3, "rollout", gated_plan, "--state", state)
    assert (gated["outcome"], gated["state"]) == ("halted", "halted")
    locked = c(5, "rollout", gated_plan, "--state", state)
    assert locked["outcome"] == "locked" and locked["rollout_id"] == gated["rollout_id"]
    invalid = c(2, "rollout", REPO / "tests" / "data" / "invalid" / "bad-comparison-word.yaml", "--state", state)
    assert invalid["problems"][0]["file"].endswith("bad-comparison-word.yaml") and invalid["problems"][0]["line"]
    c(2, "rollout", gated_plan, "--state", state, "--no-such-option")

    assert c(3, "resume", gated["rollout_id"], "--state", state)["outcome"] == "halted"  # still waits
    assert c(0, "resume", ok["rollout_id"], "--state", state)["outcome"] == "promoted"  # finished: its result
    c(2, "resume", "no-such-rollout", "--state", state)  # nothing to resume
    paused = c(0, "pause", gated["rollout_id"], "--state", state)
    assert (paused["outcome"], paused["state"]) == ("pause_requested", "halted")
    c(2, "pause", ok["rollout_id"], "--state", state)
    assert c(0, "approve", gated["rollout_id"], "--state", state)["outcome"] == "promoted"
    c(2, "approve", ok["rollout_id"], "--state", state)

    held = c(3, "rollout", gated_plan, "--state", state)
    aborted = c(1, "abort", held["rollout_id"], "--state", state, "--reason", "wrong build")
    assert (aborted["outcome"], aborted["state"]) == ("rolled_back", "done")
    c(2, "abort", ok["rollout_id"], "--state", state)

    status = c(0, "status", bad["rollout_id"], "--state", state, flag=("--json",))
    assert status == bad | {"command": "status", "exit_code": 0}
    c(2, "status", "no-such-id", "--state", state)
    c(2, "status", "--state", state.parent / "mistyped.db")
    rows = c(0, "history", "--state", state)["rollouts"]
    assert {r["rollout_id"] for r in rows} >= {ok["rollout_id"], bad["rollout_id"], broken["rollout_id"]}
    assert all(r["id"] == r["rollout_id"] for r in rows)  # the deprecated key, while it lasts
    c(2, "history", "--state", state.parent / "mistyped.db")

    assert c(0, "unlock", "broken-svc", "--state", state)["outcome"] == "unlocked"
    assert c(0, "unlock", "broken-svc", "--state", state)["outcome"] == "not_locked"
    c(2, "unlock", "broken-svc", "--state", state.parent / "mistyped.db")

    written = c(0, "report", bad["rollout_id"], "--state", state, "--html", state.parent / "r.html",
                "--junit", state.parent / "j.xml")
    assert [f["kind"] for f in written["files"]] == ["html", "junit"] and all(f["bytes"] > 0 for f in written["files"])
    c(2, "report", bad["rollout_id"], "--state", state)

    incidents = c(0, "incidents", "list", "--state", state)["incidents"]
    assert f"INC-{bad['rollout_id']}" in {i["id"] for i in incidents}
    shown = c(0, "incidents", "show", bad["rollout_id"], "--state", state)
    assert shown["rollout_id"] == bad["rollout_id"]
    c(2, "incidents", "show", "INC-nothing", "--state", state)
    assert c(0, "incidents", "flush", "--state", state)["outcome"] == "delivered"
    down = f"http://127.0.0.1:{_refused_port()}/hook"
    c(1, "rollout", write_plan(work, "unheard", service="unheard-svc", change={"version": "2.1-bad"},
                               on_failure={"delivery_grace": "1s", "incident": {
                                   "plugin": "webhook", "with": {"url": down, "retries": 0, "timeout": "1s"}}}),
      "--state", state)
    left = c(1, "incidents", "flush", "--state", state)
    assert left["outcome"] == "undelivered" and left["left"] > 0
    c(2, "incidents", "flush", "--state", state.parent / "mistyped.db")

    assert c.seen >= {("rollout", code) for code in range(6)}
    assert c.seen >= {("resume", 3), ("resume", 2), ("approve", 0), ("approve", 2), ("abort", 1), ("abort", 2),
                      ("pause", 0), ("pause", 2), ("status", 0), ("status", 2), ("history", 0), ("history", 2),
                      ("unlock", 0), ("unlock", 2), ("report", 0), ("report", 2), ("incidents list", 0),
                      ("incidents show", 0), ("incidents show", 2), ("incidents flush", 0), ("incidents flush", 1),
                      ("incidents flush", 2)}


def test_the_file_commands_for_every_exit_code(contract, tmp_path):
    c = contract
    assert c(0, "validate", REPO / "examples")["files"] > 10
    invalid = c(2, "validate", REPO / "tests" / "data" / "invalid" / "bad-comparison-word.yaml", flag=("--json",))
    assert any(p["path"] == "checks[0].fail_if" and p["line"] == 10 and p["column"] == 14
               for p in invalid["problems"]), invalid
    c(2, "validate", tmp_path)  # no YAML there: a usage error, still one document
    listed = c(0, "plugins")
    assert {"sim", "prometheus", "webhook"} <= {p["name"] for p in listed["plugins"]}

    tests = REPO / "policies" / "tests" / "service-restarts.test.yaml"
    passed = c(0, "test", tests)
    assert passed["outcome"] == "passed" and passed["files"][0]["assertions"] > 0
    wrong = tmp_path / "wrong.test.yaml"
    text = tests.read_text()
    policy = str(REPO / "policies" / "service-restarts.yaml")
    wrong.write_text(text.replace("../service-restarts.yaml", policy)
                     .replace("service-restarts: {verdict: fail, first_failure: 1h12m}",
                              "service-restarts: {verdict: pass}", 1))
    assert "{verdict: pass}" in wrong.read_text()
    failed = c(1, "test", wrong)
    assert failed["outcome"] == "failed" and failed["files"][0]["mismatches"]
    broken = tmp_path / "broken.test.yaml"
    broken.write_text("apiVersion: guardrail/v1\nkind: PolicyTest\npolicy: nowhere.yaml\ntests: 3\n")
    c(2, "test", broken)
    assert c.seen >= {("validate", 0), ("validate", 2), ("plugins", 0), ("test", 0), ("test", 1), ("test", 2)}


@pytest.mark.prometheus
def test_check_and_backtest_for_every_exit_code(contract, prometheus, tmp_path):
    c = contract
    policy = tmp_path / "db.yaml"
    policy.write_text("apiVersion: guardrail/v1\nkind: Policy\nname: db\ninterval: 30s\nchecks:\n"
                      "  - name: db-cpu-saturation\n    source: prometheus\n"
                      "    query: max(db_cpu_utilization_ratio{region=\"{{region}}\"})\n"
                      "    fail_if: \"> 0.9\"\n    for: 2m\n")
    url = prometheus.url
    c(0, "check", policy, "--region", "r2", "--prometheus", url, "--at", str(prometheus.start + 150 * MINUTE))
    failing = c(1, "check", policy, "--region", "r1", "--prometheus", url, "--at", str(prometheus.start + 50 * MINUTE))
    assert failing["outcome"] == "fail" and failing["checks"][0]["status"] == "fail"
    c(3, "check", policy, "--region", "r1", "--prometheus", f"http://127.0.0.1:{_refused_port()}")
    c(2, "check", policy, "--region", "r1")

    start = str(prometheus.start + 30 * MINUTE)
    c(0, "backtest", policy, "--region", "r2", "--prometheus", url, "--deployed-at", start)
    assert c(1, "backtest", policy, "--region", "r1", "--prometheus", url, "--deployed-at", start)["findings"]
    c(3, "backtest", policy, "--region", "r1", "--prometheus", f"http://127.0.0.1:{_refused_port()}",
      "--deployed-at", start)
    c(2, "backtest", policy, "--region", "r1", "--deployed-at", start)
    assert c.seen == {("check", code) for code in (0, 1, 2, 3)} | {("backtest", code) for code in (0, 1, 2, 3)}


def test_a_bad_command_line_is_one_invalid_document_for_every_command(contract):
    for command in ("rollout", "resume", "abort", "approve", "status", "history", "pause", "unlock", "validate",
                    "plugins", "check", "backtest", "test", "report", ("incidents", "list"), ("incidents", "show"),
                    ("incidents", "flush")):
        args = command if isinstance(command, tuple) else (command,)
        doc = contract(2, *args, "--no-such-option")
        assert doc["problems"][0]["message"] == "No such option: --no-such-option"


def test_status_and_history_agree_on_the_state_of_an_aborted_rollout(work, state):  # noqa: F811
    """A halted rollout that an abort drives through recovery: while it runs, every view
    says it runs (the stored outcome of the halt is not its outcome any more)."""
    gated = write_plan(work, "gated", waves=[{"name": "canary", "regions": ["r3"], "bake": "10m"},
                                             {"name": "main", "regions": ["r1"], "bake": "10m",
                                              "approval": "manual"}])
    held = json.loads(run("rollout", gated, "--state", state, "--json").stdout)
    with closing(SQLiteStore(state)) as store:  # as an abort leaves it while it verifies recovery
        store.set_state(held["rollout_id"], "verifying_recovery", outcome="halted")
        assert store.rollout(held["rollout_id"])["outcome"] == "halted"  # the column keeps the halt
    status = json.loads(run("status", "--state", state, "--json").stdout)
    [row] = json.loads(run("history", "--state", state, "--json").stdout)["rollouts"]
    assert (status["state"], status["outcome"]) == (row["state"], row["outcome"]) == ("verifying_recovery", None)
    text = run("status", "--state", state).output
    assert "verifying recovery (in progress)" in text and "halted" not in text.split("\n")[1]
    table = run("history", "--state", state).output
    assert "halted" not in table
