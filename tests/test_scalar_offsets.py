"""``guardrail.language.scalar_offsets``: a character of a string value, found in its file
whatever YAML style wrote it (plain, quoted, escaped, folded, block)."""

from __future__ import annotations

import yaml
from hypothesis import given, settings, strategies as st

from guardrail.language.scalar_offsets import position
from guardrail.language.yamldoc import parse

TEXT = st.text(alphabet=st.sampled_from(list('ab{}()[]"\'\\=~#:,- é\t\n`|>')), min_size=1, max_size=60)
STYLES = st.sampled_from([None, '"', "'", "|", ">"])


def character_at(text: str, line: int, column: int) -> str:
    return text.splitlines(keepends=True)[line - 1][column - 1]


@settings(max_examples=300, deadline=None)
@given(value=TEXT, style=STYLES, width=st.sampled_from([20, 80]))
def test_every_character_of_a_value_is_found_where_yaml_wrote_it(value, style, width):
    text = "checks:\n  - query: " + yaml.dump(value, default_style=style, width=width, allow_unicode=True)[:-1] + "\n"
    doc = parse(text, "policy.yaml")
    if doc.problems or doc.data["checks"][0]["query"] != value:
        return  # a style PyYAML cannot write this value in
    doc.text = text
    path = ("checks", 0, "query")
    for offset, ch in enumerate(value):
        if ch in " \t\n":
            continue  # folded and indented away: any nearby place will do
        found = position(doc, path, value, offset)
        written = character_at(text, *found)
        assert written == ch or written == "\\" and text[text.index(": ") + 2] == '"', (offset, ch, found, text)


def test_a_value_the_file_does_not_spell_points_at_its_start():
    text = 'query: "${env:X}(x"\n'
    doc = parse(text, "policy.yaml")
    doc.text = text
    assert position(doc, ("query",), "secret(x", 6) == (1, 8)


LINE = st.text(alphabet=st.sampled_from(list('ab{}()[]"\'\\=~#:,-é`|>')), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(LINE, min_size=1, max_size=5), style=st.sampled_from(["|", ">", "|-", ">-"]),
       indent=st.sampled_from([2, 4, 6]))
def test_every_character_of_a_block_scalar_is_found_on_its_line(lines, style, indent):
    body = "".join(" " * indent + line + "\n" for line in lines)
    text = f"checks:\n  - query: {style}\n{body}    fail_if: '> 1'\n" if indent > 4 else \
        f"query: {style}\n{body}"
    doc = parse(text, "policy.yaml")
    path = ("checks", 0, "query") if indent > 4 else ("query",)
    value = doc.data["checks"][0]["query"] if indent > 4 else doc.data["query"]
    doc.text = text
    checked = 0
    for offset, ch in enumerate(value):
        if ch not in " \n":
            assert character_at(text, *position(doc, path, value, offset)) == ch, (offset, text)
            checked += 1
    assert checked == sum(len(line) for line in lines)
