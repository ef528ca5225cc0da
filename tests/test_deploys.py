"""Deploy times read from a version series in a real Prometheus (guardrail.tools.deploys)."""

from __future__ import annotations

import pytest

from guardrail.errors import GuardrailError, UsageError
from guardrail.language.loader import load_plan
from guardrail.plugin.manager import get_plugin_manager
from guardrail.tools.deploys import VersionMetric, every, find_deploy, find_rollouts
from support.version_history import CLOUD, DAY, HOUR, WEEK, write_plan

pytest_plugins = ["support.version_prometheus"]


@pytest.fixture
def registry():
    return get_plugin_manager().registry


@pytest.fixture
def plan(tmp_path, version_prometheus, registry):
    return load_plan(write_plan(tmp_path, version_prometheus.url), registry)


def build_info(service: str = "mail-sender", **options) -> VersionMetric:
    return VersionMetric(f'app_build_info{{service="{service}"}}', **options)


def test_each_region_first_showed_the_version_at_its_own_time(plan, registry):
    deploy = find_deploy(plan, registry, build_info(), "2024.07.01", start=DAY.start, end=DAY.end)
    assert deploy.regions == {"r3": DAY.start + 2 * HOUR, "r1": DAY.start + 3 * HOUR + 17 * 60}
    assert list(deploy.regions) == ["r3", "r1"]  # earliest first
    assert deploy.never == ["r2"]
    assert deploy.before == []
    assert deploy.at == DAY.start + 2 * HOUR
    later = find_deploy(plan, registry, build_info(), "2024.07.02", start=DAY.start, end=DAY.end)
    assert later.regions == {"r3": DAY.start + 12 * HOUR, "r1": DAY.start + 12.5 * HOUR, "r2": DAY.start + 13 * HOUR}
    assert later.never == []


def test_a_window_that_closes_before_a_region_got_the_version_reports_it_never_did(plan, registry):
    deploy = find_deploy(plan, registry, build_info(), "2024.07.01", start=DAY.start, end=DAY.start + 3 * HOUR)
    assert deploy.regions == {"r3": DAY.start + 2 * HOUR}
    assert deploy.never == ["r1", "r2"]


def test_a_version_running_when_the_window_opens_is_dated_at_the_window_start(plan, registry):
    start = DAY.start + 6 * HOUR
    deploy = find_deploy(plan, registry, build_info(), "2024.07.01", start=start, end=DAY.end)
    assert deploy.before == ["r3", "r1"]
    assert deploy.regions == {"r3": start, "r1": start}


def test_region_values_map_to_plan_regions_through_their_variables(tmp_path, version_prometheus, registry):
    regions = {"r3": {"vars": {"aws_region": "us-east-1"}}, "r1": {"vars": {"aws_region": "eu-west-1"}},
               "r2": {"vars": {"aws_region": "ap-south-1"}}}
    plan = load_plan(write_plan(tmp_path, version_prometheus.url, service="mail-edge", regions=regions), registry)
    spec = build_info("mail-edge", region_value="{{aws_region}}")
    deploy = find_deploy(plan, registry, spec, "2024.07.01", start=CLOUD.start, end=CLOUD.end)
    assert deploy.regions == {"r1": CLOUD.start + 4 * HOUR, "r2": CLOUD.start + 5 * HOUR}
    assert deploy.never == ["r3"]
    with pytest.raises(UsageError, match=r"'region' values of .* \(ap-south-1, eu-west-1, us-east-1\) match no region "
                                         r"of the plan \(r1, r2, r3\): map them with --region-value"):
        find_deploy(plan, registry, build_info("mail-edge"), "2024.07.01", start=CLOUD.start, end=CLOUD.end)


def test_every_version_that_started_in_the_window_is_a_rollout(plan, registry):
    rollouts = find_rollouts(plan, registry, build_info(), start=DAY.start, end=DAY.end)
    assert [r.version for r in rollouts] == ["2024.07.01", "2024.07.02"]  # not 2024.06.01: it was running already
    assert rollouts[0].never == ["r2"]
    week = find_rollouts(plan, registry, build_info("mail-queue"), start=WEEK.start, end=WEEK.end)
    assert [r.version for r in week] == [f"w{k:02d}" for k in range(1, 23)]
    assert all(r.regions["r1"] - r.regions["r3"] == 1800 for r in week)


