"""Read YAML while remembering where every value came from.

PyYAML's ``safe_load`` forgets positions and silently keeps the last of two
duplicate keys. Here we compose the node tree ourselves, build plain Python values,
and keep a map from key path to (line, column) so that every later error, from
pydantic or from our own checks, can point at the node that causes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from guardrail.errors import Problem

try:  # the C parser is several times faster; fall back quietly where it is missing
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

Path = tuple[str | int, ...]
MERGE_KEY_MESSAGE = "YAML merge keys (<<) are not supported: write the keys out"


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
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        doc.problems.append(_syntax_problem(exc, file))
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
    if node is None:
        doc.problems.append(Problem(file, 1, 1, "", "the file is empty"))
        return doc
    doc.data = _build(node, (), doc)
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


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


_scalars = _Loader("")  # only used for its scalar constructors (ints, floats, bools, nulls)


def _build(node: yaml.Node, path: Path, doc: Document) -> Any:
    doc.values[path] = _mark(node)
    if node.tag.startswith("!") and node.tag != "!":  # local tags (`!secret x`): nothing gives them a meaning
        doc.problems.append(Problem(doc.file, *_mark(node), format_path(path), f"YAML tag {node.tag!r} is not supported"))
        if isinstance(node, yaml.ScalarNode):
            return node.value
    if isinstance(node, yaml.MappingNode):
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
            out[key] = _build(value_node, path + (key,), doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), doc) for i, item in enumerate(node.value)]
    return _scalar(node, path, doc)


def _scalar(node: yaml.Node, path: Path, doc: Document) -> Any:
    if node.tag == "!":  # the non-specific tag: "this is a string"
        return node.value
    try:
        # The constructor for the resolved tag, called directly: construct_object would
        # cache every node it ever saw on the shared loader.
        value = _Loader.yaml_constructors.get(node.tag, _Loader.yaml_constructors[None])(_scalars, node)
    except (yaml.YAMLError, ValueError, TypeError) as exc:  # `!!float abc`, `!!binary` garbage...
        reason = getattr(exc, "problem", None) or str(exc)
        doc.problems.append(Problem(doc.file, *_mark(node), format_path(path), f"cannot read {node.value!r}: {reason}"))
        return node.value
    if not isinstance(value, str):
        doc.raw[path] = node.value
    return value
