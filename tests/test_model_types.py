"""``guardrail.language.types``: durations, comparisons and templates."""

from __future__ import annotations

import math

import pytest
from pydantic import BaseModel, ValidationError

from guardrail.language.types import (
    BUILTIN_TEMPLATE_NAMES,
    Comparison,
    ComparisonText,
    Duration,
    Template,
    check_template,
    format_duration,
    parse_comparison,
    parse_duration,
    render,
    render_value,
    template_names,
)

# --- durations -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("250ms", 0.25),
        ("1.5h", 5400), ("1d2h3m4s", 93784), ("0s", 0), (" 10m ", 600), (0, 0),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)
    assert isinstance(parse_duration(text), float)


@pytest.mark.parametrize("text", ["30x", "5 minutes", "1h 30m", "m", "", "-5m", "5M", "1w", "s30", "1.m", "5mm"])
def test_durations_that_are_rejected_name_the_form_they_expect(text):
    with pytest.raises(ValueError, match=r'expected a duration like "30s", "5m", "2h" or "1d"'):
        parse_duration(text)


@pytest.mark.parametrize("number", [30, 1.5, -1])
def test_a_number_without_unit_is_rejected_with_a_suggestion(number):
    with pytest.raises(ValueError, match=rf'with a unit like "{number}s" or "{number}m"'):
        parse_duration(number)


def test_a_boolean_is_not_a_duration():
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(True)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (30, "30s"), (90, "1m30s"), (5400, "1h30m"), (86400, "1d"), (0.25, "250ms"), (61.5, "1m1s500ms")],
)
def test_format_duration_is_the_shortest_exact_text(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


def test_duration_fields_parse_serialise_and_describe_themselves():
    class M(BaseModel):
        bake: Duration

    assert M(bake="1h30m").bake == 5400
    assert M(bake="1h30m").model_dump(mode="json") == {"bake": "1h30m"}
    schema = M.model_json_schema()["properties"]["bake"]
    assert schema["type"] == "string" and "30s" in schema["examples"]
    with pytest.raises(ValidationError):
        M(bake="soon")


# --- comparisons ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "fails"),
    [
        ("> 30", 31, True), ("> 30", 30, False), (">= 30", 30, True), ("< 0.5", 0.49, True),
        ("<= 0.5", 0.51, False), ("== 0", 0, True), ("!= 0", 0, False), (">1e3", 1001, True), ("  >   0  ", 1, True),
    ],
)
def test_absolute_comparisons(text, value, fails):
    comparison = parse_comparison(text)
    assert not comparison.relative and not comparison.percent
    assert comparison.holds(value) is fails
    assert comparison.holds(value, reference=1e9) is fails  # a reference does not change an absolute rule
    assert comparison.threshold(123) == comparison.number


def test_relative_percent_comparisons_apply_to_the_change_from_the_reference():
    rise = parse_comparison("> +20%")
    assert (rise.op, rise.number, rise.relative, rise.percent) == (">", 20.0, True, True)
    assert rise.holds(130, reference=100)
    assert not rise.holds(120, reference=100)
    assert rise.subject(150, reference=100) == pytest.approx(50)
    assert rise.threshold(100) == pytest.approx(120)
    drop = parse_comparison("< -10%")
    assert drop.number == -10
    assert drop.holds(85, reference=100)
    assert not drop.holds(95, reference=100)
    assert drop.threshold(100) == pytest.approx(90)
    # the change is measured against the reference's size, whatever its sign
    assert parse_comparison("> +50%").subject(-50, reference=-100) == pytest.approx(50)


def test_relative_absolute_comparisons_use_the_difference():
    comparison = parse_comparison("> +5")
    assert comparison.relative and not comparison.percent
    assert comparison.holds(106, reference=100)
    assert not comparison.holds(105, reference=100)
    assert comparison.threshold(100) == 105
    assert parse_comparison("> -5").relative  # any explicit sign makes it relative


def test_growth_from_zero():
    comparison = parse_comparison("> +200%")
    assert comparison.subject(0, reference=0) == 0
    assert not comparison.holds(0, reference=0)
    assert comparison.subject(1, reference=0) == math.inf
    assert comparison.holds(0.001, reference=0)  # anything appearing from nothing is infinite growth
    assert comparison.subject(-1, reference=0) == -math.inf
    assert parse_comparison("< -50%").holds(-1, reference=0)


def test_a_relative_comparison_needs_a_reference():
    with pytest.raises(ValueError, match="needs a reference"):
        parse_comparison("> +20%").holds(1)
    assert parse_comparison("> +20%").threshold(None) == 20


@pytest.mark.parametrize("text", ["big", ">> 3", "> 20%%", "30", "> ", "=> 3", "> 3 apples", "gt 3", "> +-3"])
def test_bad_comparisons_are_rejected_with_examples(text):
    with pytest.raises(ValueError, match=r'expected a comparison like "> 30", "<= 0.5" or "> \+20%"'):
        parse_comparison(text)


