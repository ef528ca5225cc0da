r"""Where a template value lands in a PromQL query, and how it is escaped there.

A policy may put ``{{name}}`` only inside a double-quoted PromQL string, and every value
is escaped for one (``escape_string``), so no value can end the string. That is not
enough where the string is the operand of a regex matcher (``=~``, ``!~``): there
Prometheus reads the string as an RE2 regular expression, and a region called ``r.1``
would also select ``rx1``, ``.*`` every region. So a value that lands there is first
quoted as a regular expression (``quote_regex``), then escaped as a string, and matches
exactly itself::

    region="{{region}}"        r.1   ->  region="r.1"
    region=~"{{region}}"       r.1   ->  region=~"r\\.1"
    region=~"{{region}}-.*"    r.1   ->  region=~"r\\.1-.*"        (the policy's regex stays one)
    host=~"{{hosts}}"          [a.x, b.x]  ->  host=~"(?:a\\.x|b\\.x)"   (any of the items)

A list elsewhere keeps the generic meaning (its items joined with commas); an empty
list in a regex matcher matches no value at all, as "any of none" should.

The regex arguments of functions (``label_replace``'s fifth) are not told apart from
other strings: a value there is string-escaped only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

PLACEHOLDER = re.compile(r"\{\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\}")
_REGEX_METACHARACTERS = re.compile(r"([\\.+*?()|\[\]{}^$])")
_REGEX_MATCHER = re.compile(r"[=!]~\s*$")
NOTHING = r"[^\s\S]"
"""An RE2 (and Python) regex that matches no text, not even the empty one."""


@dataclass(frozen=True)
class Landing:
    """What surrounds a placeholder, read from the query text before it."""

    quote: str | None
    """The open string's quote (``"``, ``'`` or a backtick), ``#`` in a comment, else None."""
    after_backslash: bool = False
    """The placeholder follows an unpaired backslash, of the string or of its regex."""
    regex: bool = False
    """Inside the double-quoted operand of ``=~`` or ``!~``."""


def landing(before: str) -> Landing:
    """Where a placeholder preceded by ``before`` (the query text up to it) lands."""
    quote, opened, i = None, 0, 0
    while i < len(before):
        ch = before[i]
        if quote is None:
            if ch in "\"'`#":
                quote, opened = ch, i
        elif quote == "#":
            quote = None if ch == "\n" else quote
        elif ch == "\\" and quote != "`":
            if i + 1 == len(before):
                return Landing(quote, after_backslash=True)
            i += 1  # the escaped character cannot end the string
        elif ch == quote:
            quote = None
        i += 1
    regex = quote == '"' and bool(_REGEX_MATCHER.search(before, 0, opened))
    return Landing(quote, after_backslash=regex and _regex_backslashes(before[opened + 1:]) % 2 == 1, regex=regex)


def _regex_backslashes(body: str) -> int:
    """How many backslashes the regex in a string body (``\\\\`` is one) ends with."""
    count, i = 0, 0
    while i < len(body):
        if body[i] == "\\":
            count = count + 1 if body[i + 1:i + 2] == "\\" else 0
            i += 2
        else:
            count, i = 0, i + 1
    return count


def templates_outside_double_quotes(query: str) -> list[str]:
    """The ``{{name}}`` placeholders of ``query`` that are not inside a ``"..."`` string
    (comments excepted: an escaped value cannot end a comment)."""
    return [m.group(0) for m in PLACEHOLDER.finditer(query) if landing(query[:m.start()]).quote not in ('"', "#")]


def templates_after_backslash(query: str) -> list[str]:
    r"""The placeholders that follow an unpaired backslash in a string (``"\{{region}}"``),
    or in a regex (``=~"\\{{region}}"``): the value's first character would pair with it."""
    return [m.group(0) for m in PLACEHOLDER.finditer(query) if landing(query[:m.start()]).after_backslash]


def escape_string(value: str) -> str:
    """Escape a value for a double-quoted PromQL string literal."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def quote_regex(value: str) -> str:
    """An RE2 regex matching exactly ``value`` (the characters Go's ``regexp.QuoteMeta`` escapes)."""
    return _REGEX_METACHARACTERS.sub(r"\\\1", value)


def escape_promql(value: str | Sequence[str], before: str | None = None) -> str:
    """A template value made safe for where it lands in a PromQL query.

    ``before`` is the query text up to the placeholder (``render`` passes it). Inside
    the string operand of ``=~`` or ``!~`` the value is quoted as a regex, and a list
    becomes the alternation of its quoted items; anywhere else (or without ``before``)
    it is escaped as a string, a list's items joined with commas."""
    items = [value] if isinstance(value, str) else list(value)
    if before is None or not landing(before).regex:
        return escape_string(",".join(items))
    if not items:
        return escape_string(NOTHING)
    quoted = [quote_regex(item) for item in items]
    return escape_string(quoted[0] if len(quoted) == 1 else f"(?:{'|'.join(quoted)})")
