"""The sim's PromQL evaluator on small hand-made series, every number worked out by hand
from Prometheus 2.42's rules (extrapolatedRate, lookback, closed range windows). The
cross-check against a real Prometheus is in test_sim_plugin.py."""

from __future__ import annotations

import math

import pytest

from guardrail.language.types import render
from guardrail_plugins.prometheus import escape_promql
from guardrail_plugins.sim.promql import PromQLError, StaticStore, evaluate, parse


def store_of(*series):
    """``("name", {labels}, [values at 10s, 20s, ...])`` or with explicit (t, v) pairs."""
    out = []
    for name, labels, points in series:
        if points and not isinstance(points[0], tuple):
            points = [(10.0 * (i + 1), v) for i, v in enumerate(points)]
        out.append(({"__name__": name, **labels}, points))
    return StaticStore(out)


def one(result):
    assert isinstance(result, list) and len(result) == 1, result
    return result[0][1]


LINEAR = store_of(("a_total", {}, [5, 15, 25, 35, 45]))  # 1/s, samples at 10..50s


# --- rate / increase / delta: the extrapolation algorithm --------------------------


def test_increase_with_samples_on_both_window_edges_is_the_plain_difference():
    assert one(evaluate("increase(a_total[40s])", LINEAR, 50)) == pytest.approx(40)
    assert one(evaluate("rate(a_total[40s])", LINEAR, 50)) == pytest.approx(1.0)


def test_increase_extrapolates_to_a_near_window_edge():
    # window [5, 50]: first sample 5s in (< 1.1 x 10s) -> extrapolate by 5s: 40 * 45/40
    assert one(evaluate("increase(a_total[45s])", LINEAR, 50)) == pytest.approx(45)


def test_counter_is_not_extrapolated_below_zero():
    store = store_of(("a_total", {}, [1, 11, 21, 31, 41]))
    # durationToZero = 40 * 1/40 = 1s < 5s to the edge -> interval 41s
    assert one(evaluate("increase(a_total[45s])", store, 50)) == pytest.approx(41)


def test_far_edges_extrapolate_by_half_an_interval():
    store = store_of(("a_total", {}, [1000, 1010, 1020, 1030, 1040]), ("g", {}, [100, 90, 80, 70, 60]))
    # window [-5, 55]: 15s to the first sample (>= 11s) -> +5s; 5s to the end -> +5s
    assert one(evaluate("increase(a_total[60s])", store, 55)) == pytest.approx(50)
    assert one(evaluate("rate(a_total[60s])", store, 55)) == pytest.approx(50 / 60)
    assert one(evaluate("delta(g[60s])", store, 55)) == pytest.approx(-50)


def test_zero_point_is_applied_before_the_threshold_as_in_prometheus_2():
    # 15s to the first sample, but the counter's zero point is only 5s before it:
    # 2.x clips first (5s < 11s) and then extrapolates all the way: 40 * 50/40.
    assert one(evaluate("increase(a_total[60s])", LINEAR, 55)) == pytest.approx(50)


def test_counter_resets_add_the_value_before_the_drop():
    store = store_of(("a_total", {}, [5, 15, 3, 13, 23]))
    assert one(evaluate("increase(a_total[40s])", store, 50)) == pytest.approx(23 - 5 + 15)
    # delta treats the same data as a gauge
    assert one(evaluate("delta(a_total[40s])", store, 50)) == pytest.approx(18)
    assert one(evaluate("irate(a_total[30s])", store, 30)) == pytest.approx(0.3)  # 3 after a reset, over 10s
    assert one(evaluate("irate(a_total[30s])", store, 50)) == pytest.approx(1.0)


def test_rate_needs_two_samples():
    assert evaluate("rate(a_total[5s])", LINEAR, 50) == []
    assert evaluate("rate(a_total[1m])", LINEAR, 500) == []


# --- selectors ---------------------------------------------------------------------


def test_instant_selector_looks_back_five_minutes_inclusive():
    assert one(evaluate("a_total", LINEAR, 50 + 300)) == 45
    assert evaluate("a_total", LINEAR, 50.001 + 300) == []
    assert evaluate("a_total", LINEAR, 5) == []
    assert one(evaluate("a_total", LINEAR, 34.999)) == 25


def test_range_selector_is_closed_on_both_ends():
    assert one(evaluate("count_over_time(a_total[40s])", LINEAR, 50)) == 5
    assert one(evaluate("count_over_time(a_total[39s])", LINEAR, 50)) == 4


