"""The rollout report (``guardrail.report``) and ``guardrail report``: what the page holds
for a rolled-back, a promoted and a halted rollout, canary-vs-control and baseline
bands, escaping of everything that comes from YAML, the plan and policies as they ran
(or a note when they moved or changed), and a long rollout (200k measurements) that
still makes a small page quickly. The browser's view is in test_report_browser.py."""

from __future__ import annotations

import json
import re
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from guardrail.cli import create_app
from guardrail.report import gather, render_html
from guardrail.report.data import PLOT_BUCKETS
from guardrail.state.sqlite import SQLiteStore
from support.stores import add_measurements

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart"

SCENARIO = """\
apiVersion: guardrail/v1
kind: Scenario
name: report-tests
regions: [r3, r1, r2]
baseline_version: "1.0"
seed: 7
step: 15s
history: 2h
metrics:
  delivered_rate: {type: gauge, value: 100, noise: 4, min: 0}
  error_log_rate: {type: gauge, value: 10, noise: 0.5, min: 0}
versions:
  "1.0": {description: before}
  "2.0": {description: good}
  "2.1-slow":
    description: delivers 40% less from 5 minutes after deploy
    effects: [{metric: delivered_rate, after: 5m, scale: 0.6}]
"""
POLICY = """\
apiVersion: guardrail/v1
kind: Policy
name: delivery
interval: 30s
checks:
  - name: delivery-vs-control
    description: "Deployed vs control <script>alert('check')</script>"
    source: prometheus
    query: max(delivered_rate{region="{{region}}"})
    compare: control
    direction: decrease
    effect_size: 0.9
    min_samples: 10
  - name: error-log-growth
    source: prometheus
    query: max(error_log_rate{region="{{region}}"})
    compare: baseline
    baseline: {window: 30m, stat: median}
    fail_if: "> +50%"
    for: 2m
"""
ABSENT = """\
apiVersion: guardrail/v1
kind: Policy
name: absent
interval: 30s
on_no_data: inconclusive
inconclusive_limit: 3
checks:
  - name: missing-metric
    source: prometheus
    query: sum(no_such_metric{region="{{region}}"})
    fail_if: "> 0"
"""
PLAN = """\
apiVersion: guardrail/v1
kind: Rollout
service: report-test
change: {{version: "{version}", previous: "1.0", description: "<img src=x onerror=alert(1)> & co"}}
clock: virtual
deploy: {{plugin: sim, with: {{scenario: scenario.yaml}}}}
sources:
  prometheus: {{plugin: sim, scenario: scenario.yaml}}
regions: {{r3: {{}}, r1: {{}}, r2: {{}}}}
waves:
  - {{name: canary, regions: [r3], bake: 30m}}
  - {{name: main, regions: [r1, r2], parallel: true, bake: 30m}}
policies: [{policy}]
verify_recovery: {{for: 5m}}
"""


def run(*args: str | Path, env: dict | None = None):
    return CliRunner().invoke(create_app(), [str(a) for a in args], env=env)


def rollout(plan: Path, state: Path, expect: int, *extra: str) -> dict:
    result = run("rollout", plan, "--state", state, "--output", "json", *extra)
    assert result.exit_code == expect, result.output
    return json.loads(result.stdout)


@pytest.fixture
def fleet(tmp_path: Path):
    """A folder with the scenario and policies; ``plan(version, policy)`` writes a plan."""
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    (tmp_path / "delivery.yaml").write_text(POLICY)
    (tmp_path / "absent.yaml").write_text(ABSENT)

    def plan(version: str, policy: str = "delivery.yaml", name: str = "plan.yaml") -> Path:
        path = tmp_path / name
        path.write_text(PLAN.format(version=version, policy=policy))
        return path

    return plan


class _Page(HTMLParser):
    """The tags of a page, and whether it parses as balanced HTML."""

    VOID = {"meta", "br", "rect", "line", "path", "circle", "hr", "img", "input", "link"}

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.stack: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def find(self, tag: str, **attrs) -> list[dict]:
        return [a for t, a in self.tags if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())]


def _page(html: str) -> _Page:
    page = _Page(html)
    assert page.stack == ["html"] or page.stack == [], page.stack
    return page


# -- the three outcomes -------------------------------------------------------------------


