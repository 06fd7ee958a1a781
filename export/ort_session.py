"""ONNX Runtime sessions over attrnet ONNX files, shared by export (parity, timing) and serving.

`session` opens a CPU session (optionally without some graph optimizers),
`run_probs` runs uint8 images through it; `ort_providers` orders the execution
providers for a device; `cpu_disabled_optimizers` reads which optimizers an
export measured to be slower for its file on the CPU provider.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import onnx

from attrnet.core.errors import NotAvailableError

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["ORT_PROVIDER_ORDER", "ORT_SESSION_CONFIG", "TUNABLE_ORT_OPTIMIZERS", "cpu_disabled_optimizers",
           "ort_providers", "run_probs", "session", "session_options"]

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
