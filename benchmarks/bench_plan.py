"""The benchmark plan: one policy of N checks over the quickstart's simulated fleet, with
thresholds loose enough that every wave passes, rolled out region by region. Shared by
the engine-overhead and the replay benchmarks so that both measure the same work."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCENARIO = REPO / "examples" / "quickstart" / "scenario.yaml"

QUERIES = [
    ('sum(increase(service_restarts_total{{region="{{{{region}}}}"}}[{w}m]))', "> 100"),
    ('max(db_cpu_utilization_ratio{{region="{{{{region}}}}"}})', "> 0.99"),
    ('avg(max_over_time(db_cpu_utilization_ratio{{region="{{{{region}}}}"}}[{w}m]))', "> 0.99"),
    ('sum(rate(mail_delivered_total{{region="{{{{region}}}}"}}[{w}m]))', "< 1"),
    ('sum(rate(error_log_writes_total{{region="{{{{region}}}}"}}[{w}m]))', "> 10000"),
    ('max(mail_queue_latency_p95_seconds{{region="{{{{region}}}}"}})', "> 300"),
    ('sum(mail_sends_stalled{{region="{{{{region}}}}"}})', "> 1000"),
    ('avg(probe_success{{region="{{{{region}}}}", module="smtp_banner"}})', "< 0.5"),
    ('max(mail_queue_depth{{region="{{{{region}}}}"}})', "> 100000"),
    ('sum(increase(error_log_writes_total{{region="{{{{region}}}}"}}[{w}m])) / 60', "> 100000"),
]


def write_policy(folder: Path, *, checks: int, interval: str) -> Path:
    """``policy.yaml``: ``checks`` checks every ``interval``, none of which fails on the quickstart's fleet."""
    lines = []
    for i in range(checks):
        query, fail_if = QUERIES[i % len(QUERIES)]
        lines.append(f"  - name: check-{i:02d}\n    source: prometheus\n"
                     f"    query: '{query.format(w=5 + i // len(QUERIES))}'\n    fail_if: \"{fail_if}\"\n")
    path = folder / "policy.yaml"
    path.write_text(f"apiVersion: guardrail/v1\nkind: Policy\nname: bench\ninterval: {interval}\n"
                    "on_no_data: inconclusive\nchecks:\n" + "".join(lines))
    return path


def write_plan(folder: Path, *, checks: int, interval: str, waves: list[tuple[str, str, str]]) -> Path:
    """The policy, and ``rollout.yaml`` deploying one wave per (name, region, bake) on the
    sim; returns the plan's path."""
    write_policy(folder, checks=checks, interval=interval)
    regions = ", ".join(f"{region}: {{}}" for _, region, _ in waves)
    wave_lines = "".join(f"  - {{name: {name}, regions: [{region}], bake: {bake}}}\n" for name, region, bake in waves)
    plan = folder / "rollout.yaml"
    plan.write_text(f"""apiVersion: guardrail/v1
kind: Rollout
service: bench
change: {{version: "2023.01.06", previous: "2022.12.14"}}
clock: virtual
deploy: {{plugin: sim, with: {{scenario: {SCENARIO}}}}}
sources: {{prometheus: {{plugin: sim, scenario: {SCENARIO}}}}}
regions: {{{regions}}}
waves:
{wave_lines}policies: [policy.yaml]
""")
    return plan
