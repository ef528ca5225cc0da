"""The scenario library's runner (``examples/scenarios/run.py``), imported by path:
examples are not a package."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parents[2] / "examples" / "scenarios"


def load():
    if "scenario_library" in sys.modules:
        return sys.modules["scenario_library"]
    spec = importlib.util.spec_from_file_location("scenario_library", SCENARIOS / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["scenario_library"] = module
    spec.loader.exec_module(module)
    return module
