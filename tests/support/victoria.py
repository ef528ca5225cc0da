"""A real VictoriaMetrics (Debian package ``victoria-metrics``) for tests: a second
implementation of the Prometheus query API, which large fleets run instead of
Prometheus and whose staleness rules differ.

- ``VictoriaMetricsServer``: ``victoria-metrics`` on a free loopback port, its data in
  a temporary folder, retention long enough for any backfilled history;
- ``load(server, store, start, end)``: a simulated scenario's samples imported with
  their timestamps (``/api/v1/import/prometheus``), then flushed so queries see them.

Installed with apt-get when missing, so the tests that use it never skip.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import httpx

from support.debian import ensure
from support.servers import LoopbackServer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VictoriaMetricsServer(LoopbackServer):
    name = "victoria-metrics"

    def __init__(self, base: Path, *, startup_timeout: float = 60.0):
        binary = ensure("victoria-metrics", "victoria-metrics")
        base.mkdir(parents=True, exist_ok=True)
        self._port = _free_port()  # it takes no port 0
        self.launch([binary, f"-httpListenAddr=127.0.0.1:{self._port}", f"-storageDataPath={base / 'data'}",
                     "-retentionPeriod=100y", "-loggerLevel=INFO"], base / "victoria-metrics.log", startup_timeout)

    def _wait_for_port(self, timeout: float) -> int:
        return self._port

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"{self.name} exited:\n{self.log_path.read_text()}"
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{self.name} is not ready:\n{self.log_path.read_text()}")


def load(server: VictoriaMetricsServer, store: Any, start: float, end: float) -> int:
    """Import every sample of the scenario store in [start, end]; returns the count."""
    lines = []
    for index, spec in enumerate(store.specs):
        data = store.series(index, end)
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(spec.labels.items()) if k != "__name__")
        for t, value in zip(data.ts, data.vals):
            if start * 1000 <= t <= end * 1000:
                lines.append(f"{spec.metric}{{{labels}}} {value!r} {t}")
    answer = httpx.post(f"{server.url}/api/v1/import/prometheus", content="\n".join(lines) + "\n", timeout=60)
    assert answer.status_code == 204, answer.text
    httpx.get(f"{server.url}/internal/force_flush", timeout=60)
    return len(lines)
