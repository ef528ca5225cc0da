"""guardrail-csv: a source that reads a check's values from CSV files.

For signals that live nowhere guardrail can query: a cron job on a bastion appending
the queue depth to a file, a spreadsheet exported from a vendor's console, the
recorded values of a past incident replayed against a policy. A file looks like::

    time,region,depth
    -1h,r1,380
    2026-01-05T10:00:00Z,r3,400
    6m,r3,5600

- ``time``: ISO 8601 (``Z`` or an offset; UTC when neither), epoch seconds, or a
  duration relative to the moment the rollout first asked this source (``-1h``,
  ``0s``, ``6m``): relative rows replay a recording on any clock, virtual included.
- ``region`` (optional): the row belongs to that region only; without the column
  every region reads every row (use a ``{{region}}`` in the file name instead).
- any other column holds numbers; a check picks one with ``column:``. An empty cell
  is a gap (no data).

At time ``t`` a check reads the latest row at or before ``t`` (a value holds until
the next row), unless that row is older than the source's ``max_age``. Lines that
start with ``#`` are comments. The file is read again when it changes.

``guardrail csv-demo FOLDER`` (a second hook: ``guardrail_register_commands``) writes a
simulated rollout to try the source with. It lives here rather than as YAML files in
the repository because those only validate where this plugin is installed.
"""

from __future__ import annotations

import csv
import io
import math
from bisect import bisect_right
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

import guardrail
from guardrail import Duration, PluginContext, Probe, Reading, Source, Template, parse_duration

__version__ = "1.0.0"


def parse_time(text: str, origin: float) -> float:
    """``2026-01-05T10:00:00Z``, ``1767607200`` or ``-1h`` / ``6m`` (from ``origin``)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    sign = -1.0 if text.startswith("-") else 1.0
    try:
        return origin + sign * parse_duration(text.lstrip("+-"))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"time {text!r} is neither ISO 8601, epoch seconds, nor a duration like -1h or 6m") from None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


class Table:
    """One CSV file, rows sorted by time."""

    def __init__(self, text: str, origin: float, name: str):
        lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        reader = csv.DictReader(io.StringIO("\n".join(lines)))
        self.columns = [c.strip() for c in reader.fieldnames or []]
        if "time" not in self.columns:
            raise ValueError(f"{name}: the first line must name the columns, one of them `time`")
        rows = []
        for number, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            try:
                rows.append((parse_time(row["time"], origin), row))
            except ValueError as exc:
                raise ValueError(f"{name}: row {number}: {exc}") from None
        rows.sort(key=lambda item: item[0])
        self.times = [t for t, _ in rows]
        self.rows = [r for _, r in rows]


class CsvSource(Source):
    class Settings(BaseModel):  # the plan's `sources.csv` block
        model_config = ConfigDict(extra="forbid")
        directory: str = Field(".", description="where relative file paths are read from, relative to the plan")
        max_age: Duration | None = Field(None, description="a row older than this is stale: no data")

    class Params(BaseModel):  # the keys a check gives this source
        model_config = ConfigDict(extra="forbid")
        file: Template = Field(description="the CSV file, e.g. queue-depth.csv or queue-{{region}}.csv")
        column: str = Field("value", description="the column holding the check's number")

    blocking_io = False  # a local file: no need for the engine's thread pool

    def __init__(self, settings: Settings, context: PluginContext):
        super().__init__(settings, context)
        self.origin = context.clock.now()  # relative times count from the first use, in the rollout's clock
        self._tables: dict[Path, tuple[float, Table]] = {}

    def _table(self, path: Path) -> Table:
        mtime = path.stat().st_mtime
        cached = self._tables.get(path)
        if cached is None or cached[0] != mtime:
            cached = (mtime, Table(path.read_text(encoding="utf-8"), self.origin, str(path)))
            self._tables[path] = cached
        return cached[1]

    def measure(self, probe: Probe, at: float) -> Reading:
        path = Path(self.context.base_dir) / self.settings.directory / probe.params["file"]
        column = probe.params.get("column", "value")
        try:
            table = self._table(path)
        except FileNotFoundError:
            return Reading()  # no data: the policy's on_no_data decides
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return Reading.failed(f"csv: {exc}")
        if column not in table.columns:
            return Reading.failed(f"csv: {path.name} has no column {column!r} (it has {', '.join(table.columns)})")
        regional = "region" in table.columns
        index = bisect_right(table.times, at)
        while index > 0:  # the latest row at or before `at` for this region
            index -= 1
            row = table.rows[index]
            if regional and row["region"] != probe.region:
                continue
            if self.settings.max_age is not None and at - table.times[index] > self.settings.max_age:
                return Reading()
            if row[column] == "":
                return Reading()
            try:
                value = float(row[column])
            except ValueError:
                return Reading.failed(f"csv: {path.name}: {column} is {row[column][:40]!r}, not a number")
            return Reading() if math.isnan(value) else Reading.of(value, file=path.name, row_time=table.times[index])
        return Reading()


@guardrail.hookimpl
def guardrail_register_sources(register):
    register("csv", CsvSource)


# -- `guardrail csv-demo`: a rollout to try the source with ---------------------------------

DEMO = {
    "rollout.yaml": """\