def test_a_rollout_under_way_when_the_window_opens_is_left_out(plan, registry):
    start = DAY.start + 2.5 * HOUR  # 2024.07.01 is in r3 already, r1 gets it later
    rollouts = find_rollouts(plan, registry, build_info(), start=start, end=DAY.end)
    assert [r.version for r in rollouts] == ["2024.07.02"]


def test_synthetic_deploys_every_period():
    times = [d.at for d in every(WEEK.start, WEEK.end, 6 * HOUR)]
    assert len(times) == 28 and times[0] == WEEK.start and times[-1] == WEEK.end - 6 * HOUR
    assert [d.at for d in every(0, 10, 4)] == [0, 4, 8]
    with pytest.raises(UsageError, match="positive"):
        every(0, 10, 0)


@pytest.mark.parametrize(("spec", "version", "message"), [
    (VersionMetric('app_build_info{service="mail-sender"'), "x", r"rejects it: .*unexpected"),
    (VersionMetric('app_build_info{service="mail-sender"}[5m]'), "x", r"expected the series themselves .* not a range"),
    (build_info("nobody"), "x", r"no series of app_build_info\{service=\"nobody\"\} between 2024-07-01T00:00:00Z"),
    (build_info(region_label="cluster"), "x",
     r"carry no 'cluster' label \(their labels: region, service, version\): name the label with --region-label"),
    (build_info(version_label="build"), "x", r"carry no 'build' label .* --version-label"),
    (build_info(), "2099.01.01", r"shows version='2099.01.01' .*; versions seen: 2024.06.01, 2024.07.01, 2024.07.02"),
    (build_info(region_value="{{zone}}"), "x", r"--region-value '\{\{zone\}\}': region 'r3' has no variable 'zone'"),
    (build_info(region_value="{{service}}"), "x", r"--region-value '\{\{service\}\}' is 'mail-sender' for both 'r3' and "
                                                 r"'r1': their series could not be told apart"),
])
def test_clear_errors(plan, registry, spec, version, message):
    with pytest.raises(UsageError, match=message):
        find_deploy(plan, registry, spec, version, start=DAY.start, end=DAY.end)


def test_a_plan_without_a_prometheus_source_needs_one(tmp_path, registry, version_prometheus):
    plan = load_plan(write_plan(tmp_path, None), registry)
    with pytest.raises(UsageError, match="no source 'prometheus' .* --prometheus URL"):
        find_deploy(plan, registry, build_info(), "2024.07.01", start=DAY.start, end=DAY.end)
    given = {"prometheus": {"plugin": "prometheus", "url": version_prometheus.url}}
    deploy = find_deploy(plan, registry, build_info(), "2024.07.01", start=DAY.start, end=DAY.end, sources=given)
    assert deploy.never == ["r2"]


def test_a_prometheus_that_cannot_be_reached_is_named(tmp_path, registry):
    plan = load_plan(write_plan(tmp_path, "http://127.0.0.1:9"), registry)
    with pytest.raises(GuardrailError, match=r"--version-metric: prometheus http://127.0.0.1:9: query .* failed"):
        find_deploy(plan, registry, build_info(), "2024.07.01", start=DAY.start, end=DAY.end)


def test_a_region_with_its_own_source_settings_is_asked_through_them(tmp_path, version_prometheus, registry):
    # r2's own settings make a second source: the version series is asked twice, once per
    # source, and each source answers only for its own regions.
    regions = {"r3": {}, "r1": {}, "r2": {"sources": {"prometheus": {"timeout": "30s"}}}}
    plan = load_plan(write_plan(tmp_path, version_prometheus.url, regions=regions), registry)
    deploy = find_deploy(plan, registry, build_info(), "2024.07.02", start=DAY.start, end=DAY.end)
    assert deploy.regions == {"r3": DAY.start + 12 * HOUR, "r1": DAY.start + 12.5 * HOUR, "r2": DAY.start + 13 * HOUR}
    regions["r2"]["sources"]["prometheus"]["url"] = "http://127.0.0.1:9"
    plan = load_plan(write_plan(tmp_path, version_prometheus.url, regions=regions), registry)
    with pytest.raises(GuardrailError, match="prometheus http://127.0.0.1:9"):
        find_deploy(plan, registry, build_info(), "2024.07.02", start=DAY.start, end=DAY.end)
