"""The default model shipped with attrnet (see README.md here: synthetic attributes, for trying things out)."""
from __future__ import annotations

from pathlib import Path

from attrnet.core.errors import InputError

__all__ = ["CHECKPOINT", "default_checkpoint", "default_onnx", "FOLDER", "ONNX"]

FOLDER = Path(__file__).resolve().parent
CHECKPOINT = "default.safetensors"
ONNX = "default.onnx"


def _shipped(name: str) -> Path:
    path = FOLDER / name
    if not path.is_file():
        raise InputError("the default model is missing from this installation; pass --model PATH", path)
    return path


def default_checkpoint() -> Path:
    """The shipped checkpoint (torch backend)."""
    return _shipped(CHECKPOINT)


def default_onnx() -> Path:
    """The shipped ONNX export of the same model (ONNX Runtime, no torch)."""
    return _shipped(ONNX)
