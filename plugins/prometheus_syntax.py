"""Is a query PromQL? Answered offline, for ``guardrail validate`` (``check_query``).

The parser is ``promql-parser`` (the Rust crate GreptimeDB maintains, with Python
bindings): the whole grammar, its type checks included, parsed in microseconds. It is
imported on the first query, so a command that checks none does not pay for it.

Where it and Prometheus disagree, an offline check must never refuse what Prometheus
accepts (a policy repository's CI would block a valid change), so:

- ``holt_winters``, renamed ``double_exponential_smoothing`` in Prometheus 3, is
  declared to the parser, which knows the new name only;
- a backtick string is raw in PromQL (``=~`\\d+```), but the parser reads escapes in
  it: it is handed the same string double-quoted.

- it takes MetricsQL's ``or`` between label matchers, which no Prometheus does: refused here;
- it panics on a number of seconds no duration can hold (``x offset 1e20``, ``x[inf]``),
  printing a Rust backtrace: such a query is refused before it reaches the parser.

The rest is newer grammar it accepts and an older Prometheus refuses (quoted UTF-8
label names, functions of Prometheus 3) or regex syntax Go's RE2 refuses and Rust's
accepts: ``guardrail validate --live`` asks the Prometheus a plan uses. The test
``tests/test_prometheus_syntax.py`` holds every known difference.

The parser's messages carry no position; ``locate`` finds one for the messages that
name a place (an unclosed parenthesis, an unexpected character, an unknown function...),
by scanning the query with PromQL's rules for strings and comments.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any, Iterator

from guardrail import QueryProblem

__all__ = ["check_promql", "locate"]

_parser: Any = None


def _parse() -> Any:
    """``promql_parser.parse``, imported and set up on first use."""
    global _parser
    if _parser is None:
        import promql_parser

        kinds = promql_parser.ValueType
        try:
            promql_parser.register_extra_functions([promql_parser.Function(
                "holt_winters", [kinds.Matrix, kinds.Scalar, kinds.Scalar], kinds.Vector)])
        except ValueError:  # a later version that knows it
            pass
        _parser = promql_parser.parse
    return _parser


@functools.lru_cache(maxsize=4096)
def check_promql(query: str) -> QueryProblem | None:
    """None when ``query`` parses as PromQL, else what is wrong and where. Remembered:
    a plan and a folder's policies ask about the same queries again."""
    huge = _huge_duration(query)
    if huge is not None:
        return QueryProblem("invalid PromQL: a duration of more than 292 years (or not a number)", huge)
    try:
        expr = _parse()(_raw_strings_quoted(query))
    except ValueError as exc:
        message = str(exc)
        if message in ("", "invalid promql query"):  # the parser's word when it names nothing
            return QueryProblem("invalid PromQL: a syntax error the parser does not place"
                                " (guardrail validate --live asks Prometheus where)")
        return QueryProblem(f"invalid PromQL: {message}", locate(query, message))
    except BaseException as exc:  # a panic of the Rust parser: pyo3's PanicException is no Exception
        if type(exc).__name__ != "PanicException":
            raise
        return QueryProblem(f"invalid PromQL: the parser failed: {exc}")
    if _OR.search(query) and not _promql_matchers(expr):
        return QueryProblem("invalid PromQL: 'or' between label matchers is MetricsQL, not PromQL:"
                            " join two selectors with 'or' instead")
    return None


_OR = re.compile(r"\bor\b", re.IGNORECASE)
_OFFSET = re.compile(r"\boffset\b", re.IGNORECASE)
_NUMBER = re.compile(r"\s*([+-]?\s*(?:0x[0-9a-f]+|inf|nan|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?))(?![\w.])", re.IGNORECASE)
MAX_SECONDS = 9.2e9
"""The longest duration Prometheus has (Go's ``time.Duration``: 2^63 ns, 292 years)."""


