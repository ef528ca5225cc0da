"""The simulated fleet as a real Prometheus sees it: ``/metrics`` and OpenMetrics files.

Two ways to put sim data into a real Prometheus, both reading the same samples as the
in-process evaluator (so a cross-check compares like with like):

- ``serve_metrics``: a small threaded HTTP server (loopback by default) whose
  ``/metrics`` shows each series' sample at the clock's current time, for a live
  scrape. Scrape with ``honor_labels: true`` so the scenario's ``instance`` labels win.
- ``write_openmetrics``: every sample in a time range, timestamps in seconds, counters
  as ``# TYPE foo counter`` with samples ``foo_total``, ending with ``# EOF``: the input
  of ``promtool tsdb create-blocks-from openmetrics FILE DIR`` (history backfill).
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_right
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from collections.abc import Iterator

from guardrail.clock import Clock

from .generator import ScenarioStore


def format_value(value: float) -> str:
    """A float as Prometheus parses it back exactly (``+Inf``, ``NaN``, shortest repr)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()) if k != "__name__")
    return "{" + inner + "}" if inner else ""


def _families(store: ScenarioStore) -> Iterator[tuple[str, Any, list[int]]]:
    """(metric name, definition, series indexes), in scenario order."""
    by_name: dict[str, list[int]] = {}
    for i, spec in enumerate(store.specs):
        by_name.setdefault(spec.metric, []).append(i)
    for name, metric in store.scenario.metrics.items():
        yield name, metric, by_name[name]


def render_metrics(store: ScenarioStore, at: float, *, timestamps: bool = False) -> str:
    """Prometheus text format (0.0.4) of every series' sample at ``at``: the grid sample
    at or before ``at``; a series in a gap there is left out, as a target would."""
    at_ms = int(round(at * 1000))
    grid_ms = at_ms - at_ms % store.step_ms
    lines: list[str] = []
    for name, metric, indexes in _families(store):
        if metric.help:
            lines.append(f"# HELP {name} {_escape(metric.help)}")
        lines.append(f"# TYPE {name} {metric.type}")
        for i in indexes:
            data = store.series(i, at)
            j = bisect_right(data.ts, at_ms) - 1
            if j < 0 or data.ts[j] != grid_ms:
                continue
            stamp = f" {data.ts[j]}" if timestamps else ""
            lines.append(f"{name}{_labels(data.labels)} {format_value(data.vals[j])}{stamp}")
    return "\n".join(lines) + "\n"


def write_openmetrics(store: ScenarioStore, start: float, end: float, out: str | Path | IO[str]) -> int:
    """Write every sample with ``start <= t <= end`` as OpenMetrics; returns the number
    of samples. Timestamps are in seconds (what promtool expects)."""
    if isinstance(out, (str, Path)):
        with open(out, "w", encoding="utf-8") as fh:
            return write_openmetrics(store, start, end, fh)
    lo_ms, hi_ms = int(round(start * 1000)), int(round(end * 1000))
    written = 0
    for name, metric, indexes in _families(store):
        family = name[: -len("_total")] if metric.type == "counter" else name
        out.write(f"# TYPE {family} {metric.type}\n")
        if metric.help:
            out.write(f"# HELP {family} {_escape(metric.help)}\n")
        for i in indexes:
            data = store.series(i, end)
            prefix = name + _labels(data.labels) + " "
            first, last = bisect_right(data.ts, lo_ms - 1), bisect_right(data.ts, hi_ms)
            rows = zip(data.ts[first:last], data.vals[first:last], strict=True)
            out.writelines(f"{prefix}{format_value(v)} {_seconds(t)}\n" for t, v in rows)
            written += last - first
    out.write("# EOF\n")
    return written


def _seconds(ms: int) -> str:
    whole, frac = divmod(ms, 1000)
    return str(whole) if not frac else f"{whole}.{frac:03d}"


class MetricsServer:
    """A running ``/metrics`` endpoint; ``port`` is the bound port. Use as a context
    manager or call ``close()``."""

    def __init__(self, store: ScenarioStore, clock: Clock, host: str = "127.0.0.1", port: int = 0, *, timestamps: bool = False):
        lock = threading.Lock()  # the store's caches are not thread-safe

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics is served here")
                    return
                with lock:
                    body = render_metrics(store, clock.now(), timestamps=timestamps).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # the library never prints
                pass

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self.host, self.port = host, int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"sim-metrics-{self.port}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def serve_metrics(store: ScenarioStore, clock: Clock, host: str = "127.0.0.1", port: int = 0, *,
                  timestamps: bool = False) -> MetricsServer:
    """Serve ``/metrics`` for ``store`` at ``clock.now()``; port 0 picks a free port
    (read it from ``.port``)."""
    return MetricsServer(store, clock, host, port, timestamps=timestamps)


__all__ = ["MetricsServer", "format_value", "render_metrics", "serve_metrics", "write_openmetrics"]
