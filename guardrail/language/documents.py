"""From a YAML file to a validated model, with every problem located.

Steps: parse (``yamldoc``), interpolate ``${env:NAME}``, validate with pydantic, and
translate each pydantic error into a ``Problem`` at the offending node.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import stat
from pathlib import Path
from typing import Any, Iterable, TypeVar

from pydantic import BaseModel, ValidationError

from guardrail.errors import Problem
from guardrail.language.policy import NAME_PATTERN
from guardrail.language.yamldoc import MAX_BYTES, MERGE_KEY_MESSAGE, Document, Path as KeyPath, parse

M = TypeVar("M", bound=BaseModel)
_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_LOOSE = re.compile(r"\$\{env:[^}]*\}?")


def display_name(path: Path) -> str:
    """Paths in messages are relative to the working directory when they can be."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):  # elsewhere, or a path the system refuses to resolve
        return str(path)


MAX_PATH = 1024
"""The longest file path accepted (Linux allows 4096, each name in it 255 bytes)."""


def path_problem(text: str) -> str | None:
    """Why ``text`` cannot name a file, or None: checked before the system sees it,
    since a NUL byte or an over-long name makes the system raise, not answer."""
    if "\x00" in text:
        return "a path may not contain a NUL byte"
    if len(text) > MAX_PATH:
        return f"the path is too long ({len(text):,} characters; the limit is {MAX_PATH:,})"
    if any(len(part.encode()) > 255 for part in text.split("/")):
        return "a name in the path is longer than 255 bytes"
    return None


def file_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable regular file, or None."""
    wrong = path_problem(str(path))
    if wrong:
        return wrong
    try:
        info = path.stat()
    except FileNotFoundError:
        return "file not found"
    except (OSError, ValueError) as exc:
        return f"cannot read: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"
    if stat.S_ISDIR(info.st_mode):
        return "a folder, not a file"
    if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
        return "not a regular file"
    if info.st_size > MAX_BYTES:
        return f"the file is too large ({info.st_size:,} bytes; the limit is {MAX_BYTES:,})"
    return None


def read(path: Path) -> Document:
    wrong = path_problem(str(path))
    name = display_name(path) if wrong is None else repr(str(path))[1:-1][:200]
    wrong = wrong or file_problem(path)
    if wrong:
        return Document(name, None, problems=[Problem(name, 1, 1, "", wrong)])
    try:
        with path.open("rb") as handle:
            text = handle.read(MAX_BYTES + 1).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Document(name, None, problems=[Problem(name, 1, 1, "", f"cannot read: {exc}")])
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # as read_text's universal newlines
    doc = parse(text, name)
    doc.text = text
    return doc


def interpolate_env(doc: Document, secrets: set[str], environ: dict[str, str] | None = None) -> None:
    """Replace ``${env:NAME}`` in every string. Unset variables become problems that
    name the variable; resolved values are collected in ``secrets`` (never printed)."""
    env = os.environ if environ is None else environ

    def walk(value: Any, path: KeyPath) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, path + (k,)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, path + (i,)) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                doc.problems.append(doc.problem(path, f"environment variable {name} is not set"))
                return ""
            if env[name]:
                secrets.add(env[name])
                if len(env[name]) >= 4:  # as guardrail.secrets.Redactor: shorter values would mask ordinary words
                    doc.secrets.setdefault(env[name], f"<value of ${{env:{name}}}>")
            return env[name]

        for loose in _ENV_LOOSE.findall(value):
            if not _ENV.fullmatch(loose):
                doc.problems.append(doc.problem(path, f"malformed secret reference {loose!r}: write ${{env:NAME}}"))
        return _ENV.sub(fill, value)

    doc.data = walk(doc.data, ())


def redact(problems: Iterable[Problem], secrets: dict[str, str]) -> list[Problem]:
    """Replace every interpolated secret value in messages by ``<value of ${env:NAME}>``.

    Applied to every problem before it leaves the loader, whatever produced the message
    (pydantic, a validator, a plugin's Settings model)."""
    out = list(problems)
    if not secrets:
        return out
    pairs: list[tuple[str, str]] = []
    for value, label in secrets.items():
        pairs.append((value, label))
        escaped = repr(value)[1:-1]  # what a message built with {value!r} contains
        if escaped != value:
            pairs.append((escaped, label))
    pairs.sort(key=lambda pair: len(pair[0]), reverse=True)
    for i, problem in enumerate(out):
        message = problem.message
        for value, label in pairs:
            message = message.replace(value, label)
        if message != problem.message:
            out[i] = dataclasses.replace(problem, message=message)
    return out


_MISSING = "required key is missing"
_UNREADABLE = "cannot read "  # yamldoc's message for a scalar its tag cannot read
_DID_YOU_MEAN = re.compile(r"^unknown key .* \(did you mean '([^']+)'\?\)")


def tidy(problems: Iterable[Problem]) -> list[Problem]:
    """Drop duplicates and the echoes of a typo, then order each file's problems by line.

    ``fial_if`` is reported once, as an unknown key suggesting ``fail_if``; the
    "``fail_if``: required key is missing" it causes would only repeat it."""
    unique = list(dict.fromkeys(problems))
    suggested, merged = set(), set()
    unreadable = {(p.file, p.line, p.column, p.path) for p in unique if p.message.startswith(_UNREADABLE)}
    unique = [p for p in unique if p.message.startswith(_UNREADABLE)
              or (p.file, p.line, p.column, p.path) not in unreadable]  # `!!bool maybe` said once, not twice
    for problem in unique:
        match = _DID_YOU_MEAN.match(problem.message)
        if match:
            parent = problem.path.rpartition(".")[0] if "." in problem.path else ""
            suggested.add((problem.file, f"{parent}.{match.group(1)}" if parent else match.group(1)))
        elif problem.message.startswith(MERGE_KEY_MESSAGE):  # the keys it would have brought are missing
            merged.add((problem.file, problem.path))

    def echo(p: Problem) -> bool:
        if not p.message.startswith(_MISSING):
            return False
        parent = p.path.rpartition(".")[0] if "." in p.path else ""
        return (p.file, p.path) in suggested or (p.file, parent) in merged

    kept = [p for p in unique if not echo(p)]
    order = {file: i for i, file in reversed(list(enumerate(p.file for p in kept)))}
    return sorted(kept, key=lambda p: (order[p.file], p.line, p.column))


def _as_yaml_reads(raw: str, value: Any) -> str:
    if isinstance(value, bool):
        what = f"the boolean {str(value).lower()}"
    elif isinstance(value, (int, float)):
        what = f"the number {value}"
    elif value is None:
        what = "null"
    else:
        what = f"a {type(value).__name__}"  # date, datetime, bytes
    same = isinstance(value, (int, float)) and raw == str(value)
    return what if same else f"{raw}, which YAML reads as {what}"


def _describe(value: Any, secrets: dict[str, str] | None = None) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str) and secrets:  # before shortening, or half a secret would show
        for secret, label in sorted(secrets.items(), key=lambda item: len(item[0]), reverse=True):
            value = value.replace(secret, label)
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


