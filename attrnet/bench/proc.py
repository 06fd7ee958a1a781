"""Run a measurement in a child process and read its own peak memory (resource usage of that child alone)."""
from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class ChildResult:
    returncode: int
    stdout: str
    stderr: str
    max_rss_mb: float  # peak resident set of the child (and descendants it waited for), MiB
    wall_s: float


def run_child(cmd: Sequence[str], timeout_s: float = 600.0, env: dict[str, str] | None = None) -> ChildResult:
    """Run `cmd`, wait for it with ``os.wait4`` (its own rusage, not the running max over all children).

    On timeout the child is killed and the result has returncode -9.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env)
        deadline = t0 + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.kill(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ChildResult(proc.returncode, out.read().decode("utf-8", "replace"),
                           err.read().decode("utf-8", "replace"), usage.ru_maxrss / 1024.0, wall)