def test_over_time_functions():
    store = store_of(("g", {"r": "x"}, [4, 8, 1, 7]))
    assert one(evaluate("avg_over_time(g[1m])", store, 40)) == pytest.approx(5)
    assert one(evaluate("sum_over_time(g[1m])", store, 40)) == 20
    assert one(evaluate("max_over_time(g[1m])", store, 40)) == 8
    assert one(evaluate("min_over_time(g[25s])", store, 40)) == 1
    assert evaluate("last_over_time(g[1m])", store, 40) == [({"__name__": "g", "r": "x"}, 7)]
    assert evaluate("max_over_time(g[1m])", store, 40)[0][0] == {"r": "x"}  # name dropped


def test_offset_shifts_the_evaluation_time():
    assert one(evaluate("a_total offset 20s", LINEAR, 50)) == 25
    assert one(evaluate("increase(a_total[20s] offset 20s)", LINEAR, 50)) == pytest.approx(20)


def test_label_matchers():
    store = store_of(*[("up", {"region": r, "instance": f"{r}-{i}"}, [1]) for r in ("r1", "r2") for i in (1, 2)])
    assert len(evaluate('up{region="r1"}', store, 10)) == 2
    assert len(evaluate('up{region!="r1"}', store, 10)) == 2
    assert {lb["instance"] for lb, _ in evaluate('up{instance=~"r.-1"}', store, 10)} == {"r1-1", "r2-1"}
    assert len(evaluate('up{instance!~"r1.*|r2-2"}', store, 10)) == 1
    assert evaluate('up{instance=~"1"}', store, 10) == []  # regexes are anchored
    assert len(evaluate('up{missing=""}', store, 10)) == 4  # a missing label is the empty string
    assert len(evaluate('{__name__="up", region="r2"}', store, 10)) == 2


# --- aggregation and arithmetic ----------------------------------------------------


FLEET = store_of(
    ("lat", {"region": "r1", "instance": "a"}, [1.0]),
    ("lat", {"region": "r1", "instance": "b"}, [3.0]),
    ("lat", {"region": "r2", "instance": "c"}, [8.0]),
)


def as_dict(result):
    return {tuple(sorted(labels.items())): value for labels, value in result}


def test_aggregations_by_and_without():
    assert as_dict(evaluate("sum(lat)", FLEET, 10)) == {(): 12.0}
    assert as_dict(evaluate("sum by (region) (lat)", FLEET, 10)) == {(("region", "r1"),): 4.0, (("region", "r2"),): 8.0}
    assert as_dict(evaluate("avg(lat) by (region)", FLEET, 10)) == {(("region", "r1"),): 2.0, (("region", "r2"),): 8.0}
    assert as_dict(evaluate("max without (instance) (lat)", FLEET, 10)) == {(("region", "r1"),): 3.0, (("region", "r2"),): 8.0}
    assert as_dict(evaluate("min(lat)", FLEET, 10)) == {(): 1.0}
    assert as_dict(evaluate("count by (nope) (lat)", FLEET, 10)) == {(): 3.0}
    assert evaluate("sum(nothing)", FLEET, 10) == []


def test_arithmetic_drops_the_name_and_comparisons_filter():
    assert as_dict(evaluate('lat{instance="a"} * 2 + 1', FLEET, 10)) == {(("instance", "a"), ("region", "r1")): 3.0}
    assert as_dict(evaluate('10 - lat{instance="c"}', FLEET, 10)) == {(("instance", "c"), ("region", "r2")): 2.0}
    kept = evaluate("lat > 2", FLEET, 10)
    assert sorted(v for _, v in kept) == [3.0, 8.0] and all(lb["__name__"] == "lat" for lb, _ in kept)
    assert sorted(v for _, v in evaluate("lat > bool 2", FLEET, 10)) == [0.0, 1.0, 1.0]
    assert evaluate("2 < bool 3", FLEET, 10) == 1.0
    assert evaluate("(1 + 2) * 3 ^ 2 / 9", FLEET, 10) == pytest.approx(3.0)
    assert evaluate("-2 ^ 2", FLEET, 10) == -4.0
    assert evaluate("2 ^ 3 ^ 2", FLEET, 10) == 512.0  # right-associative
    assert math.isinf(evaluate("1 / 0", FLEET, 10)) and math.isnan(evaluate("0 / 0", FLEET, 10))


