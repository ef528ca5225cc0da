"""A seeded mutation generator for guardrail's YAML files: the attack kept in CI.

From the valid plans and policies of the repository it makes broken ones, the way an
attacker (or a tired person) would: text-level edits (characters and lines deleted,
doubled or swapped; hostile snippets such as self-referential aliases, explicit tags,
deep nesting, alias bombs, control characters, overflowing numbers and durations,
absurd dates, NUL bytes, time-zone folders) and structure-level edits (a value anywhere
in the document replaced by another type or a hostile value, keys renamed, lists
emptied). The same seed always yields the same files.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _laughs(levels: int) -> str:
    text = '{a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'
    for i in range(1, levels):
        before, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        text += f", {name}: &{name} [" + ",".join(["*" + before] * 9) + "]"
    return text + "}"


# Values an attacker puts where a value belongs (YAML text, inserted after "key: ").
HOSTILE_VALUES = [
    "&a [*a]", "&b {k: *b}", "*undefined", "!!bool maybe", "!!timestamp notadate", "!!int 0x", "!!float abc",
    "!!set {a, b}", "!!omap [a: 1]", "!!binary ===", "!!python/object:os.system {}", "!secret x", "!<tag:x,2000:y> 1",
    "!!str {a: 1}", "[" * 100 + "]" * 100, "[" * 70 + "]" * 70, _laughs(6), _laughs(9),
    '"' + "9" * 400 + 's"', '"1e999"', "1.0e999", ".nan", ".inf", "-.inf", "-1", "0", "99999999999999999999999",
    "9" * 5000, '"9999-12-31-9999-12-31"', '"0000-00-00-9999-99-99"', "Europe", "../../etc/passwd", '"a\\0b"',
    '"' + "p" * 300 + '"', '"\\x1b[31mred\\x1b[0m"', '"line\\nbreak"', '"\\u202eevil"', '":100:"', '"[bold]x[/bold]"',
    '"${env:GUARDRAIL_FUZZ_UNSET}"', '"${env:"', '"{{ bad"', '"{{undefined_var}}"', "'> " + " " * 3000 + "x'",
    '"> 1e999"', '">= +1e400%"', "null", "~", "true", "yes", "on", "[]", "{}", "[1, 2]", "{a: b}", '""',
    "2001-01-01", "2001-01-01 00:00:00", "0x1F", "0o17", "1_000", "'" + "x" * 20_000 + "'", "|\n  block\n  text",
    "- a\n- b", "<<: {a: 1}", "? complex\n: key", "&anchor value", "*anchor", "@reserved", "`reserved",
    '"\\ud800"', "\t", "%YAML 1.1", "--- second", "...",
]

# Python values for structure-level edits.
HOSTILE_DATA: list[Any] = [
    None, True, False, 0, -1, 1.5, float("inf"), float("nan"), 10 ** 30, "", " ", "x" * 10_000, "9" * 400 + "s",
    "31d", "1h30x", "9999-12-31-9999-12-31", "Europe", "Mars/Olympus_Mons", "../x", "a\x00b", "p" * 300,
    "line\nbreak", "\x1b[31m", ":100:", "[red]x[/red]", "{{region}}", "{{nope}}", "${env:GUARDRAIL_FUZZ_UNSET}",
    "> 1e999", "> +20%", "< -10", "==", [], {}, [None], {"": None}, {"plugin": "nope"}, [[[[[]]]]], ["x"] * 50,
    {"name": "a", "source": "prometheus"}, {"a\nb": 1}, {"\x1b": "\x1b"}, "x/../../admin?y=1&z=2#frag",
]

SNIPPETS = ["\x00", "\x1b", "\t", "\r", "\u2028", "\ufeff", "&", "*", "!", "|", ">", "%", "@", "`", "'", '"', "#",
            ":", "-", "?", ",", "[", "]", "{", "}", "\n", " ", "\\", "<<: ", "---\n", "..."]


@dataclass
class Mutant:
    seed: int
    source: Path
    operations: list[str]
    text: str


def sources(repo: Path) -> list[Path]:
    """The valid guardrail files the mutations start from."""
    found = []
    for folder in ("examples", "policies", "tests/data/valid"):
        for path in sorted((repo / folder).rglob("*")):
            if path.suffix in (".yaml", ".yml") and path.is_file():
                try:
                    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
                except yaml.YAMLError:
                    continue
                if isinstance(data, dict) and data.get("kind") in ("Rollout", "Policy"):
                    found.append(path)
    return found


def _lines(rng: random.Random, text: str) -> tuple[list[str], int]:
    lines = text.split("\n")
    return lines, rng.randrange(len(lines))


def delete_line(rng: random.Random, text: str) -> str:
    lines, i = _lines(rng, text)
    del lines[i]
    return "\n".join(lines)


def duplicate_line(rng: random.Random, text: str) -> str:
    lines, i = _lines(rng, text)
    lines.insert(i, lines[i])
    return "\n".join(lines)


def swap_lines(rng: random.Random, text: str) -> str:
    lines, i = _lines(rng, text)
    j = rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def change_character(rng: random.Random, text: str) -> str:
    at = rng.randrange(len(text) + 1)
    choice = rng.random()
    if choice < 0.33:
        return text[:at] + text[at + 1:]
    snippet = rng.choice(SNIPPETS)
    return text[:at] + snippet + (text[at:] if choice < 0.66 else text[at + 1:])


def hostile_value(rng: random.Random, text: str) -> str:
    """Replace the value of a random ``key: value`` line (or a list item) by a hostile one."""
    lines = text.split("\n")
    spots = [i for i, line in enumerate(lines) if ": " in line or line.lstrip().startswith("- ")]
    if not spots:
        return text + "\n" + rng.choice(HOSTILE_VALUES)
    i = rng.choice(spots)
    line = lines[i]
    head = line[: line.index(": ") + 2] if ": " in line else line[: line.index("- ") + 2]
    value = rng.choice(HOSTILE_VALUES)
    indent = " " * (len(head) - len(head.lstrip()) + 2)
    lines[i] = head + value.replace("\n", "\n" + indent)
    return "\n".join(lines)


def hostile_key(rng: random.Random, text: str) -> str:
    lines, i = _lines(rng, text)
    line = lines[i]
    indent = line[: len(line) - len(line.lstrip())]
    key = rng.choice(['"a\\nb"', '"\\x1b[2J"', "on", "1", "~", "'<<'", "[a, b]", "{a: b}", "? x", '"\\u202e"',
                      "&k key", "*k", "!!str key", "x" * 300, "checks", "kind", "apiVersion"])
    lines.insert(i, f"{indent}{key}: {rng.choice(HOSTILE_VALUES[:20] + ['1', 'x'])}")
    return "\n".join(lines)


def _paths(data: Any, limit: int = 2000) -> list[tuple]:
    """Paths to the values of ``data``, breadth first, at most ``limit`` (aliases share
    values: an alias bomb has billions of paths, a recursive alias infinitely many)."""
    out: list[tuple] = []
    queue: list[tuple[tuple, Any]] = [((), data)]
    while queue and len(out) < limit:
        path, value = queue.pop(0)
        out.append(path)
        if isinstance(value, dict):
            queue += [(path + (k,), v) for k, v in value.items()]
        elif isinstance(value, list):
            queue += [(path + (i,), v) for i, v in enumerate(value)]
    return out


def structural(rng: random.Random, text: str) -> str:
    """Parse, replace a value anywhere (or rename a key, or drop one), dump again."""
    try:
        data = yaml.load(text, Loader=_Loader)
    except Exception:  # noqa: BLE001 - PyYAML raises more than YAMLError on a hostile file
        return change_character(rng, text)
    paths = _paths(data)[1:]
    if not paths:
        return text
    path = rng.choice(paths)
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    roll = rng.random()
    if roll < 0.15 and isinstance(parent, dict):
        del parent[last]
    elif roll < 0.3 and isinstance(parent, dict):
        parent[rng.choice([str(last) + "x", str(last)[:-1] or "x", str(last).upper(), "a\nb"])] = parent.pop(last)
    elif roll < 0.4 and isinstance(parent, list):
        parent.append(parent[last])
    else:
        parent[last] = rng.choice(HOSTILE_DATA)
    try:
        return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=rng.random() < 0.5, width=10_000)
    except Exception:  # noqa: BLE001 - NaN keys, recursive data...
        return text


OPERATIONS: dict[str, Callable[[random.Random, str], str]] = {
    "delete_line": delete_line, "duplicate_line": duplicate_line, "swap_lines": swap_lines,
    "change_character": change_character, "hostile_value": hostile_value, "hostile_key": hostile_key,
    "structural": structural,
}
WEIGHTS = {"delete_line": 1, "duplicate_line": 1, "swap_lines": 1, "change_character": 2, "hostile_value": 4,
           "hostile_key": 1, "structural": 4}


def mutants(files: list[Path], count: int, seed: int):
    """``count`` mutants, each from one source file with 1-3 operations, reproducibly."""
    texts = {path: path.read_text(encoding="utf-8") for path in files}
    names, weights = list(OPERATIONS), [WEIGHTS[name] for name in OPERATIONS]
    for n in range(count):
        case_seed = seed * 1_000_003 + n
        rng = random.Random(case_seed)
        source = rng.choice(files)
        text = texts[source]
        done = []
        for _ in range(rng.choice((1, 1, 2, 3))):
            name = rng.choices(names, weights)[0]
            text = OPERATIONS[name](rng, text)
            done.append(name)
        yield Mutant(case_seed, source, done, text)
