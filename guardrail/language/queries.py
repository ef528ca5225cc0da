"""A check's query, checked offline by its source's own query language.

A source that declares ``check_query`` (``guardrail.plugin.interfaces.Source``) is
asked about the check's ``query`` with every ``{{name}}`` filled with ``x``: a value
every query language takes inside a string, where templates must sit. guardrail knows
no query language itself; the source's answer is located at the character it names,
mapped back through the placeholders to the query as written in the file.
"""

from __future__ import annotations

import re
from typing import Any

from guardrail.errors import Problem
from guardrail.language import scalar_offsets
from guardrail.language.yamldoc import Document, Path, format_path

PLACEHOLDER = "x"
_TEMPLATE = re.compile(r"\{\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\}")


def query_problems(factory: Any, params: dict[str, Any], doc: Document, at: Path) -> list[Problem]:
    """The problem ``factory.check_query`` finds in ``params["query"]``, at the check ``at``."""
    check = getattr(factory, "check_query", None)
    query = params.get("query")
    if check is None or not isinstance(query, str):
        return []
    filled, spans = fill(query)
    problem = check(filled)
    if problem is None:
        return []
    path = at + ("query",)
    if problem.offset is None:  # the parser names no place: the query's start
        line, column = doc.position(path)
    else:
        line, column = scalar_offsets.position(doc, path, query, written_offset(spans, problem.offset))
    return [Problem(doc.file, line, column, format_path(path), problem.message)]


def fill(query: str) -> tuple[str, list[tuple[int, int, int]]]:
    """``query`` with each placeholder replaced by ``PLACEHOLDER``, and for each one
    (offset in the filled text, offset in ``query``, its length in ``query``)."""
    parts, spans, last, shift = [], [], 0, 0
    for match in _TEMPLATE.finditer(query):
        parts += [query[last:match.start()], PLACEHOLDER]
        spans.append((match.start() + shift, match.start(), match.end() - match.start()))
        shift += len(PLACEHOLDER) - (match.end() - match.start())
        last = match.end()
    return "".join(parts) + query[last:], spans


def written_offset(spans: list[tuple[int, int, int]], offset: int) -> int:
    """Where ``offset`` of the filled query is in the query as written: inside a
    placeholder's value, at the placeholder."""
    for filled_at, written_at, length in reversed(spans):
        if offset >= filled_at + len(PLACEHOLDER):
            return written_at + length + offset - filled_at - len(PLACEHOLDER)
        if offset >= filled_at:
            return written_at
    return offset
