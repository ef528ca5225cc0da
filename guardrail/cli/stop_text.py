"""What the terminal says when a rollout stops before its end: what runs where, and the
exact commands that continue it (with ``--state`` when it is not the default)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any


def command(verb: str, rollout_id: str, state: Path | str) -> str:
    from guardrail.cli.options import default_state_path
    from guardrail.state.open import is_url

    default = default_state_path()
    if is_url(state) or is_url(default):  # a URL on a command line never carries a password
        same = str(state) == str(default)
    else:
        same = Path(state).absolute() == Path(default).absolute()
    return f"guardrail {verb} {rollout_id}" + ("" if same else f" --state {shlex.quote(str(state))}")


def runs_where(summary: dict[str, Any]) -> str:
    """``r3 runs 2.0 (new); r1, r2 run 1.0``: each region's version as the store knows it."""
    new, old, unknown = [], [], []
    for wave in summary["waves"]:
        for r in wave["regions"]:
            if r["rolled_back_at"] or r["verdict"] == "not_deployed":
                old.append(r["region"])
            elif r["deployed_at"]:
                new.append(r["region"])
            else:
                unknown.append(r["region"])
    parts = []
    if new:
        parts.append(f"{', '.join(new)} {'runs' if len(new) == 1 else 'run'} {summary['version']} (the new version)")
    if old:
        parts.append(f"{', '.join(old)} {'runs' if len(old) == 1 else 'run'} {summary['previous']}")
    if unknown:
        parts.append(f"{', '.join(unknown)}: deploy started and not confirmed (either version; the resume repeats it)")
    return "; ".join(parts) or "no region was touched"


def stop_lines(summary: dict[str, Any], state: Path) -> list[str]:
    rid = summary["rollout_id"]
    return [f"stopped safely: {runs_where(summary)}.",
            f"continue:  {command('resume', rid, state)}",
            f"roll back: {command('abort', rid, state)}"]


def earlier_line(summary: dict[str, Any]) -> str:
    return (f"rollout {summary['rollout_id']} finished earlier ({summary['state']}); nothing was run: "
            f"its result follows")
