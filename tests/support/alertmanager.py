"""A real Alertmanager (Debian package ``prometheus-alertmanager``) for tests.

``AlertmanagerServer(base, webhook_url)`` starts ``prometheus-alertmanager`` on
``127.0.0.1:0`` with clustering off (``--cluster.listen-address=``) and one route that
notifies ``webhook_url`` at once (``group_wait: 0s``, ``group_interval: 1s``,
``repeat_interval: 1h``, ``send_resolved: true``); the port is read from the
``msg="Listening on"`` log line. Installed with apt-get when missing: the tests that use
it never skip.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from support.debian import ensure


class AlertmanagerServer:
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
        self.log_path = base / "alertmanager.log"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [binary, f"--config.file={base / 'alertmanager.yml'}", f"--storage.path={base / 'data'}",
                 "--web.listen-address=127.0.0.1:0", "--cluster.listen-address=", "--log.level=info"],
                stdout=log, stderr=subprocess.STDOUT)
        try:
            self.port = self._wait_for_port(startup_timeout)
            self.url = f"http://127.0.0.1:{self.port}"
            self._wait_ready(startup_timeout)
        except BaseException:
            self.close()
            raise

    def _wait_for_port(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"alertmanager exited:\n{self.log_path.read_text()}"
            found = re.search(r'msg="Listening on" address=127\.0\.0\.1:(\d+)', self.log_path.read_text())
            if found:
                return int(found.group(1))
            time.sleep(0.05)
        raise AssertionError(f"alertmanager did not log its port:\n{self.log_path.read_text()}")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"alertmanager is not ready:\n{self.log_path.read_text()}")

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts`` (active, silenced and inhibited alerts)."""
        params = [("filter", f'{k}="{v}"') for k, v in filters.items()]
        return httpx.get(f"{self.url}/api/v2/alerts", params=params, timeout=5).json()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
