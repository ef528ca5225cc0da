"""A generic webhook receiver: what guardrail's ``webhook`` sink posts to, and what
Alertmanager's ``webhook_configs`` notify. With ``secret`` it checks
``X-Guardrail-Signature`` (``sha256=`` + hex HMAC-SHA256 of the raw body) and refuses
a wrong one with 401, as a careful receiver would.
"""

from __future__ import annotations

import hashlib
import hmac

from .base import FakeService, Reply, Request, check


class FakeReceiver(FakeService):
    name = "receiver"

    def __init__(self, secret: str | None = None, path: str = "/hook"):
        self.secret, self.path = secret, path
        self.received: list[dict] = []
        super().__init__()

    @property
    def hook_url(self) -> str:
        return self.url + self.path

    def handle(self, request: Request) -> Reply:
        check(request.method == "POST" and request.path == self.path, Reply(404, "not found"), "wrong endpoint")
        if self.secret is not None:
            expected = "sha256=" + hmac.new(self.secret.encode(), request.body, hashlib.sha256).hexdigest()
            check(hmac.compare_digest(request.headers.get("x-guardrail-signature", ""), expected),
                  Reply(401, "bad signature"), "missing or wrong X-Guardrail-Signature")
        body = self.json_object(request, Reply(400, "not JSON"))
        self.received.append(body)
        return Reply(200, "ok")
