"""Inference backends: one interface over torch, ONNX Runtime and TensorRT.

`open_backend(path)` picks the backend from the file suffix:
``.safetensors`` -> torch, ``.onnx`` -> ONNX Runtime (TensorRT, CUDA or CPU
execution provider, in that order of availability), ``.engine``/``.plan`` ->
TensorRT with its ``.json`` sidecar. Every backend takes uint8 RGB images
``[N, H, W, 3]`` and returns float32 probabilities ``[N, C]``. Only the torch
backend imports torch.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from attrnet.errors import InputError, NotAvailableError
from attrnet.input_spec import InputSpec
from attrnet.serve.metadata import ModelInfo, cpu_disabled_optimizers, model_info, parse_metadata_json

TORCH_SUFFIXES = (".safetensors",)
ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan")
BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")


class Backend:
    """A loaded model. Subclasses implement `_run` (and may override `submit` to overlap work)."""

    name: str = ""

    def __init__(self, path: Path, metadata: dict[str, Any], device: str):
        self.path = path
        self.metadata = metadata
        self.info: ModelInfo = model_info(metadata, path)
        self.device = device

    @property
    def input_spec(self) -> InputSpec:
        return self.info.input_spec

    @property
    def columns(self) -> list[str]:
        return self.info.columns

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
    _check_device(device)
    if not path.exists():
        raise InputError("model file not found", path)
    if path.is_dir():
        raise InputError("expected a model file, got a directory", path)
    kind = backend_for_suffix(path) if backend == "auto" else backend
    if kind == "torch":
        from attrnet.serve.torch_backend import TorchBackend

        return TorchBackend(path, device, threads=threads)
    if kind == "onnxruntime":
        return OrtBackend(path, device, threads=threads, spinning=spinning)
    from attrnet.serve.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(path, device)


def _check_device(device: str) -> None:
    if device in ("auto", "cpu", "cuda"):
        return
    if device.startswith("cuda:") and device[5:].isdigit():
        return
    raise InputError(f"unknown device {device!r} (auto, cpu, cuda or cuda:N)")


def _device_index(device: str) -> int:
    return int(device[5:]) if device.startswith("cuda:") else 0


# ------------------------------------------------------------------ ONNX Runtime

ORT_PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def ort_providers(device: str, available: list[str]) -> list[str]:
    """Execution providers for `device`, best first: TensorRT, CUDA, CPU (those available)."""
    gpu = [p for p in ORT_PROVIDER_ORDER[:2] if p in available]
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda") and not gpu:
        raise NotAvailableError(f"device {device!r} asked for, but this onnxruntime has no CUDA or TensorRT "
                                f"provider (available: {', '.join(available)}); install onnxruntime-gpu")
    return gpu + ["CPUExecutionProvider"]


class OrtBackend(Backend):
    """ONNX Runtime session over an attrnet ONNX file (input ``images``, output ``probs``)."""

    name = "onnxruntime"

    def __init__(self, path: Path, device: str = "auto", *, threads: int | None = None, spinning: bool = True):
        try:
            import onnxruntime as ort
        except ImportError:
            raise NotAvailableError("onnxruntime is not installed: pip install 'attrnet[cpu]' "
                                    "(or 'attrnet[gpu]' for CUDA)") from None
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
        if not spinning:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        names = ort_providers(device, ort.get_available_providers())
        providers: list[Any] = [
            (p, {"device_id": _device_index(device)}) if p != "CPUExecutionProvider" else p for p in names
        ]
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types for bad files
            raise InputError(f"cannot load ONNX model: {str(exc).splitlines()[0][:300]}", path) from None
        meta = self.session.get_modelmeta().custom_metadata_map.get("attrnet")
        if meta is None:
            raise InputError("not an attrnet model (no 'attrnet' entry in the ONNX metadata)", path)
        self.providers = self.session.get_providers()
        used = "cpu" if self.providers[0] == "CPUExecutionProvider" else f"cuda:{_device_index(device)}"
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
        (probs,) = self.session.run(["probs"], {"images": images})
        return np.asarray(probs, dtype=np.float32)

    def describe(self) -> str:
        return f"onnxruntime ({self.providers[0].replace('ExecutionProvider', '')})"


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
