"""Which model file runs each backend x precision: files beside the model, or exported into a work dir.

Naming follows the export contract: ``<stem>.onnx`` (fp32), ``<stem>.fp16.onnx``,
``<stem>.int8.onnx``, ``<stem>.<precision>.engine``; ``<stem>.safetensors`` is
the checkpoint.
"""
from __future__ import annotations

from pathlib import Path

from attrnet.core.errors import NotAvailableError

__all__ = ["BACKENDS", "checkpoint_for", "export_onnx", "model_stem", "onnx_for", "onnx_name",
           "ONNX_PRECISIONS", "precision_of", "PRECISIONS"]

PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int8-cpu")
ONNX_PRECISIONS = ("fp32", "fp16", "int8", "int8-cpu")
BACKENDS = ("torch", "onnxruntime", "tensorrt")


def model_stem(path: Path) -> tuple[Path, str]:
    """(directory, stem) of a model file with its precision and format suffixes removed."""
    name = path.name
    for suffix in (".safetensors", ".onnx", ".engine", ".plan"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    for p in PRECISIONS:
        if name.endswith("." + p):
            name = name[: -len(p) - 1]
            break
    return path.parent, name


def precision_of(path: Path) -> str:
    """The precision a model file's name says (fp32 when it names none)."""
    parts = path.name.split(".")
    return next((p for p in reversed(parts[:-1]) if p in PRECISIONS), "fp32")


def onnx_name(stem: str, precision: str) -> str:
    return f"{stem}.onnx" if precision == "fp32" else f"{stem}.{precision}.onnx"


def checkpoint_for(model: Path) -> Path | None:
    """The `.safetensors` checkpoint of `model` (itself, or one beside it with the same stem)."""
    if model.suffix == ".safetensors":
        return model
    folder, stem = model_stem(model)
    cand = folder / f"{stem}.safetensors"
    return cand if cand.exists() else None


def onnx_for(model: Path, precision: str, workdir: Path, calib: Path | None = None, calib_images: int = 64) -> Path:
    """The ONNX file of `model` at `precision`: beside the model when present, else exported into `workdir`.

    Raises NotAvailableError when it neither exists nor can be exported here.
    """
    if precision not in ONNX_PRECISIONS:
        raise NotAvailableError(f"no {precision} ONNX format ({', '.join(ONNX_PRECISIONS)})")
    if model.suffix == ".onnx" and precision_of(model) == precision:
        return model
    folder, stem = model_stem(model)
    beside = folder / onnx_name(stem, precision)
    if beside.exists():
        return beside
    out = workdir / onnx_name(stem, precision)
    if out.exists():
        return out
    ckpt = checkpoint_for(model)
    if ckpt is None:
        raise NotAvailableError(f"no {beside.name} beside the model and no checkpoint to export it from")
    export_onnx(ckpt, precision, out, calib, calib_images)
    return out


def export_onnx(checkpoint: Path, precision: str, out: Path, calib: Path | None = None,
                calib_images: int = 64) -> None:
    """Export `checkpoint` to ONNX at `precision` with the exporter's Python API (fold, trace, metadata).

    int8 files are calibrated on `calib` (an image folder) or, without one, on
    `calib_images` images generated from the model's input spec (fine for speed, not
    for accuracy).
    """
    try:
        from attrnet.train.checkpoint import load_model
        from attrnet.export import onnx_graph
        from attrnet.export.fold import fold_model
        from attrnet.core.input_spec import InputSpec
    except ImportError as exc:
        raise NotAvailableError(f"the ONNX exporter is not available here ({exc})") from None
    net, meta = load_model(checkpoint)
    spec = InputSpec.from_dict(meta["input"])
    folded, _ = fold_model(net, spec)
    proto = onnx_graph.trace_to_onnx(folded, spec.height, spec.width, half=precision == "fp16")
    export: dict[str, object] = {"precision": precision, "opset": onnx_graph.OPSET}
    if precision.startswith("int8"):
        from attrnet.export.parity import generated_images
        from attrnet.export.quantize import load_image_folder, quantize_and_tune

        images = load_image_folder(calib, spec) if calib is not None else generated_images(spec, calib_images)
        proto, _ = quantize_and_tune(proto, images, precision, export)
    onnx_graph.set_metadata(proto, onnx_graph.onnx_metadata(meta, onnx_graph.file_sha256(checkpoint), export=export))
    onnx_graph.save(proto, out)
