"""Human progress and status lines: always on stderr, so stdout stays for results."""
from __future__ import annotations

import sys

__all__ = ["info"]


def info(message: str) -> None:
    """Write one progress / status line to stderr."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
