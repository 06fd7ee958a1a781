"""keep_freed_memory: large freed blocks are reused instead of being mapped (and page-faulted) afresh."""
from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = r"""
import ctypes, resource, sys
if sys.argv[1] == "keep":
    from attrnet.train.host_memory import keep_freed_memory
    assert keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
SIZE = 48 << 20  # above glibc's largest default mmap threshold (32 MiB), like a big activation tensor
def step():
    block = libc.malloc(SIZE)
    ctypes.memset(block, 1, SIZE)
    libc.free(block)
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_freed_blocks_are_reused_without_page_faults():
    pages = 10 * (48 << 20) // 4096  # what ten fresh 48 MiB blocks cost in 4 KiB page faults
    assert _faults("default") > pages // 2  # glibc maps every such block afresh by default
    assert _faults("keep") < pages // 20  # with the thresholds raised the same memory is reused
