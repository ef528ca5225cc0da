"""A real server from Debian's packages, started on loopback for the tests.

Prometheus and Alertmanager start the same way: ``--web.listen-address=127.0.0.1:0``,
the port read from the ``msg="Listening on"`` log line, then ``/-/ready`` polled.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx


class LoopbackServer:
    """``launch`` a server; ``url`` is its base URL. A context manager, or ``close()``."""

    name = "server"

    def launch(self, argv: list[str], log_path: Path, startup_timeout: float) -> None:
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            self.port = self._wait_for_port(startup_timeout)
            self.url = f"http://127.0.0.1:{self.port}"
            self._wait_ready(startup_timeout)
        except BaseException:
            self.close()
            raise

    def _wait_for_port(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"{self.name} exited:\n{self.log_path.read_text()}"
            found = re.search(r'msg="Listening on" address=127\.0\.0\.1:(\d+)', self.log_path.read_text())
            if found:
                return int(found.group(1))
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not log its port:\n{self.log_path.read_text()}")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{self.name} is not ready:\n{self.log_path.read_text()}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
