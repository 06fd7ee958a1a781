"""The ONNX Runtime backend: an attrnet ONNX file on the TensorRT, CUDA or CPU execution provider."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from attrnet.core.device import device_index
from attrnet.core.errors import InputError, NotAvailableError
from attrnet.core.model_card import parse_metadata_json
from attrnet.export.ort_session import (cpu_disabled_optimizers, ort_provider_options, ort_providers,
                                        session_options, tensorrt_settings)
from attrnet.serve.backend import Backend

__all__ = ["OrtBackend"]


class OrtBackend(Backend):
    """ONNX Runtime session over an attrnet ONNX file (input ``images``, output ``probs``).

    On the TensorRT execution provider the engine is cached in
    `attrnet.export.ort_session.default_trt_cache` and built for batches 1 to `max_batch`; larger
    batches are split.
    """

    name = "onnxruntime"

    def __init__(self, path: Path, device: str = "auto", *, threads: int | None = None, spinning: bool = True):
        try:
            import onnxruntime as ort
        except ImportError:
            raise NotAvailableError("onnxruntime is not installed: pip install 'attrnet[cpu]' "
                                    "(or 'attrnet[gpu]' for CUDA)") from None
        opts = session_options(threads, spinning)
        names = ort_providers(device, ort.get_available_providers())
        try:
            trt = tensorrt_settings(path) if "TensorrtExecutionProvider" in names else None
            if trt is not None:  # the provider creates the last folder only
                trt.cache_dir.mkdir(parents=True, exist_ok=True)
            providers = ort_provider_options(names, device_index(device), trt)
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT and onnx raise their own exception types for bad files
            raise InputError(f"cannot load ONNX model: {str(exc).splitlines()[0][:300]}", path) from None
        meta = self.session.get_modelmeta().custom_metadata_map.get("attrnet")
        if meta is None:
            raise InputError("not an attrnet model (no 'attrnet' entry in the ONNX metadata)", path)
        self.providers = self.session.get_providers()
        on_trt = trt is not None and "TensorrtExecutionProvider" in self.providers
        self.max_batch: int | None = trt.max_batch if on_trt else None  # the TensorRT engine's profile
        used = "cpu" if self.providers[0] == "CPUExecutionProvider" else f"cuda:{device_index(device)}"
        super().__init__(path, parse_metadata_json(meta, path), used)
        self.disabled_optimizers = cpu_disabled_optimizers(self.metadata) if used == "cpu" else []
        if self.disabled_optimizers:  # measured faster at export: reopen without them
            self.session = ort.InferenceSession(str(path), opts, providers=providers,
                                                disabled_optimizers=self.disabled_optimizers)
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        if "images" not in inputs or inputs["images"].type != "tensor(uint8)" or "probs" not in outputs:
            raise InputError("ONNX model does not follow the attrnet contract "
                             "(uint8 input 'images', float output 'probs')", path)

    def _run(self, images: np.ndarray) -> np.ndarray:
        step = self.max_batch or len(images)
        parts = [self.session.run(["probs"], {"images": images[i:i + step]})[0] for i in range(0, len(images), step)]
        return np.asarray(parts[0] if len(parts) == 1 else np.concatenate(parts), dtype=np.float32)

    def describe(self) -> str:
        return f"onnxruntime ({self.providers[0].replace('ExecutionProvider', '')})"