@pytest.mark.parametrize("value", [30, None, ["> 3"]])
def test_a_comparison_must_be_text(value):
    with pytest.raises(ValueError, match="expected a comparison"):
        parse_comparison(value)


def test_comparisons_keep_their_text_and_are_values():
    comparison = parse_comparison("  >  +20%  ")
    assert str(comparison) == comparison.text == ">  +20%"
    assert parse_comparison(comparison) is comparison
    assert comparison == parse_comparison(">  +20%")
    with pytest.raises(AttributeError):
        comparison.op = "<"  # frozen

    class M(BaseModel):
        fail_if: ComparisonText

    assert isinstance(M(fail_if="> 3").fail_if, Comparison)
    assert M(fail_if="> 3").model_dump(mode="json") == {"fail_if": "> 3"}


# --- templates -----------------------------------------------------------------------


def test_template_names_in_order_and_promql_braces_left_alone():
    text = 'sum(rate(x{region="{{region}}", svc="{{ service }}"}[5m])) > {{threshold}}'
    assert template_names(text) == ["region", "service", "threshold"]
    assert template_names('up{job="mail"}') == []
    assert {"region", "version", "previous", "service"} <= BUILTIN_TEMPLATE_NAMES


def test_render_fills_placeholders_and_escapes_each_value():
    variables = {"region": 'eu"1', "hosts": ["a", "b"], "port": 25}
    assert render("{{region}}-{{ port }}", variables) == 'eu"1-25'
    assert render('x{r="{{region}}"}', variables, escape=lambda v: v.replace('"', '\\"')) == 'x{r="eu\\"1"}'
    assert render("hosts={{hosts}}", variables) == "hosts=a,b"
    assert render("no placeholders {here}", {}) == "no placeholders {here}"
    with pytest.raises(KeyError):
        render("{{missing}}", variables)


def test_render_value_expands_a_list_variable_into_a_list():
    variables = {"smtp_hosts": ["mx1.example", "mx2.example"], "region": "r1", "port": 25}
    assert render_value("{{smtp_hosts}}", variables) == ["mx1.example", "mx2.example"]
    assert render_value(" {{ smtp_hosts }} ", variables) == ["mx1.example", "mx2.example"]
    assert render_value("{{smtp_hosts}}", variables, escape=str.upper) == ["MX1.EXAMPLE", "MX2.EXAMPLE"]
    assert render_value("hosts: {{smtp_hosts}}", variables) == "hosts: mx1.example,mx2.example"
    assert render_value("{{port}}", variables) == "25"
    assert render_value(
        {"argv": ["./drain.sh", "{{region}}"], "n": 3, "nested": {"h": "{{smtp_hosts}}"}}, variables
    ) == {"argv": ["./drain.sh", "r1"], "n": 3, "nested": {"h": ["mx1.example", "mx2.example"]}}
    assert render_value(None, variables) is None
    with pytest.raises(KeyError):
        render_value("{{nope}}", variables)


@pytest.mark.parametrize("text", ['up{region="{{ region"}', "{{region}", "{{ 1st }}", "{{}}", "{{region name}}"])
def test_malformed_templates_are_rejected(text):
    with pytest.raises(ValueError, match="malformed template"):
        check_template(text)


def test_template_fields_check_their_text():
    class M(BaseModel):
        query: Template

    assert M(query='up{region="{{region}}"}').query == 'up{region="{{region}}"}'
    with pytest.raises(ValidationError, match="malformed template"):
        M(query="{{ region")


def test_an_escape_that_takes_before_learns_where_each_value_lands():
    seen = []

    def escape(value, before):
        seen.append((value, before))
        return "|".join(value) if isinstance(value, list) else value.upper()

    variables = {"region": "r1", "hosts": ["a", "b"], "port": 25}
    assert render('x{r="{{region}}", h=~"{{ hosts }}"} {{port}}', variables, escape) == 'x{r="R1", h=~"a|b"} 25'
    assert seen == [("r1", 'x{r="'), (["a", "b"], 'x{r="{{region}}", h=~"'),
                    ("25", 'x{r="{{region}}", h=~"{{ hosts }}"} ')]
    assert render_value("{{hosts}}", variables, escape) == ["A", "B"]  # each item alone, nothing before it
    assert seen[-2:] == [("a", ""), ("b", "")]
    assert render_value({"q": ["{{region}}"]}, variables, escape) == {"q": ["R1"]}


def test_a_one_argument_escape_is_called_as_before():
    variables = {"region": "r.1", "hosts": ["a", "b"]}
    assert render('x{r=~"{{region}}"}', variables, lambda v: v.replace(".", "_")) == 'x{r=~"r_1"}'
    assert render('x{h=~"{{hosts}}"}', variables, str.upper) == 'x{h=~"A,B"}'
    assert render_value(["{{hosts}}", "{{region}}"], variables, str.title) == [["A", "B"], "R.1"]


