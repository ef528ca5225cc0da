"""Read YAML while remembering where every value came from.

PyYAML's ``safe_load`` forgets positions and silently keeps the last of two
duplicate keys. Here we compose the node tree ourselves, build plain Python values,
and keep a map from key path to (line, column) so that every later error, from
pydantic or from our own checks, can point at the node that causes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from guardrail.errors import Problem
from guardrail.language.types import parse_comparison

try:  # the C parser is several times faster; fall back quietly where it is missing
    _Loader: type = yaml.CSafeLoader
    _Parser: type = yaml.cyaml.CParser
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader
    _Parser = yaml.SafeLoader  # reader, scanner and parser in Python; its composer is replaced below

Path = tuple[str | int, ...]
MERGE_KEY_MESSAGE = "YAML merge keys (<<) are not supported: write the keys out"

# Bounds that keep reading any file fast and small (a few MB of memory, well under a
# second). A plan or policy is a few hundred values at most; these are far above that.
MAX_BYTES = 1_000_000
"""The largest file read, in bytes (and the largest text parsed, in characters)."""
MAX_DEPTH = 64
"""The deepest nesting of mappings and lists."""
MAX_VALUES = 20_000
"""The most values a document may hold once its aliases (``*name``) are expanded: a
few aliases of aliases ("billion laughs") would otherwise expand to billions."""
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


class _TooLarge(Exception):
    """Building stopped: the document expands past ``MAX_VALUES``."""


class _OutOfBounds(yaml.composer.ComposerError):
    """The file passes one of the bounds above (not a syntax error: said as it is)."""


class _BoundedComposer(yaml.composer.Composer):
    """PyYAML's composer, stopping at the first node past the bounds: the C composer
    would build every node of a huge file before we could count them, and link an
    alias to the very node that contains it (``&a [*a]``), which nothing can walk."""

    def __init__(self) -> None:
        yaml.composer.Composer.__init__(self)
        self.nodes = 0
        self.depth = 0
        self.open_anchors: set[str] = set()

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) and event.anchor in self.open_anchors:
            raise _OutOfBounds(None, None, f"recursive alias *{event.anchor}: a value may not contain itself",
                               event.start_mark)
        self.nodes += 1
        if self.nodes > MAX_VALUES:
            raise _OutOfBounds(None, None, f"the file holds more than {MAX_VALUES:,} values", event.start_mark)
        nested = isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent))
        if nested and self.depth >= MAX_DEPTH:
            raise _OutOfBounds(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        anchor = getattr(event, "anchor", None) if nested else None
        self.depth += nested
        if anchor is not None:
            self.open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= nested
            self.open_anchors.discard(anchor)


class _BoundedLoader(_BoundedComposer, _Parser, yaml.resolver.Resolver):
    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        _BoundedComposer.__init__(self)
        yaml.resolver.Resolver.__init__(self)


def _compose(text: str) -> yaml.Node | None:
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


@dataclass
class Document:
    """A parsed YAML file: its data and the position of each node (1-based)."""

    file: str
    data: Any
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    raw: dict[Path, str] = field(default_factory=dict)
    """Source text of scalars that YAML did not read as strings (``2023.10`` → 2023.1)."""
    secrets: dict[str, str] = field(default_factory=dict)
    """Interpolated secret value → how messages may name it (``<value of ${env:X}>``)."""
    text: str = ""
    """The text the document was read from (set when it was read from a file)."""

    def position(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """Where ``path`` is; for a missing path, the nearest enclosing node."""
        path = tuple(path)
        if key and path in self.keys:
            return self.keys[path]
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), (1, 1))

    def problem(self, path: Path, message: str, *, key: bool = False) -> Problem:
        line, column = self.position(path, key=key)
        return Problem(self.file, line, column, format_path(path), message)


def format_path(path: Path) -> str:
    """``('checks', 2, 'fail_if')`` → ``checks[2].fail_if``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def parse(text: str, file: str) -> Document:
    """Parse one YAML document; syntax errors and duplicate keys become problems."""
    doc = Document(file=file, data=None)
    if len(text) > MAX_BYTES:
        doc.problems.append(Problem(file, 1, 1, "", f"the file is too large ({len(text):,} characters;"
                                                      f" the limit is {MAX_BYTES:,})"))
        return doc
    try:
        node = _compose(text)
    except _OutOfBounds as exc:
        doc.problems.append(Problem(file, exc.problem_mark.line + 1, exc.problem_mark.column + 1, "", exc.problem))
        return doc
    except yaml.MarkedYAMLError as exc:
        doc.problems.append(_unquoted_comparison(exc, text, file) or _syntax_problem(exc, file))
        return doc
    except yaml.reader.ReaderError as exc:  # a control character: PyYAML gives an offset, not a line
        # libyaml counts UTF-8 bytes, the pure-Python reader characters.
        before = text.encode()[: exc.position].decode(errors="ignore") if _Loader is not yaml.SafeLoader else text[: exc.position]
        line, column = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        doc.problems.append(Problem(file, line, column, "", f"YAML syntax error: {exc.reason} (U+{code:04X})"))
        return doc
    except yaml.YAMLError as exc:
        doc.problems.append(Problem(file, 1, 1, "", "YAML error: " + " ".join(str(exc).split())))
        return doc
    except RecursionError:  # only the pure-Python parser recurses; libyaml stops at 1000 levels itself
        doc.problems.append(Problem(file, 1, 1, "", f"the file nests deeper than {MAX_DEPTH} levels"))
        return doc
    if node is None:
        doc.problems.append(Problem(file, 1, 1, "", "the file is empty"))
        return doc
    try:
        doc.data = _Builder(doc, text).build(node, ())
    except _TooLarge as exc:
        doc.problems.append(exc.args[0])
        doc.data = None
    return doc


