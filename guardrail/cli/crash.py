"""When guardrail itself fails: exit 70, one line, the traceback in a log file.

A bug is not a verdict. Exit 1 means "rolled back", so an uncaught exception must never
end a command with it: the CLI answers ``ExitCode.INTERNAL`` (70, "internal error: a
person is needed") and a single line naming ``guardrail-crash.log`` beside the state file,
where the full traceback is appended (secrets known to this process redacted). The
terminal gets no traceback: it may be a CI log that many people read.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

LOG_NAME = "guardrail-crash.log"

_state: list[Path] = []
_redactors: list[Any] = []


def note_state(path: Path) -> None:
    """The state file a command uses: the crash log goes beside it."""
    _state[:] = [Path(path)]


def watch(redactor: Any) -> None:
    """Secrets this redactor knows are masked in the crash log too."""
    _redactors.append(redactor)


def _log_path() -> Path:
    from guardrail.cli.options import default_state_path

    base = (_state[0] if _state else default_state_path()).absolute().parent
    try:
        base.mkdir(parents=True, exist_ok=True)
        if os.access(base, os.W_OK):
            return base / LOG_NAME
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / LOG_NAME


def write_log(exc: BaseException) -> Path:
    """Append the traceback of ``exc`` to the crash log; return the log's path."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    for redactor in _redactors:
        text = redactor.redact(text)
    header = (f"--- {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} pid {os.getpid()} on "
              f"{socket.gethostname()}: guardrail {' '.join(sys.argv[1:])}\n")
    path = _log_path()
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(header + text)
    except OSError:
        path = Path(tempfile.gettempdir()) / LOG_NAME
        with open(path, "a", encoding="utf-8") as f:
            f.write(header + text)
    return path


def crash_message(exc: BaseException, log: Path) -> str:
    return (f"internal error: a person is needed (exit 70): guardrail failed with {type(exc).__name__}; "
            f"the traceback is in {log}")
