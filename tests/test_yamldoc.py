"""``guardrail.language.yamldoc``: YAML with a position for every node, and no silent surprises."""

from __future__ import annotations

import datetime

import pytest

from guardrail.errors import Problem
from guardrail.language.yamldoc import MERGE_KEY_MESSAGE, format_path, parse

NESTED = """\
apiVersion: guardrail/v1
checks:
  - name: a
    targets:
      - mx1.example
      -   mx2.example
  - {name: b, with: {url: "http://x", retries: 3}}
matrix: [[1, 2], [3, [4, 5]]]
"""


def test_data_is_plain_python():
    doc = parse(NESTED, "f.yaml")
    assert doc.problems == []
    assert doc.data == {
        "apiVersion": "guardrail/v1",
        "checks": [
            {"name": "a", "targets": ["mx1.example", "mx2.example"]},
            {"name": "b", "with": {"url": "http://x", "retries": 3}},
        ],
        "matrix": [[1, 2], [3, [4, 5]]],
    }


def test_value_positions_in_nested_block_lists():
    doc = parse(NESTED, "f.yaml")
    assert doc.values[()] == (1, 1)
    assert doc.values[("checks",)] == (3, 3)
    assert doc.values[("checks", 0)] == (3, 5)
    assert doc.values[("checks", 0, "name")] == (3, 11)
    assert doc.values[("checks", 0, "targets", 0)] == (5, 9)
    assert doc.values[("checks", 0, "targets", 1)] == (6, 11)


def test_value_positions_in_flow_collections():
    doc = parse(NESTED, "f.yaml")
    assert doc.values[("checks", 1)] == (7, 5)
    assert doc.values[("checks", 1, "name")] == (7, 12)
    assert doc.values[("checks", 1, "with")] == (7, 21)
    assert doc.values[("checks", 1, "with", "url")] == (7, 27)
    assert doc.values[("checks", 1, "with", "retries")] == (7, 48)
    assert doc.values[("matrix", 1, 1, 0)] == (8, 23)


def test_key_positions_differ_from_value_positions():
    doc = parse(NESTED, "f.yaml")
    assert doc.keys[("checks", 0, "targets")] == (4, 5)
    assert doc.values[("checks", 0, "targets")] == (5, 7)
    assert doc.position(("checks", 0, "targets"), key=True) == (4, 5)
    assert doc.position(("checks", 0, "targets")) == (5, 7)
    assert doc.keys[("checks", 1, "with", "retries")] == (7, 39)


def test_a_missing_path_points_at_the_nearest_enclosing_node():
    doc = parse(NESTED, "f.yaml")
    assert doc.position(("checks", 0, "fail_if")) == (3, 5)  # the mapping that lacks it
    assert doc.position(("checks", 0, "fail_if"), key=True) == (3, 5)
    assert doc.position(("checks", 7, "name")) == (3, 3)
    assert doc.position(("nothing", "here")) == (1, 1)
    problem = doc.problem(("checks", 1, "with", "retries"), "too many")
    assert problem == Problem("f.yaml", 7, 48, "checks[1].with.retries", "too many")
    assert str(problem) == "f.yaml:7:48: checks[1].with.retries: too many"


def test_format_path():
    assert format_path(()) == ""
    assert format_path(("checks", 2, "fail_if")) == "checks[2].fail_if"
    assert format_path(("matrix", 0, 1)) == "matrix[0][1]"
    assert format_path(("regions", "r1", "sources", "prometheus", "url")) == "regions.r1.sources.prometheus.url"


def test_duplicate_keys_are_problems_and_the_first_value_is_kept():
    doc = parse("a: 1\nb:\n  c: 2\n  d: 3\n  c: 4\na: 5\n", "f.yaml")
    assert doc.problems == [
        Problem("f.yaml", 5, 3, "b.c", "duplicate key 'c' (first defined at line 3)"),
        Problem("f.yaml", 6, 1, "a", "duplicate key 'a' (first defined at line 1)"),
    ]
    assert doc.data == {"a": 1, "b": {"c": 2, "d": 3}}


def test_duplicate_keys_in_a_flow_mapping():
    doc = parse("checks:\n  - {name: a, name: b}\n", "f.yaml")
    assert doc.problems == [Problem("f.yaml", 2, 15, "checks[0].name", "duplicate key 'name' (first defined at line 2)")]


def test_merge_keys_are_rejected_where_they_are_written():
    doc = parse("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n", "f.yaml")
    assert doc.problems == [Problem("f.yaml", 3, 3, "other", MERGE_KEY_MESSAGE)]
    assert doc.data["other"] == {"y": 2}  # nothing merged behind the author's back


def test_keys_keep_their_text():
    doc = parse("on: push\n1: one\nyes: 2\nnull: 3\n", "f.yaml")
    assert doc.problems == []
    assert list(doc.data) == ["on", "1", "yes", "null"]


