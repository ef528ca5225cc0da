"""Where a character of a string value is in its YAML file.

A problem found inside a value (a query's unclosed parenthesis) is best shown at that
character, not at the value's start. The value is not a slice of the file: quotes,
escapes (``\\"``, ``''``), folded line breaks and a block scalar's indentation lie
between them. ``position`` walks the file's text from the value's start alongside the
value and stops at the character asked for; where the two cannot be matched (a
``${env:NAME}`` filled in, an escape the walk does not know) it answers the value's start.
"""

from __future__ import annotations

from guardrail.language.yamldoc import Document, Path

_BLANK = " \t\r\n"
_ESCAPE_LENGTH = {"x": 4, "u": 6, "U": 10}
"""Source characters of ``\\xHH``, ``\\uHHHH``, ``\\UHHHHHHHH``; others take two."""


def position(doc: Document, path: Path, value: str, offset: int) -> tuple[int, int]:
    """(line, column), 1-based, of ``value[offset]`` in the file; the value's start
    when it cannot be told."""
    start = doc.position(path)
    index = _index(doc.text, *start)
    if index is None or offset < 0:
        return start
    found = _walk(doc.text, index, value, min(offset, len(value)))
    if found is None:
        return start
    line = doc.text.count("\n", 0, found) + 1
    return line, found - (doc.text.rfind("\n", 0, found) + 1) + 1


def _index(text: str, line: int, column: int) -> int | None:
    at = 0
    for _ in range(line - 1):
        at = text.find("\n", at) + 1
        if at == 0:
            return None
    at += column - 1
    return at if at < len(text) else None


def _walk(text: str, j: int, value: str, offset: int) -> int | None:
    """The index in ``text`` of ``value[offset]``, the scalar starting at ``text[j]``."""
    style = text[j]
    if style in "|>":  # a block scalar: its content starts on the next line
        j = text.find("\n", j) + 1
        if j == 0:
            return None
    elif style in "\"'":
        j += 1
    i = 0
    while j < len(text):
        ch = text[j]
        if style == '"' and ch == "\\" and j + 1 < len(text):
            if i == offset:
                return j
            if text[j + 1] == "\n":  # an escaped line break: nothing in the value
                j += 2
                while j < len(text) and text[j] in " \t":
                    j += 1
                continue
            j += _ESCAPE_LENGTH.get(text[j + 1], 2)
            i += 1
            continue
        if style == "'" and text.startswith("''", j):
            if i == offset:
                return j
            j, i = j + 2, i + 1
            continue
        if i < len(value) and ch == value[i]:
            if i == offset:
                return j
            j, i = j + 1, i + 1
        elif ch in _BLANK:  # indentation, or a line break folded into a space
            j += 1
        elif i < len(value) and value[i] in " \n":  # a folded line break the file spells otherwise
            i += 1
        else:
            return None
    return None
