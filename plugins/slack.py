"""``slack`` incident sink: a message per update through an incoming webhook.

The webhook URL *is* the credential: give it as ``${env:SLACK_WEBHOOK_URL}``. Each
message has ``text`` (what notifications and old clients show) and ``blocks``: a header,
the status sentence, the change, the failing checks with their queries, the actions
and the commands that show more, within Block Kit's limits (header 150 characters,
section text 3000, ten fields of 2000, 50 blocks). Incoming webhooks cannot edit a
message, so every update is a new one, in order.
"""

from __future__ import annotations

from pydantic import Field

from guardrail import HttpSettings, HttpSink, action_line, clip, headline, hookimpl, observed_values, status_sentence

ICON = {"investigating": ":mag:", "identified": ":rotating_light:", "monitoring": ":eyes:",
        "resolved": ":white_check_mark:"}


class SlackSink(HttpSink):
    class Settings(HttpSettings):
        url: str = Field(pattern=r"^https?://", description="the incoming webhook URL: ${env:SLACK_WEBHOOK_URL}")
        mention: str | None = Field(None, description='prepended while a person is needed, e.g. "<!here>"')

    def notify(self, incident: dict, ref: dict | None) -> dict:
        text = f"{ICON.get(incident['status'], '')} {headline(incident)}: {status_sentence(incident)}".strip()
        if incident.get("needs_person") and self.settings.mention:
            text = f"{self.settings.mention} {text}"
        self.request("POST", self.settings.url, json_body={"text": clip(text, 3000), "blocks": blocks(incident)})
        return {"messages": (ref or {}).get("messages", 0) + 1}


    def announce(self, notification: dict, ref: dict | None) -> dict:
        text = f"{EVENT_ICON.get(notification['event'], '')} {notification['title']}".strip()
        self.request("POST", self.settings.url, json_body={"text": clip(text, 3000), "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": clip(_escape(text), 3000)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(f"`{notification['see_more']}`", 3000)}]},
        ]})
        return {"messages": (ref or {}).get("messages", 0) + 1}


EVENT_ICON = {"started": ":rocket:", "wave_deployed": ":package:", "wave_promoted": ":arrow_forward:",
              "waiting_for_approval": ":hourglass:", "halted": ":warning:", "rolled_back": ":rewind:",
              "done": ":checkered_flag:", "warning": ":large_yellow_circle:"}


def blocks(incident: dict) -> list[dict]:
    change = incident["change"]
    out: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(headline(incident), 150)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(_escape(status_sentence(incident)), 3000)}},
        {"type": "section", "fields": [
            _field("Service", incident["service"]),
            _field("Change", f"{change['version']} (previous {change['previous']})"
                   + (f" {change['ticket']}" if change.get("ticket") else "")),
            _field("Status", incident["status"] + (" — a person is needed" if incident.get("needs_person") else "")),
            _field("Regions", ", ".join(f"{r['region']} {r['state']}" for r in incident.get("regions") or [])),
            _field("Decision", incident["decision"]),
        ]},
    ]
    for finding in (incident.get("failing_checks") or [])[:10]:
        lines = [f"*{_escape(finding.get('region'))} {_escape(finding.get('check'))}*: {_escape(finding.get('reason'))}"]
        if finding.get("first_breach_at"):
            lines.append(f"first breach {finding['first_breach_at']}; observed {observed_values(finding)}")
        if finding.get("query"):
            lines.append(f"`{str(finding['query']).replace('`', chr(39))}`")
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": clip("\n".join(lines), 3000)}})
    if incident.get("actions"):
        text = "\n".join(f"• {_escape(action_line(a))}" for a in incident["actions"])
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": clip(text, 3000)}})
    more = " · ".join(f"`{c}`" for c in incident.get("commands") or [incident.get("see_more", "")])
    out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": clip(more, 3000)}]})
    return out[:50]


def _field(title: str, value: str) -> dict:
    return {"type": "mrkdwn", "text": clip(f"*{title}*\n{_escape(value)}", 2000)}


def _escape(value: object) -> str:
    """Slack's mrkdwn escapes: &, < and > would be read as markup."""
    return str(value if value is not None else "-").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@hookimpl(trylast=True)
def guardrail_register_incident_sinks(register):
    register("slack", SlackSink)