def test_keys_must_be_scalars():
    doc = parse("? [a, b]\n: 1\nok: 2\n", "f.yaml")
    assert doc.problems == [Problem("f.yaml", 1, 3, "", "keys must be plain scalars")]
    assert doc.data == {"ok": 2}


def test_scalars_are_typed_and_their_source_text_is_kept():
    doc = parse("s: text\ni: 42\nf: 2023.10\nb: yes\nn: ~\nd: 2023-01-05\nq: '2023.10'\n", "f.yaml")
    assert doc.data == {"s": "text", "i": 42, "f": 2023.1, "b": True, "n": None,
                        "d": datetime.date(2023, 1, 5), "q": "2023.10"}
    assert doc.raw == {("i",): "42", ("f",): "2023.10", ("b",): "yes", ("n",): "~", ("d",): "2023-01-05"}


def test_local_tags_and_unreadable_scalars_are_problems_not_tracebacks():
    doc = parse("a: !secret x\nb: !!float abc\nc: !!int 1.5\ne: !thing {k: 1}\n", "f.yaml")
    assert [(p.line, p.column, p.path) for p in doc.problems] == [(1, 4, "a"), (2, 4, "b"), (3, 4, "c"), (4, 4, "e")]
    assert doc.problems[0].message == "YAML tag '!secret' is not supported"
    assert doc.problems[1].message.startswith("cannot read 'abc'")
    assert doc.data["e"] == {"k": 1}


def test_syntax_errors_point_at_the_cause():
    doc = parse("a: 1\nb: \"open\nc: 3\n", "f.yaml")
    assert doc.data is None
    assert doc.problems == [Problem("f.yaml", 2, 4, "", "YAML syntax error: found unexpected end of stream "
                                                         "(while scanning a quoted scalar)")]
    [problem] = parse("a:\n  b: 1\n\tc: 2\n", "f.yaml").problems
    assert (problem.line, problem.column) == (3, 1)
    assert "tab character" in problem.message and "indent with spaces" in problem.message
    [problem] = parse("a: [1, 2\nb: 3\n", "f.yaml").problems
    assert problem.message.startswith("YAML syntax error:") and problem.line == 2
    [problem] = parse("a: 1\n---\nb: 2\n", "f.yaml").problems
    assert (problem.line, problem.column) == (2, 1)
    assert "found another document" in problem.message
    [problem] = parse("a: 1\n  b: 2\n", "f.yaml").problems
    assert (problem.line, problem.column) == (2, 4)
    assert problem.message.startswith("YAML syntax error: mapping values are not allowed")


def test_empty_documents():
    for text in ("", "# only a comment\n", "\n\n"):
        doc = parse(text, "f.yaml")
        assert doc.data is None
        assert doc.problems == [Problem("f.yaml", 1, 1, "", "the file is empty")]
    doc = parse("~\n", "f.yaml")  # an explicit null is a document, just not a mapping
    assert doc.problems == [] and doc.data is None


def test_aliases_are_expanded_with_their_positions():
    doc = parse("hosts: &h [a, b]\nagain: *h\n", "f.yaml")
    assert doc.problems == []
    assert doc.data["again"] == ["a", "b"]
    assert doc.values[("again", 1)] == (1, 15)  # the anchor's node: where the value was written


def test_control_characters_are_located_by_line_and_column():
    [problem] = parse("a: ééé\nb: éé\x07y\n", "f.yaml").problems
    assert (problem.line, problem.column) == (2, 6)  # characters, not UTF-8 bytes
    assert problem.message == "YAML syntax error: control characters are not allowed (U+0007)"
    assert "\n" not in problem.message


def test_columns_count_characters():
    doc = parse("a: {ééé: 1, x: 2}\n", "f.yaml")
    assert doc.values[("a", "ééé")] == (1, 10)
    assert doc.values[("a", "x")] == (1, 16)


# Hostile files: each is a located problem, read in a fraction of a second and a few MB.

def _laughs(levels: int) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels):
        before, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        text += f"{name}: &{name} [" + ",".join(["*" + before] * 9) + "]\n"
    return text


