"""Real servers and tools from Debian packages, installed when missing.

Tests that need Prometheus, promtool or Alertmanager get them: they never skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading

_lock = threading.Lock()
_updated = False


def ensure(binary: str, package: str) -> str:
    """The path of ``binary``, installing Debian's ``package`` with apt-get if needed."""
    global _updated
    found = shutil.which(binary)
    if found:
        return found
    with _lock:
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if not _updated:
            subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
            _updated = True
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                       check=True, env=env, timeout=900, stdout=subprocess.DEVNULL)
    found = shutil.which(binary)
    assert found, f"{binary} is still missing after installing {package}"
    return found