def test_the_quickstart_failure_report(tmp_path):
    state = tmp_path / "state.db"
    doc = rollout(QUICKSTART / "rollout.yaml", state, 1, "--report", str(tmp_path / "out" / "report.html"))
    html = (tmp_path / "out" / "report.html").read_text()
    page = _page(html)
    # self-contained: no script, no external reference, a CSP that forbids fetching
    assert "<script" not in html and not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "default-src 'none'" in html
    articles = page.find("article")
    assert articles[0]["data-check"] == "service-restarts/service-restarts" and articles[0]["data-status"] == "fail"
    assert {a["data-check"] for a in articles} == {"service-restarts/service-restarts", "service-restarts/stalled-sends",
                                                   "queue-latency/queue-latency-p95", "queue-latency/queue-depth-growth"}
    plots = page.find("svg", class_="plot")
    assert len(plots) == 4 and all(p["data-region"] == "r3" for p in plots)
    assert page.find("circle", class_="breach fail-point")
    assert doc["rollout_id"] in html and doc["incident"]["id"] in html
    assert "Why it failed in r3 (wave canary)" in html
    assert 'sum(increase(service_restarts_total{region=&quot;r3&quot;}[15m]))' in html
    # the baseline of queue-depth-growth is drawn as a band and stated
    assert page.find("path", class_="band") and "baseline max of 121 samples" in html
    # the plan and both policies, as they ran
    assert html.count("unchanged since the rollout ran") == 3
    assert "pause-injection.sh" in html and "name: service-restarts" in html
    # the timeline: rollback and recovery, the failure decision, both actions
    assert page.find("rect", class_="span span-rollback") and page.find("rect", class_="span span-recovery")
    assert page.find("line", class_="mark mark-fail")
    assert len(page.find("path", class_="mark mark-info action")) == 2


def test_a_promoted_report_and_the_report_command(tmp_path):
    state = tmp_path / "state.db"
    doc = rollout(QUICKSTART / "rollout-healthy.yaml", state, 0)
    result = run("report", doc["rollout_id"][:15], "--state", state, "--html", tmp_path / "r.html",
                 "--junit", tmp_path / "r.xml")
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'r.html'}" in result.output and "r.xml" in result.output
    page = _page((tmp_path / "r.html").read_text())
    plots = page.find("svg", class_="plot")
    assert len(plots) == 12 and {p["data-status"] for p in plots} == {"pass"}  # 4 checks x 3 regions
    assert not page.find("circle", class_="breach fail-point")
    assert "Promoted: every wave passed" in (tmp_path / "r.html").read_text()
    assert "No incident" in (tmp_path / "r.html").read_text()


def test_a_halted_rollout_has_a_report_too(tmp_path, fleet):
    doc = rollout(fleet("2.0", "absent.yaml"), tmp_path / "s" / "state.db", 3, "--report", str(tmp_path / "h.html"))
    assert doc["outcome"] == "halted"
    html = (tmp_path / "h.html").read_text()
    page = _page(html)
    [article] = page.find("article")
    assert article["data-status"] == "inconclusive"
    assert "Halted: a person must resume or abort" in html
    assert "no values: every evaluation was without data" in html  # nothing to draw, and it says so
    assert "No incident" in html


def test_abort_writes_the_report_of_what_it_did(tmp_path, fleet):
    state = tmp_path / "s" / "state.db"
    doc = rollout(fleet("2.0", "absent.yaml"), state, 3)
    result = run("abort", doc["rollout_id"], "--state", state, "--report", tmp_path / "a.html",
                 "--junit", tmp_path / "a.xml")
    # rolled back, but a check without data cannot show the recovery: a person is needed
    assert result.exit_code == 4, result.output
    html = (tmp_path / "a.html").read_text()
    assert "A PERSON IS NEEDED NOW: rollback or recovery failed" in html
    assert "state.aborted" in html and "rollback: done" in html
    assert "mail-sender" not in html and doc["rollout_id"] in (tmp_path / "a.xml").read_text()


# -- comparisons, escaping, files ----------------------------------------------------------------


def test_control_and_baseline_comparisons_are_drawn_with_their_evidence(tmp_path, fleet):
    rollout(fleet("2.1-slow"), tmp_path / "s" / "state.db", 1, "--report", str(tmp_path / "c.html"))
    html = (tmp_path / "c.html").read_text()
    page = _page(html)
    control = [a for a in page.find("article") if a["data-check"] == "delivery/delivery-vs-control"]
    assert control and control[0]["data-status"] == "fail"
    assert "control: r1, r2 (regions still on the previous version)" in html
    assert "judged by <code>control: decrease, confidence 0.98, effect 0.9</code>" in html
    assert "p value" in html and "control samples" in html
    assert len(page.find("path", class_="band")) == 2  # control band and baseline band
    assert len(page.find("path", class_="reference")) == 2
    assert "baseline median of 61 samples" in html


def test_everything_from_yaml_is_escaped(tmp_path, fleet):
    rollout(fleet("2.0"), tmp_path / "s" / "state.db", 0, "--report", str(tmp_path / "e.html"))
    html = (tmp_path / "e.html").read_text()
    assert "<script" not in html and "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; co" in html
    assert "Deployed vs control &lt;script&gt;alert(&#x27;check&#x27;)&lt;/script&gt;" in html
    _page(html)


