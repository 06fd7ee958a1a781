"""int8 ONNX files: QDQ, statically calibrated with ONNX Runtime's quantisation tools.

``int8`` is the TensorRT-ready layout: per-channel symmetric int8 weights and
symmetric int8 activations (zero point 0), QuantFormat.QDQ. ``int8-cpu``
(asymmetric uint8 activations, the layout ONNX Runtime's CPU kernels are
tuned for) is for ONNX Runtime on CPU only: TensorRT refuses it
(docs/export.md, Files, has the measured speeds of both).

Calibration images are uint8 ``[M, H, W, 3]`` arrays fed through the graph's
own `images` input, so the preprocessing inside the graph is calibrated too.
The first conv (3 input channels) and the heads' matmul stay in float, the
usual practice: on the shipped model that raised decision agreement with
fp32 from 98.25% to 99.44% (80 synthetic images), and the first conv was
slower in int8 on ONNX Runtime CPU anyway.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import onnx

from attrnet.core.errors import AttrnetError, InputError
from attrnet.core.input_spec import InputSpec

__all__ = ["INT8_PRECISIONS", "QDQ_PROPAGATION", "float_nodes", "load_image_folder", "measure_qdq_propagation",
           "quantize", "quantize_and_tune"]

INT8_PRECISIONS = ("int8", "int8-cpu")
QDQ_PROPAGATION = "QDQPropagationTransformer"  # one of ort_session.TUNABLE_ORT_OPTIMIZERS


def load_image_folder(folder: str | Path, spec: InputSpec, limit: int = 256,
                      warn: Callable[[str], None] = lambda _: None) -> np.ndarray:
    """Up to `limit` images of `folder` (recursive, sorted), decoded and resized: uint8 ``[M, H, W, 3]``.

    Unreadable images are skipped, each named through `warn`.
    """
    from attrnet.export.parity import readable_images
    from attrnet.core.imageio import decode_image, is_image_file, resize_to_spec

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("calibration folder not found (--calib takes a folder of images)", folder)
    paths = sorted(p for p in folder.rglob("*") if is_image_file(p) and p.is_file())
    if not paths:
        raise InputError("calibration folder holds no images", folder)
    step = max(1, len(paths) // limit)
    imgs = readable_images(paths[::step][:limit], lambda p: resize_to_spec(
        decode_image(p, reduce_to=(spec.height, spec.width)), spec), "calibration", folder, warn)
    return np.stack(imgs)


def _reader(images: np.ndarray, batch: int) -> Any:
    """An onnxruntime.quantization CalibrationDataReader over uint8 image batches."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rewind()

        def rewind(self) -> None:
            self._it: Iterator[dict[str, np.ndarray]] = iter(
                [{"images": images[i:i + batch]} for i in range(0, len(images), batch)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    return Reader()


def float_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes kept in float: the first Conv and the last Gemm (the heads)."""
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    gemms = [n.name for n in model.graph.node if n.op_type == "Gemm"]
    return convs[:1] + gemms[-1:]


def quantize(model: onnx.ModelProto, images: np.ndarray, precision: str = "int8",
             batch: int = 16) -> onnx.ModelProto:
    """A QDQ copy of the fp32 `model`, calibrated (MinMax) on uint8 `images`; metadata kept."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if precision not in INT8_PRECISIONS:
        raise ValueError(f"unknown int8 precision {precision!r}")
    if len(images) == 0:
        raise InputError("no calibration images")
    symmetric = precision == "int8"
    reader = _reader(images, batch)
    with tempfile.TemporaryDirectory(prefix="attrnet-quant-") as tmp:
        src, pre, dst = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        onnx.save_model(model, str(src))
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        except Exception:  # noqa: BLE001 - pre-processing is an optimisation; quantise the plain graph
            pre = src
        try:
            quantize_static(
                str(pre), str(dst), reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["Conv", "Gemm", "MatMul"],
                nodes_to_exclude=float_nodes(model),
                extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True},
            )
        except Exception as exc:  # noqa: BLE001 - ORT raises assorted types
            raise AttrnetError(f"int8 quantisation failed: {type(exc).__name__}: {exc}") from None
        out = onnx.load(str(dst))
    meta = {p.key: p.value for p in model.metadata_props}
    if meta:
        del out.metadata_props[:]
        onnx.helper.set_model_props(out, meta)
    return out


def measure_qdq_propagation(model: onnx.ModelProto, images: np.ndarray, runs: int = 5,
                            min_gain: float = 1.1) -> tuple[list[str], dict[str, float]]:
    """The ONNX Runtime optimizers to skip for this int8 `model` on the CPU provider, and the speeds measured.

    ORT's QDQ propagation moves quantisation across MaxPool. Where its NHWC
    int8 kernels take over that is fast; where they do not (next to a float
    first conv, or between grouped convolutions) the MaxPool runs as a slow
    NCHW int8 kernel, and the int8 file ends up slower than fp32. Both
    sessions are timed on a batch of `images` (one thread, interleaved,
    median of `runs`); propagation is skipped when that is at least
    `min_gain` times faster. Returns ``(names, {"propagation on": img/s,
    "propagation off": img/s})``.
    """
    import time

    from attrnet.export import ort_session

    batch = np.ascontiguousarray(images[:32])
    variants = {"propagation on": (), "propagation off": (QDQ_PROPAGATION,)}
    sessions = {name: ort_session.session(model, threads=1, disabled_optimizers=off) for name, off in variants.items()}
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for name, sess in sessions.items():
        sess.run(["probs"], {"images": batch})  # warm-up
    for _ in range(runs):
        for name, sess in sessions.items():
            t = time.perf_counter()
            sess.run(["probs"], {"images": batch})
            times[name].append(time.perf_counter() - t)
    speed = {name: len(batch) / float(np.median(ts)) for name, ts in times.items()}
    off = speed["propagation off"] >= min_gain * speed["propagation on"]
    return ([QDQ_PROPAGATION] if off else []), speed


def quantize_and_tune(model: onnx.ModelProto, images: np.ndarray, precision: str, export: dict[str, Any],
                      log: Callable[[str], None] = lambda _: None) -> tuple[onnx.ModelProto, list[str]]:
    """`quantize` `model` on `images`, then `measure_qdq_propagation` on the result.

    Returns the int8 graph and the ONNX Runtime optimizers to skip on the CPU provider, and records
    those under ``export["ort_cpu_disabled_optimizers"]`` (`export` is the ``export`` entry of the
    attrnet metadata the file will carry). The speeds measured go to `log`.
    """
    graph = quantize(model, images, precision)
    off, speed = measure_qdq_propagation(graph, images)
    log(f"ONNX Runtime CPU, one thread: {speed['propagation on']:,.0f} img/s with QDQ propagation, "
        f"{speed['propagation off']:,.0f} without -> {'off' if off else 'on'}")
    export["ort_cpu_disabled_optimizers"] = off
    return graph, off