def _syntax_problem(exc: yaml.MarkedYAMLError, file: str) -> Problem:
    """PyYAML's two-part messages ("while scanning a quoted scalar" / "found unexpected
    end of stream") as one line, at the mark a person should look at."""
    problem = (exc.problem or "invalid YAML").removeprefix("but ")
    mark, context = exc.problem_mark, exc.context_mark
    if context is not None and (mark is None or "end of stream" in problem):
        mark = context  # an unclosed quote or bracket: point at where it opened, not at EOF
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    message = f"YAML syntax error: {problem}"
    if "tab character" in problem:  # PyYAML's context ("while scanning a plain scalar") only misleads here
        return Problem(file, line, column, "", f"{message}: indent with spaces")
    if exc.context:
        where = f" at line {context.line + 1}, column {context.column + 1}" if context is not None and context is not mark else ""
        message += f" ({exc.context}{where})"
    return Problem(file, line, column, "", message)


_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")
_KEY_BEFORE = re.compile(r"([^\s:{},\[\]#][^:{},\[\]#]*?)\s*:\s*$")


def quote_hint(key: str | int | None, text: str) -> str:
    """What to write instead of an unquoted comparison, in the author's own words."""
    written = f'"{text}"'
    return f"quote it: {key}: {written}" if isinstance(key, str) else f"quote it: {written}"


def _comparison_at(text: str, line: int, column: int) -> tuple[str | None, str] | None:
    """(the key before it, the comparison) when an unquoted comparison such as
    ``> 1.5`` starts at ``line``:``column`` (0-based), else None."""
    lines = _LINE_BREAK.split(text)  # YAML's line breaks, not every one str.splitlines knows
    if line >= len(lines):
        return None
    source = lines[line]
    value = re.split(r"\s#|[,}\]]", source[column:], maxsplit=1)[0].strip()
    try:
        parse_comparison(value)
    except ValueError:
        return None
    key = _KEY_BEFORE.search(source[:column])
    return (key.group(1).strip(" -'\"") if key else None), value


def _unquoted_comparison(exc: yaml.MarkedYAMLError, text: str, file: str) -> Problem | None:
    """``fail_if: > 1.5``: YAML reads ``>`` as the start of a folded block of text and
    stops at the number; in a flow mapping ``>`` cannot start a value at all. Say what
    the author meant, at the ``>``."""
    for mark in (exc.context_mark, exc.problem_mark):
        found = _comparison_at(text, mark.line, mark.column) if mark is not None else None
        if found is not None:
            key, value = found
            why = (f"YAML reads {value[0]!r} as the start of a block of text" if "block scalar" in (exc.context or "")
                   else f"YAML cannot start a value with {value[0]!r}")
            return Problem(file, mark.line + 1, mark.column + 1, "", f"{quote_hint(key, value)} (unquoted, {why})")
    return None


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


_scalars = _Loader("")  # only used for its scalar constructors (ints, floats, bools, nulls)


