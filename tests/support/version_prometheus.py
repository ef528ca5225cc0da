"""The session fixture ``version_prometheus``: a real Prometheus holding the version
histories of ``support.version_history`` (declare ``pytest_plugins = ["support.version_prometheus"]``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import pytest

from support.version_history import CLOUD, DAY, STEP, WEEK


@dataclass
class VersionPrometheus:
    server: Any
    """A ``support.prometheus.PrometheusServer`` (imported when started: that module is a
    pytest plugin of its own, which must not be imported before pytest registers it)."""

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def version_prometheus(tmp_path_factory) -> Iterable[VersionPrometheus]:
    """A real Prometheus holding DAY, CLOUD and WEEK, its global scrape interval their step."""
    from support.prometheus import PrometheusServer

    base = tmp_path_factory.mktemp("version-prometheus")
    for history in (DAY, CLOUD, WEEK):
        history.backfill(base / "tsdb")
    server = PrometheusServer(base, tsdb=base / "tsdb", global_interval=f"{int(STEP)}s")
    try:
        yield VersionPrometheus(server)
    finally:
        server.close()
