"""The event kinds the ``guardrail_on_event`` hookspec documents are the ones the code
emits: one list (``guardrail.plugin.events``), checked against the source."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from guardrail.plugin import hookspecs
from guardrail.plugin.events import EVENTS, STATES

SOURCE = Path(__file__).resolve().parents[1] / "guardrail"
INCIDENT_STATUSES = ("identified", "monitoring", "resolved")  # IncidentTracker._publish: "incident." + status


def _calls(name: str) -> list[ast.Call]:
    calls = []
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if called == name:
                    calls.append(node)
    return calls


def _literal_kinds() -> set[str]:
    """The string constants given as the kind: ``emit(KIND, ...)``, ``add_event(id, at, KIND, ...)``."""
    kinds = set()
    for call in _calls("emit"):
        if call.args and not isinstance(call.args[0], ast.Dict):  # the CLI's emit(document): not an event
            kinds |= _strings(call.args[:1])
    for call in _calls("add_event"):
        kinds |= _strings(call.args[2:3])
    return {k for k in kinds if not k.endswith(".")}  # "incident." + status: checked through INCIDENT_STATUSES


@functools.cache
def _constants() -> dict[str, str]:
    """Module-level ``NAME = "text"`` assignments: a kind may be emitted through one."""
    found = {}
    for path in SOURCE.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                    and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                found[node.targets[0].id] = node.value.value
    return found


def _strings(args: list[ast.expr]) -> set[str]:
    constants = _constants()
    out = set()
    for arg in args:
        for n in ast.walk(arg):
            if isinstance(n, ast.Constant) and isinstance(n.value, str):
                out.add(n.value)
            elif isinstance(n, ast.Name) and n.id in constants:
                out.add(constants[n.id])
    return out


def test_every_emitted_kind_is_documented_and_every_documented_kind_is_emitted():
    emitted = _literal_kinds()
    emitted |= {f"state.{s}" for s in STATES} | {f"incident.{s}" for s in INCIDENT_STATUSES}
    assert emitted - set(EVENTS) == set(), "emitted but not in guardrail.plugin.events.EVENTS"
    assert set(EVENTS) - emitted == set(), "documented in EVENTS but never emitted"


def test_every_state_the_engine_enters_is_listed():
    entered = {call.args[0].value for call in _calls("transition")
               if call.args and isinstance(call.args[0], ast.Constant)}
    entered |= {"failed"}  # _fail: "aborted" if failure.aborted else "failed"
    assert entered <= set(STATES), entered - set(STATES)


def test_the_hookspec_lists_every_kind():
    doc = hookspecs.guardrail_on_event.__doc__
    assert all(f"``{kind}``" in doc for kind in EVENTS)
