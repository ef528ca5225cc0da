"""How both stores write values: JSON text that keeps infinities (SQLite's and
PostgreSQL's JSON reject them), the fields of a measurement row, and the masking of
secrets in stored ticks before any backend sees them."""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Iterator, Mapping

from guardrail.secrets import Redactor
from guardrail.state.schema import PACKED, ROW_SPAN


def redact_ticks(redactor: Redactor, ticks: list[tuple]) -> None:
    """Mask secrets in the reason, evidence and query of every evaluation of ``ticks``
    (``(phase, policy, tick, at, evaluations)``), in place, before any backend stores them."""
    if not redactor.active:
        return
    redact = redactor.redact
    reason_at, evidence_at, query_at = PACKED.index("reason"), PACKED.index("evidence"), PACKED.index("query")
    queries: dict[Any, Any] = {}  # a rendered query (an http URL may hold a secret) repeats every tick
    for *_, evaluations in ticks:
        for evaluation in evaluations:
            evaluation[reason_at] = redact(evaluation[reason_at])
            evaluation[evidence_at] = redact(evaluation[evidence_at])
            query = evaluation[query_at]
            if isinstance(query, str):
                if query not in queries:
                    queries[query] = redact(query)
                evaluation[query_at] = queries[query]


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


MEASUREMENT_COLUMNS = ("phase", "tick", "at", "region", "policy", "check_name", "status", "value", "threshold",
                       "reference", "comparison", "pending", "reason", "query", "evidence", "breach_since",
                       "first_breach_at", "streak", "evaluations", "failures", "inconclusives")
"""The fields of a measurement row (``measurements``), in order."""

_NON_FINITE = re.compile(r'"(?:[^"\\]|\\.)*"|-?Infinity|NaN')
_AS_JSON = {"Infinity": "1e999", "-Infinity": "-1e999", "NaN": "null"}


def _json_text(value: Any) -> str:
    """Strict JSON, so SQLite's JSON functions read it: infinities become 1e999 (read back
    as infinities by Python and SQLite alike), NaN becomes null."""
    text = json.dumps(value, default=str)
    if "Infinity" in text or "NaN" in text:
        text = _NON_FINITE.sub(lambda m: _AS_JSON.get(m.group(), m.group()), text)
    return text


def unpack_tick(tick: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The evaluations of a stored tick row, each as a measurement row (``MEASUREMENT_COLUMNS``
    plus ``id``, ``rollout_id`` and ``check``), numbered as the ``measurements`` view does."""
    common = {"rollout_id": tick["rollout_id"], "phase": tick["phase"], "tick": tick["tick"], "at": tick["at"],
              "policy": tick["policy"]}
    for k, values in enumerate(json.loads(tick["evaluations"])):
        row = dict(zip(PACKED, values), id=tick["id"] * ROW_SPAN + k, **common)
        row["check"], row["pending"], row["evidence"] = row["check_name"], bool(row["pending"]), row["evidence"] or {}
        yield row


def unpack_ticks(ticks: Iterable[Mapping[str, Any]], *, region: str | None = None,
                 check: str | None = None) -> list[dict[str, Any]]:
    """Every evaluation of ``ticks`` in order (``unpack_tick``), only ``region``'s and
    ``check``'s when given: the ``measurements`` of both stores."""
    return [row for tick in ticks for row in unpack_tick(tick)
            if (region is None or row["region"] == region) and (check is None or row["check"] == check)]


def ticks_of(ids: Iterable[int]) -> dict[int, set[int]]:
    """Measurement ids grouped by the id of the tick row that holds them."""
    wanted: dict[int, set[int]] = {}
    for i in ids:
        wanted.setdefault(i // ROW_SPAN, set()).add(i)
    return wanted