def test_secrets_stay_out_of_the_report(tmp_path, fleet):
    """Stored values are redacted already; the plan's text is shown as written, so a
    secret pasted into it is masked too when the rollout writes its report."""
    plan = fleet("2.0")
    secret = "s3cr3t-t0ken-value"
    plan.write_text(plan.read_text().replace('previous: "1.0"', 'previous: "1.0", ticket: "${env:REPORT_TOKEN}"')
                    + f"# the token, pasted here by mistake: {secret}\n")
    result = run("rollout", plan, "--state", tmp_path / "s" / "state.db", "--report", tmp_path / "r.html",
                 "--junit", tmp_path / "r.xml", env={"REPORT_TOKEN": secret})
    assert result.exit_code == 0, result.output
    for name in ("r.html", "r.xml"):
        assert secret not in (tmp_path / name).read_text()
    assert "pasted here by mistake: ***" in (tmp_path / "r.html").read_text()


def test_a_moved_or_changed_plan_is_said_so(tmp_path, fleet):
    plan = fleet("2.0")
    state = tmp_path / "s" / "state.db"
    doc = rollout(plan, state, 0)
    (tmp_path / "delivery.yaml").write_text(POLICY + "# edited after the rollout\n")
    store = SQLiteStore(state)
    html = render_html(gather(store, doc["rollout_id"]))
    assert html.count("as it is NOW: the plan or its policies changed since the rollout ran") == 2
    shutil.move(plan, tmp_path / "elsewhere.yaml")
    html = render_html(gather(store, doc["rollout_id"]))
    assert f"no longer at {plan}: the report cannot show it" in html
    assert "as it is now (" in html  # the policy, which is still there, cannot be compared any more


# -- the command ----------------------------------------------------------------------------


def test_report_command_errors(tmp_path):
    assert run("report", "x", "--state", tmp_path / "none.db", "--html", tmp_path / "r.html").exit_code == 2
    assert not (tmp_path / "none.db").exists()  # a missing state file is not created
    state = tmp_path / "state.db"
    doc = rollout(QUICKSTART / "rollout-healthy.yaml", state, 0)
    result = run("report", doc["rollout_id"], "--state", state)
    assert result.exit_code == 2 and "--html FILE, --junit FILE, or both" in result.output
    result = run("report", "nope", "--state", state, "--html", tmp_path / "r.html")
    assert result.exit_code == 2 and "no rollout 'nope'" in result.output
    (tmp_path / "dir.html").mkdir()
    result = run("report", doc["rollout_id"], "--state", state, "--html", tmp_path / "dir.html")
    assert result.exit_code == 2 and "cannot write the report" in result.output


def test_an_unwritable_report_does_not_change_the_rollouts_exit_code(tmp_path):
    (tmp_path / "dir.html").mkdir()
    result = run("rollout", QUICKSTART / "rollout.yaml", "--state", tmp_path / "state.db", "--report",
                 tmp_path / "dir.html")
    assert result.exit_code == 1, result.output
    assert "warning: cannot write the report" in result.stderr


# -- a long rollout --------------------------------------------------------------------------


def test_200k_measurements_make_a_small_page_quickly(tmp_path):
    """20 series (4 checks x 5 regions) of 10,000 evaluations each, written straight into
    the store: the page draws each series with at most two points per pixel."""
    store = SQLiteStore(tmp_path / "state.db")
    start = 1_700_000_000.0
    store.create_rollout({"id": "long", "service": "svc", "version": "2", "previous": "1", "plan_path": "/gone.yaml",
                          "plan_digest": "-", "clock": "real", "clock_start": start})
    regions = ["r1", "r2", "r3", "r4", "r5"]
    store.add_event("long", start, "rollout.started", {"service": "svc", "change": {"version": "2", "previous": "1"},
                                                       "waves": [{"name": "all", "regions": regions, "bake": 50000}],
                                                       "plan": "/gone.yaml", "policies": [], "clock": "real"})
    for region in regions:
        store.start_step("long", f"deploy:{region}", start, {"region": region})
        store.finish_step("long", f"deploy:{region}", True, start, {"region": region})
    store.start_step("long", "bake:all", start, {"start": start})
    for first in range(0, 10_000, 1000):  # a thousand ticks at a time, each tick as the engine stores it
        rows = [("bake:all", k, start + 5 * k, region, "p", check, "pass", (k * 7919) % 1000 / 10.0, 120.0, None,
                 "> 120", False, "", "q", None, None, None, 0, k + 1, 0, 0)
                for k in range(first, first + 1000) for check in ("a", "b", "c", "d") for region in regions]
        add_measurements(store, "long", rows)
    store.set_state("long", "promoted", outcome="promoted", finished=True)
    assert store.measurement_count("long") == 200_000
    # CPU seconds of this process: the work the page costs. Wall-clock time also counts
    # every other process of a loaded machine (ten times the work, on a busy CI runner).
    began = time.process_time()
    html = render_html(gather(store, "long"))
    cpu = time.process_time() - began
    assert cpu < 10, cpu
    assert len(html) < 1_500_000, len(html)
    page = _page(html)
    series = page.find("path", class_="series")
    assert len(series) == 20
    for path in series:
        assert len(re.findall(r"[ML]", path["d"])) <= 2 * PLOT_BUCKETS
    assert "no longer at /gone.yaml" in html

