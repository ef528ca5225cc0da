"""The ``github`` sink against a strict fake of GitHub's issues API.

An issue with labels, a comment per update, closed on resolve; ``Bearer`` auth and a
User-Agent. The primary rate limit (403 + ``x-ratelimit-remaining: 0``) waits for
``x-ratelimit-reset`` when near and spools when far; a plain 403 or a 422 is final.
An issue opened by a delivery that died before recording it is found, not duplicated.
"""

from __future__ import annotations

import time

import pytest

from guardrail.clock import SystemClock
from guardrail.plugin.interfaces import PluginContext
from guardrail.plugin.interfaces import SinkError
from guardrail_plugins.github import GitHubSink
from support.fakes import FakeGitHub
from support.fakes.github import validation_failed
from support.fakes.rollouts import FAST, deliveries, run_api, sample_incidents, write_plan

TOKEN = "github_pat_11AAAAAAA0testtokenvalue"


@pytest.fixture
def github():
    with FakeGitHub(TOKEN) as fake:
        yield fake


def _settings(fake: FakeGitHub, **extra) -> dict:
    return {"repository": fake.repository, "url": fake.url, **FAST, **extra}


def _sink(fake: FakeGitHub, tmp_path, **extra) -> GitHubSink:
    return GitHubSink(GitHubSink.Settings(token=TOKEN, **_settings(fake, **extra)),
                      PluginContext(clock=SystemClock(), state_dir=tmp_path))


@pytest.fixture(scope="module")
def incidents(tmp_path_factory) -> list[dict]:
    return sample_incidents(tmp_path_factory.mktemp("sample"), scenario="relapse.yaml")


def test_an_issue_a_comment_per_update_then_closed_through_a_rollout(github, tmp_path):
    state = tmp_path / "state" / "state.db"
    sinks = [{"plugin": "github", "with": {"token": "${env:GH_TOKEN}", **_settings(github)}}]
    result = run_api(write_plan(tmp_path / "w", sinks=sinks, scenario="relapse.yaml"), state, {"GH_TOKEN": TOKEN})
    assert result.outcome == "rolled_back" and github.violations == []
    [issue] = github.issues.values()
    assert issue["state"] == "closed" and issue["state_reason"] == "completed"
    assert [label["name"] for label in issue["labels"]] == ["incident", "guardrail"]
    assert issue["title"].startswith("[guardrail] mail-sender 2.1-bad")
    body = issue["body"]
    assert 'max(errors_ratio{region="r3"})' in body and "| r3 | canary | rolling back |" in body
    assert f"guardrail-incident: guardrail:mail-sender:{result.rollout_id}" in body
    comments = github.comments[issue["number"]]
    updates = deliveries(state, "github")
    assert len(comments) == len(updates) - 1 == 4  # the body carries the first update
    assert comments[0].startswith("**MONITORING**") and any("failed again" in c for c in comments)
    assert comments[-1].startswith("**RESOLVED**")
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" and r.headers["user-agent"].startswith("guardrail/")
               and r.headers["x-github-api-version"] == "2022-11-28" for r in github.requests)
    assert {d["status"] for d in deliveries(state, "github")} == {"delivered"}


def test_the_rate_limit_waits_for_the_reset_when_near(github, tmp_path, incidents):
    reset = github.rate_limit(reset_in=2.0)
    ref = _sink(github, tmp_path).notify(incidents[0], {})
    assert ref["issue"] == 1 and github.violations == []
    # The retry came once the limit was reset (an ordering of two times on one clock: both
    # are epoch seconds, the reset as GitHub sends it and the retry as the fake received
    # it), not a fixed time after the first request, which a loaded machine may delay.
    assert github.requests[1].at >= reset - 0.05


def test_a_far_reset_is_spooled_without_waiting(github, tmp_path, incidents):
    github.rate_limit(reset_in=1800)
    started = time.monotonic()
    with pytest.raises(SinkError) as raised:
        _sink(github, tmp_path).notify(incidents[0], {})
    assert raised.value.retryable and time.monotonic() - started < 30  # neither the reset nor max_wait (60s)
    assert "API rate limit exceeded" in str(raised.value) and len(github.requests) == 1


@pytest.mark.parametrize("status, body", [
    (403, {"message": "Resource not accessible by personal access token"}),
    (422, validation_failed("title").body),
    (401, {"message": "Bad credentials"}),
])
def test_other_4xx_are_final_and_reported_in_githubs_words(github, tmp_path, incidents, status, body):
    github.fail_next(status, body)
    with pytest.raises(SinkError) as raised:
        _sink(github, tmp_path).notify(incidents[0], {})
    assert not raised.value.retryable and len(github.requests) == 1
    assert str(raised.value).startswith(f"HTTP {status}: {body['message']}")


def test_an_issue_opened_before_a_crash_is_found_not_opened_twice(github, tmp_path, incidents):
    sink = _sink(github, tmp_path)
    sink.notify(incidents[0], {})  # opened; imagine the process killed before the number was stored
    ref = sink.notify(incidents[0], {})
    assert len(github.issues) == 1 and ref["issue"] == 1


def test_a_close_that_failed_is_retried_without_commenting_twice(github, tmp_path, incidents):
    sink = _sink(github, tmp_path, retries=0)
    ref: dict = {}
    for incident in incidents[:-1]:
        ref = sink.notify(incident, ref)
    github.fail_next(502, "bad gateway", when=lambda request: request.method == "PATCH")
    with pytest.raises(SinkError):
        sink.notify(incidents[-1], ref)  # the comment went, the close did not
    assert ref["commented"] == incidents[-1]["revision"] and not ref.get("closed")  # kept in place, as the deliverer stores it
    comments = len(github.comments[1])
    sink.notify(incidents[-1], ref)
    assert len(github.comments[1]) == comments and github.issues[1]["state"] == "closed"


def test_a_github_that_stays_down_is_spooled_then_flushed(github, tmp_path, cli):
    state = tmp_path / "state" / "state.db"
    sinks = [{"plugin": "github", "with": {"token": "${env:GH_TOKEN}", **_settings(github)}}]
    github.down = True
    assert run_api(write_plan(tmp_path / "w", sinks=sinks), state, {"GH_TOKEN": TOKEN}).outcome == "rolled_back"
    assert {d["status"] for d in deliveries(state, "github")} == {"pending"} and github.issues == {}
    github.down = False
    flushed = cli("incidents", "flush", "--state", str(state), env={"GH_TOKEN": TOKEN})
    assert flushed.exit_code == 0, flushed.output
    [issue] = github.issues.values()
    assert issue["state"] == "closed" and len(github.comments[issue["number"]]) == 2 and github.violations == []
