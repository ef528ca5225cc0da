"""Reports of a rollout, for people and for pipelines.

- ``render_html``: one self-contained HTML page (timeline, a plot per check and
  region with threshold, baseline or control band and the first breach, the verdicts
  with their evidence, the incident, the plan and policies that ran);
- ``render_junit``: JUnit XML for CI test views;
- ``annotations`` and ``step_summary``: GitHub Actions workflow commands and Markdown.

All of them start from ``gather(store, rollout_id)``, which reads the store once::

    from guardrail.api import Guardrail
    from guardrail.report import gather, render_html

    api = Guardrail("state.db")
    html = render_html(gather(api.store, "20261122-191833"))
"""

from __future__ import annotations

from pathlib import Path

from guardrail.secrets import Redactor
from guardrail.state.protocol import Store
from guardrail.report.data import Report, gather
from guardrail.report.github import annotations, step_summary
from guardrail.report.html import render as render_html
from guardrail.report.junit import render as render_junit


def save(report: Report, *, html: Path | None = None, junit: Path | None = None,
         redactor: Redactor | None = None) -> None:
    """Write the files asked for (parent folders created). ``redactor``: the secrets of
    the plan that ran, when this process knows them (the store holds none already; this
    also covers a secret pasted into a plan or policy file, whose text the report shows)."""
    redact = (redactor or Redactor()).redact
    for path, render in ((html, render_html), (junit, render_junit)):
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(redact(render(report)), encoding="utf-8")


def write(store: Store, rollout_id: str, *, html: Path | None = None, junit: Path | None = None) -> Report:
    """Gather the rollout once and write the files asked for."""
    report = gather(store, rollout_id)
    save(report, html=html, junit=junit, redactor=store.redactor)
    return report


__all__ = ["Report", "annotations", "gather", "render_html", "render_junit", "save", "step_summary", "write"]
