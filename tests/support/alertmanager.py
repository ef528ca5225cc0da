"""A real Alertmanager (Debian package ``prometheus-alertmanager``) for tests.

``AlertmanagerServer(base, webhook_url)`` starts ``prometheus-alertmanager`` on
``127.0.0.1:0`` with clustering off (``--cluster.listen-address=``) and one route that
notifies ``webhook_url`` at once (``group_wait: 0s``, ``group_interval: 1s``,
``repeat_interval: 1h``, ``send_resolved: true``); the port is read from the
``msg="Listening on"`` log line. Installed with apt-get when missing: the tests that use
it never skip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml

from support.debian import ensure
from support.servers import LoopbackServer


class AlertmanagerServer(LoopbackServer):
    name = "alertmanager"

    def __init__(self, base: Path, webhook_url: str, *, startup_timeout: float = 60.0):
        binary = ensure("prometheus-alertmanager", "prometheus-alertmanager")
        base.mkdir(parents=True, exist_ok=True)
        config = {
            "route": {"receiver": "guardrail-test", "group_by": ["alertname", "service", "rollout_id"],
                      "group_wait": "0s", "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "guardrail-test",
                           "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
        }
        (base / "alertmanager.yml").write_text(yaml.safe_dump(config))
        self.launch([binary, f"--config.file={base / 'alertmanager.yml'}", f"--storage.path={base / 'data'}",
                     "--web.listen-address=127.0.0.1:0", "--cluster.listen-address=", "--log.level=info"],
                    base / "alertmanager.log", startup_timeout)

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts`` (active, silenced and inhibited alerts)."""
        params = [("filter", f'{k}="{v}"') for k, v in filters.items()]
        return httpx.get(f"{self.url}/api/v2/alerts", params=params, timeout=5).json()
