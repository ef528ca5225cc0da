"""Gates: an outside system asked before a wave deploys (like Flagger's confirm-promotion
webhook, or a change ticket that must be approved).

``gate: {plugin: webhook, with: {url, headers, timeout, retries, backoff}}`` on a wave:
the rollout and the wave are POSTed as JSON. A 2xx lets the wave deploy; any other 4xx
halts the rollout before it (exit 3) with the answer in the reason; a 5xx, 408, 429 or
no answer is retried ``retries`` times with a doubling ``backoff``, then halts. A gate
that said yes is not asked again when the rollout resumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from guardrail.language.model import Rollout, Wave
from guardrail.plugin.http import post_json


@dataclass(frozen=True)
class GateAnswer:
    ok: bool
    detail: str


def payload(rollout: Rollout, rollout_id: str, wave: Wave) -> dict[str, Any]:
    return {"rollout_id": rollout_id, "service": rollout.service, "change": rollout.change.model_dump(),
            "wave": {"name": wave.name, "regions": wave.regions, "bake": wave.bake},
            "waves": [w.name for w in rollout.waves]}


def ask_gate(rollout: Rollout, rollout_id: str, wave: Wave) -> GateAnswer:
    """Ask the wave's gate (it must have one); never raises."""
    settings = wave.gate.with_
    try:
        outcome = post_json(settings.url, payload(rollout, rollout_id, wave), headers=settings.headers,
                            timeout=settings.timeout, retries=settings.retries, backoff=settings.backoff)
    except Exception as exc:  # a bad URL is a closed gate, never a crash
        return GateAnswer(False, f"{type(exc).__name__}: {exc}")
    return GateAnswer(outcome.ok, outcome.detail)


def refusal(wave: Wave, answer: GateAnswer, rollout_id: str) -> str:
    return (f"gate of wave {wave.name!r} said no: {answer.detail}; nothing more is deployed; "
            f"`guardrail resume {rollout_id}` asks it again")