def _bounded(text: str) -> list[Problem]:
    import time
    import tracemalloc

    started = time.perf_counter()
    doc = parse(text, "f.yaml")
    seconds = time.perf_counter() - started
    tracemalloc.start()
    try:
        parse(text, "f.yaml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The pathologies take tens of seconds and gigabytes; 5 s leaves room for a loaded machine
    # (validate's own time per file is measured by the fuzz run, see RELIABILITY.md).
    assert seconds < 5.0 and peak < 40 * 2**20, (seconds, peak)
    return doc.problems


def test_a_billion_laughs_is_refused_quickly_where_an_alias_expands():
    for levels in (6, 7, 9):
        problems = _bounded(_laughs(levels))
        assert len(problems) == 1 and problems[0].line > 1, problems
        assert "expands to more than 20,000 values through YAML aliases" in problems[0].message


def test_a_recursive_alias_is_a_problem_at_the_alias():
    assert [str(p) for p in _bounded("checks: &a [*a]\n")] == [
        "f.yaml:1:13: recursive alias *a: a value may not contain itself"]
    assert [str(p) for p in _bounded("a: &x {b: [1, {c: *x}]}\n")] == [
        "f.yaml:1:19: recursive alias *x: a value may not contain itself"]
    doc = parse("a: &x [1, 2]\nb: [*x, *x]\n", "f.yaml")  # an ordinary alias still works
    assert (doc.problems, doc.data) == ([], {"a": [1, 2], "b": [[1, 2], [1, 2]]})


def test_nesting_is_limited_in_flow_and_block_style():
    assert [str(p) for p in _bounded("a: " + "[" * 491 + "]" * 491)] == ["f.yaml:1:67: nested deeper than 64 levels"]
    assert [str(p) for p in _bounded("".join(" " * i + "-\n" for i in range(100)))] == [
        "f.yaml:65:65: nested deeper than 64 levels"]
    assert parse("a: " + "[" * 60 + "]" * 60, "f.yaml").problems == []


def test_huge_files_and_huge_numbers_of_values_are_refused():
    (problem,) = _bounded("[" + "1," * 400_000 + "1]")
    assert problem.message == "the file holds more than 20,000 values" and problem.line == 1
    (problem,) = _bounded("x: '" + "y" * 1_000_001 + "'")
    assert problem.message.startswith("the file is too large (1,000,006 characters; the limit is 1,000,000)")


def test_any_explicit_tag_that_cannot_read_its_value_is_a_problem():
    cases = {
        "a: !!bool maybe": "f.yaml:1:4: a: cannot read 'maybe': not a valid !!bool",
        "a: !!timestamp notadate": "f.yaml:1:4: a: cannot read 'notadate': not a valid !!timestamp",
        "a: !!int 0x": "f.yaml:1:4: a: cannot read '0x': invalid literal for int() with base 16: ''",
        "a: !!set {x, y}": "f.yaml:1:4: a: YAML tag '!!set' is not supported on a mapping",
        "a: !!omap [x: 1]": "f.yaml:1:4: a: YAML tag '!!omap' is not supported on a list",
        "a: !!str {x: 1}": "f.yaml:1:4: a: YAML tag '!!str' is not supported on a mapping",
        "a: !<tag:example.com,2000:x> 1": "f.yaml:1:4: a: cannot read '1': could not determine a constructor for the"
                                           " tag 'tag:example.com,2000:x'",
        "a: !!python/object:os.system {}": "f.yaml:1:4: a: YAML tag '!!python/object:os.system' is not supported on a"
                                           " mapping",
    }
    for text, expected in cases.items():
        assert [str(p) for p in parse(text, "f.yaml").problems] == [expected], text


def test_a_problem_prints_on_one_line_whatever_the_keys_hold():
    doc = parse('"a\\n/tmp/x:1:1: fake problem\\u001b[31m": {b: 1}\n', "f\nx.yaml")
    problem = doc.problem(("a\n/tmp/x:1:1: fake problem\x1b[31m", "b"), "unknown key 'b'")
    assert str(problem) == "f\\nx.yaml:1:46: a\\n/tmp/x:1:1: fake problem\\x1b[31m.b: unknown key 'b'"
    assert "\n" not in str(problem) and "\x1b" not in str(problem)


@pytest.mark.parametrize(("key", "value"), [("fail_if", "> 1.5"), ("fail_if", ">= 2"), ("warn_if", "> +20%"),
                                            ("fail_if", "> 20%"), ("fail_if", ">2"), ("fail_if", "!= 0")])
def test_an_unquoted_comparison_is_told_to_be_quoted_in_plain_words(key, value):
    doc = parse(f"checks:\n  - name: a\n    {key}: {value}   # oops\n    for: 5m\n", "p.yaml")
    [problem] = doc.problems
    assert (problem.line, problem.column) == (3, len(key) + 7)
    assert problem.message.startswith(f'quote it: {key}: "{value}" (unquoted, YAML reads ')
    assert not any(jargon in problem.message for jargon in ("scalar", "scanning", "comment or line break", "token"))


def test_comparisons_yaml_reads_as_text_need_no_quotes_and_block_text_stays_text():
    doc = parse("a: < 0.5\nb: <= 1\nc: == 0\nquery: >\n  sum(x)\nd: |2\n   text\n", "p.yaml")
    assert doc.problems == []
    assert doc.data == {"a": "< 0.5", "b": "<= 1", "c": "== 0", "query": "sum(x)\n", "d": " text\n"}