def _huge_duration(query: str) -> int | None:
    """Where a number of seconds stands for a duration (after ``offset``, in ``[...]``)
    that no duration can hold: infinite, NaN or past 292 years. The parser panics on
    those (``Duration::from_secs_f64``), printing a Rust backtrace: they never reach it."""
    code = "".join(" " * (end - start) if kind != "char" else query[start]
                   for kind, start, end in _tokens(query))
    starts, depth = [match.end() for match in _OFFSET.finditer(code)], 0
    for i, ch in enumerate(code):
        if ch == "[":
            depth += 1
            starts.append(i + 1)
        elif ch == "]":
            depth = max(depth - 1, 0)
        elif ch == ":" and depth:
            starts.append(i + 1)
    for start in sorted(starts):
        number = _NUMBER.match(code, start)
        if number is None:
            continue
        text = re.sub(r"\s", "", number.group(1))
        value = float(int(text, 16)) if "x" in text.lower() else float(text)
        if not math.isfinite(value) or abs(value) > MAX_SECONDS:
            return number.start(1)
    return None


def _promql_matchers(expr: Any) -> bool:
    """Whether no selector of ``expr`` joins its matchers with ``or``: the parser takes
    MetricsQL's ``{a="1" or b="2"}``, which no Prometheus does."""
    import promql_parser

    def plain(node: Any) -> bool:
        matchers = getattr(node, "matchers", None)
        return not (isinstance(matchers, promql_parser.Matchers) and matchers.or_matchers)

    return promql_parser.walk(expr, plain)


def _tokens(query: str) -> Iterator[tuple[str, int, int]]:
    """(kind, start, end) of each string (``"``, ``'``, backtick), comment (``#``) and
    other character of ``query``; an unterminated string runs to the end, kind ``open``."""
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch in "\"'`":
            j = i + 1
            while j < n and query[j] != ch and not (ch != "`" and query[j] == "\n"):
                j += 2 if query[j] == "\\" and ch != "`" else 1
            if j >= n or query[j] != ch:
                yield "open", i, n
                return
            yield "string", i, j + 1
            i = j + 1
        elif ch == "#":
            j = query.find("\n", i)
            j = n if j < 0 else j
            yield "comment", i, j
            i = j
        else:
            yield "char", i, i + 1
            i += 1


def _raw_strings_quoted(query: str) -> str:
    """Backtick strings with a backslash rewritten as the double-quoted string they mean."""
    if "`" not in query:
        return query
    out, last = [], 0
    for kind, start, end in _tokens(query):
        if kind == "string" and query[start] == "`" and "\\" in query[start:end]:
            body = query[start + 1:end - 1].replace("\\", "\\\\").replace('"', '\\"')
            out += [query[last:start], f'"{body}"']
            last = end
    return "".join(out) + query[last:]


_CLOSERS = {")": "(", "]": "[", "}": "{"}
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)+)'")


def locate(query: str, message: str) -> int | None:
    """The offset in ``query`` the parser's ``message`` speaks of, when it names one."""
    tokens = list(_tokens(query))
    code = [(start, query[start]) for kind, start, _ in tokens if kind == "char"]
    if message.startswith("unterminated quoted string"):
        return next((start for kind, start, _ in tokens if kind == "open"), None)
    if "end of input" in message:
        return len(query.rstrip())
    if message.startswith(("unclosed left", "unexpected right", "unexpected character inside brackets: ')'")):
        return _unbalanced(code)
    named = _QUOTED.search(message)
    if named is None:
        return None
    word = named.group(1)
    if message.startswith("unexpected character"):
        return next((start for start, ch in code if ch == word), None)
    if message.startswith("unknown function"):
        found = re.search(rf"(?<![\w:]){re.escape(word)}\s*\(", query)
        return found.start() if found else None
    if message.startswith("unknown escape sequence"):
        return next((start + i for kind, start, end in tokens if kind == "string" and query[start] != "`"
                     for i in _escapes(query[start:end]) if query[start + i + 1] == word), None)
    return None


def _unbalanced(code: list[tuple[int, str]]) -> int | None:
    """The first closing bracket without its opening one, else the last one left open."""
    stack: list[tuple[int, str]] = []
    for start, ch in code:
        if ch in "([{":
            stack.append((start, ch))
        elif ch in _CLOSERS:
            if not stack or stack[-1][1] != _CLOSERS[ch]:
                return start
            stack.pop()
    return stack[-1][0] if stack else None


def _escapes(string: str) -> Iterator[int]:
    """Offsets of the backslashes that start an escape in a quoted string."""
    i = 1
    while i < len(string) - 1:
        if string[i] == "\\":
            yield i
            i += 2
        else:
            i += 1