def test_vector_op_vector_matches_identical_label_sets():
    store = store_of(("ok_total", {"r": "1"}, [10, 30]), ("all_total", {"r": "1"}, [20, 60]),
                     ("all_total", {"r": "2"}, [5, 5]))
    assert as_dict(evaluate("ok_total / all_total", store, 20)) == {(("r", "1"),): 0.5}
    assert as_dict(evaluate("rate(ok_total[1m]) / rate(all_total[1m])", store, 20)) == {(("r", "1"),): 0.5}


def test_set_operators_match_on_labels_without_the_name():
    store = store_of(("a", {"r": "1"}, [1]), ("a", {"r": "2"}, [2]), ("b", {"r": "2"}, [20]), ("b", {"r": "3"}, [30]))
    assert as_dict(evaluate("a and b", store, 10)) == {(("__name__", "a"), ("r", "2")): 2.0}
    assert as_dict(evaluate("a unless b", store, 10)) == {(("__name__", "a"), ("r", "1")): 1.0}
    assert as_dict(evaluate("a or b", store, 10)) == {(("__name__", "a"), ("r", "1")): 1.0, (("__name__", "a"), ("r", "2")): 2.0,
                                                      (("__name__", "b"), ("r", "3")): 30.0}
    assert evaluate('count(a{r="9"} == 1) or vector(0)', store, 10) == [({}, 0.0)]
    assert evaluate("a * 2 or b > 1 and a", store, 10)[0][1] == 2.0  # precedence: or < and < comparison < *


def test_functions_on_instant_vectors():
    assert as_dict(evaluate('clamp_max(lat, 2)', FLEET, 10))[(("instance", "c"), ("region", "r2"))] == 2.0
    assert as_dict(evaluate('clamp_min(lat, 2)', FLEET, 10))[(("instance", "a"), ("region", "r1"))] == 2.0
    assert evaluate("scalar(sum(lat)) * 2", FLEET, 10) == 24.0
    assert evaluate("vector(1)", FLEET, 10) == [({}, 1.0)]
    assert evaluate("time()", FLEET, 1234.5) == 1234.5


# --- what is refused, and why ------------------------------------------------------


@pytest.mark.parametrize("query, words", [
    ("histogram_quantile(0.95, x)", "histogram_quantile"),
    ("atan2(1, 2)", "atan2"),
    ("1 or vector(1)", "set operator 'or' needs instant vectors"),
    ("rate(x[5m:1m])", "subquer"),
    ("x @ 100", "@ modifier"),
    ("topk(3, x)", "topk"),
    ("a / on(region) b", "on()"),
    ("sum(x[5m])", "range vector"),
    ("rate(x)", "range vector in call to function 'rate'"),
    ("x[5m]", "wrap it in a function"),
    ("{}", "at least one matcher"),
    ('x{a=~"("}', "invalid regular expression"),
    ('x{a=~"(a)\\\\1"}', "backreference"),
    ('x{a=~"a(?=b)"}', "lookahead"),
    ('x{a!~"a(?!b)"}', "negative lookahead"),
    ('x{a=~"(?<=a)b"}', "lookbehind"),
    ('x{a=~"(?<!a)b"}', "negative lookbehind"),
    ('x{a=~"(?>a)"}', "atomic group"),
    ('x{a=~"a*+"}', "possessive"),
    ('x{a=~"(?x)a"}', "flag 'x'"),
    ('x{a=~"a\\\\Z"}', "escape \\Z"),
    (r"""x{a="\'"}""", r"unknown escape sequence \'"),
    ("x{a='\\\"'}", "unknown escape sequence \\\""),
    ('x{a="\\400"}', "octal"),
    ('x{a="\\ud800"}', "invalid Unicode code point"),
    ("sum(", "end of query"),
    ("1 > 2", "bool"),
    ('x{a=b}', "quoted string"),
    ("x $ 2", "unexpected character"),
])
def test_unsupported_or_invalid_queries_name_the_construct(query, words):
    with pytest.raises(PromQLError) as error:
        evaluate(query, FLEET, 10)
    assert words in str(error.value)
    assert isinstance(error.value, ValueError)


