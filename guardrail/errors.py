"""Errors guardrail raises, and the exit codes the CLI turns them into.

The library never prints and never exits; it raises one of these. Only the CLI
(``guardrail.cli``) turns a ``GuardrailError`` into a one-line red message and the
exit code the error carries.

Tree::

    GuardrailError                  exit 2 unless a subclass says otherwise
    ├── UsageError                  bad arguments on the command line
    ├── ConfigError                 one or more problems in YAML files (a list of Problem)
    ├── PluginError                 a plugin failed to load or registered something twice
    ├── StoreError                  the state file cannot be opened or is from the future
    ├── NotFound                    a rollout id (or incident) that the store does not hold
    ├── LockedError                 another rollout of the service holds the lock (exit 5)
    ├── LockLostError               a running rollout's lock was taken over: it stopped (exit 5)
    ├── SupersededError             a rollout whose lock another rollout took over acts no more (exit 5)
    ├── InterruptedRolloutError     a new rollout over an interrupted or dead one, without --take-over (exit 5)
    └── StateError                  a command that the rollout's state does not allow

Anything else that escapes the CLI is a bug: exit 70 (``ExitCode.INTERNAL``), one line
naming a log file, the traceback in that file.

Outcomes of a rollout (promoted, rolled back, halted...) are not errors: the engine
returns them and the CLI maps them to exit codes with ``ExitCode``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from guardrail.text import printable


class ExitCode(IntEnum):
    """Exit codes of ``guardrail rollout`` and friends (README lists them)."""

    PROMOTED = 0
    """Every wave passed (for other commands: success)."""
    ROLLED_BACK = 1
    """A policy failed, the rollback completed and the system recovered."""
    USAGE = 2
    """Invalid plan, policy or arguments; nothing was deployed."""
    HALTED = 3
    """Inconclusive, paused or waiting for approval; a person must resume or abort."""
    ROLLBACK_FAILED = 4
    """A rollback failed or recovery was not achieved: a person is needed now."""
    LOCKED = 5
    """Another rollout of this service is in progress (or the rollout was superseded)."""
    INTERNAL = 70
    """Internal error: guardrail itself failed (a bug, not a verdict); a person is needed.
    The traceback is in a log file beside the state file."""


OUTCOME_EXIT = {  # a rollout's outcome -> its exit code
    "promoted": ExitCode.PROMOTED,
    "rolled_back": ExitCode.ROLLED_BACK,
    "halted": ExitCode.HALTED,
    "rollback_failed": ExitCode.ROLLBACK_FAILED,
    "locked": ExitCode.LOCKED,
}


@dataclass(frozen=True)
class Problem:
    """One problem in one file, located at the YAML node that causes it."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        # One line whatever the file name, keys or values hold: a key with a newline
        # cannot print a line of its own that looks like another problem.
        where = f"{printable(self.file)}:{self.line}:{self.column}"
        message = printable(self.message)
        return f"{where}: {printable(self.path)}: {message}" if self.path else f"{where}: {message}"


class GuardrailError(Exception):
    """Base of every error guardrail raises on purpose."""

    exit_code: ExitCode = ExitCode.USAGE


class UsageError(GuardrailError):
    """The command line asks for something impossible."""


class ConfigError(GuardrailError):
    """Problems in YAML files; ``problems`` holds every one, not only the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        first = str(self.problems[0]) if self.problems else "invalid configuration"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(first + more)


class PluginError(GuardrailError):
    """A plugin could not be loaded or registered something inconsistent."""


class StoreError(GuardrailError):
    """The state store cannot be used."""


class NotFound(GuardrailError):
    """The store holds no such rollout or incident."""


class StateError(GuardrailError):
    """The rollout's current state does not allow this command."""


class LockLostError(GuardrailError):
    """A running rollout found its lock held by someone else: it stalled longer than its
    lease and another process took the lock over. It must change nothing more."""

    exit_code = ExitCode.LOCKED

    def __init__(self, service: str, rollout_id: str, holder: dict | None):
        self.service, self.rollout_id, self.holder = service, rollout_id, holder
        now = (f"rollout {holder['rollout_id']} ({holder['holder']}) holds it now" if holder
               else "nobody holds it now (it was unlocked)")
        super().__init__(
            f"rollout {rollout_id} lost the lock of service {service!r} while it ran: {now}. This process "
            f"stalled longer than its lease, so it stopped before its next change; see `guardrail status {rollout_id}`"
        )


class LockedError(GuardrailError):
    """Another rollout of the same service holds the lock."""

    exit_code = ExitCode.LOCKED

    def __init__(self, service: str, holder: str, rollout_id: str):
        self.service, self.holder, self.rollout_id = service, holder, rollout_id
        super().__init__(
            f"service {service!r} is locked by rollout {rollout_id} ({holder}); "
            f"wait for it, or run `guardrail unlock {service}` if that process is gone"
        )


class SupersededError(LockedError):
    """A rollout whose lock another rollout took over: it can never act again unless a
    person takes the service back with a recorded ``--take-over "reason"``."""

    def __init__(self, service: str, rollout_id: str, by_rollout: str, holder: str, now: str):
        self.superseded = rollout_id
        GuardrailError.__init__(
            self,
            f"rollout {rollout_id} was superseded: rollout {by_rollout} took over the lock of service {service!r}"
            f" ({now}); it changes nothing more. To act on it anyway, a person takes the service back:"
            f" `guardrail resume {rollout_id} --take-over \"reason\"`")
        self.service, self.holder, self.rollout_id = service, holder, by_rollout


class InterruptedRolloutError(LockedError):
    """The service's lock belongs to a rollout that was interrupted or whose process died:
    its regions may be half-way; a new rollout starts over it only with ``--take-over``."""

    def __init__(self, service: str, holder: str, rollout_id: str, story: str, hint: str):
        GuardrailError.__init__(self, f"service {service!r} is held by rollout {rollout_id}: {story}. {hint}")
        self.service, self.holder, self.rollout_id = service, holder, rollout_id