_LIMITS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
_PATTERNS = {NAME_PATTERN: "a name made of letters, digits, '-', '_' and '.' (no spaces)"}


def problems_from(error: ValidationError, doc: Document, prefix: KeyPath = (), *, known_keys=None) -> list[Problem]:
    """Translate pydantic's errors; ``known_keys(path)`` lists valid keys for did-you-mean."""
    out = []
    for err in error.errors(include_url=False):
        loc = prefix + tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        kind, message, key = err["type"], err["msg"], False
        if kind == "missing":
            message = "required key is missing"
        elif kind == "extra_forbidden":
            key = True
            message = f"unknown key {loc[-1]!r}"
            choices = known_keys(loc[:-1]) if known_keys else []
            close = difflib.get_close_matches(str(loc[-1]), choices, n=1)
            if close:
                message += f" (did you mean {close[0]!r}?)"
            elif choices:
                message += f"; expected one of: {', '.join(sorted(choices))}"
        elif kind == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            message = f"expected one of {expected}, got {_describe(err.get('input'), doc.secrets)}"
        elif kind in _EXPECTED:
            message = f"expected {_EXPECTED[kind]}, got {_describe(err.get('input'), doc.secrets)}"
            raw = doc.raw.get(loc)
            if kind == "string_type" and raw is not None:
                # YAML read `version: 2023.10` as the number 2023.1: say so, and how to keep the text.
                message = f'expected a string, got {_as_yaml_reads(raw, err.get("input"))}; write it in quotes: "{raw}"'
        elif kind in ("value_error", "assertion_error"):
            message = str(err.get("ctx", {}).get("error", message))
            # Model-level rules phrase their messages "KEY: ..." to point at that key.
            head, sep, rest = message.partition(": ")
            if sep and re.fullmatch(r"[a-z_]+", head):
                data = _lookup(doc.data, loc)
                if isinstance(data, dict) and head in data:
                    loc, message = loc + (head,), rest
        elif kind == "too_short" and isinstance(err.get("input"), list):
            message = "must not be empty"
        elif kind == "string_pattern_mismatch":
            pattern = err["ctx"]["pattern"]
            wanted = _PATTERNS.get(pattern, f"text matching {pattern}")
            message = f"expected {wanted}, got {_describe(err.get('input'), doc.secrets)}"
        elif kind == "string_too_short" and err.get("input") == "":
            message = "must not be empty"
        elif kind in _LIMITS:
            limit = next(iter(err.get("ctx", {}).values()), "?")
            written = _lookup(doc.data, loc)  # "0s" rather than the 0.0 it became
            shown = written if isinstance(written, str) else err.get("input")
            message = f"must be {_LIMITS[kind]} {limit:g}, got {_describe(shown, doc.secrets)}" if isinstance(
                limit, (int, float)) else f"must be {_LIMITS[kind]} {limit}, got {_describe(shown, doc.secrets)}"
        else:
            message = message[:1].lower() + message[1:]
        out.append(doc.problem(loc, message, key=key))
    return out


def _lookup(data: Any, path: KeyPath) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def validate(model: type[M], data: Any, doc: Document, prefix: KeyPath = ()) -> tuple[M | None, list[Problem]]:
    """Validate ``data`` (found at ``prefix`` in ``doc``) against ``model``."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, problems_from(exc, doc, prefix, known_keys=lambda p: model_keys(model, p[len(prefix):]))


def model_keys(model: type[BaseModel], path: KeyPath) -> list[str]:
    """The keys a nested model accepts at ``path`` (for did-you-mean suggestions)."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        field = _fields(current).get(part)
        if field is None:
            return []
        current = _model_in(field.annotation)
    return list(_fields(current)) if current is not None else []


def _fields(model: Any) -> dict[str, Any]:
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return {}
    return {(f.alias or name): f for name, f in model.model_fields.items()}


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None
