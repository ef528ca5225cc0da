"""The hooks a guardrail plugin can implement.

Every hook is prefixed ``guardrail_``. Implement one with ``@guardrail.hookimpl`` in a
module registered under the ``guardrail`` entry-point group. The built-in plugins
(``guardrail_plugins.*``) use exactly these hooks.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

from guardrail.plugin.events import describe_events

hookspec = pluggy.HookspecMarker("guardrail")

Register = Callable[[str, Any], None]


@hookspec
def guardrail_register_sources(register: Register) -> None:
    """Register metric and probe sources.

    Called once when the plugin manager is built. Call ``register(name, factory)`` for
    each source; ``factory(settings, context)`` must return an object with
    ``measure(probe, at) -> Reading`` (and optionally ``measure_range``), usually a
    ``guardrail.plugin.interfaces.Source`` subclass. Its ``Settings`` model validates the
    plan's ``sources.<name>`` block, its ``Params`` model the keys a check gives it
    (``query``, ``targets``...).

    :param register: ``register(name: str, factory) -> None``; a name registered twice
        is an error unless the later plugin is the user's override.
    :return: nothing.
    """


@hookspec
def guardrail_register_deployers(register: Register) -> None:
    """Register deployers: how a region is moved to a version and back.

    Called once when the plugin manager is built. ``factory(settings, context)`` must
    return an object with ``deploy(target) -> Outcome`` and ``rollback(target) ->
    Outcome`` (see ``guardrail.plugin.interfaces.Deployer``); ``Settings`` validates the plan's
    ``deploy.with`` block.

    :param register: ``register(name: str, factory) -> None``.
    :return: nothing.
    """


@hookspec
def guardrail_register_incident_sinks(register: Register) -> None:
    """Register incident sinks: where the incident of a failed rollout is sent.

    Called once when the plugin manager is built. ``factory(settings, context)`` must
    return an object with ``notify(incident, ref) -> ref`` (see
    ``guardrail.plugin.interfaces.IncidentSink``); ``Settings`` validates
    ``on_failure.incident.with``.

    :param register: ``register(name: str, factory) -> None``.
    :return: nothing.
    """


@hookspec
def guardrail_register_actions(register: Register) -> None:
    """Register remediation actions run on failure or after recovery.

    Called once when the plugin manager is built. ``factory(settings, context)`` must
    return an object with ``run(action_run) -> Outcome`` (see
    ``guardrail.plugin.interfaces.Action``); ``Settings`` validates the action's ``with``.

    :param register: ``register(name: str, factory) -> None``.
    :return: nothing.
    """


@hookspec
def guardrail_register_document_kinds(register: Register) -> None:
    """Register YAML document kinds beyond ``Rollout`` and ``Policy``.

    Called once when the plugin manager is built, so that ``guardrail validate`` can
    check files such as ``kind: Scenario`` that belong to a plugin.

    :param register: ``register(kind: str, validate, *, schema=None)`` where
        ``validate(document: guardrail.language.yamldoc.Document) -> list[guardrail.errors.Problem]``
        and ``schema`` is the pydantic model of the kind's documents, printed by
        ``guardrail schema KIND`` for editor completion.
    :return: nothing.
    """


@hookspec
def guardrail_on_event(event: dict[str, Any]) -> None:
    """Observe every rollout state transition and decision.

    Called synchronously by the engine after the event is committed to the store, for
    notifiers, progress displays and metrics. Must return quickly and must not raise:
    an exception is ignored, it never stops a rollout or a rollback. Incident delivery
    events (``incident.delivered``, ``incident.delivery_failed``...) are emitted from
    the background threads that deliver notifications, so an implementation that keeps
    state must be thread-safe.

    :param event: a JSON-serialisable dict with at least ``rollout_id``, ``kind`` (one of
        the kinds below, from ``guardrail.plugin.events.EVENTS``), ``at`` (epoch seconds)
        and the fields of that kind.
    :return: nothing.

    Event kinds:

    """


guardrail_on_event.__doc__ += describe_events() + "\n"


@hookspec
def guardrail_register_commands(app: Any) -> None:
    """Add sub-commands to the ``guardrail`` command line.

    Called once when the CLI starts, before arguments are parsed.

    :param app: the ``typer.Typer`` application; add commands with ``@app.command()``.
    :return: nothing.
    """
