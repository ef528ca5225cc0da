"""A real Prometheus (Debian package ``prometheus``) for tests and benchmarks.

- ``backfill(store, start, end, tsdb)``: a simulated scenario's samples as OpenMetrics,
  turned into TSDB blocks by ``promtool tsdb create-blocks-from openmetrics``;
- ``PrometheusServer``: ``prometheus`` on ``127.0.0.1:0`` (the port is read from the
  ``msg="Listening on"`` log line), retention long enough that backfilled blocks from
  2024 are not deleted at start-up, optionally scraping targets every second with
  ``honor_labels: true``;
- the session fixture ``prometheus``: one server for every test module that declares
  ``pytest_plugins = ["support.prometheus"]``, loaded with tests/data/prometheus/*.yaml
  and scraping a live simulated fleet's ``/metrics``.

Installed with apt-get when missing, so the tests that use it never skip.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import httpx
import pytest
import yaml

from support.debian import ensure
from support.servers import LoopbackServer

DATA = Path(__file__).resolve().parent.parent / "data" / "prometheus"
BACKFILL_SCENARIO = DATA / "backfill.yaml"
HOSTILE_SCENARIO = DATA / "hostile-labels.yaml"
BACKFILL_AFTER_START = 3 * 3600.0
"""Backfilled history runs from the scenario's history start to this long after ``start``."""

LIVE_SCENARIO = {
    "apiVersion": "guardrail/v1", "kind": "Scenario", "name": "live", "regions": ["r3", "r1"],
    "baseline_version": "1", "step": "1s", "history": "10m",
    "metrics": {
        "live_queue_depth": {"type": "gauge", "value": 42, "instances": 2},
        "live_requests_total": {"type": "counter", "value": 10},
    },
}
"""Served live on ``/metrics`` and scraped every second (constant values: easy to check)."""


def backfill(store: Any, start: float, end: float, tsdb: Path) -> int:
    """Write the store's samples in [start, end] as TSDB blocks into ``tsdb``; returns the sample count."""
    from guardrail_plugins.sim.exposition import write_openmetrics

    promtool = ensure("promtool", "prometheus")
    tsdb.mkdir(parents=True, exist_ok=True)
    export = tsdb.parent / f"{store.scenario.name or 'scenario'}-{int(start)}.om"
    written = write_openmetrics(store, start, end, export)
    done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(export), str(tsdb)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    export.unlink()
    return written


class PrometheusServer(LoopbackServer):
    """A running Prometheus; ``url`` is its base URL. Use as a context manager or ``close()``."""

    name = "prometheus"

    def __init__(self, base: Path, *, tsdb: Path | None = None, scrape: Iterable[str] = (),
                 scrape_interval: str = "1s", global_interval: str | None = None, startup_timeout: float = 60.0):
        binary = ensure("prometheus", "prometheus")
        base.mkdir(parents=True, exist_ok=True)
        self.tsdb = tsdb or base / "tsdb"
        targets = list(scrape)
        # The global interval is what guardrail's prometheus source learns as the sample
        # interval of every series (freshness): say the backfilled history's step there.
        config: dict[str, Any] = {"global": {"scrape_interval": global_interval or scrape_interval,
                                             "evaluation_interval": "1m"}}
        if targets:
            config["scrape_configs"] = [{"job_name": "sim", "honor_labels": True, "scrape_interval": scrape_interval,
                                         "static_configs": [{"targets": targets}]}]
        (base / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.launch([binary, f"--config.file={base / 'prometheus.yml'}", f"--storage.tsdb.path={self.tsdb}",
                     "--storage.tsdb.retention.time=100y", "--web.listen-address=127.0.0.1:0", "--log.level=info"],
                    base / "prometheus.log", startup_timeout)

    def query(self, query: str, at: float | None = None) -> dict[str, Any]:
        """The raw API answer of an instant query (for assertions that bypass guardrail)."""
        params = {"query": query} | ({"time": f"{at:.3f}"} if at is not None else {})
        return httpx.get(f"{self.url}/api/v1/query", params=params, timeout=10).json()


@dataclass
class Loaded:
    """The session's Prometheus and what it holds."""

    server: PrometheusServer
    store: Any
    """The backfilled scenario (tests/data/prometheus/backfill.yaml): ``evaluate`` against it cross-checks."""
    hostile: Any
    live: Any
    """The live fleet being scraped (start: a few minutes before the session)."""

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def start(self) -> float:
        """The backfilled scenario's start (2024-07-04 09:00 UTC): offsets are counted from it."""
        return self.store.scenario.start_epoch


def start_loaded(base: Path) -> tuple[Loaded, Any]:
    """Backfill both scenarios, serve the live fleet, start Prometheus: (Loaded, metrics server)."""
    from guardrail.clock import SystemClock
    from guardrail_plugins.sim import open_store
    from guardrail_plugins.sim.exposition import serve_metrics
    from guardrail_plugins.sim.scenario import Scenario

    stores = [open_store(path) for path in (BACKFILL_SCENARIO, HOSTILE_SCENARIO)]
    for store in stores:
        start = store.scenario.start_epoch
        backfill(store, start - store.scenario.history, start + BACKFILL_AFTER_START, base / "tsdb")
    live = open_store(Scenario.model_validate(LIVE_SCENARIO), start=time.time() - 300)
    # Samples carry their grid timestamps: a scrape that lands a few milliseconds either side
    # of a second boundary must not read the same counter value twice and make a rate of 0.
    metrics = serve_metrics(live, SystemClock(), timestamps=True)
    try:
        server = PrometheusServer(base, tsdb=base / "tsdb", scrape=[f"127.0.0.1:{metrics.port}"],
                                  global_interval=f"{int(stores[0].scenario.step)}s")
    except BaseException:
        metrics.close()
        raise
    return Loaded(server, stores[0], stores[1], live), metrics


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory) -> Iterable[Loaded]:
    """A real Prometheus 2.x with backfilled history and a live scrape (see the module docstring)."""
    loaded, metrics = start_loaded(tmp_path_factory.mktemp("prometheus"))
    try:
        yield loaded
    finally:
        loaded.server.close()
        metrics.close()
