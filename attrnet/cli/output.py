"""What the CLI commands share: results on stdout, progress on stderr, the --allow-outside switch."""
from __future__ import annotations

import json
import os
import sys
from typing import Any

from attrnet.core.progress import info

__all__ = ["ALLOW_OUTSIDE_HELP", "info", "metric", "permit_outside_paths", "print_json", "result"]


def print_json(obj: Any) -> None:
    """Machine-readable output: one JSON document on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def result(text: str) -> None:
    """A command's human-readable result (table, summary line) on stdout, so `> file` keeps it."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def metric(value: float | None) -> str:
    """A metric as printed in summaries: 4 decimals, ``n/a`` when there is none."""
    return "n/a" if value is None else f"{value:.4f}"


ALLOW_OUTSIDE_HELP = ("Accept image paths in label files that leave the dataset folder "
                      "(../, absolute, symlinks out of the tree).")


def permit_outside_paths(allow: bool) -> None:
    """--allow-outside: let every dataset read in this process (and its DataLoader workers)
    accept paths outside its folder, through the loaders' ATTRNET_ALLOW_OUTSIDE switch."""
    if allow:
        os.environ["ATTRNET_ALLOW_OUTSIDE"] = "1"
