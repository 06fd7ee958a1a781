"""The interface every inference backend implements: uint8 RGB images in, probabilities out.

A `Backend` holds the model's card (`attrnet.core.model_card.ModelCard`: schema,
input spec, thresholds) and turns uint8 ``[N, H, W, 3]`` RGB batches into float32
probabilities ``[N, C]``. `attrnet.serve.backends.open_backend` picks the
implementation (torch, ONNX Runtime, TensorRT) from the file suffix.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from attrnet.core.errors import InputError
from attrnet.core.input_spec import InputSpec
from attrnet.core.model_card import ModelCard, parse_metadata_json

__all__ = ["Backend", "cpu_count", "read_sidecar"]


class Backend:
    """A loaded model. Subclasses implement `_run` (and may override `submit` to overlap work)."""

    name: str = ""

    def __init__(self, path: Path, metadata: dict[str, Any], device: str):
        self.path = path
        self.metadata = metadata
        self.card = ModelCard.from_metadata(metadata, path)
        self.device = device

    @property
    def input_spec(self) -> InputSpec:
        return self.card.input_spec

    @property
    def columns(self) -> list[str]:
        return self.card.columns

    def run(self, images: np.ndarray) -> np.ndarray:
        """Probabilities float32 ``[N, C]`` for uint8 RGB images ``[N, H, W, 3]``."""
        return self.submit(images)()

    def submit(self, images: np.ndarray) -> Callable[[], np.ndarray]:
        """Start inference on a batch; the returned callable waits for and returns the probabilities."""
        images = self._check(images)
        out = self._run(images) if len(images) else np.zeros((0, len(self.columns)), np.float32)
        return lambda: out

    def _run(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _check(self, images: np.ndarray) -> np.ndarray:
        spec = self.input_spec
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 \
                or images.shape[1:] != (spec.height, spec.width, 3):
            got = f"{images.dtype} {list(images.shape)}" if isinstance(images, np.ndarray) else type(images).__name__
            raise InputError(f"model input must be uint8 [N, {spec.height}, {spec.width}, 3] RGB, got {got}",
                             self.path)
        return np.ascontiguousarray(images)

    def describe(self) -> str:
        return f"{self.name} on {self.device}"


def read_sidecar(engine_path: Path) -> dict[str, Any]:
    """An engine's metadata from ``<engine>.json`` beside it."""
    sidecar = Path(str(engine_path) + ".json")
    try:
        text = sidecar.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"engine metadata sidecar {sidecar.name} not found beside the engine", engine_path) from None
    return parse_metadata_json(text, sidecar)


def cpu_count() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
