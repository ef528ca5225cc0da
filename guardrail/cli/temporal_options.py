"""The options that send a command to Temporal workers (``guardrail.cli.temporal_commands``)."""

from __future__ import annotations

from typing import Annotated

import typer

TEMPORAL_ENV = "GUARDRAIL_TEMPORAL"
HEARTBEAT_ENV = "GUARDRAIL_TEMPORAL_HEARTBEAT"

TemporalOption = Annotated[str | None, typer.Option(
    "--temporal", metavar="HOST:PORT", envvar=TEMPORAL_ENV, show_default=False,
    help=f"run on Temporal workers: the Temporal frontend's address (default ${TEMPORAL_ENV})")]
NamespaceOption = Annotated[str | None, typer.Option(
    "--namespace", envvar="GUARDRAIL_TEMPORAL_NAMESPACE", show_default=False,
    help="Temporal namespace (default: the rollout's, else 'default')")]
TaskQueueOption = Annotated[str | None, typer.Option(
    "--task-queue", envvar="GUARDRAIL_TEMPORAL_TASK_QUEUE", show_default=False,
    help="task queue the workers poll (default: the rollout's, else 'guardrail')")]
DetachOption = Annotated[bool, typer.Option(
    "--detach", help="with --temporal: submit, print the rollout id as one JSON line and exit 0")]
