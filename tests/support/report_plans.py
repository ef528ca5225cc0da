"""Plans for the report, JUnit and annotation tests, derived from the quickstart."""

from __future__ import annotations

from pathlib import Path

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


def halting_plan(tmp_path: Path) -> Path:
    """The healthy quickstart with a policy whose metric does not exist: it halts (exit 3)."""
    policy = tmp_path / "absent.yaml"
    policy.write_text("apiVersion: guardrail/v1\nkind: Policy\nname: absent\ninterval: 30s\n"
                      "checks:\n  - {name: missing, source: prometheus, query: 'sum(nothing{region=\"{{region}}\"})',"
                      " fail_if: '> 0'}\n")
    plan = tmp_path / "plan.yaml"
    for script in QUICKSTART.glob("*.sh"):  # its actions: checked before the first deploy
        (tmp_path / script.name).write_bytes(script.read_bytes())
        (tmp_path / script.name).chmod(0o755)
    plan.write_text((QUICKSTART / "rollout-healthy.yaml").read_text()
                    .replace("scenario.yaml", str(QUICKSTART / "scenario.yaml"))
                    .replace("./pause-injection.sh", str(QUICKSTART / "pause-injection.sh"))
                    .replace("./resume-stalled-sends.sh", str(QUICKSTART / "resume-stalled-sends.sh"))
                    .replace("  - ../../policies/service-restarts.yaml\n  - ../../policies/queue-latency.yaml\n",
                             "  - absent.yaml\n"))
    return plan
