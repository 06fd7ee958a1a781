"""The TensorRT backend: a serialized engine (plan) plus its ``.json`` sidecar.

The engine runs through `attrnet.export.trt_runner.EngineRunner` (TensorRT >= 10
and cuda-python, no torch); the sidecar holds the model card.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from attrnet.core.device import device_index
from attrnet.core.errors import InputError
from attrnet.export.trt_runner import EngineRunner, require_tensorrt
from attrnet.serve.backend import Backend, read_sidecar

__all__ = ["TensorRTBackend"]


class TensorRTBackend(Backend):
    """Runs a TensorRT engine with uint8 ``images`` in and float32 ``probs`` out."""

    name = "tensorrt"

    def __init__(self, path: Path, device: str = "auto"):
        if device == "cpu":
            raise InputError("a TensorRT engine needs a CUDA device; use the .onnx file for CPU", path)
        require_tensorrt()
        meta = read_sidecar(path)
        index = device_index(device)
        self.runner = EngineRunner(path.read_bytes(), index, path)
        super().__init__(path, meta, f"cuda:{index}")
        self.max_batch = self.runner.max_batch

    def _run(self, images: np.ndarray) -> np.ndarray:
        return self.runner.run(images)
