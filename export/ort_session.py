"""ONNX Runtime sessions over attrnet ONNX files, shared by export (parity, timing) and serving.

`session` opens a CPU session (optionally without some graph optimizers),
`run_probs` runs uint8 images through it; `ort_providers` orders the execution
providers for a device and `ort_provider_options` gives each its options (for
the TensorRT provider: int8 for QDQ files, an engine cache, one shape profile;
`tensorrt_settings` reads what that needs from the file); `cpu_disabled_optimizers`
reads which optimizers an export measured to be slower for its file on the CPU
provider.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import onnx

from attrnet.core.errors import NotAvailableError

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["ORT_PROVIDER_ORDER", "ORT_SESSION_CONFIG", "TRT_MAX_BATCH", "TRT_OPT_BATCH", "TUNABLE_ORT_OPTIMIZERS",
           "TensorrtSettings", "cpu_disabled_optimizers", "default_trt_cache", "is_qdq", "ort_provider_options",
           "ort_providers", "run_probs", "session", "session_options", "tensorrt_settings"]

INPUT = "images"

# ONNX Runtime graph optimizers an export may measure to be slower for its file on the CPU provider
# and list under ``export.ort_cpu_disabled_optimizers``; any other name there is ignored.
TUNABLE_ORT_OPTIMIZERS = ("QDQPropagationTransformer",)


# Session config for every attrnet ONNX Runtime session (export parity and timing, serving alike).
# On x86-64 without VNNI (AVX2, AVX-512 before VNNI) ONNX Runtime runs int8 QDQ files through a u8s8
# kernel whose 16-bit pairwise sums saturate; "session.x64quantprecision" switches it to its exact
# u8u8 kernel there (nothing changes with VNNI, nor for float files). On a 2-core AVX2 EPYC it took
# a test export's agreement with fp32 from 84.4% to 100% (the exact QDQ result) for 7-14% less
# int8 throughput.
ORT_SESSION_CONFIG = {"session.x64quantprecision": "1"}


def session_options(threads: int | None = None, spinning: bool = True) -> "onnxruntime.SessionOptions":
    """attrnet's ONNX Runtime session options: quiet, exact int8 kernels, `threads` intra-op threads
    (None: ONNX Runtime's default); `spinning=False` stops idle threads from busy-waiting."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    for key, value in ORT_SESSION_CONFIG.items():
        opts.add_session_config_entry(key, value)
    if threads:
        opts.intra_op_num_threads = int(threads)
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def cpu_disabled_optimizers(metadata: dict[str, Any]) -> list[str]:
    """The ONNX Runtime optimizers to skip for this file on the CPU provider (as measured at export)."""
    export = metadata.get("export")
    names = export.get("ort_cpu_disabled_optimizers") if isinstance(export, dict) else None
    return [n for n in names if n in TUNABLE_ORT_OPTIMIZERS] if isinstance(names, list) else []


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


# ONNX Runtime's TensorRT provider builds one engine for the profile below; batches above the maximum are
# split by the caller (attrnet.serve.ort_backend), so neither a short last batch nor a large one rebuilds it.
TRT_MAX_BATCH = 256
TRT_OPT_BATCH = 32  # the Predictor's default batch size


@dataclass(frozen=True)
class TensorrtSettings:
    """What ONNX Runtime's TensorRT provider is told about one attrnet ONNX file."""
    height: int
    width: int
    qdq: bool  # int8 QDQ file: TensorRT needs its int8 mode on
    cache_dir: Path  # engine and timing caches
    max_batch: int = TRT_MAX_BATCH
    opt_batch: int = TRT_OPT_BATCH


def ort_provider_options(names: Sequence[str], device_id: int,
                         trt: TensorrtSettings | None = None) -> list[str | tuple[str, dict[str, Any]]]:
    """The `providers` argument of `onnxruntime.InferenceSession` for the execution providers `names`.

    TensorRT: `device_id`, and with `trt` `trt_int8_enable` for QDQ files, the engine and timing caches
    in `trt.cache_dir`, and one profile for ``images`` from batch 1 to `trt.max_batch`. CUDA:
    `device_id`. Others (CPU): no options.
    """
    out: list[str | tuple[str, dict[str, Any]]] = []
    for name in names:
        if name == "TensorrtExecutionProvider":
            out.append((name, {"device_id": device_id, **(_tensorrt_options(trt) if trt else {})}))
        elif name == "CUDAExecutionProvider":
            out.append((name, {"device_id": device_id}))
        else:
            out.append(name)
    return out


def _tensorrt_options(trt: TensorrtSettings) -> dict[str, Any]:
    def shape(batch: int) -> str:
        return f"{INPUT}:{batch}x{trt.height}x{trt.width}x3"

    return {
        "trt_int8_enable": trt.qdq,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(trt.cache_dir),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(trt.cache_dir),
        "trt_profile_min_shapes": shape(1),
        "trt_profile_opt_shapes": shape(min(trt.opt_batch, trt.max_batch)),
        "trt_profile_max_shapes": shape(trt.max_batch),
    }


def is_qdq(model: onnx.ModelProto) -> bool:
    """Whether `model` is quantized in the QDQ layout (holds QuantizeLinear / DequantizeLinear nodes)."""
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def default_trt_cache(path: Path, digest: str) -> Path:
    """Where ONNX Runtime's TensorRT provider keeps the engines of model file `path` (SHA-256 `digest`).

    ``<model>.trt-cache/<first 16 hex digits of the file's SHA-256>/`` beside the model, or, when that
    folder cannot be written, ``$XDG_CACHE_HOME/attrnet/trt-cache/<model name>-<digits>/`` (default
    ``~/.cache``). The provider names its engines after the file name and the graph's structure, not
    its weights, so the content hash keeps a re-exported file from loading a stale engine.
    """
    beside = Path(f"{path}.trt-cache")
    writable = beside if beside.is_dir() else path.parent
    if os.access(writable, os.W_OK):
        return beside / digest[:16]
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return user / "attrnet" / "trt-cache" / f"{path.name}-{digest[:16]}"


def tensorrt_settings(path: Path) -> TensorrtSettings:
    """The TensorRT provider's settings for an attrnet ONNX file: its image size (input ``images``
    ``[N, H, W, 3]``), whether it is QDQ, and its `default_trt_cache`. ValueError for another file."""
    data = path.read_bytes()
    model = onnx.load_from_string(data)
    image = next((i for i in model.graph.input if i.name == INPUT), None)
    dims = [d.dim_value for d in image.type.tensor_type.shape.dim] if image is not None else []
    if len(dims) != 4 or not dims[1] or not dims[2]:
        raise ValueError(f"no input '{INPUT}' [N, H, W, 3] with a fixed image size")
    return TensorrtSettings(dims[1], dims[2], is_qdq(model), default_trt_cache(path, hashlib.sha256(data).hexdigest()))


def session(model: onnx.ModelProto | bytes | str | Path, threads: int | None = None,
            disabled_optimizers: Sequence[str] = ()) -> "onnxruntime.InferenceSession":
    """An ONNX Runtime CPU session (without the named graph optimizers)."""
    import onnxruntime as ort

    opts = session_options(threads)
    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else \
        (str(model) if isinstance(model, Path) else model)
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"],
                                disabled_optimizers=list(disabled_optimizers) or None)


def run_probs(sess: "onnxruntime.InferenceSession", images: np.ndarray, batch: int = 64) -> np.ndarray:
    """Probabilities ``[N, C]`` float32 for uint8 images ``[N, H, W, 3]``."""
    parts = [sess.run(["probs"], {INPUT: images[i:i + batch]})[0] for i in range(0, len(images), batch)]
    return np.concatenate(parts).astype(np.float32)
