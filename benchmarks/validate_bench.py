"""How long does ``guardrail validate`` take over 200 policy files? (target: < 1 s)

    python benchmarks/validate_bench.py [--files 200] [--repeat 5] [--keep DIR]

Generates realistic policies (5-10 checks each: PromQL with {{region}} templates,
``for:`` durations, baseline comparisons, TCP reachability checks) into a temporary
folder, then times, side by side in the same run:

- the floor: reading every file and ``yaml.safe_load``-ing it (what any YAML tool pays);
- the library: ``guardrail.language.loader.validate_paths`` over the folder (plugin registry
  built once beforehand, as an embedding program would);
- the command line: ``guardrail validate DIR`` as a subprocess, start-up included, and
  ``guardrail validate`` on one file, to show how much of that is start-up;
- the cost of checking every PromQL query offline (the prometheus source's
  ``check_query``): the library and the command line again with the capability switched
  off, and the parser's import in a fresh process (it is imported only when a query
  needs it).

Each figure is the best of ``--repeat`` runs (the least disturbed by other work on
the machine). Exit status 0 when the CLI meets the target, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

TARGET_SECONDS = 1.0

INSTALLED = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
"""The CLI's environment as on an installed machine: its modules' bytecode cached (a shell
with PYTHONDONTWRITEBYTECODE would compile every new module at each start-up)."""

METRICS = [
    ("sender-restarts", 'sum(increase(service_restarts_total{service="sender",region="{{region}}"}[5m]))', "> 0", None),
    ("queue-latency-p95", 'histogram_quantile(0.95, sum by (le) (rate(queue_latency_seconds_bucket{region="{{region}}"}[5m])))', "> 30", "2m"),
    ("db-cpu", 'max(rate(process_cpu_seconds_total{job="postgres",region="{{region}}"}[1m])) * 100', ">= 95", "3m"),
    ("db-connections-refused", 'sum(increase(pg_connections_refused_total{region="{{region}}"}[5m]))', "> 10", "1m"),
    ("error-log-writes", 'sum(rate(error_log_writes_total{region="{{region}}"}[5m]))', "> +200%", None),
    ("stalled-sends", 'sum(mail_send_stalled{region="{{region}}",service="{{service}}"})', "> 100", "5m"),
    ("bounce-rate", 'sum(rate(mail_bounced_total{region="{{region}}"}[5m])) / sum(rate(mail_sent_total{region="{{region}}"}[5m]))', "> +50%", None),
    ("processing-loop", 'sum(rate(jobs_requeued_total{region="{{region}}"}[5m]))', "> +300%", "2m"),
    ("queue-depth", 'sum(queue_depth{queue="outbound",region="{{region}}"})', "> 50000", "10m"),
    ("disk-write-bytes", 'sum(rate(node_disk_written_bytes_total{region="{{region}}"}[5m]))', "> +100%", None),
    ("http-5xx-ratio", 'sum(rate(http_requests_total{code=~"5..",region="{{region}}"}[5m])) / sum(rate(http_requests_total{region="{{region}}"}[5m]))', "> 0.02", "2m"),
]


def policy_text(index: int, rng: random.Random) -> str:
    checks = rng.sample(METRICS, rng.randint(5, 10))
    lines = [
        f"# generated policy {index}: service health after a change",
        "apiVersion: guardrail/v1",
        "kind: Policy",
        f"name: generated-{index:03d}",
        f"description: benchmark policy {index}",
        f"interval: {rng.choice(['15s', '30s', '1m'])}",
        f"on_no_data: {rng.choice(['inconclusive', 'fail'])}",
        "checks:",
    ]
    for name, query, fail_if, hold in checks:
        # A comment makes each policy's query text its own: no query is parsed from a cache.
        lines += [f"  - name: {name}", "    source: prometheus", f"    query: '{query} # policy {index}'"]
        if fail_if[2] in "+-":
            lines += ["    compare: baseline", f"    baseline: {{window: {rng.choice(['30m', '1h', '2h'])}, stat: median}}"]
        lines.append(f'    fail_if: "{fail_if}"')
        if hold:
            lines.append(f"    for: {hold}")
    if rng.random() < 0.5:
        lines += [
            "  - name: smtp-port-25",
            "    source: tcp",
            '    targets: "{{smtp_hosts}}"',
            "    port: 25",
            "    min_success_ratio: 0.95",
        ]
    return "\n".join(lines) + "\n"


def generate(folder: Path, count: int, seed: int = 42) -> list[Path]:
    rng = random.Random(seed)
    paths = []
    for i in range(count):
        path = folder / f"policy-{i:03d}.yaml"
        path.write_text(policy_text(i, rng), encoding="utf-8")
        paths.append(path)
    return paths


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def children_cpu() -> float:
    """CPU seconds (user + system) of the subprocesses that have ended: what a command
    costs, whatever else keeps the machine's cores busy meanwhile."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def best_of_pair(repeat: int, first, second, clock=time.perf_counter) -> tuple[float, float]:
    """``best_of`` for two functions, run alternately: a ratio whose two sides meet the
    same disturbances of a busy machine."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for fn, into in ((first, times[0]), (second, times[1])):
            start = clock()
            fn()
            into.append(clock() - start)
    return min(times[0]), min(times[1])


def floor(paths: list[Path]) -> None:
    for path in paths:
        yaml.safe_load(path.read_text(encoding="utf-8"))


def floor_c(paths: list[Path]) -> None:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for path in paths:
        yaml.load(path.read_text(encoding="utf-8"), Loader=loader)


def guardrail_command() -> list[str]:
    """The console script installed with this interpreter (not a shim such as pyenv's,
    which adds its own start-up time), else whatever is on PATH, else ``-m``."""
    beside = Path(sys.executable).parent / "guardrail"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("guardrail")
    return [found] if found else [sys.executable, "-m", "guardrail"]


WITH_PARSING = "import sys\nfrom guardrail.cli import main\nsys.argv[0] = 'guardrail'\nmain()\n"
WITHOUT_PARSING = ("from guardrail_plugins.prometheus import PrometheusSource\n"
                   "PrometheusSource.check_query = None\n" + WITH_PARSING)
"""The command line as ``python -c``, with and without offline PromQL checking: the same
start-up on both sides of the ratio."""


def without_parsing(fn):
    """``fn()`` with the prometheus source's ``check_query`` switched off."""
    from guardrail_plugins.prometheus import PrometheusSource

    saved = PrometheusSource.__dict__["check_query"]
    PrometheusSource.check_query = None
    try:
        return fn()
    finally:
        PrometheusSource.check_query = saved


