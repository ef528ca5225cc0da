"""A Slack incoming webhook, as documented ("Sending messages using incoming webhooks";
the 2016 changelog "Improving error conditions for Incoming Webhooks"; Block Kit limits).

Validated: ``POST`` to the webhook's own path (the path is the credential); a JSON
object with ``text`` and/or ``blocks``; blocks (≤ 50) of known types with Block Kit's
limits: a header's ``plain_text`` ≤ 150 characters, a section's text ≤ 3000, at most 10
fields of ≤ 2000, a context's ≤ 10 elements; text objects ``{type: plain_text|mrkdwn,
text}``; no unknown top-level field.

Answers, as Slack does, in plain text: 200 ``ok``; 400 ``invalid_payload`` (not JSON,
unknown fields), 400 ``no_text``, 400 ``invalid_blocks``; 404 ``no_service`` for an
unknown webhook; ``rate_limited()`` is the 429 with ``Retry-After``.
"""

from __future__ import annotations

from .base import FakeService, Invalid, Reply, Request, check

TOP_LEVEL = {"text", "blocks", "attachments", "username", "icon_emoji", "icon_url", "channel", "mrkdwn",
             "unfurl_links", "unfurl_media", "thread_ts"}
BLOCK_TYPES = {"header", "section", "context", "divider", "actions", "image", "rich_text"}


def rate_limited(retry_after: int = 1) -> tuple[int, str, dict[str, str]]:
    return 429, "rate_limited", {"Retry-After": str(retry_after)}


class FakeSlack(FakeService):
    name = "slack"

    def __init__(self, token_path: str = "/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"):
        self.token_path = token_path
        self.messages: list[dict] = []
        super().__init__()

    @property
    def webhook_url(self) -> str:
        return self.url + self.token_path

    def handle(self, request: Request) -> Reply:
        check(request.method == "POST", Reply(405, "invalid_method"), "webhooks take POST")
        check(request.path == self.token_path, Reply(404, "no_service"), "unknown webhook path")
        body = self.json_object(request, Reply(400, "invalid_payload"))
        unknown = sorted(set(body) - TOP_LEVEL)
        check(not unknown, Reply(400, "invalid_payload"), f"unknown field(s): {unknown}")
        check(bool(body.get("text")) or bool(body.get("blocks")), Reply(400, "no_text"), "neither text nor blocks")
        if "text" in body:
            check(isinstance(body["text"], str), Reply(400, "invalid_payload"), "text must be a string")
        if "blocks" in body:
            self._blocks(body["blocks"])
        self.messages.append(body)
        return Reply(200, "ok")

    def _blocks(self, blocks) -> None:
        bad = Reply(400, "invalid_blocks")
        check(isinstance(blocks, list) and 0 < len(blocks) <= 50, bad, "blocks must be a list of 1-50 blocks")
        for i, block in enumerate(blocks):
            check(isinstance(block, dict) and block.get("type") in BLOCK_TYPES, bad, f"blocks[{i}]: unknown type")
            kind = block["type"]
            if kind == "header":
                self._text(block.get("text"), f"blocks[{i}].text", 150, plain_only=True)
            elif kind == "section":
                check("text" in block or "fields" in block, bad, f"blocks[{i}]: a section needs text or fields")
                if "text" in block:
                    self._text(block["text"], f"blocks[{i}].text", 3000)
                fields = block.get("fields", [])
                check(isinstance(fields, list) and len(fields) <= 10, bad, f"blocks[{i}]: at most 10 fields")
                for j, item in enumerate(fields):
                    self._text(item, f"blocks[{i}].fields[{j}]", 2000)
            elif kind == "context":
                elements = block.get("elements")
                check(isinstance(elements, list) and 0 < len(elements) <= 10, bad, f"blocks[{i}]: 1-10 elements")
                for j, item in enumerate(elements):
                    self._text(item, f"blocks[{i}].elements[{j}]", 3000)

    @staticmethod
    def _text(obj, where: str, limit: int, plain_only: bool = False) -> None:
        bad = Reply(400, "invalid_blocks")
        kinds = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
        if not (isinstance(obj, dict) and obj.get("type") in kinds and isinstance(obj.get("text"), str)):
            raise Invalid(bad, f"{where}: a text object of type {'/'.join(kinds)} is required")
        check(0 < len(obj["text"]) <= limit, bad, f"{where}: {len(obj['text'])} characters, limit {limit}")
