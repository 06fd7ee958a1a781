"""Running a TensorRT engine (plan) from numpy, without torch: the runtime half of the TensorRT path.

Written against TensorRT >= 10 (named I/O tensors, `execute_async_v3`) and
cuda-python for device buffers. Used by the exporter's parity check and by
`attrnet.serve.tensorrt_backend`. Batches larger than the engine's
optimisation profile are split; chunks smaller than its minimum are padded
with blank images (their rows are dropped), so an engine built with
``--batch 4:16:64`` still runs a last batch of 1.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from attrnet.core.errors import AttrnetError, InputError, NotAvailableError

__all__ = ["EngineRunner", "require_tensorrt"]

NOT_INSTALLED = ("TensorRT is not installed: pip install 'attrnet[trt]' "
                 "(or run the .onnx file with onnxruntime)")


def require_tensorrt() -> Any:
    """The `tensorrt` module; NotAvailableError when it is not installed."""
    try:
        import tensorrt as trt
    except ImportError:
        raise NotAvailableError(NOT_INSTALLED) from None
    return trt


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            raise NotAvailableError("cuda-python is not installed: pip install 'attrnet[trt]'") from None
    return cudart


def _check(result: Any, what: str) -> Any:
    """cuda-python calls return (error, *values); raise on error, return the value(s)."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(getattr(err, "value", err)) != 0:
        raise AttrnetError(f"CUDA error in {what}: {err}")
    return values[0] if len(values) == 1 else values


class EngineRunner:
    """A deserialized engine with its device buffers: uint8 ``images`` in, float32 ``probs`` out.

    `where` names the engine in errors (the file, when there is one).
    """

    def __init__(self, plan: bytes, device: int = 0, where: Path | None = None):
        trt = require_tensorrt()
        self._cudart = cudart = _cudart()
        self.where = where
        _check(cudart.cudaSetDevice(device), "cudaSetDevice")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise InputError("cannot deserialize the TensorRT engine (corrupt, or built by another "
                             "TensorRT version or GPU)", where)
        self.engine = engine
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if "images" not in names or "probs" not in self._outputs:
            raise InputError("engine does not follow the attrnet contract (input 'images', output 'probs')", where)
        self._out_dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in self._outputs}
        min_shape, _, max_shape = engine.get_tensor_profile_shape("images", 0)
        self.min_batch, self.max_batch = int(min_shape[0]), int(max_shape[0])
        self._profile = f"batch {self.min_batch}..{self.max_batch} of {max_shape[1]}x{max_shape[2]} images"
        self._stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._d_in: int | None = None
        self._d_out: dict[str, int] = {}
        self._in_bytes = 0

    def _buffers(self, height: int, width: int) -> None:
        """Device buffers for `max_batch` images of this size (allocated once)."""
        need = self.max_batch * height * width * 3
        if self._d_in is not None and need <= self._in_bytes:
            return
        cudart, engine = self._cudart, self.engine
        self._free()
        self._in_bytes = need
        self._d_in = _check(cudart.cudaMalloc(need), "cudaMalloc")
        for n in self._outputs:
            per_row = self._out_dtypes[n].itemsize * int(np.prod([d for d in engine.get_tensor_shape(n)[1:]]))
            self._d_out[n] = _check(cudart.cudaMalloc(self.max_batch * per_row), "cudaMalloc")

    def run(self, images: np.ndarray) -> np.ndarray:
        """Probabilities float32 ``[N, C]`` for contiguous uint8 images ``[N, H, W, 3]``."""
        self._buffers(images.shape[1], images.shape[2])
        parts = [self._run_chunk(images[i:i + self.max_batch]) for i in range(0, len(images), self.max_batch)]
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _run_chunk(self, images: np.ndarray) -> np.ndarray:
        """Probabilities of at most `max_batch` images (padded up to `min_batch`)."""
        cudart, ctx = self._cudart, self.context
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        count = len(images)
        if count < self.min_batch:
            images = np.concatenate([images, np.zeros((self.min_batch - count, *images.shape[1:]), images.dtype)])
        images = np.ascontiguousarray(images)
        if not ctx.set_input_shape("images", tuple(images.shape)):
            raise AttrnetError(f"TensorRT refused input shape {tuple(images.shape)} for "
                               f"{self.where or 'the engine'} (its profile takes {self._profile})")
        _check(cudart.cudaMemcpyAsync(self._d_in, images.ctypes.data, images.nbytes, h2d, self._stream), "copy in")
        ctx.set_tensor_address("images", int(self._d_in))
        for name in self._outputs:
            ctx.set_tensor_address(name, int(self._d_out[name]))
        if not ctx.execute_async_v3(self._stream):
            raise AttrnetError(f"TensorRT execution failed for {self.where or 'the engine'}")
        out = np.empty(tuple(ctx.get_tensor_shape("probs")), self._out_dtypes["probs"])
        _check(cudart.cudaMemcpyAsync(out.ctypes.data, self._d_out["probs"], out.nbytes, d2h, self._stream),
               "copy out")
        _check(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return out[:count].astype(np.float32, copy=False)

    def _free(self) -> None:
        cudart = self._cudart
        for ptr in [self._d_in, *self._d_out.values()]:
            if ptr is not None:
                cudart.cudaFree(ptr)
        self._d_in, self._d_out = None, {}

    def __del__(self) -> None:
        if getattr(self, "_cudart", None) is None:
            return
        if hasattr(self, "_d_out"):
            self._free()
        if getattr(self, "_stream", None) is not None:
            self._cudart.cudaStreamDestroy(self._stream)