# --- where a value lands in PromQL (the prometheus and sim sources' escape) --------------


def promql(query: str, value) -> str:
    from guardrail_plugins.prometheus import escape_promql

    return render(query, {"v": value}, escape_promql)


@pytest.mark.parametrize(("query", "value", "rendered"), [
    # a plain string: string escapes only, regex metacharacters stay as they are
    (r'x{r="{{v}}"}', "r.1", r'x{r="r.1"}'),
    (r'x{r="{{v}}"}', 'a"b', r'x{r="a\"b"}'),
    (r'x{r="{{v}}"}', "a\\b", r'x{r="a\\b"}'),
    (r'x{r="{{v}}"}', "a\nb", r'x{r="a\nb"}'),
    (r'x{r!="{{v}}"}', ".*", r'x{r!=".*"}'),
    # a regex matcher: every RE2 metacharacter quoted, then string-escaped
    (r'x{r=~"{{v}}"}', "r.1", r'x{r=~"r\\.1"}'),
    (r'x{r!~"{{v}}"}', "r.1", r'x{r!~"r\\.1"}'),
    (r'x{r=~"{{v}}"}', ".+*?()|[]{}^$", r'x{r=~"\\.\\+\\*\\?\\(\\)\\|\\[\\]\\{\\}\\^\\$"}'),
    (r'x{r=~"{{v}}"}', "eu-(west)", r'x{r=~"eu-\\(west\\)"}'),
    (r'x{r=~"{{v}}"}', 'a"b', r'x{r=~"a\"b"}'),  # a quote is no regex metacharacter
    (r'x{r=~"{{v}}"}', "a\\b", r'x{r=~"a\\\\b"}'),  # \ -> \\ (regex) -> \\\\ (string)
    (r'x{r=~"{{v}}"}', "a\\.b", r'x{r=~"a\\\\\\.b"}'),  # a backslash already in the value is quoted too
    (r'x{r=~"{{v}}"}', "a-b_c d/é,=~", r'x{r=~"a-b_c d/é,=~"}'),  # nothing else is touched
    # whitespace between operator and string; the value amid the policy's own regex
    (r'x{r=~ "{{v}}"}', "r.1", r'x{r=~ "r\\.1"}'),
    ('x{r !~\n\t"{{v}}"}', "r.1", 'x{r !~\n\t"r\\\\.1"}'),
    (r'x{r=~"{{v}}-.*"}', "r.1", r'x{r=~"r\\.1-.*"}'),
    (r'x{r=~"(a|{{v}})"}', "b|c", r'x{r=~"(a|b\\|c)"}'),
    (r'x{r=~"\\\\{{v}}"}', "r.1", r'x{r=~"\\\\r\\.1"}'),  # after a backslash the regex matches literally
    # only the string the value is in counts, not the matchers and strings before it
    (r'x{a="=~", r="{{v}}"}', "r.1", r'x{a="=~", r="r.1"}'),
    (r'x{a=~"\"", r="{{v}}"}', "r.1", r'x{a=~"\"", r="r.1"}'),
    (r'x{a=~"\\", r="{{v}}"}', "r.1", r'x{a=~"\\", r="r.1"}'),
    (r"""x{a=~'.', r="{{v}}"}""", "r.1", r"""x{a=~'.', r="r.1"}"""),
])
def test_promql_values_are_quoted_as_a_regex_only_inside_a_regex_matcher(query, value, rendered):
    assert promql(query, value) == rendered


def test_promql_lists_are_an_alternation_in_a_regex_matcher_and_joined_elsewhere():
    assert promql('x{h=~"{{v}}"}', ["mx1.example", "mx(2)"]) == r'x{h=~"(?:mx1\\.example|mx\\(2\\))"}'
    assert promql('x{h!~"{{v}}:25"}', ["a.b", "c"]) == r'x{h!~"(?:a\\.b|c):25"}'  # grouped: :25 follows each
    assert promql('x{h=~"{{v}}"}', ["only.one"]) == r'x{h=~"only\\.one"}'
    assert promql('x{h=~"{{v}}"}', []) == r'x{h=~"[^\\s\\S]"}'  # any of none: matches nothing
    assert promql('x{h="{{v}}"}', ["a.b", 'c"']) == r'x{h="a.b,c\""}'


def test_escape_promql_without_before_escapes_a_string_only():
    from guardrail_plugins.prometheus import escape_promql

    assert escape_promql('r.1"\\') == r'r.1\"\\'
    assert escape_promql(["a.b", "c"]) == "a.b,c"
    assert escape_promql("r.1", before='x{r=~"') == r"r\\.1"