def parser_import_seconds() -> float:
    """``import promql_parser`` in a fresh interpreter, as ``-X importtime`` reports it."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import promql_parser"],
                          capture_output=True, text=True, check=True)
    line = [entry for entry in done.stderr.splitlines() if entry.rstrip().endswith("| promql_parser")][-1]
    return int(line.split("|")[1]) / 1e6  # cumulative microseconds


def run_cli(args: list[str], prefix: list[str] | None = None) -> None:
    result = subprocess.run((prefix or guardrail_command()) + args, capture_output=True, text=True, env=INSTALLED)
    if result.returncode != 0:
        raise SystemExit(f"guardrail {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="write the policies here and keep them")
    args = parser.parse_args()

    from guardrail.language.loader import validate_paths
    from guardrail.plugin.manager import get_plugin_manager

    with tempfile.TemporaryDirectory(prefix="guardrail-bench-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        paths = generate(folder, args.files)
        checks = sum(text.count("  - name:") for text in (p.read_text() for p in paths))
        tcp_checks = sum(text.count("source: tcp") for text in (p.read_text() for p in paths))

        t_registry = best_of(args.repeat, get_plugin_manager)
        registry = get_plugin_manager().registry
        checked, problems = validate_paths([folder], registry)
        if problems or checked != len(paths):
            print("\n".join(map(str, problems[:10])), file=sys.stderr)
            raise SystemExit(f"the generated policies should all be valid ({checked} checked, {len(problems)} problems)")

        t_parse_import = min(parser_import_seconds() for _ in range(args.repeat))
        t_floor = best_of(args.repeat, lambda: floor(paths))
        t_floor_c = best_of(args.repeat, lambda: floor_c(paths))
        t_library = best_of(args.repeat, lambda: validate_paths([folder], registry))
        t_library_with, t_library_bare = best_of_pair(
            args.repeat, lambda: validate_paths([folder], registry),
            lambda: without_parsing(lambda: validate_paths([folder], registry)))
        t_cli_one = best_of(args.repeat, lambda: run_cli(["validate", str(paths[0])]))
        t_cli = best_of(args.repeat, lambda: run_cli(["validate", str(folder)]))
        python_c = [sys.executable, "-c"]
        t_cli_with, t_cli_bare = best_of_pair(
            args.repeat, lambda: run_cli(["validate", str(folder)], python_c + [WITH_PARSING]),
            lambda: run_cli(["validate", str(folder)], python_c + [WITHOUT_PARSING]))
        cpu_one, cpu_cli = best_of_pair(
            args.repeat, lambda: run_cli(["validate", str(paths[0])]), lambda: run_cli(["validate", str(folder)]),
            clock=children_cpu)
        cpu_with, cpu_bare = best_of_pair(
            args.repeat, lambda: run_cli(["validate", str(folder)], python_c + [WITH_PARSING]),
            lambda: run_cli(["validate", str(folder)], python_c + [WITHOUT_PARSING]), clock=children_cpu)

    rows = [
        ("floor: read + yaml.safe_load (pure-Python loader)", t_floor, ""),
        ("floor: read + yaml.load(CSafeLoader)", t_floor_c, ""),
        ("plugin manager + registry (once per process)", t_registry, ""),
        ("library: validate_paths(folder)", t_library, f"{t_library / t_floor:.2f}x safe_load, {t_library / t_floor_c:.1f}x C"),
        ("CLI: guardrail validate <1 file> (start-up)", t_cli_one, ""),
        ("CLI: guardrail validate <folder>", t_cli, f"start-up + {t_cli - t_cli_one:.3f}s of work"),
        ("PromQL: import promql_parser (fresh process)", t_parse_import, ""),
        ("PromQL: library, folder, with parsing (alternating)", t_library_with, ""),
        ("PromQL: library, folder, without parsing (alternating)", t_library_bare,
         f"parsing costs {t_library_with / t_library_bare:.2f}x"),
        ("PromQL: CLI (python -c), folder, with parsing (alternating)", t_cli_with, ""),
        ("PromQL: CLI (python -c), folder, without parsing (alternating)", t_cli_bare, f"parsing costs {t_cli_with / t_cli_bare:.2f}x"),
        ("CPU (user+sys): guardrail validate <1 file>", cpu_one, ""),
        ("CPU (user+sys): guardrail validate <folder>", cpu_cli, ""),
        ("CPU (user+sys): CLI (python -c), folder, with parsing", cpu_with, ""),
        ("CPU (user+sys): CLI (python -c), folder, without parsing", cpu_bare, f"parsing costs {cpu_with / cpu_bare:.2f}x"),
    ]
    print(f"guardrail validate benchmark: {len(paths)} policies, {checks} checks, best of {args.repeat} runs")
    print(f"python {sys.version.split()[0]}, PyYAML {yaml.__version__}, "
          f"libyaml {'yes' if hasattr(yaml, 'CSafeLoader') else 'no'}, CLI: {' '.join(guardrail_command())}")
    print()
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'seconds':>8}  {'per file':>9}  note")
    print(f"{'-' * width}  {'-' * 8}  {'-' * 9}  ----")
    for label, seconds, note in rows:
        per_file = f"{seconds / len(paths) * 1000:.2f} ms" if "folder" in label or "floor" in label else ""
        print(f"{label:<{width}}  {seconds:8.3f}  {per_file:>9}  {note}")
    print()
    print(f"ratio validate/floor (library / read+safe_load): {t_library / t_floor:.2f}")
    queries = checks - tcp_checks
    print(f"PromQL parsing ({queries} queries): library {t_library_with / t_library_bare:.2f}x, "
          f"CLI {t_cli_with / t_cli_bare:.2f}x (CPU {cpu_with / cpu_bare:.2f}x), {(t_library_with - t_library_bare) / max(queries, 1) * 1e6:.0f} us a query")
    verdict = "PASS" if t_cli < TARGET_SECONDS else "FAIL"
    print(f"verdict: {verdict}: guardrail validate over {len(paths)} files took {t_cli:.3f}s "
          f"(target < {TARGET_SECONDS:.1f}s; library alone {t_library:.3f}s; {cpu_cli:.3f}s of CPU)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
