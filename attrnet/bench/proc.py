"""Run a measurement in a child process and read its own peak memory.

Linux keeps a process's RSS high-water mark across fork and exec, so a child
forked from a large parent (one that has imported torch) reports at least the
parent's size. The command therefore runs under a small launcher (a bare
``python -I -S``), which forks it, waits for it with ``os.wait4`` (the
resource usage of that child alone) and reports its ``ru_maxrss``.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

__all__ = ["ChildResult", "run_child"]

_LAUNCHER = r"""
import json, os, signal, subprocess, sys, time
cmd, timeout, report = json.loads(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
proc = subprocess.Popen(cmd)
deadline = time.monotonic() + timeout
while True:
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    if pid:
        code = os.waitstatus_to_exitcode(status)
        break
    if time.monotonic() > deadline:
        os.kill(proc.pid, signal.SIGKILL)
        pid, status, usage = os.wait4(proc.pid, 0)
        code = -9
        break
    time.sleep(0.05)
with open(report, "w") as f:
    json.dump({"returncode": code, "max_rss_kb": usage.ru_maxrss}, f)
"""


@dataclass(frozen=True)
class ChildResult:
    returncode: int
    stdout: str
    stderr: str
    max_rss_mb: float  # peak resident set of the command (and descendants it waited for), MiB
    wall_s: float


def run_child(cmd: Sequence[str], timeout_s: float = 600.0) -> ChildResult:
    """Run `cmd` under the launcher; on timeout it is killed and the result has returncode -9."""
    with tempfile.TemporaryDirectory(prefix="attrnet-child-") as tmp:
        report = Path(tmp) / "usage.json"
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-I", "-S", "-c", _LAUNCHER, json.dumps(list(cmd)),
                               str(timeout_s), str(report)], capture_output=True, text=True, errors="replace")
        wall = time.perf_counter() - t0
        if not report.exists():
            return ChildResult(done.returncode or -1, done.stdout, done.stderr, float("nan"), wall)
        usage = json.loads(report.read_text())
    return ChildResult(int(usage["returncode"]), done.stdout, done.stderr, usage["max_rss_kb"] / 1024.0, wall)
