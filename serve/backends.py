"""Inference backends: one interface over torch, ONNX Runtime and TensorRT.

`open_backend(path)` picks the backend from the file suffix:
``.safetensors`` -> torch, ``.onnx`` -> ONNX Runtime (TensorRT, CUDA or CPU
execution provider, in that order of availability), ``.engine``/``.plan`` ->
TensorRT with its ``.json`` sidecar. Every backend takes uint8 RGB images
``[N, H, W, 3]`` and returns float32 probabilities ``[N, C]`` (`Backend`).
Only the torch backend imports torch.
"""
from __future__ import annotations

from pathlib import Path

from attrnet.core.device import check_device
from attrnet.core.errors import InputError
from attrnet.serve.backend import Backend

__all__ = ["BACKENDS", "ENGINE_SUFFIXES", "ONNX_SUFFIXES", "TORCH_SUFFIXES", "Backend", "backend_for_suffix",
           "open_backend"]

TORCH_SUFFIXES = (".safetensors",)
ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan")
BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")


def backend_for_suffix(path: str | Path) -> str:
    """The backend a model file's suffix selects."""
    suffix = Path(path).suffix.lower()
    if suffix in TORCH_SUFFIXES:
        return "torch"
    if suffix in ONNX_SUFFIXES:
        return "onnxruntime"
    if suffix in ENGINE_SUFFIXES:
        return "tensorrt"
    raise InputError(f"unknown model file type {suffix or '(no suffix)'!r} "
                     "(expected .safetensors, .onnx, .engine or .plan)", path)


def open_backend(path: str | Path, device: str = "auto", backend: str = "auto", *,
                 threads: int | None = None, spinning: bool = True) -> Backend:
    """Load a model file with the backend its suffix (or `backend`) names.

    `device`: ``auto`` (GPU when available), ``cpu``, ``cuda`` or ``cuda:N``.
    `threads`: intra-op threads on CPU (None: the library default).
    `spinning=False` stops ONNX Runtime's idle threads from busy-waiting,
    which leaves the cores to decoding threads running beside it.
    """
    path = Path(path)
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    check_device(device)
    if not path.exists():
        raise InputError("model file not found", path)
    if path.is_dir():
        raise InputError("expected a model file, got a directory", path)
    kind = backend_for_suffix(path) if backend == "auto" else backend
    if path.suffix.lower() in TORCH_SUFFIXES + ONNX_SUFFIXES + ENGINE_SUFFIXES and backend_for_suffix(path) != kind:
        raise InputError(f"--backend {kind} cannot load a {path.suffix} file ({backend_for_suffix(path)} does; "
                         "leave --backend at auto)", path)
    if kind == "torch":
        from attrnet.serve.torch_backend import TorchBackend

        return TorchBackend(path, device, threads=threads)
    if kind == "onnxruntime":
        from attrnet.serve.ort_backend import OrtBackend

        return OrtBackend(path, device, threads=threads, spinning=spinning)
    from attrnet.serve.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(path, device)
