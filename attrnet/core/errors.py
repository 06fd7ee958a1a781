"""Error types shared by every part of attrnet.

`InputError` is bad input from the user (a file, a flag, a data set): the CLI
prints its one line and exits 2. Any other `AttrnetError` is a runtime failure
(exit 1).
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["AttrnetError", "InputError", "NotAvailableError", "ParityError"]


class AttrnetError(Exception):
    """Base class: a failure attrnet can explain in one line."""


class InputError(AttrnetError):
    """Bad input: names the file (and line) it came from."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + message)


class ParityError(AttrnetError):
    """An exported model disagrees with the trained one beyond tolerance."""


class NotAvailableError(AttrnetError):
    """An optional component (TensorRT, CUDA, onnxruntime) is not installed here."""
