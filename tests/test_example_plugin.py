"""examples/plugin/ is a real third-party plugin package (guardrail-csv): installed with
pip into a fresh virtual environment next to guardrail, it shows in ``guardrail
plugins``, its command writes a demo, and its ``csv`` source drives that simulated
rollout. The source's rules (time formats, regions, gaps, staleness, errors) are
checked in-process first."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from guardrail.api import Guardrail
from guardrail.clock import VirtualClock
from guardrail.plugin.interfaces import PluginContext, Probe
from guardrail.language.loader import validate_paths
from guardrail.plugin.manager import get_plugin_manager

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "examples" / "plugin"
IGNORED = (".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".pytest_cache", "*.db*",
           ".guardrail")


@pytest.fixture
def guardrail_csv(monkeypatch):
    spec = importlib.util.spec_from_file_location("guardrail_csv", PLUGIN / "guardrail_csv.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "guardrail_csv", module)
    spec.loader.exec_module(module)
    return module


def _source(module, tmp_path: Path, **settings):
    context = PluginContext(clock=VirtualClock(1_000_000.0), state_dir=tmp_path, base_dir=tmp_path)
    return module.CsvSource(module.CsvSource.Settings(**settings), context)


def test_the_csv_source_reads_the_latest_row_per_region(guardrail_csv, tmp_path):
    (tmp_path / "q.csv").write_text("# a comment\ntime,region,depth,other\n-1h,r1,10,\n0s,r1,20,x\n"
                                    "5m,r1,,1\n1970-01-12T13:46:40Z,r2,7,\n1000600,r2,8,\n")
    source = _source(guardrail_csv, tmp_path, max_age="1h")
    probe = Probe(check="c", region="r1", params={"file": "q.csv", "column": "depth"})
    origin = 1_000_000.0
    assert source.measure(probe, origin - 7200).series == ()  # before the first row: no data
    assert source.measure(probe, origin - 1).series[0].value == 10
    assert source.measure(probe, origin + 60).series[0].value == 20  # a value holds until the next row
    assert source.measure(probe, origin + 300).series == ()  # an empty cell is a gap
    r2 = Probe(check="c", region="r2", params={"file": "q.csv", "column": "depth"})
    assert source.measure(r2, origin).series[0].value == 7  # ISO time, this region's rows only
    assert source.measure(r2, origin + 600).series[0].value == 8  # epoch seconds
    assert source.measure(r2, origin + 600 + 3601).series == ()  # older than max_age: stale
    other = Probe(check="c", region="r1", params={"file": "q.csv", "column": "other"})
    assert "not a number" in source.measure(other, origin + 60).error
    missing = Probe(check="c", region="r1", params={"file": "q.csv", "column": "nope"})
    assert "has no column 'nope' (it has time, region, depth, other)" in source.measure(missing, origin).error
    assert source.measure(Probe("c", "r1", {"file": "absent.csv", "column": "depth"}), origin).series == ()
    (tmp_path / "bad.csv").write_text("time,value\nyesterday,3\n")
    assert "row 2: time 'yesterday' is neither" in source.measure(Probe("c", "r1", {"file": "bad.csv"}), origin).error
    (tmp_path / "q.csv").write_text("time,depth\n0s,99\n")  # rewritten by the cron job: read again
    os.utime(tmp_path / "q.csv", (1, 1))
    assert source.measure(probe, origin).series[0].value == 99


def test_the_demo_validates_and_rolls_back_in_process(guardrail_csv, tmp_path):
    pm = get_plugin_manager(autoload=False, extra_plugins=[guardrail_csv])
    guardrail_csv.write_demo(tmp_path / "demo")
    assert validate_paths([tmp_path / "demo"], pm.registry) == (2, [])
    # ...and only with the plugin: which is why the demo is not YAML in examples/
    _, problems = validate_paths([tmp_path / "demo" / "queue-depth.yaml"], get_plugin_manager(autoload=False).registry)
    assert any("unknown source 'csv'" in p.message for p in problems)
    api = Guardrail(tmp_path / "state.db", pm=pm)
    result = api.rollout(tmp_path / "demo" / "rollout.yaml")
    assert (result.outcome, int(result.exit_code)) == ("rolled_back", 1)
    status = api.status(result.rollout_id)
    [failing] = status["failing_checks"]
    assert (failing["region"], failing["check"], failing["value"]) == ("r3", "queue-depth", 5600)
    assert [r["verdict"] for w in status["waves"] for r in w["regions"]] == ["fail", "not_deployed", "not_deployed"]


# -- installed for real ---------------------------------------------------------------------


class Venv:
    def __init__(self, root: Path):
        self.root, self.work = root / "venv", root / "work"
        self.work.mkdir()

    def bin(self, name: str) -> str:
        return str(self.root / ("Scripts" if os.name == "nt" else "bin") / name)

    def run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "GUARDRAIL_PLUGINS",
                            "GUARDRAIL_DISABLE_PLUGIN_AUTOLOAD", "GITHUB_ACTIONS")}
        env["PYTHONNOUSERSITE"] = "1"
        result = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=self.work, env=env,
                                timeout=900)
        if check:
            assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
        return result


@pytest.fixture(scope="session")
def venv(tmp_path_factory) -> Venv:
    """One fresh virtual environment for the session: guardrail from a clean copy of this
    tree, then the plugin package, each installed by pip as a user would."""
    root = tmp_path_factory.mktemp("plugin-venv")
    source = root / "guardrail"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*IGNORED, "examples"))
    shutil.copytree(PLUGIN, root / "plugin", ignore=shutil.ignore_patterns(*IGNORED))
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, capture_output=True, timeout=300)
    venv = Venv(root)
    venv.run(venv.bin("python"), "-m", "pip", "install", "--quiet", str(source))
    venv.run(venv.bin("python"), "-m", "pip", "install", "--quiet", str(root / "plugin"))
    return venv


@pytest.mark.slow
def test_guardrail_plugins_lists_the_installed_package(venv):
    listed = json.loads(venv.run(venv.bin("guardrail"), "plugins", "--json").stdout)["plugins"]
    [csv] = [p for p in listed if p["name"] == "csv"]
    assert csv == {"name": "csv", "version": "1.0.0", "origin": "guardrail-csv", "module": "guardrail_csv",
                   "registers": {"sources": ["csv"]}}
    table = venv.run(venv.bin("guardrail"), "plugins").stdout
    assert "guardrail-csv" in table and "sources: csv" in table


@pytest.mark.slow
def test_a_simulated_rollout_uses_the_plugins_source(venv):
    example = venv.work / "demo"
    state = venv.work / "state.db"
    assert "now run:" in venv.run(venv.bin("guardrail"), "csv-demo", example).stdout  # the plugin's command
    assert venv.run(venv.bin("guardrail"), "validate", example).stdout.strip() == "ok: 2 files valid"
    result = venv.run(venv.bin("guardrail"), "rollout", example / "rollout.yaml", "--state", state, "-o", "json",
                      check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc["outcome"] == "rolled_back"
    [failing] = doc["failing_checks"]
    assert failing["check"] == "queue-depth" and failing["reason"] == "5600 (fails if > 5000); held 1m"
    venv.run(venv.bin("guardrail"), "report", doc["rollout_id"], "--state", state, "--html", venv.work / "r.html")
    html = (venv.work / "r.html").read_text()
    assert 'data-check="queue-depth/queue-depth" data-region="r3" data-status="fail"' in html
