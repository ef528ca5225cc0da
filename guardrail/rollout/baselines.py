"""Capturing a wave's baselines: before the wave deploys, each ``compare: baseline``
check of its regions is measured over the window before the change (the one
judgement's ``baseline_window`` and ``baseline_reference``) and stored, once: a resumed
wave finds its ``baseline:WAVE`` step done and keeps what was captured."""

from __future__ import annotations

from guardrail.judging.evaluate import baseline_reference, baseline_window
from guardrail.language.model import Wave
from guardrail.rollout.evaluation import Evaluator
from guardrail.state.journal import Journal


def capture_baselines(journal: Journal, evaluator: Evaluator, wave: Wave) -> None:
    if journal.done(f"baseline:{wave.name}"):
        return
    end = journal.now()
    for item in evaluator.items(wave.regions):
        check = evaluator.checks[(item.policy, item.check)]
        if check.compare != "baseline":
            continue
        window = baseline_window(check, wave.bake)
        step = evaluator.policies[item.policy].interval
        reading = evaluator.measure_range(item, end - window, end, step)
        value, detail = baseline_reference(check, reading)
        journal.store.set_baseline(journal.id, item.region, item.policy, item.check, value, (end - window, end),
                                   {"samples": detail["samples"], "stat": detail["stat"], "error": detail["error"],
                                    "query": evaluator.query_text(item)})
    journal.mark(f"baseline:{wave.name}", {"at": end})
