"""attrnet: attribute models trained with adaptive multi-task methods, shipped as static graphs.

Importing attrnet does not import torch: `Predictor` over an ONNX or engine
file starts without it.
"""
from __future__ import annotations

from typing import Any

from attrnet.core.version import __version__
__all__ = ["Predictor", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Predictor":
        from attrnet.serve.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'attrnet' has no attribute {name!r}")