def test_hostile_template_values_cannot_change_the_query():
    hostile = 'r3"} or vector(1) #'
    store = store_of(("up", {"region": "r3"}, [1]), ("up", {"region": hostile}, [7]))
    query = render('sum(up{region="{{region}}"})', {"region": hostile}, escape_promql)
    matcher = parse(query).expr.matchers[0]
    assert matcher.value == hostile  # the whole value stayed one string literal
    assert evaluate(query, store, 10) == [({}, 7.0)]
    assert evaluate(render('up{region="{{region}}"}', {"region": 'a\\"\nb'}, escape_promql), store, 10) == []
    # what escaping prevents: the same value pasted raw turns into a second query
    closing = 'nope"}) or vector(1) #'
    assert evaluate(render('sum(up{region="{{region}}"})', {"region": closing}), store, 10) == [({}, 1.0)]
    assert evaluate(render('sum(up{region="{{region}}"})', {"region": closing}, escape_promql), store, 10) == []


def test_string_escapes_and_comments():
    store = store_of(("up", {"path": 'C:\\dir "x"\n'}, [1]))
    assert len(evaluate('up{path="C:\\\\dir \\"x\\"\\n"} # a comment', store, 10)) == 1
    assert evaluate("up{path=~`C:.*`}", store, 10) == []  # `.` stops at the newline, as in RE2
    assert len(evaluate("up{path=~`(?s)C:.*`}", store, 10)) == 1


def test_parsed_queries_are_cached():
    assert parse("sum(rate(a_total[5m]))") is parse("sum(rate(a_total[5m]))")


# --- label-matcher regexes: RE2 as Prometheus uses it --------------------------------


REGIONS = store_of(*[("up", {"region": r}, [float(n)]) for n, r in
                     enumerate(["r.1", "rx1", "eu-(west)", "eu-west", ".*", "new\nline", "a\n", "٣"], start=1)])


def regions(query):
    return sorted(labels["region"] for labels, _ in evaluate(query, REGIONS, 10))


def test_regex_matchers_are_anchored_without_dotall():
    assert regions('up{region=~"r.1"}') == ["r.1", "rx1"]
    assert regions('up{region=~"r\\\\.1"}') == ["r.1"]  # "\\\\." in the query is the regex \.
    assert regions('up{region=~"1"}') == []  # anchored at both ends
    assert regions('up{region=~"new.line"}') == []  # `.` does not match a newline
    assert regions('up{region=~"(?s)new.line"}') == ["new\nline"]
    assert regions('up{region=~"new\\nline"}') == ["new\nline"]  # a newline from the string escape
    assert regions('up{region=~"a$"}') == []  # `$` is the end of the text, not before a final newline
    assert regions('up{region=~"a\\\\z|a\\n"}') == ["a\n"]
    assert regions('up{region=~"eu-(west)"}') == ["eu-west"]
    assert regions('up{region=~"eu-\\\\(west\\\\)|\\\\.\\\\*"}') == [".*", "eu-(west)"]
    assert regions('up{region=~".*"}') == sorted(["r.1", "rx1", "eu-(west)", "eu-west", ".*", "٣"])  # no newlines
    assert regions('up{region!~"r.1|eu-.*|.*line|a.*|٣"}') == [".*", "a\n", "new\nline"]
    assert regions('up{region=~"\\\\d"}') == []  # \d is ASCII-only in RE2
    assert regions('up{region=~"\\\\s*\\\\S+"}') == sorted(["r.1", "rx1", "eu-(west)", "eu-west", ".*", "٣"])
    assert regions('up{region=~`r\\.1`}') == ["r.1"]  # a raw string needs no doubled backslash
    assert regions('up{region=~"[.]\\\\*"}') == [".*"]


def test_regex_syntax_re2_lacks_is_a_parse_error():
    assert regions('up{region=~"[(?=]1"}') == []
    assert regions('up{region=~"r[.+*]1"}') == ["r.1"]
    assert regions('up{region=~"(?P<name>r)x1"}') == ["rx1"]
    assert regions('up{region=~"(?i)RX1"}') == ["rx1"]
    assert regions('up{region=~"r\\\\++"}') == []
    with pytest.raises(PromQLError, match="not supported by RE2"):
        parse('up{region=~"(r)\\\\1"}')


def test_string_literals_unescape_as_in_go():
    assert parse('x{a="\\x41\\101\\u00e9\\U0001F600\\t"}').matchers[0].value == "AAé\U0001F600\t"
    assert parse("x{a='it\\'s'}").matchers[0].value == "it's"
    assert parse('x{a="\\xc3\\xa9"}').matchers[0].value == "é"  # bytes that form UTF-8
    assert evaluate('up{region="\\xff"}', REGIONS, 10) == []  # a lone byte matches no label value