# A simulated rollout (virtual clock, noop deployer) whose only signal comes from the
# csv source of guardrail-csv. `guardrail rollout rollout.yaml` exits 1: r3 rolled back.
apiVersion: guardrail/v1
kind: Rollout
service: mail-queue
change: {version: "2.0", previous: "1.9", description: batch the queue writes}
clock: virtual
deploy: {plugin: noop}
sources:
  csv: {directory: ., max_age: 3h}
regions:
  r3: {}
  r1: {}
  r2: {}
waves:
  - {name: canary, regions: [r3], bake: 20m}
  - {name: main, regions: [r1, r2], parallel: true, bake: 30m}
policies: [queue-depth.yaml]
verify_recovery: {for: 5m}
""",
    "queue-depth.yaml": """\
# A policy that reads the mail queue depth from a CSV file (the csv source of
# guardrail-csv). The file stands for what a cron job on each region's bastion appends.
apiVersion: guardrail/v1
kind: Policy
name: queue-depth
description: The outbound mail queue must not back up after a change.
interval: 30s
on_no_data: inconclusive
checks:
  - name: queue-depth
    description: Messages waiting in the region's outbound queue.
    source: csv
    file: queue-depth.csv
    column: depth
    fail_if: "> 5000"
    for: 1m
""",
    "queue-depth.csv": """\
# Queue depth per region. Times relative to the start of the rollout's first bake:
# r3 (the canary) backs up six minutes after the change, and drains once it is
# rolled back; r1 and r2 never run the change.
time,region,depth
-2h,r1,380
-2h,r2,410
-2h,r3,400
3m,r3,650
6m,r3,5600
8m,r3,7200
12m,r3,900
14m,r3,450
""",
}


def write_demo(folder: Path) -> list[Path]:
    """Write the demo's plan, policy and CSV file into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in DEMO.items():
        (folder / name).write_text(text, encoding="utf-8")
        written.append(folder / name)
    return written


@guardrail.hookimpl
def guardrail_register_commands(app):
    import typer  # imported when the command line starts, not when the plugin loads

    @app.command("csv-demo")
    def csv_demo(folder: Path = typer.Argument(Path("csv-demo"), help="where to write the demo")) -> None:
        """Write a simulated rollout whose signal comes from a CSV file (guardrail-csv)."""
        write_demo(folder)
        typer.echo(f"wrote {folder}/rollout.yaml, queue-depth.yaml and queue-depth.csv; now run:\n"
                   f"  guardrail rollout {folder}/rollout.yaml    # exit 1: the canary r3 is rolled back")
