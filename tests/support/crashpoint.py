"""Test plugin: a bug inside the rollout engine, at a chosen point.

Loaded into a ``guardrail`` subprocess with ``GUARDRAIL_PLUGINS=crashpoint`` (this
folder on ``PYTHONPATH``). With ``CRASHPOINT_AT=KIND#N`` the N-th event of that kind
arms a fault: the engine's next state transition raises ``RuntimeError`` (once). With
``state.failed#1`` that is the moment after a failure was decided and before the
rollback starts, where a bug hurts most.

It also adds a ``crash-now`` command that raises, for the CLI's own answer to a bug.
"""

import os
import threading

from guardrail import hookimpl

_by_kind: dict[str, int] = {}
_lock = threading.Lock()


class InjectedFault(RuntimeError):
    pass


def _arm() -> None:
    from guardrail.rollout.engine import Engine

    original = Engine.transition

    def once(self, *args, **kwargs):
        Engine.transition = original  # one fault only: containment's own transitions work
        raise InjectedFault(f"injected fault before the transition to {args[0] if args else '?'}")

    Engine.transition = once


@hookimpl
def guardrail_on_event(event):
    raw = os.environ.get("CRASHPOINT_AT", "")
    if not raw:
        return
    kind, _, nth = raw.partition("#")
    with _lock:
        _by_kind[event["kind"]] = _by_kind.get(event["kind"], 0) + 1
        if event["kind"] == kind and _by_kind[kind] == int(nth or 1):
            _arm()


@hookimpl
def guardrail_register_commands(app):
    @app.command("crash-now")
    def crash_now() -> None:
        """Raise an unexpected error (a test of the CLI's answer to a bug)."""
        secret = os.environ.get("CRASHPOINT_SECRET", "")
        raise KeyError(f"a bug that mentions {secret or 'nothing secret'}")