class _Builder:
    """Plain values from the node graph. The composer bounded the graph; its aliases can
    still multiply it ("billion laughs": nine aliases of nine aliases of...), so the
    values built, each alias expanded, are counted too."""

    def __init__(self, doc: Document, text: str = ""):
        self.doc = doc
        self.count = 0
        self.text = text

    def build(self, node: yaml.Node, path: Path) -> Any:
        doc = self.doc
        doc.values[path] = _mark(node)
        self.count += 1
        if self.count > MAX_VALUES:
            # Inside an alias every position is the anchor's: point at the top-level value being built.
            raise _TooLarge(Problem(doc.file, *doc.values[path[:1]], format_path(path[:1]),
                                    f"the document expands to more than {MAX_VALUES:,} values through YAML aliases"
                                    " (*name); write the values out"))
        comparison = _misread_comparison(node, self.text)
        if comparison is not None:  # `fail_if: != 0` (a tag) or `fail_if: >2` (a block header)
            doc.problems.append(Problem(doc.file, *_mark(node), format_path(path), quote_hint(
                path[-1] if path else None, comparison) + f" (unquoted, YAML reads {comparison[0]!r} as the start of "
                + ("a block of text)" if node.style in (">", "|") else "a tag)")))
            return comparison
        if node.tag.startswith("!") and node.tag != "!":  # local tags (`!secret x`): nothing gives them a meaning
            doc.problems.append(Problem(doc.file, *_mark(node), format_path(path), f"YAML tag {node.tag!r} is not supported"))
            if isinstance(node, yaml.ScalarNode):
                return node.value
        elif isinstance(node, yaml.MappingNode) and node.tag != _MAP or isinstance(node, yaml.SequenceNode) and node.tag != _SEQ:
            # `!!set`, `!!omap`, `!!str {a: 1}`...: the language has mappings and lists only
            what = "mapping" if isinstance(node, yaml.MappingNode) else "list"
            doc.problems.append(Problem(doc.file, *_mark(node), format_path(path),
                                        f"YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')!r} is not supported on a {what}"))
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        return _scalar(node, path, doc)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict:
        doc = self.doc
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                doc.problems.append(
                    Problem(doc.file, *_mark(key_node), format_path(path), MERGE_KEY_MESSAGE)
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                doc.problems.append(Problem(doc.file, *_mark(key_node), format_path(path), "keys must be plain scalars"))
                continue
            # The key's own text: `on:` stays "on" (not True) and `1:` stays "1".
            key = key_node.value
            if key in out:
                first = doc.keys[path + (key,)]
                doc.problems.append(
                    Problem(
                        doc.file,
                        *_mark(key_node),
                        format_path(path + (key,)),
                        f"duplicate key {key!r} (first defined at line {first[0]})",
                    )
                )
                continue
            doc.keys[path + (key,)] = _mark(key_node)
            out[key] = self.build(value_node, path + (key,))
        return out


def _misread_comparison(node: yaml.Node, text: str) -> str | None:
    """The comparison an author wrote unquoted where YAML read something else: ``!= 0``
    is the tag ``!=`` on ``0``, ``>2`` a folded block (indented 2) that is empty."""
    if not isinstance(node, yaml.ScalarNode):
        return None
    if node.tag.startswith("!") and node.tag != "!" and not node.tag.startswith("tag:"):
        candidate = f"{node.tag} {node.value}".strip()
    elif node.style in (">", "|"):
        found = _comparison_at(text, node.start_mark.line, node.start_mark.column)
        candidate = found[1] if found is not None else ""
    else:
        return None
    try:
        return parse_comparison(candidate).text
    except ValueError:
        return None


def _scalar(node: yaml.Node, path: Path, doc: Document) -> Any:
    if node.tag == "!":  # the non-specific tag: "this is a string"
        return node.value
    try:
        # The constructor for the resolved tag, called directly: construct_object would
        # cache every node it ever saw on the shared loader.
        value = _Loader.yaml_constructors.get(node.tag, _Loader.yaml_constructors[None])(_scalars, node)
    except Exception as exc:  # noqa: BLE001 - `!!float abc`, `!!bool maybe`, `!!timestamp soon`, `!!binary` garbage...
        # PyYAML's constructors trust the resolver's regexes; an explicit tag bypasses them,
        # so any exception (KeyError, AttributeError, OverflowError...) means "not that type".
        reason = getattr(exc, "problem", None) or (str(exc) if isinstance(exc, (ValueError, TypeError)) else "")
        reason = reason or f"not a valid {node.tag.replace('tag:yaml.org,2002:', '!!')}"
        doc.problems.append(Problem(doc.file, *_mark(node), format_path(path), f"cannot read {node.value!r}: {reason}"))
        return node.value
    if isinstance(value, bytes):  # `!!binary`: the language has no bytes (pydantic would take them as text)
        doc.problems.append(Problem(doc.file, *_mark(node), format_path(path),
                                    f"cannot read {node.value!r}: YAML tag '!!binary' is not supported"))
        return node.value
    if not isinstance(value, str):
        doc.raw[path] = node.value
    return value
