"""Strict local fakes of the incident services guardrail talks to but tests cannot reach
(PagerDuty, Opsgenie, Slack, GitHub, Statuspage), a webhook receiver, a server that
hangs, and helpers that write rollout plans pointing at them. See ``base.FakeService``."""

from .base import FakeService, Hanging, Reply, Request
from .github import FakeGitHub
from .opsgenie import FakeOpsgenie
from .pagerduty import FakePagerDuty
from .receiver import FakeReceiver
from .slack import FakeSlack
from .statuspage import FakeStatuspage

__all__ = ["FakeGitHub", "FakeOpsgenie", "FakePagerDuty", "FakeReceiver", "FakeService", "FakeSlack",
           "FakeStatuspage", "Hanging", "Reply", "Request"]
