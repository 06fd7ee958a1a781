"""The TensorRT backend: a serialized engine (plan) plus its ``.json`` sidecar.

Written against TensorRT >= 10 (named I/O tensors, `execute_async_v3`) and
cuda-python for device buffers, so no torch is imported. Batches larger than
the engine's optimisation profile are split.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from attrnet.errors import AttrnetError, InputError, NotAvailableError
from attrnet.serve.backends import Backend, _device_index, read_sidecar


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


class TensorRTBackend(Backend):
    """Runs a TensorRT engine with uint8 ``images`` in and float32 ``probs`` out."""

    name = "tensorrt"

    def __init__(self, path: Path, device: str = "auto"):
        if device == "cpu":
            raise InputError("a TensorRT engine needs a CUDA device; use the .onnx file for CPU", path)
        try:
            import tensorrt as trt
        except ImportError:
            raise NotAvailableError("TensorRT is not installed: pip install 'attrnet[trt]' "
                                    "(or run the .onnx file with onnxruntime)") from None
        self._cudart = cudart = _cudart()
        meta = read_sidecar(path)
        index = _device_index(device)
        _check(cudart.cudaSetDevice(index), "cudaSetDevice")
        super().__init__(path, meta, f"cuda:{index}")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise InputError("cannot deserialize the TensorRT engine (corrupt, or built by another "
                             "TensorRT version or GPU)", path)
        self.engine = engine
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if "images" not in names or "probs" not in self._outputs:
            raise InputError("engine does not follow the attrnet contract (input 'images', output 'probs')", path)
        self._out_dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in self._outputs}
        _, _, max_shape = engine.get_tensor_profile_shape("images", 0)
        self.max_batch = int(max_shape[0])
        self._stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        spec = self.input_spec
        self._in_bytes = self.max_batch * spec.height * spec.width * 3
        self._d_in = _check(cudart.cudaMalloc(self._in_bytes), "cudaMalloc")
        self._d_out: dict[str, int] = {}
        for n in self._outputs:
            per_row = self._out_dtypes[n].itemsize * int(np.prod([d for d in engine.get_tensor_shape(n)[1:]]))
            self._d_out[n] = _check(cudart.cudaMalloc(self.max_batch * per_row), "cudaMalloc")

    def _run(self, images: np.ndarray) -> np.ndarray:
        parts = [self._run_chunk(images[i:i + self.max_batch]) for i in range(0, len(images), self.max_batch)]
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _run_chunk(self, images: np.ndarray) -> np.ndarray:
        cudart, ctx = self._cudart, self.context
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        ctx.set_input_shape("images", tuple(images.shape))
        _check(cudart.cudaMemcpyAsync(self._d_in, images.ctypes.data, images.nbytes, h2d, self._stream), "copy in")
        ctx.set_tensor_address("images", int(self._d_in))
        for n in self._outputs:
            ctx.set_tensor_address(n, int(self._d_out[n]))
        if not ctx.execute_async_v3(self._stream):
            raise AttrnetError(f"TensorRT execution failed for {self.path}")
        out = np.empty(tuple(ctx.get_tensor_shape("probs")), self._out_dtypes["probs"])
        _check(cudart.cudaMemcpyAsync(out.ctypes.data, self._d_out["probs"], out.nbytes, d2h, self._stream),
               "copy out")
        _check(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return out.astype(np.float32, copy=False)

    def __del__(self) -> None:
        cudart = getattr(self, "_cudart", None)
        if cudart is None:
            return
        for ptr in [getattr(self, "_d_in", None), *getattr(self, "_d_out", {}).values()]:
            if ptr is not None:
                cudart.cudaFree(ptr)
        if getattr(self, "_stream", None) is not None:
            cudart.cudaStreamDestroy(self._stream)
