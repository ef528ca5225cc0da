"""``guardrail.language.yamldoc``: YAML with a position for every node, and no silent surprises."""

from __future__ import annotations

import datetime

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
