r"""Label-matcher regexes (``=~``, ``!~``) with Prometheus's meaning, on Python's ``re``.

Prometheus compiles a matcher's string as a Go RE2 regular expression, fully anchored
(``^(?:re)$``), with ``.`` not matching a newline. Python's ``re`` reads most RE2 syntax
the same way; this module closes the gaps that would give a different answer:

- the regex must match the whole label value (``fullmatch``), and no flag is set that
  Prometheus does not set (no ``DOTALL``: ``.`` stops at a newline unless ``(?s)``);
- ``\d``, ``\w``, ``\b`` are ASCII-only, as in RE2 (``re.ASCII``), and ``\s`` is RE2's
  ``[\t\n\f\r ]`` (without ``\v``);
- ``$`` means the very end of the value (Python's ``$`` would also match before a
  final newline), unless the regex sets the multi-line flag ``m``;
- ``\z`` (RE2's end of text) is accepted.

Syntax that Python accepts but RE2 refuses is refused here too, as a PromQL error, so a
query does not work against the sim and fail against Prometheus: backreferences (``\1``,
``(?P=name)``), lookarounds (``(?=``, ``(?!``, ``(?<=``, ``(?<!``), atomic groups
(``(?>``), possessive quantifiers (``a*+``), conditionals (``(?(1)``), comments
(``(?#``), the escapes ``\Z``, ``\u``, ``\U``, ``\N``, and flags other than ``i``, ``m``,
``s`` (``U`` is RE2-only and refused by Python). The check is a single left-to-right
scan that knows escapes and character classes, not a full RE2 parser. Known gaps, both
rare in label matchers: under ``(?i)`` only ASCII letters fold case (RE2 folds Unicode),
and RE2-only syntax Python lacks (``\pL``, ``\Q...\E``, ``[[:alpha:]]``, octal ``\12``)
is refused by the sim although Prometheus accepts it.
"""

from __future__ import annotations

import re
import warnings

from .promql_ast import PromQLError

_QUANTIFIER_END = "*+?}"
_RE2_SPACE = r"\t\n\f\r "
_ALLOWED_FLAGS = set("ims-")


def compile_matcher_regex(text: str, label: str) -> re.Pattern[str]:
    """``text`` compiled with the meaning Prometheus gives it in a label matcher.

    Raises ``PromQLError`` for a regex RE2 (or Python) cannot compile."""
    def refuse(what: str) -> PromQLError:
        return PromQLError(f"invalid regular expression {text!r} for label {label!r}: {what} "
                           "is not supported by RE2, the regex engine of Prometheus")

    out: list[str] = []
    multiline = False
    in_class = False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            nxt = text[i + 1:i + 2]
            if nxt == "":
                out.append(ch)  # a trailing backslash: let re report it
                i += 1
                continue
            if nxt in "123456789":
                raise refuse(f"the backreference \\{nxt}")
            if nxt in "ZuUN":
                raise refuse(f"the escape \\{nxt}")
            if nxt == "z":
                out.append(r"\Z")
            elif nxt == "s":
                out.append(_RE2_SPACE if in_class else f"[{_RE2_SPACE}]")
            elif nxt == "S" and not in_class:
                out.append(f"[^{_RE2_SPACE}]")
            else:
                out.append(text[i:i + 2])
            i += 2
            continue
        if in_class:
            if ch == "[" and text[i + 1:i + 2] == ":":
                raise PromQLError(f"invalid regular expression {text!r} for label {label!r}: POSIX character "
                                  "classes ([[:alpha:]]) are not supported by the sim evaluator")
            if ch == "]" and not _class_start(text, i):
                in_class = False
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            continue
        if ch == "(" and text[i + 1:i + 2] == "?":
            rest = text[i + 2:]
            for prefix, what in (("=", "the lookahead (?="), ("!", "the negative lookahead (?!"),
                                 ("<=", "the lookbehind (?<="), ("<!", "the negative lookbehind (?<!"),
                                 (">", "the atomic group (?>"), ("P=", "the backreference (?P="),
                                 ("(", "the conditional (?("), ("#", "the comment (?#")):
                if rest.startswith(prefix):
                    raise refuse(what)
            flags = re.match(r"[A-Za-z-]*", rest).group(0)
            if flags and not rest.startswith("P<") and rest[len(flags):len(flags) + 1] in (":", ")"):
                unknown = sorted(set(flags) - _ALLOWED_FLAGS - {"U"})
                if unknown:
                    raise refuse(f"the flag {unknown[0]!r}")
                multiline = multiline or "m" in flags.split("-")[0]
        if ch == "+" and i > 0 and text[i - 1] in _QUANTIFIER_END and _is_quantifier(text, i - 1):
            raise refuse("the possessive quantifier " + repr(text[i - 1:i + 1]))
        out.append(ch)
        i += 1
    pattern = "".join(out)
    if not multiline:
        pattern = _end_of_text(pattern)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # Python's notes on future set syntax
            return re.compile(pattern, re.ASCII)
    except re.error as exc:
        raise PromQLError(f"invalid regular expression {text!r} for label {label!r}: {exc}") from None


def _class_start(text: str, i: int) -> bool:
    """Whether the ``]`` at ``i`` is the first character of its class (``[]a]``, ``[^]a]``)."""
    j = i - 1
    if j >= 0 and text[j] == "^":
        j -= 1
    return j >= 0 and text[j] == "[" and (j == 0 or text[j - 1] != "\\")


def _is_quantifier(text: str, i: int) -> bool:
    """Whether the ``*``, ``+``, ``?`` or ``}`` at ``i`` (outside a class) ends a quantifier."""
    backslashes = 0
    j = i - 1
    while j >= 0 and text[j] == "\\":
        backslashes, j = backslashes + 1, j - 1
    if backslashes % 2:
        return False  # escaped: a literal
    if text[i] == "}":
        return re.search(r"\{\d+(?:,\d*)?$", text[:i]) is not None
    if text[i] == "?" and i > 0 and text[i - 1] == "(":
        return False  # the ``?`` of a group's ``(?``
    return True


def _end_of_text(pattern: str) -> str:
    """``$`` outside classes as ``\\Z``: RE2's ``$`` (without ``m``) is the end of the text only."""
    out, in_class, i = [], False, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = not (ch == "]" and not _class_start(pattern, i))
        elif ch == "[":
            in_class = True
        elif ch == "$":
            ch = r"\Z"
        out.append(ch)
        i += 1
    return "".join(out)
