"""Offline PromQL checking (``plugins/prometheus_syntax.py``) agrees with a real Prometheus.

Every query of the repository's policies (policies/, examples/, tests/, the validate
benchmark's), and the hand-written edge cases below, gets the same accept/reject answer
from ``check_query`` (offline, what ``guardrail validate`` asks) as from the installed
Prometheus's ``/api/v1/format_query`` (``parse_error``, what ``validate --live`` asks).

Where they disagree, the rule is: offline never refuses what Prometheus accepts (a
policy repository's CI would block a valid change). The other way round is allowed and
listed in ``ACCEPTED_OFFLINE``: grammar a newer Prometheus accepts, or a regex Go's RE2
refuses and the parser's Rust regex takes. Each entry is asserted to still differ, so
the list shrinks when either side changes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from guardrail.clock import SystemClock
from guardrail.language import documents
from guardrail.language.queries import fill
from guardrail.plugin.interfaces import PluginContext
from guardrail_plugins.prometheus import PrometheusSource

pytestmark = pytest.mark.prometheus

REPO = Path(__file__).resolve().parents[1]

VALID = [
    'marker{region=~`back\\\\slash\\\\`}', 'marker{region=~"it\'s|tick`tock"}', 'marker{region=~"région-.*"}',
    'marker{region=~"(?s)new.line"}', 'marker{region=~"(?i)PLAIN|R.1"}', 'marker{region=~"\\\\S+"}',
    'x @ start()', 'holt_winters(x[5m],0.5,0.5)', 'x[5m1s]', 'x offset -5m', 'x[5m:]', '1 < bool 2', "'str'",
    "x{a='b'}", 'x{a=`b`}', 'rate(x[5m] @ 100)', 'x @ 1e10', 'x @ -5', 'sum by (le) (x) / on() group_left sum(y)',
    'x{a="this or that"} or y', 'x * on(a) group_left(b) y', 'x == on(a) group_right y', 'x or on(a) y', 'x unless ignoring(a) y',
    'scalar(x) > bool 1', '+x', '--x', 'x ^ 2 ^ 3', 'x # comment', 'label_join(x, "a", ",", "b", "c")',
    'label_replace(x, "a", "$1", "b", "(")', 'absent(nonexistent{job="x"})', 'predict_linear(x[5m], 3600)',
    'round(x, 0.1)', 'clamp(x, 0, 1)', 'timestamp(x)', 'sort_desc(x)', 'day_of_week()', 'day_of_week(x)',
    'x{a=~"(?i)abc"}', 'x{a=~"\\\\d+"}', 'x{a=~"a{2,3}"}', 'x{a=~"(?P<n>a)"}', 'x{a=~"\\\\p{L}"}', 'sum(x) by (a,)',
    'sum by (a,) (x)', 'x{a!~""}', 'x{a="\\u00e9"}', 'x{a="\\x41"}', 'x{a="\\101"}', '.5', '5.', 'x[5ms]', 'x[1y]',
    'x[5m] offset 1h @ end()', 'max_over_time(deriv(rate(x[1m])[5m:1m])[10m:])',
    'histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))', 'sum without() (x)', 'sum by (__name__) (x)',
    'avg(x) by (a) ', 'stddev_over_time(x[5m])', 'present_over_time(x[5m])', 'quantile_over_time(0.5, x[5m])',
    'changes(x[5m])', 'resets(x[5m])', 'irate(x[5m])', 'idelta(x[5m])', 'delta(x[5m])', '((x))',
    'sum(x{a="b"}) / ignoring (a) sum(y)', 'bottomk(3, x)', 'group by (a) (x)', 'stdvar without (a) (x)',
    'count(x) == 0', 'absent_over_time(x[5m]) == 1', 'sgn(x)', 'ln(x)', 'log2(x)', 'exp(x)', 'sqrt(x)', 'x % 3',
    'x atan2 y', 'deg(x)', 'pi()', 'vector(time())', 'minute(x)', 'month()', 'year()', 'days_in_month()',
    'histogram_count(x)', 'histogram_sum(x)', 'histogram_fraction(0, 1, x)', 'x{job="a"}[5m] offset 1m',
    'x @ start() offset 1m[5m:]', 'abc123', 'a:b:c', ':a', 'x-y', 'x - -1', 'x != bool 1', 'x==1', '`raw\\d`',
    'x{a="b"} # trailing { comment',
    'sum(rate(http_requests_total{code=~"5.."}[5m])) by (job) / sum(rate(http_requests_total[5m])) by (job)',
    'x{a="日本語"}', 'x{a=~"ü.*"}', 'x # unicode comment: 日本語', 'x{a="tab\\there"}', 'x{a="new\\nline"}',
    "x{a='single'}", 'x{a=~`\\d+\\.\\d+`}', 'label_replace(up, "host", "$1", "instance", `(.*):\\d+`)',
    'sum by (job) (up) # total', '(\n  sum(x)\n  # explanation\n  / sum(y)\n)', 'x @ start() - x offset 1h @ start()',
    'x{a="b"}[5m:30s] @ 1700000000', 'sum(x) without (instance)', 'topk by (job) (3, x)', 'count by (a) (x) > bool 0',
    'x > 0 and x < 10', 'x / on(instance) group_left(job) up',
    'avg without (cpu) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))',
    'histogram_quantile(0.99, sum by (le, region) (rate(x_bucket[5m]))) > 0.5', 'absent(up{job="api"} == 1)',
]
INVALID = [
    'marker{region=~"(r)\\\\1"}', 'marker{region=~"r(?!x).*"}', 'marker{region=~"(?<=r)x1"}', 'marker{region=~"(?>rx)1"}',
    'marker{region=~"rx*+1"}', 'marker{region=~"(?x)rx1"}',
    'x offset +inf', 'x offset nan', 'x offset 1e20', 'x[1e309]', 'x[5m:1e30]', 'rate(x[ -Inf ])',
    'sum(x', 'sum(rate(x[5m)', 'x{a="b"', 'foo bar', 'x[5m] offset', 'x{a=~"["}', '{}', '{a=""}',
    'a and on(b) group_left c', 'x{é="1"}', 'é', 'unknown_fn(x)', 'rate(x)', 'abs(x[5m])', 'topk(x, y)', '1 + ',
    'x{__name__="a"}', 'x and bool y', 'sum(x) by (a) without (b)', 'x[5m] + 1', 'x{,}', 'vector(1)[5m]', 'x[1.5m]',
    'x{a="\\d"}', 'x{"a"="b"}', '{"metric.name"}', 'double_exponential_smoothing(x[5m],0.5,0.5)', 'info(x)',
    'mad_over_time(x[5m])', 'sort_by_label(x,"a")', 'limitk(1, x)', 'x[90]', '1 < 2', '"a" + 1', 'x[0s]',
    'x offset 0s', 'x @ NaN', 'x @ Inf', '-x[5m]', '# only comment', '', 'x{a="b"} offset 5m offset 1m', 'x @ 1 @ 2',
    'count_values(1, x)', 'quantile("a", x)', 'time(1)', 'vector("a")', 'x[5m:1m:1m]', 'x[5m:-1m]', 'x{a=~"a**"}',
    'x{a=~"(?=a)"}', 'x{a=~"\\\\1"}', 'sum(x,)', 'rate(x[5m],)', 'x{a="b",,}', 'x{a="\\z"}', '0x1G', '1e', '1_000',
    '0b101', '0o7', 'x[5M]', 'x[-5m]', 'x offset 1.5', 'histogram_quantile(x, y)', 'sum(x) bool', 'x > bool',
    'on(a) x', 'group_left x', 'sum by ("a.b") (x)', 'x and', '(x', 'x)', '()', '[5m]', 'x[5m]]', 'x{}}', 'x{{}',
    'histogram_stddev(x)', 'histogram_avg(x)', 'ts_of_max_over_time(x[5m])', 'x offset 5m[1m]',
    'rate(x offset 5m[5m])', 'x smoothed', 'x[5m] anchored', 'first_over_time(x[5m])', 'x{a="b" or c="d"}', 'sum(rate(x{a="b", c="d" or e="f"}[5m]))',
    'sum(x) @ 100', '(sum(x)) @ 100', 'rate(x[5m]) @ end()', 'max(x) offset 5m', 'sum(rate(x[5m])) offset 1m',
    '123abc', 'a.b', 'x ** 2', 'x ! y', 'x=1', '"unterminated', "'also", 'max_over_time(x[1h:]) offset 1d',
    'x @ start(1)', 'x[5m] @ start', 'x{a="b"} @', 'x offset', 'x offset 5', 'sum by (a (x)', 'x{a=}', 'x{=b}',
    'x{a~"b"}', 'rate(x[5m]) by (a)', 'x or bool y', 'topk(3)', 'topk(3, x, y)', 'histogram_quantile(0.9)',
    'x group_left y', 'x + on(a) bool y', 'x{a="b"}{c="d"}', 'x[5m][5m]', 'x[5m:1m][1m]', '1 +* 2', 'sum()',
    'max_over_time(x[5m:1m)', 'x{a="b" c="d"}', 'x @ end() @ start()', 'sum(x) @ start() offset', '"a" "b"',
    'x{a=~"b"}}', 'rate(x{a="b"}[5m]]',
]

ACCEPTED_OFFLINE = {
    'x{"a"="b"}': "quoted UTF-8 label names: Prometheus 3",
    '{"metric.name"}': "a quoted UTF-8 metric name: Prometheus 3",
    'sum by ("a.b") (x)': "a quoted UTF-8 label name in grouping: Prometheus 3",
    "double_exponential_smoothing(x[5m],0.5,0.5)": "holt_winters' new name in Prometheus 3",
    "info(x)": "a function of Prometheus 3",
    "mad_over_time(x[5m])": "a function of Prometheus 3",
    'sort_by_label(x,"a")': "a function of Prometheus 3",
    "limitk(1, x)": "an aggregation of Prometheus 3",
    "histogram_stddev(x)": "a function of Prometheus 3",
    "histogram_avg(x)": "a function of Prometheus 3",
    "ts_of_max_over_time(x[5m])": "a function of Prometheus 3",
    "first_over_time(x[5m])": "a function of Prometheus 3",
    "x[90]": "a number of seconds as a duration: newer Prometheus",
    "x offset 1.5": "a number of seconds as an offset: newer Prometheus",
    "x offset 5": "a number of seconds as an offset: newer Prometheus",
    'x{a=~"a**"}': "a nested repetition: Rust's regex takes it, Go's RE2 refuses it",
    'marker{region=~"rx*+1"}': "a possessive-looking repetition: Rust's regex takes it, Go's RE2 refuses it",
    'marker{region=~"(?x)rx1"}': "the x (verbose) flag: Rust's regex has it, Go's RE2 does not",
}
"""Queries the parser accepts and this Prometheus refuses, with why."""


def repository_queries() -> dict[str, str]:
    """Every check's query in the repository's policies, its templates filled as
    ``guardrail validate`` fills them; query -> the file it comes from."""
    found: dict[str, str] = {}
    files = [f for folder in ("policies", "examples", "tests") for f in sorted((REPO / folder).rglob("*.y*ml"))]
    for path in files:
        data = documents.read(path).data  # guardrail's bounded reader: tests/data/invalid has YAML bombs
        checks = data.get("checks") if isinstance(data, dict) else None
        for check in checks if isinstance(checks, list) else ():
            if isinstance(check, dict) and isinstance(check.get("query"), str):
                found.setdefault(fill(check["query"])[0], str(path.relative_to(REPO)))
    bench = (REPO / "benchmarks" / "validate_bench.py").read_text(encoding="utf-8")
    for query in re.findall(r"""\("[\w-]+", '([^']+)'""", bench):
        found.setdefault(fill(query)[0], "benchmarks/validate_bench.py")
    return found


