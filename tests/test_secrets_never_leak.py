"""Secrets given as ``${env:...}`` never appear in anything guardrail writes.

A failed rollout with every incident sink configured from environment secrets (and a
remediation action that prints its own token) runs as a subprocess, first while the
services are down (so errors and the spool are exercised), then ``incidents flush``
with them up. Everything is then searched for every secret: stdout and stderr of every
command, every file in the state folder (SQLite database, WAL, journal, report), and
every request body the fakes received. Each secret is also checked to have reached the
one place it belongs (its service's auth header, the webhook signature key...), so the
search is not vacuous.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from support.fakes import (FakeGitHub, FakeOpsgenie, FakePagerDuty, FakeReceiver, FakeService, FakeSlack,
                           FakeStatuspage, Reply)
from support.fakes.rollouts import run_cli, write_plan

SECRETS = {
    "PD_ROUTING_KEY": "PDSECRETROUTINGKEY0123456789abcd",  # 32 characters
    "OPSGENIE_KEY": "opsgenie-secret-4c1d2e3f",
    "SLACK_TOKEN_PATH": "/services/T0SECRET/B0SECRET/slacksecrettoken123",
    "GH_TOKEN": "ghp_githubsecrettoken0123456789",
    "STATUSPAGE_KEY": "statuspage-secret-key-9876",
    "HOOK_SECRET": "webhook-hmac-secret-5555",
    "HOOK_TOKEN": "webhook-bearer-secret-7777",
    "AM_BASIC": "YWxlcnQ6bWFuYWdlcnNlY3JldA==",
    "ACTION_TOKEN": "action-token-secret-3141",
}


class FakeAlertmanagerAPI(FakeService):
    """Just enough of ``POST /api/v2/alerts`` to receive what the sink sends (the real
    Alertmanager is exercised in test_sink_alertmanager.py)."""

    def handle(self, request):
        if request.method == "POST" and request.path == "/api/v2/alerts" and isinstance(request.json, list):
            return Reply(200, "")
        return Reply(400, "bad request")


@pytest.fixture
def services():
    fakes = {
        "pagerduty": FakePagerDuty(SECRETS["PD_ROUTING_KEY"]),
        "opsgenie": FakeOpsgenie(SECRETS["OPSGENIE_KEY"]),
        "slack": FakeSlack(SECRETS["SLACK_TOKEN_PATH"]),
        "github": FakeGitHub(SECRETS["GH_TOKEN"]),
        "statuspage": FakeStatuspage(SECRETS["STATUSPAGE_KEY"]),
        "webhook": FakeReceiver(secret=SECRETS["HOOK_SECRET"]),
        "alertmanager": FakeAlertmanagerAPI(),
    }
    yield fakes
    for fake in fakes.values():
        fake.close()


def _sinks(f: dict) -> list[dict]:
    fast = {"timeout": "10s", "retries": 1, "backoff": "50ms"}  # the fakes answer at once; a loaded machine may not
    return [
        {"plugin": "journal"},
        {"plugin": "alertmanager", "with": {"url": f["alertmanager"].url,
                                            "headers": {"Authorization": "Basic ${env:AM_BASIC}"}, **fast}},
        {"plugin": "pagerduty", "with": {"routing_key": "${env:PD_ROUTING_KEY}",
                                         "url": f["pagerduty"].enqueue_url, **fast}},
        {"plugin": "opsgenie", "with": {"api_key": "${env:OPSGENIE_KEY}", "url": f["opsgenie"].url, **fast}},
        {"plugin": "slack", "with": {"url": "${env:SLACK_WEBHOOK_URL}", **fast}},
        {"plugin": "github", "with": {"repository": f["github"].repository, "token": "${env:GH_TOKEN}",
                                      "url": f["github"].url, **fast}},
        {"plugin": "statuspage", "with": {"page_id": f["statuspage"].page_id, "api_key": "${env:STATUSPAGE_KEY}",
                                          "url": f["statuspage"].url + "/v1", "components": ["cmp-smtp"], **fast}},
        {"plugin": "webhook", "with": {"url": f["webhook"].hook_url, "secret": "${env:HOOK_SECRET}",
                                       "headers": {"Authorization": "Bearer ${env:HOOK_TOKEN}"}, **fast}},
    ]


def test_no_secret_reaches_output_store_journal_report_or_request_bodies(tmp_path, services):
    env = {**SECRETS, "SLACK_WEBHOOK_URL": services["slack"].url + SECRETS["SLACK_TOKEN_PATH"]}
    plan = write_plan(tmp_path / "work", sinks=_sinks(services), on_failure={"actions": [{"plugin": "command", "with": {
        "run": ["sh", "-c", 'echo "pausing $0 with token $ACTION_TOKEN"', "{{region}}"],
        "env": {"ACTION_TOKEN": "${env:ACTION_TOKEN}"}}}]})
    state_dir = tmp_path / "state"
    state = state_dir / "state.db"
    for fake in services.values():
        fake.down = True
    outputs = []
    failed = run_cli("rollout", str(plan), "--state", str(state), "--report", str(state_dir / "report.html"), env=env)
    outputs.append(failed)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "not delivered to" in failed.stdout and "(spooled, retried later)" in failed.stdout
    assert "HTTP 503" in failed.stdout
    assert "pausing r3 with token ***" in failed.stdout  # the action's own output, redacted
    for fake in services.values():
        fake.down = False
    flushed = run_cli("incidents", "flush", "--state", str(state), env=env)
    outputs.append(flushed)
    assert flushed.returncode == 0, flushed.stdout + flushed.stderr
    rid = run_cli("history", "--state", str(state), "--json", env=env)
    outputs.append(rid)
    for args in (["incidents", "list"], ["incidents", "show", "--json"], ["incidents", "show"], ["status", "--json"]):
        if args[:2] == ["incidents", "show"]:
            args = args[:2] + [_incident_id(state_dir)] + args[2:]
        done = run_cli(*args, "--state", str(state), env=env)
        assert done.returncode == 0, done.stderr
        outputs.append(done)

    written = {"stdout/stderr": "".join(o.stdout + o.stderr for o in outputs).encode()}
    for path in sorted(state_dir.iterdir()):
        written[str(path)] = path.read_bytes()
    assert written[str(state_dir / "state.db")] and (state_dir / "incidents.jsonl").exists()
    assert (state_dir / "report.html").exists()
    for name, fake in services.items():
        for request in fake.requests:
            body = request.body
            if name == "pagerduty" and request.json:  # the routing key's documented place is the body
                assert request.json["routing_key"] == SECRETS["PD_ROUTING_KEY"]
                body = body.replace(SECRETS["PD_ROUTING_KEY"].encode(), b"")
            written[f"{name} {request.method} {request.path} body"] = body
    for label, data in written.items():
        for var, secret in {**SECRETS, "SLACK_WEBHOOK_URL": env["SLACK_WEBHOOK_URL"]}.items():
            assert secret.encode() not in data, f"${{env:{var}}} leaked into {label}"
    _each_secret_reached_its_service(services)
    assert all(fake.violations == [] for fake in services.values()), {n: f.violations for n, f in services.items()}


def _incident_id(state_dir) -> str:
    import json

    return json.loads((state_dir / "incidents.jsonl").read_text().splitlines()[0])["id"]


def _each_secret_reached_its_service(f: dict) -> None:
    delivered = [r for r in f["github"].requests if r.headers.get("authorization") == f"Bearer {SECRETS['GH_TOKEN']}"]
    assert delivered and f["github"].issues[1]["state"] == "closed"
    assert any(r.headers.get("authorization") == f"GenieKey {SECRETS['OPSGENIE_KEY']}" for r in f["opsgenie"].requests)
    assert any(r.headers.get("authorization") == f"OAuth {SECRETS['STATUSPAGE_KEY']}" for r in f["statuspage"].requests)
    assert any(r.path == SECRETS["SLACK_TOKEN_PATH"] for r in f["slack"].requests) and f["slack"].messages
    assert any(r.headers.get("authorization") == f"Basic {SECRETS['AM_BASIC']}" for r in f["alertmanager"].requests)
    hooks = [r for r in f["webhook"].requests if r.headers.get("authorization") == f"Bearer {SECRETS['HOOK_TOKEN']}"]
    signed = [r for r in hooks if r.headers.get("x-guardrail-signature") == "sha256=" + hmac.new(
        SECRETS["HOOK_SECRET"].encode(), r.body, hashlib.sha256).hexdigest()]
    assert signed and len(f["webhook"].received) == 3
    assert [a["state"] for a in f["pagerduty"].alerts.values()] == ["resolved"]
    actions = [u for r in f["webhook"].requests if r.json for u in r.json["incident"]["actions"]]
    assert any(a["detail"] == "pausing r3 with token ***" for a in actions)  # the incident shows it, redacted


# Encoded forms: a secret filled into a URL is percent-encoded, one sent as basic auth is
# base64, one in a JSON document is escaped. None of these may be stored or printed either.

def encoded_forms(secret: str, user: str = "guardrail") -> dict[str, str]:
    """Every form a secret was seen to take on its way out (the issue's attack list)."""
    import base64
    import json
    from urllib.parse import quote, quote_plus

    return {
        "literal": secret,
        "quote": quote(secret),
        "quote(safe='')": quote(secret, safe=""),
        "quote_plus": quote_plus(secret),
        "double-encoded (%25..)": quote(quote(secret, safe=""), safe=""),
        "base64": base64.b64encode(secret.encode()).decode(),
        "base64 user:secret (Basic)": base64.b64encode(f"{user}:{secret}".encode()).decode(),
        "JSON-escaped": json.dumps(secret)[1:-1],
        "JSON-escaped, ASCII only": json.dumps(secret, ensure_ascii=True)[1:-1],
    }


ENCODED_SECRETS = {
    "API_KEY": 'ApiKey/SECRET+5555="quoted" é',  # a template variable in a check's URL query
    "HTTP_PASS": "pw-Secret.9999",  # the password of the http source's base_url (basic auth)
}


class EchoService(FakeService):
    """A health endpoint that answers 200 with a text body echoing the request's
    credentials and query, as misconfigured servers and proxies do in error pages."""

    def handle(self, request):
        from urllib.parse import quote

        echoed = " ".join(f"{k}={quote(v, safe='')}" for k, v in request.query.items())
        return Reply(200, f"{request.headers.get('authorization', '-')} {echoed}")


ECHO_POLICY = """\
apiVersion: guardrail/v1
kind: Policy
name: echo
interval: 30s
inconclusive_limit: 1000
checks:
  - name: echo-depth
    source: http
    url: /echo?key={{api_key}}&region={{region}}
    measure: json
    json_path: depth
    fail_if: "> 100"
"""


def test_no_secret_leaks_percent_encoded_base64_or_json_escaped(tmp_path):
    """A check URL carrying ``${env:API_KEY}`` in its query and a source URL with a basic-auth
    password from ``${env:HTTP_PASS}``: the server echoes both back. No form of either
    secret reaches any output, the state file or its WAL, the journal, the reports, the
    GitHub annotations or step summary."""
    echo = EchoService()
    work, state_dir = tmp_path / "work", tmp_path / "state"
    state = state_dir / "state.db"
    try:
        plan = write_plan(work, vars={"api_key": "${env:API_KEY}"}, policies=["errors.yaml", "echo.yaml"],
                          sources={"http": {"base_url": echo.url.replace("http://", "http://guardrail:${env:HTTP_PASS}@")}})
        (work / "echo.yaml").write_text(ECHO_POLICY)
        summary = state_dir / "step-summary.md"
        state_dir.mkdir(parents=True)
        env = {**ENCODED_SECRETS, "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary),
               "GITHUB_WORKSPACE": str(work)}
        outputs = [run_cli("rollout", str(plan), "--state", str(state), "--report", str(state_dir / "report.html"),
                           "--junit", str(state_dir / "junit.xml"), env=env)]
        assert outputs[0].returncode == 1, outputs[0].stdout + outputs[0].stderr
        for args in (["status", "--json"], ["status"], ["history", "--json"], ["history"], ["incidents", "list"]):
            done = run_cli(*args, "--state", str(state), env=env)
            assert done.returncode == 0, done.stderr
            outputs.append(done)
    finally:
        echo.close()
    # Not vacuous: the secrets went out, in the encodings this test looks for.
    sent = [r for r in echo.requests if r.path == "/echo"]
    assert sent and sent[0].query["key"] == ENCODED_SECRETS["API_KEY"]
    assert sent[0].headers["authorization"] == "Basic " + encoded_forms(ENCODED_SECRETS["HTTP_PASS"])[
        "base64 user:secret (Basic)"]
    written = {"stdout/stderr": "".join(o.stdout + o.stderr for o in outputs)}
    for path in sorted(state_dir.iterdir()):
        written[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    assert "response is not JSON (text/plain; charset=utf-8): 'Basic *** key=***" in written[str(state)]
    assert {"state.db", "report.html", "junit.xml", "step-summary.md", "incidents.jsonl"} <= {
        p.name for p in state_dir.iterdir()}
    leaks = [f"{var} as {form} in {label}" for label, data in written.items()
             for var, secret in ENCODED_SECRETS.items() for form, text in encoded_forms(secret).items()
             if text in data]
    assert leaks == []


def test_the_redactor_knows_every_encoding():
    from guardrail.secrets import MASK, Redactor

    redactor = Redactor(set(ENCODED_SECRETS.values()))
    for secret in ENCODED_SECRETS.values():
        for form, text in encoded_forms(secret).items():
            out = redactor.redact(f"before {text} after")
            assert secret not in out and text not in out and MASK in out, (form, out)
    for text in ("an ordinary line: 100% basic, a & b + c", "Basic dXNlcjpvdGhlcg==", "key=abc%2Fdef"):
        assert redactor.redact(text) == text  # nothing else is masked
    lower = "ApiKey%2fSECRET%2b5555%3d%22quoted%22%20%c3%a9"  # lower-case hex, as some encoders write it
    assert redactor.redact(f"url: http://x/?key={lower}") == "url: http://x/?key=***"
