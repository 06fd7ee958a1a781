"""Helpers shared by the CLI commands: JSON output, stderr progress, not-yet-built commands."""
from __future__ import annotations

import json
import os
import sys
from typing import Any

from attrnet.errors import AttrnetError


def print_json(obj: Any) -> None:
    """Machine-readable output: one JSON document on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def info(message: str) -> None:
    """Human progress / status line on stderr."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


ALLOW_OUTSIDE_HELP = ("Accept image paths in label files that leave the dataset folder "
                      "(../, absolute, symlinks out of the tree).")


def permit_outside_paths(allow: bool) -> None:
    """--allow-outside: let every dataset read in this process (and its DataLoader workers)
    accept paths outside its folder, through the loaders' ATTRNET_ALLOW_OUTSIDE switch."""
    if allow:
        os.environ["ATTRNET_ALLOW_OUTSIDE"] = "1"


def not_implemented(command: str) -> None:
    raise AttrnetError(f"`attrnet {command}` is not implemented yet")