REPOSITORY = repository_queries()
EVERY = list(dict.fromkeys([*REPOSITORY, *VALID, *INVALID]))


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """What the installed Prometheus says of each query: None (accepted) or its objection."""
    from support.prometheus import PrometheusServer

    base = tmp_path_factory.mktemp("promql-syntax")
    with PrometheusServer(base) as server:
        source = PrometheusSource(PrometheusSource.Settings(url=server.url),
                                  PluginContext(clock=SystemClock(), state_dir=base))
        try:
            yield {query: source.parse_error(query) for query in EVERY}
        finally:
            source.close()


def test_the_corpus_is_large_and_covers_the_repository(live):
    accepted = [q for q in EVERY if live[q] is None]
    refused = [q for q in EVERY if live[q] is not None]
    assert len(accepted) >= 60 and len(refused) >= 30, (len(accepted), len(refused))
    assert len(REPOSITORY) >= 25, REPOSITORY  # policies/, examples/, tests/ and the benchmark's
    assert "benchmarks/validate_bench.py" in REPOSITORY.values()
    assert any(origin.startswith("policies/") for origin in REPOSITORY.values())


def test_the_hand_written_queries_are_labelled_as_prometheus_answers(live):
    assert [q for q in VALID if live[q] is not None] == []
    assert [q for q in INVALID if live[q] is None] == []


