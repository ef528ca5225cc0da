"""Running programs safely: argv lists, never a shell, always a timeout."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from guardrail.plugin.interfaces import Outcome


def run_argv(argv: list[str], *, timeout: float, cwd: Path | None = None, env: dict[str, str] | None = None) -> Outcome:
    """Run ``argv`` without a shell; a non-zero exit, a timeout or a missing program is a failure."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        done = subprocess.run(
            [str(a) for a in argv], cwd=cwd, env=full_env, capture_output=True, text=True,
            timeout=timeout if timeout > 0 else None, shell=False, stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        return Outcome(False, f"program not found: {argv[0]}", started=False)
    except PermissionError:
        return Outcome(False, f"program not executable: {argv[0]}", started=False)
    except subprocess.TimeoutExpired:
        return Outcome(False, f"{argv[0]} timed out after {timeout:g}s")
    tail = (done.stderr or done.stdout or "").strip().splitlines()[-3:]
    detail = " | ".join(tail)
    if done.returncode != 0:
        return Outcome(False, f"{argv[0]} exited {done.returncode}" + (f": {detail}" if detail else ""))
    return Outcome(True, detail)


def program_problem(program: str, *, cwd: Path, env: dict[str, str] | None = None) -> str | None:
    """Why ``program`` (an argv's first element) cannot be run from ``cwd``, or None."""
    if not program:
        return "the program is empty"
    if "/" in program:
        path = Path(program) if Path(program).is_absolute() else cwd / program
        if not path.exists():
            return f"program not found: {program} (looked for {path})"
        if path.is_dir() or not os.access(path, os.X_OK):
            return f"program not executable: {program} ({path})"
        return None
    search = (env or {}).get("PATH", os.environ.get("PATH", os.defpath))
    if shutil.which(program, path=search) is None:
        return f"program not found on PATH: {program}"
    return None