@pytest.mark.parametrize("query", EVERY)
def test_offline_answers_as_prometheus_does(query, live):
    offline = PrometheusSource.check_query(query)
    if query in ACCEPTED_OFFLINE:
        assert offline is None and live[query] is not None, (
            f"no longer a difference ({ACCEPTED_OFFLINE[query]}): offline {offline}, Prometheus {live[query]}")
        return
    if live[query] is None:
        assert offline is None, f"offline refuses what Prometheus accepts: {offline.message}"
    else:
        assert offline is not None, f"offline accepts what Prometheus refuses: {live[query]}"
        assert offline.message.startswith("invalid PromQL: ")
        assert offline.offset is None or 0 <= offline.offset <= len(query)


def test_every_known_difference_is_in_the_corpus():
    assert set(ACCEPTED_OFFLINE) <= set(INVALID)


def test_the_parser_is_imported_only_when_there_is_a_query_to_check(tmp_path):
    policy = tmp_path / "tcp.yaml"
    policy.write_text("apiVersion: guardrail/v1\nkind: Policy\nname: tcp\nchecks:\n"
                      "  - {name: smtp, source: tcp, targets: [mx.example], port: 25, min_success_ratio: 0.9}\n")
    script = ("import sys\nfrom guardrail.language.loader import validate_paths\n"
              "from guardrail.plugin.manager import get_plugin_manager\n"
              "registry = get_plugin_manager().registry\n"
              f"assert validate_paths([{str(policy)!r}], registry) == (1, [])\n"
              "assert 'promql_parser' not in sys.modules\n"
              f"validate_paths([{str(REPO / 'policies')!r}], registry)\n"
              "assert 'promql_parser' in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10 ** 30), max_value=10 ** 30).map(str),
    st.integers(min_value=0, max_value=2 ** 80).map(hex),
    st.sampled_from(["inf", "-Inf", "+NaN", "nan", "1e309", "- inf", ".5e10", "0x7fffffffffffffff"]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(number=NUMBERS, shape=st.sampled_from(["x offset {}", "x[{}]", "x[5m:{}]", "rate(x[{}] offset {})",
                                              "sum_over_time(x[1h:{}])", "x @ {}"]))
def test_a_number_where_a_duration_goes_never_crashes_the_parser(number, shape, capfd):
    """The Rust parser panics on a duration it cannot hold (infinite, NaN, past 2^63 ns):
    such a query is refused before it gets there, with nothing printed."""
    query = shape.format(number, number)
    problem = PrometheusSource.check_query(query)
    assert problem is None or problem.message.startswith("invalid PromQL: ")
    assert "the parser failed" not in (problem.message if problem else "")
    assert capfd.readouterr().err == ""
